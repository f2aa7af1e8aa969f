//! Chapter 7: a linear layer's backward pass in one sweep over its weight, fused with SGD's
//! update of the weight or storing its gradient, compiled for each x86 instruction set with a
//! tile of rows of W by vectors of features that fits its register file: `2 * rows * vectors`
//! for the weights and their gradients, `2 * vectors` for x and the input gradient, and one
//! broadcast.

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::table::LinearSweeps;
use crate::kernels::{LinearShape, generic};

/// The two sweeps for one instruction set, `rows` rows of W by `vectors` vectors of features:
/// the backward pass with the update, and with the weight gradient stored.
macro_rules! sweeps {
    ($isa:ident, $simd:ident, $feature:literal, $rows:literal, $vectors:literal, $stream:literal) => {
        pub(crate) mod $isa {
            use super::*;

            #[target_feature(enable = $feature)]
            fn update(
                s: &LinearShape,
                x: &[f32],
                gy: &[f32],
                w: &mut [f32],
                gb: &mut [f32],
                gx: Option<&mut [f32]>,
                lr: f32,
            ) {
                generic::linear_backward_update::<_, $rows, $vectors>($simd::new(), s, x, gy, w, gb, gx, lr)
            }

            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            fn gradients(
                s: &LinearShape,
                x: &[f32],
                gy: &[f32],
                w: &[f32],
                gw: &mut [f32],
                gb: &mut [f32],
                gx: Option<&mut [f32]>,
            ) {
                generic::linear_backward_sweep::<_, $rows, $vectors, $stream>($simd::new(), s, x, gy, w, gw, gb, gx)
            }

            pub(crate) static SWEEPS: LinearSweeps = LinearSweeps { update, gradients };
        }
    };
}

// The tiles were timed on a Zen 4 (family 25, model 17), fc1 at batch 16, in two rounds of
// `bench_report --only fc1_backward_update`. AVX2: 6x1 took 3.5-3.7 ms against 4x1's 3.5-3.8.
// AVX-512: 4x2 took 3.0-3.3 ms, 6x2 3.5-4.0, 8x1 3.2-3.6, 4x3 3.5-4.1 and 2x4 4.2-4.5.
//
// The last argument says whether the sweep that stores the gradient does it by streaming
// stores. On the same Zen 4, timing fc1's two gradients in alternating rounds of one process:
// with AVX-512 (4x2), 3.74-4.14 ms with them and 4.33-4.78 ms without (the gradient's lines
// asked for ahead instead); with AVX2, 6.8 ms with them (4x1, half a line per store) or
// 4.8-5.1 ms (2x2, whole lines), and 4.6-4.9 ms without (4x1). So AVX-512 streams, the others
// do not.
sweeps!(sse, Sse, "sse2", 4, 1, false);
sweeps!(avx2, Avx2, "avx2,fma", 4, 1, false);
sweeps!(avx512, Avx512, "avx512f", 4, 2, true);
