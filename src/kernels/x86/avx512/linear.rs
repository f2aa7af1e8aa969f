//! The fully connected layer: the generic kernels with tiles for this register file.

use super::Avx512;
use crate::kernels::{LinearShape, generic};

// ANCHOR: linear
#[target_feature(enable = "avx512f")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    // Lanes run along the batch. For 16 images: 12 outputs x 1 vector, 16 features of x at a
    // time; for 32: 8 outputs x 2 vectors (16 accumulators), 4 features (8 vectors of x).
    if shape.batch > 16 {
        generic::linear_forward::<_, 8, 2, 4>(Avx512::new(), shape, x, weight, bias, y)
    } else {
        generic::linear_forward::<_, 12, 1, 16>(Avx512::new(), shape, x, weight, bias, y)
    }
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
