//! AVX2 optimiser updates.

use super::Avx2;
use crate::kernels::generic;

#[target_feature(enable = "avx2,fma")]
pub(crate) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    generic::axpy(Avx2::new(), alpha, x, y)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn sgd_momentum_update(param: &mut [f32], grad: &[f32], velocity: &mut [f32], lr: f32, momentum: f32) {
    generic::sgd_momentum_update(Avx2::new(), param, grad, velocity, lr, momentum)
}
