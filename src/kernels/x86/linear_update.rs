//! Chapter 7: a linear layer's backward pass in one sweep over its weight, fused with SGD's
//! update of the weight or storing its gradient, compiled for each x86 instruction set with a
//! tile of rows of W by vectors of features that fits its register file: `2 * rows * vectors`
//! for the weights and their gradients, `2 * vectors` for x and the input gradient, and one
//! broadcast (the input gradient alone: `rows * vectors` for the weights, `vectors` for the
//! input gradient, and one broadcast).

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::cache::data_caches;
use crate::kernels::table::LinearSweeps;
use crate::kernels::{LinearShape, generic};
use std::sync::OnceLock;

// ANCHOR: streams_gradient
/// Whether a sweep that may stream writes this layer's weight gradient by streaming stores:
/// when the weights and their gradient together are as large as this CPU's last-level cache or
/// larger, so that they cannot both stay in it (it holds the rest of the step too, and other
/// cores' work). Written by ordinary stores, a smaller gradient is still in a cache when the
/// optimiser reads it a moment later; a larger one is read back from memory anyway, so reading
/// each of its lines before writing it is pure loss. fc1's weights and gradient, 2 x 16 MiB,
/// fill a Zen 4's 32 MiB L3; the MNIST network's layers, under 1 MB together, stay in the L2.
pub(crate) fn streams_gradient(shape: &LinearShape) -> bool {
    static LAST_LEVEL: OnceLock<usize> = OnceLock::new();
    // With no cache described, 32 MiB: an L3 of a large desktop or a server's share of one.
    let last_level = *LAST_LEVEL.get_or_init(|| data_caches().last().map_or(32 << 20, |c| c.bytes));
    2 * shape.weight_len().saturating_mul(size_of::<f32>()) >= last_level
}

/// Whether chapter 7 makes this layer's input gradient by the sweep, reading the weights in
/// rows, rather than by chapter 4's tiles, which read them down the columns: by the rule of
/// [`streams_gradient`], for weights at least half as large as the last-level cache, which do
/// not stay in it through a step. From a cache, the columns come as fast as the rows; from
/// memory, where fc1's 128 rows lie 128 KB apart, they do not. On the Zen 4 of chapter 7
/// (family 25, model 17, 18:20 UTC, 2026-12-07), in the same runs: a 128 x 4096 layer (2 MB) at
/// 91-92 % of the peak with chapter 4's AVX-512 tiles and 72-81 % with the sweep's; fc1 (16 MB)
/// at 45-46 % with chapter 4's and 63-67 % with the sweep's.
pub(crate) fn reads_in_rows(shape: &LinearShape) -> bool {
    streams_gradient(shape)
}
// ANCHOR_END: streams_gradient

/// The sweeps for one instruction set, `rows` rows of W by `vectors` vectors of features:
/// the backward pass with the update, with the weight gradient stored, and (in tiles of
/// `in_rows` by `in_vectors`) the input gradient alone.
macro_rules! sweeps {
    ($isa:ident, $simd:ident, $feature:literal, $rows:literal, $vectors:literal, $stream:literal, $in_rows:literal, $in_vectors:literal) => {
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
                generic::linear_backward_sweep::<_, $rows, $vectors>($simd::new(), s, x, gy, w, gw, gb, gx, streams(s))
            }

            #[target_feature(enable = $feature)]
            fn input(s: &LinearShape, gy: &[f32], w: &[f32], gx: &mut [f32]) {
                generic::linear_backward_input_sweep::<_, $in_rows, $in_vectors>($simd::new(), s, gy, w, gx)
            }

            fn streams(s: &LinearShape) -> bool {
                $stream && streams_gradient(s)
            }

            pub(crate) static SWEEPS: LinearSweeps = LinearSweeps { update, gradients, input, streams, reads_in_rows };
        }
    };
}

// The tiles were timed on a Zen 4 (family 25, model 17), fc1 at batch 16, in two rounds of
// `bench_report --only fc1_backward_update`. AVX2: 6x1 took 3.5-3.7 ms against 4x1's 3.5-3.8.
// AVX-512: 4x2 took 3.0-3.3 ms, 6x2 3.5-4.0, 8x1 3.2-3.6, 4x3 3.5-4.1 and 2x4 4.2-4.5.
//
// The sixth argument says whether the sweep that stores the gradient does it by streaming
// stores (for a layer that `streams_gradient`). On the same Zen 4, timing fc1's two gradients in alternating rounds of one process:
// with AVX-512 (4x2), 3.74-4.14 ms with them and 4.33-4.78 ms without (the gradient's lines
// asked for ahead instead); with AVX2, 6.8 ms with them (4x1, half a line per store) or
// 4.8-5.1 ms (2x2, whole lines), and 4.6-4.9 ms without (4x1). So AVX-512 streams, the others
// do not. Measured on that Zen 4 only, the choice holds for every CPU of each instruction set.
//
// The input gradient's tiles, timed there on fc1 in alternating runs (18:20-18:26 UTC,
// 2026-12-07, a busy machine), % of the peak: AVX-512 8x1 48-67 (median 60), 8x2 53-62 (57),
// 4x2 42-67 (49), 6x2 57-60, 12x1 48-55, 4x3 37-47; AVX2 4x2 56 twice, 4x1 48-49, 2x2 41-47,
// 6x1 43-44, 8x1 33-41. SSE keeps the update's tile, untimed.
sweeps!(sse, Sse, "sse2", 4, 1, false, 4, 1);
sweeps!(avx2, Avx2, "avx2,fma", 4, 1, false, 4, 2);
sweeps!(avx512, Avx512, "avx512f", 4, 2, true, 8, 1);
