//! The fully connected layer: the generic kernels with tiles for this register file.

use super::Avx2;
use crate::kernels::{LinearShape, generic};

// ANCHOR: linear
#[target_feature(enable = "avx2,fma")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    // 4 outputs x 2 vectors (16 images) = 8 accumulators, plus 3 features x 2 vectors of x.
    generic::linear_forward::<_, 4, 2, 3>(Avx2::new(), shape, x, weight, bias, y)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn linear_backward_input(shape: &LinearShape, grad_y: &[f32], weight: &[f32], grad_x: &mut [f32]) {
    // 4 rows x 3 vectors = 12 accumulators + 3 weight vectors + 1 broadcast: all 16 registers,
    // and LLVM keeps one accumulator on the stack (an L1 store and load per step). Measured,
    // that still beats the spill-free 4 x 2, which needs half again as many tiles.
    generic::linear_backward_input::<_, 4, 3>(Avx2::new(), shape, grad_y, weight, grad_x)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn linear_backward_weight(
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    // As backward-input: 4 x 3, one accumulator on the stack, faster than 4 x 2 here.
    generic::linear_backward_weight::<_, 4, 3>(Avx2::new(), shape, x, grad_y, grad_weight, grad_bias)
}
// ANCHOR_END: linear
