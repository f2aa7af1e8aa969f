//! SSE convolutions: the generic kernels with tiles sized for 16 registers of 4 floats.

use super::Sse;
use crate::kernels::{Conv2dShape, generic};

// ANCHOR: conv2d
#[target_feature(enable = "sse2")]
pub(crate) fn conv2d_forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    // 5 pixels x 2 vectors = 10 accumulators, 2 weight vectors, the broadcast input and the
    // product before it is added: 14 of the 16 registers.
    generic::conv2d_forward::<_, 5, 2>(Sse::new(), shape, input, weight, bias, output, fuse_relu)
}

#[target_feature(enable = "sse2")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    generic::conv2d_backward_input::<_, 5, 2>(Sse::new(), shape, grad_output, weight, grad_input)
}

#[target_feature(enable = "sse2")]
pub(crate) fn conv2d_backward_weight(
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    // 3 kernel columns x 2 input channels x 2 vectors = 12 accumulators, 2 gradient vectors,
    // the broadcast input and the product: all 16 registers.
    generic::conv2d_backward_weight::<_, 2, 2>(Sse::new(), shape, input, grad_output, grad_weight, grad_bias)
}
// ANCHOR_END: conv2d
