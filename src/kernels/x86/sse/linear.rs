//! The fully connected layer: the generic kernels with tiles for this register file.

use super::Sse;
use crate::kernels::{LinearShape, generic};

// ANCHOR: linear
#[target_feature(enable = "sse2")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    // 2 outputs x 4 vectors (the 16 images of a batch): 8 accumulators; one feature at a time.
    generic::linear_forward::<_, 2, 4, 1>(Sse::new(), shape, x, weight, bias, y)
}

#[target_feature(enable = "sse2")]
pub(crate) fn linear_backward_input(shape: &LinearShape, grad_y: &[f32], weight: &[f32], grad_x: &mut [f32]) {
    generic::linear_backward_input::<_, 4, 2>(Sse::new(), shape, grad_y, weight, grad_x)
}

#[target_feature(enable = "sse2")]
pub(crate) fn linear_backward_weight(
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    generic::linear_backward_weight::<_, 4, 2>(Sse::new(), shape, x, grad_y, grad_weight, grad_bias)
}
// ANCHOR_END: linear
