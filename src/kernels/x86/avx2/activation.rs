//! AVX2 ReLU.

use super::Avx2;
use crate::kernels::generic;

#[target_feature(enable = "avx2,fma")]
pub(crate) fn relu_forward(x: &mut [f32]) {
    generic::relu_forward(Avx2::new(), x)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn relu_backward(y: &[f32], grad: &mut [f32]) {
    generic::relu_backward(Avx2::new(), y, grad)
}
