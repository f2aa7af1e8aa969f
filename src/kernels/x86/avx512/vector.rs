//! `SimdF32` for AVX-512F: 16 floats in a `zmm` register, 32 registers, and 8 mask registers
//! (`k0`-`k7`) that make partial vectors as cheap as full ones.

use crate::kernels::simd::SimdF32;
use std::arch::x86_64::*;

// ANCHOR: avx512_token
/// Proof that the CPU has AVX-512F (which implies AVX2 and FMA).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new() -> Self {
        Avx512(())
    }
}
// ANCHOR_END: avx512_token

/// The mask of the first `n` of 16 lanes.
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}

// ANCHOR: avx512_vector
impl SimdF32 for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const LANES: usize = 16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, src: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `src`; `self` proves AVX-512F.
        unsafe { _mm512_loadu_ps(src) }
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at `dst`; `self` proves AVX-512F.
        unsafe { _mm512_storeu_ps(dst, v) }
    }
    // ANCHOR: avx512_tail
    #[inline(always)]
    unsafe fn load_partial(self, src: *const f32, n: usize) -> __m512 {
        // SAFETY: a masked load touches only the lanes of its mask (the first `n`, which the
        // caller guarantees readable) and zeroes the rest; masked-off lanes never fault.
        unsafe { _mm512_maskz_loadu_ps(first(n), src) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut f32, v: __m512, n: usize) {
        // SAFETY: a masked store writes only the first `n` lanes, which the caller guarantees.
        unsafe { _mm512_mask_storeu_ps(dst, first(n), v) }
    }
    // ANCHOR_END: avx512_tail
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn eq(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn and_not(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a & !b
    }
    #[inline(always)]
    fn or(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn none(self) -> __mmask16 {
        0
    }
    #[inline(always)]
    fn select(self, m: __mmask16, v: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_maskz_mov_ps(m, v) }
    }
    #[inline(always)]
    unsafe fn store_stream(self, dst: *mut f32, v: __m512) {
        // SAFETY: the caller guarantees 16 writable floats at `dst`, aligned to 64 bytes;
        // `self` proves AVX-512F.
        unsafe { _mm512_stream_ps(dst, v) }
    }
    #[inline(always)]
    fn store_fence(self) {
        // SAFETY: `self` proves AVX-512F (and `sfence` is SSE's); no memory is touched.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: a prefetch is a hint that never faults, even for an invalid address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}
// ANCHOR_END: avx512_vector
