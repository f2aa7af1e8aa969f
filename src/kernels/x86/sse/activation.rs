//! SSE ReLU.

use super::Sse;
use crate::kernels::generic;

#[target_feature(enable = "sse2")]
pub(crate) fn relu_forward(x: &mut [f32]) {
    generic::relu_forward(Sse::new(), x)
}

#[target_feature(enable = "sse2")]
pub(crate) fn relu_backward(y: &[f32], grad: &mut [f32]) {
    generic::relu_backward(Sse::new(), y, grad)
}
