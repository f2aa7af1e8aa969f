//! AVX-512 convolutions: the generic kernels with tiles sized for 32 registers of 16 floats.

use super::Avx512;
use crate::kernels::{Conv2dShape, generic};

// ANCHOR: conv2d
#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    let s = Avx512::new();
    // 24 accumulators of the 32 registers, shaped to the layer: 6 pixels x 4 vectors (64
    // output channels) when there are that many, else 12 pixels x 2 vectors (conv1's 32).
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_forward::<_, 6, 4>(s, shape, input, weight, bias, output, fuse_relu)
    } else {
        generic::conv2d_forward::<_, 12, 2>(s, shape, input, weight, bias, output, fuse_relu)
    }
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    let s = Avx512::new();
    // Here the output channels are the layer's input channels.
    if shape.c_in.div_ceil(16) >= 4 {
        generic::conv2d_backward_input::<_, 6, 4>(s, shape, grad_output, weight, grad_input)
    } else {
        generic::conv2d_backward_input::<_, 12, 2>(s, shape, grad_output, weight, grad_input)
    }
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_weight(
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    let s = Avx512::new();
    // 3 kernel columns x input channels x output vectors: 3 x 2 x 4 = 24 accumulators for 64
    // or more output channels, 3 x 4 x 2 for 32, and 3 x 3 x 2 for conv1's 3 input channels.
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_backward_weight::<_, 2, 4>(s, shape, input, grad_output, grad_weight, grad_bias)
    } else if shape.c_in.is_multiple_of(4) {
        generic::conv2d_backward_weight::<_, 4, 2>(s, shape, input, grad_output, grad_weight, grad_bias)
    } else {
        generic::conv2d_backward_weight::<_, 3, 2>(s, shape, input, grad_output, grad_weight, grad_bias)
    }
}
// ANCHOR_END: conv2d
