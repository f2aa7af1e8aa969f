//! AVX-512 ReLU.

use super::Avx512;
use crate::kernels::generic;

#[target_feature(enable = "avx512f")]
pub(crate) fn relu_forward(x: &mut [f32]) {
    generic::relu_forward(Avx512::new(), x)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn relu_backward(y: &[f32], grad: &mut [f32]) {
    generic::relu_backward(Avx512::new(), y, grad)
}
