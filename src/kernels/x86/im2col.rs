//! Chapter 7: the convolution's three passes by im2col (or col2im) and a matrix product,
//! compiled for each x86 instruction set with a micro-kernel of `MR` rows by `NV` vectors that
//! fits its registers: `MR * NV` accumulators, `NV` vectors of B and one broadcast of A.

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::table::Im2col;
use crate::kernels::{Conv2dShape, generic};

/// The im2col passes for one instruction set with an `mr` x `nv`-vector micro-kernel, and
/// `mr_k` rows for the weight gradient, whose rows are the `K = 9 c_in` features of the taps.
macro_rules! im2col {
    ($table:ident, $simd:ident, $feature:literal, $mr:literal, $nv:literal, $mr_k:literal) => {
        pub(crate) static $table: Im2col = {
            #[target_feature(enable = $feature)]
            fn forward(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], relu: bool) {
                generic::conv2d_forward_im2col::<_, $mr, $nv>($simd::new(), s, input, weight, bias, output, relu)
            }
            #[target_feature(enable = $feature)]
            fn backward_weight(s: &Conv2dShape, x: &[f32], g: &[f32], gw: &mut [f32], gb: &mut [f32]) {
                generic::conv2d_backward_weight_im2col::<_, $mr_k, $nv>($simd::new(), s, x, g, gw, gb)
            }
            #[target_feature(enable = $feature)]
            fn backward_input(s: &Conv2dShape, g: &[f32], weight: &[f32], gx: &mut [f32]) {
                generic::conv2d_backward_input_im2col::<_, $mr, $nv>($simd::new(), s, g, weight, gx)
            }
            Im2col { forward, backward_weight, backward_input }
        };
    };
}

// ANCHOR: im2col_tiles
// AVX-512: 12 x 2 (24 of the 32 registers; 32 columns, conv1's whole width). AVX2: 6 x 2, the
// classic 6 x 16 of BLIS on Haswell (12 of 16). SSE, which has no fused multiply-add and needs
// a register for each product: 4 x 2.
//
// The weight gradient's rows are K = 9 c_in, 27 for conv1: tiles of 12 rows cover them with
// 36, a quarter computed and thrown away, and on a Zen 4 (family 25, model 17) conv1's
// AVX-512 weight gradient by im2col ran 2-5 % behind AVX2's, whose 6 rows waste 3 of 30. A
// tile of 9 rows (18 sums) divides every K. AVX2 and SSE have no register file for 9 x 2.
im2col!(SSE, Sse, "sse2", 4, 2, 4);
im2col!(AVX2, Avx2, "avx2,fma", 6, 2, 6);
im2col!(AVX512, Avx512, "avx512f", 12, 2, 9);
// ANCHOR_END: im2col_tiles
