//! Chapter 7: the read-bandwidth kernel, compiled for this instruction set.

use super::Sse;
use crate::kernels::generic;

#[target_feature(enable = "sse2")]
pub(crate) fn read_sum(data: &[f32], stride: usize) -> f32 {
    generic::read_sum(Sse::new(), data, stride)
}
