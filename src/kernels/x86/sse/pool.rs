//! SSE max-pool.

use super::Sse;
use crate::kernels::{Pool2dShape, generic};

#[target_feature(enable = "sse2")]
pub(crate) fn max_pool2d_forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    generic::max_pool2d_forward(Sse::new(), shape, input, output)
}

#[target_feature(enable = "sse2")]
pub(crate) fn max_pool2d_backward(
    shape: &Pool2dShape,
    input: &[f32],
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    fuse_relu: bool,
) {
    generic::max_pool2d_backward(Sse::new(), shape, input, output, grad_output, grad_input, fuse_relu)
}
