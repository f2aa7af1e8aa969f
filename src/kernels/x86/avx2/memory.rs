//! Chapter 7: the read-bandwidth kernel, compiled for this instruction set.

use super::Avx2;
use crate::kernels::generic;

#[target_feature(enable = "avx2,fma")]
pub(crate) fn read_sum(data: &[f32], stride: usize) -> f32 {
    generic::read_sum(Avx2::new(), data, stride)
}
