//! Chapter 7: the pool that keeps its winners, compiled for each x86 instruction set.

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::sse::Sse;
use crate::kernels::table::PoolWinners;
use crate::kernels::{Pool2dShape, generic};

#[target_feature(enable = "sse2")]
fn forward_sse(shape: &Pool2dShape, input: &[f32], output: &mut [f32], winners: &mut [u8], fuse_relu: bool) {
    generic::max_pool2d_forward_winners(Sse::new(), shape, input, output, winners, fuse_relu)
}

#[target_feature(enable = "sse2")]
fn backward_sse(shape: &Pool2dShape, winners: &[u8], grad_output: &[f32], grad_input: &mut [f32]) {
    generic::max_pool2d_backward_winners(Sse::new(), shape, winners, grad_output, grad_input)
}

#[target_feature(enable = "avx2,fma")]
fn forward_avx2(shape: &Pool2dShape, input: &[f32], output: &mut [f32], winners: &mut [u8], fuse_relu: bool) {
    generic::max_pool2d_forward_winners(Avx2::new(), shape, input, output, winners, fuse_relu)
}

#[target_feature(enable = "avx2,fma")]
fn backward_avx2(shape: &Pool2dShape, winners: &[u8], grad_output: &[f32], grad_input: &mut [f32]) {
    generic::max_pool2d_backward_winners(Avx2::new(), shape, winners, grad_output, grad_input)
}

#[target_feature(enable = "avx512f")]
fn forward_avx512(shape: &Pool2dShape, input: &[f32], output: &mut [f32], winners: &mut [u8], fuse_relu: bool) {
    generic::max_pool2d_forward_winners(Avx512::new(), shape, input, output, winners, fuse_relu)
}

#[target_feature(enable = "avx512f")]
fn backward_avx512(shape: &Pool2dShape, winners: &[u8], grad_output: &[f32], grad_input: &mut [f32]) {
    generic::max_pool2d_backward_winners(Avx512::new(), shape, winners, grad_output, grad_input)
}

pub(crate) static SSE: PoolWinners = PoolWinners { forward: forward_sse, backward: backward_sse };
pub(crate) static AVX2: PoolWinners = PoolWinners { forward: forward_avx2, backward: backward_avx2 };
pub(crate) static AVX512: PoolWinners = PoolWinners { forward: forward_avx512, backward: backward_avx512 };
