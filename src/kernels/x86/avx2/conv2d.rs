//! AVX2 convolutions: the generic kernels with tiles sized for 16 registers of 8 floats.

use super::Avx2;
use crate::kernels::{Conv2dShape, generic};

// ANCHOR: conv2d
#[target_feature(enable = "avx2,fma")]
pub(crate) fn conv2d_forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    // 6 pixels x 2 vectors = 12 accumulators + 2 weight vectors + 1 broadcast = 15 of 16.
    generic::conv2d_forward::<_, 6, 2>(Avx2::new(), shape, input, weight, bias, output, fuse_relu)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    generic::conv2d_backward_input::<_, 6, 2>(Avx2::new(), shape, grad_output, weight, grad_input)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn conv2d_backward_weight(
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    // 3 kernel columns x 2 input channels x 2 vectors = 12 accumulators + 2 gradient vectors
    // + 1 broadcast = 15 of 16.
    generic::conv2d_backward_weight::<_, 2, 2>(Avx2::new(), shape, input, grad_output, grad_weight, grad_bias)
}
// ANCHOR_END: conv2d
