//! Chapter 7: the read-bandwidth kernel, compiled for this instruction set.

use super::Avx512;
use crate::kernels::generic;

#[target_feature(enable = "avx512f")]
pub(crate) fn read_sum(data: &[f32], stride: usize) -> f32 {
    generic::read_sum(Avx512::new(), data, stride)
}
