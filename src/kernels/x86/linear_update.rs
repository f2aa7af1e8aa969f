//! Chapter 7: a linear layer's backward pass fused with SGD's update of its weight, compiled
//! for each x86 instruction set with a tile of rows of W by vectors of features that fits its
//! register file: `2 * rows * vectors` for the weights and their gradients, `2 * vectors` for x
//! and the input gradient, and one broadcast.

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::{LinearShape, generic};

/// The sweep for one instruction set, `rows` rows of W by `vectors` vectors of features.
macro_rules! sweep {
    ($isa:ident, $simd:ident, $feature:literal, $rows:literal, $vectors:literal) => {
        #[target_feature(enable = $feature)]
        pub(crate) fn $isa(
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
    };
}

// The tiles were timed on a Zen 4 (family 25, model 17), fc1 at batch 16, in two rounds of
// `bench_report --only fc1_backward_update`. AVX2: 6x1 took 3.5-3.7 ms against 4x1's 3.5-3.8.
// AVX-512: 4x2 took 3.0-3.3 ms, 6x2 3.5-4.0, 8x1 3.2-3.6, 4x3 3.5-4.1 and 2x4 4.2-4.5.
sweep!(sse, Sse, "sse2", 4, 1);
sweep!(avx2, Avx2, "avx2,fma", 4, 1);
sweep!(avx512, Avx512, "avx512f", 4, 2);
