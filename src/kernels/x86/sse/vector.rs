//! `SimdF32` for SSE2: 4 floats in an `xmm` register, 16 registers, no fused multiply-add.

use crate::kernels::simd::SimdF32;
use std::arch::x86_64::*;

// ANCHOR: sse_token
/// Proof that the CPU has SSE2 (every x86-64 CPU does).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sse(());

impl Sse {
    /// Safe to call only from code compiled for SSE2, which is what the attribute enforces.
    #[target_feature(enable = "sse2")]
    pub(crate) fn new() -> Self {
        Sse(())
    }
}
// ANCHOR_END: sse_token

// ANCHOR: sse_vector
impl SimdF32 for Sse {
    type V = __m128;
    type M = __m128;
    const LANES: usize = 4;

    #[inline(always)]
    fn zero(self) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, src: *const f32) -> __m128 {
        // SAFETY: the caller guarantees 4 readable floats at `src`.
        unsafe { _mm_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, v: __m128) {
        // SAFETY: the caller guarantees 4 writable floats at `dst`.
        unsafe { _mm_storeu_ps(dst, v) }
    }
    // ANCHOR: sse_tail
    #[inline(always)]
    unsafe fn load_partial(self, src: *const f32, n: usize) -> __m128 {
        // SSE has no masked load: go through a zeroed buffer on the stack.
        let mut buf = [0.0f32; 4];
        // SAFETY: the caller guarantees `n` readable floats at `src`, and n < 4.
        unsafe {
            std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), n.min(4));
            _mm_loadu_ps(buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut f32, v: __m128, n: usize) {
        let mut buf = [0.0f32; 4];
        // SAFETY: the caller guarantees `n` writable floats at `dst`, and n < 4.
        unsafe {
            _mm_storeu_ps(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), dst, n.min(4));
        }
    }
    // ANCHOR_END: sse_tail
    #[inline(always)]
    fn add(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_add_ps(a, b) }
    }
    // ANCHOR: sse_mul_add
    #[inline(always)]
    fn mul_add(self, a: __m128, b: __m128, c: __m128) -> __m128 {
        // Two instructions and two roundings: SSE has no FMA.
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_add_ps(_mm_mul_ps(a, b), c) }
    }
    // ANCHOR_END: sse_mul_add
    #[inline(always)]
    fn max(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_max_ps(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_cmpeq_ps(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_cmpgt_ps(a, b) }
    }
    #[inline(always)]
    fn and_not(self, a: __m128, b: __m128) -> __m128 {
        // andnot(x, y) is (!x) & y.
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_andnot_ps(b, a) }
    }
    #[inline(always)]
    fn or(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_or_ps(a, b) }
    }
    #[inline(always)]
    fn none(self) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_setzero_ps() }
    }
    #[inline(always)]
    fn select(self, m: __m128, v: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_and_ps(m, v) }
    }
    #[inline(always)]
    unsafe fn store_stream(self, dst: *mut f32, v: __m128) {
        // SAFETY: the caller guarantees 4 writable floats at `dst`, aligned to 16 bytes;
        // `self` proves SSE2.
        unsafe { _mm_stream_ps(dst, v) }
    }
    #[inline(always)]
    fn store_fence(self) {
        // SAFETY: `self` proves SSE2 (and `sfence` is SSE's); no memory is touched.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: a prefetch is a hint that never faults, even for an invalid address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}
// ANCHOR_END: sse_vector
