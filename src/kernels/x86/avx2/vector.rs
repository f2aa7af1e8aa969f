//! `SimdF32` for AVX2 + FMA: 8 floats in a `ymm` register, 16 registers, fused multiply-add.

use crate::kernels::simd::SimdF32;
use std::arch::x86_64::*;

// ANCHOR: avx2_token
/// Proof that the CPU has AVX2 and FMA. (FMA is a separate feature: a few CPUs have AVX2
/// without it and others FMA without AVX2, so we ask for both.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn new() -> Self {
        Avx2(())
    }
}
// ANCHOR_END: avx2_token

/// Eight -1s then eight 0s: the 8 lanes starting at `8 - n` are a mask of the first `n` lanes.
static TAIL_MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

// ANCHOR: avx2_vector
impl SimdF32 for Avx2 {
    type V = __m256;
    type M = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, src: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at `src`; `self` proves AVX2.
        unsafe { _mm256_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at `dst`; `self` proves AVX2.
        unsafe { _mm256_storeu_ps(dst, v) }
    }
    // ANCHOR: avx2_tail
    #[inline(always)]
    unsafe fn load_partial(self, src: *const f32, n: usize) -> __m256 {
        // SAFETY: `8 - n` is in 1..=8, so the 8 mask lanes are inside TAIL_MASK; the masked
        // load reads only the first `n` floats, which the caller guarantees, and never faults
        // on the others.
        unsafe {
            let mask = _mm256_loadu_si256(TAIL_MASK.as_ptr().add(8 - n.min(7)) as *const __m256i);
            _mm256_maskload_ps(src, mask)
        }
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut f32, v: __m256, n: usize) {
        // SAFETY: as in `load_partial`; the masked store writes only the first `n` floats.
        unsafe {
            let mask = _mm256_loadu_si256(TAIL_MASK.as_ptr().add(8 - n.min(7)) as *const __m256i);
            _mm256_maskstore_ps(dst, mask, v)
        }
    }
    // ANCHOR_END: avx2_tail
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_add_ps(a, b) }
    }
    // ANCHOR: avx2_mul_add
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: `self` proves FMA; no memory is touched.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    // ANCHOR_END: avx2_mul_add
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn and_not(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched. andnot(x, y) is (!x) & y.
        unsafe { _mm256_andnot_ps(b, a) }
    }
    #[inline(always)]
    fn or(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn none(self) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn select(self, m: __m256, v: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_and_ps(m, v) }
    }
    #[inline(always)]
    unsafe fn store_stream(self, dst: *mut f32, v: __m256) {
        // SAFETY: the caller guarantees 8 writable floats at `dst`, aligned to 32 bytes;
        // `self` proves AVX2.
        unsafe { _mm256_stream_ps(dst, v) }
    }
    #[inline(always)]
    fn store_fence(self) {
        // SAFETY: `self` proves AVX2 (and `sfence` is SSE's); no memory is touched.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: a prefetch is a hint that never faults, even for an invalid address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}
// ANCHOR_END: avx2_vector
