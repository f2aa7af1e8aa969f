//! AVX-512 max-pool.

use super::Avx512;
use crate::kernels::{Pool2dShape, generic};

#[target_feature(enable = "avx512f")]
pub(crate) fn max_pool2d_forward(shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    generic::max_pool2d_forward(Avx512::new(), shape, input, output)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn max_pool2d_backward(
    shape: &Pool2dShape,
    input: &[f32],
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    fuse_relu: bool,
) {
    generic::max_pool2d_backward(Avx512::new(), shape, input, output, grad_output, grad_input, fuse_relu)
}
