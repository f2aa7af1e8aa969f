//! Chapter 7: a linear layer's backward pass fused with SGD's update of its weight, compiled for
//! each x86 instruction set with the tiles of that set's unfused backward kernels (so that the
//! two agree bit for bit).

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::{LinearShape, generic};

#[target_feature(enable = "sse2")]
pub(crate) fn sse(
    s: &LinearShape,
    x: &[f32],
    gy: &[f32],
    w: &mut [f32],
    gb: &mut [f32],
    gx: Option<&mut [f32]>,
    lr: f32,
) {
    generic::linear_backward_update::<_, 4, 2, 4, 2>(Sse::new(), s, x, gy, w, gb, gx, lr)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn avx2(
    s: &LinearShape,
    x: &[f32],
    gy: &[f32],
    w: &mut [f32],
    gb: &mut [f32],
    gx: Option<&mut [f32]>,
    lr: f32,
) {
    generic::linear_backward_update::<_, 4, 3, 4, 3>(Avx2::new(), s, x, gy, w, gb, gx, lr)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn avx512(
    s: &LinearShape,
    x: &[f32],
    gy: &[f32],
    w: &mut [f32],
    gb: &mut [f32],
    gx: Option<&mut [f32]>,
    lr: f32,
) {
    generic::linear_backward_update::<_, 8, 3, 4, 6>(Avx512::new(), s, x, gy, w, gb, gx, lr)
}
