//! AVX-512 fully connected layer: tiles of 4 x 6 (forward), 8 x 3 and 4 x 6 (backward): 24 accumulators of the 32 registers.

use super::Avx512;
use crate::kernels::{LinearShape, generic};

// ANCHOR: linear
#[target_feature(enable = "avx512f")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    generic::linear_forward::<_, 4, 6>(Avx512::new(), shape, x, weight, bias, y)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn linear_backward_input(shape: &LinearShape, grad_y: &[f32], weight: &[f32], grad_x: &mut [f32]) {
    generic::linear_backward_input::<_, 8, 3>(Avx512::new(), shape, grad_y, weight, grad_x)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn linear_backward_weight(
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    generic::linear_backward_weight::<_, 4, 6>(Avx512::new(), shape, x, grad_y, grad_weight, grad_bias)
}
// ANCHOR_END: linear
