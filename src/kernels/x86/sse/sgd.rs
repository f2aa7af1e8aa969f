//! SSE optimiser updates.

use super::Sse;
use crate::kernels::generic;

#[target_feature(enable = "sse2")]
pub(crate) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    generic::axpy(Sse::new(), alpha, x, y)
}

#[target_feature(enable = "sse2")]
pub(crate) fn sgd_momentum_update(param: &mut [f32], grad: &[f32], velocity: &mut [f32], lr: f32, momentum: f32) {
    generic::sgd_momentum_update(Sse::new(), param, grad, velocity, lr, momentum)
}
