//! Chapter 11: [`SimdMath`] for SSE2, and the vectorised `exp`, sigmoid and softmax compiled
//! for it.

use super::Sse;
use crate::kernels::generic;
use crate::kernels::generic::SimdMath;
use std::arch::x86_64::*;

// ANCHOR: simd_math
impl SimdMath for Sse {
    #[inline(always)]
    fn sub(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_div_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m128, b: __m128) -> __m128 {
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_min_ps(a, b) }
    }
    #[inline(always)]
    fn blend(self, m: __m128, a: __m128, b: __m128) -> __m128 {
        // SSE2 has no blend instruction: (m & a) | (!m & b).
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b)) }
    }
    #[inline(always)]
    fn pow2(self, k: __m128) -> __m128 {
        // k is a whole number, so the conversion is exact; add the bias, shift into the exponent.
        // SAFETY: `self` proves SSE2; no memory is touched.
        unsafe { _mm_castsi128_ps(_mm_slli_epi32::<23>(_mm_add_epi32(_mm_cvtps_epi32(k), _mm_set1_epi32(127)))) }
    }
}
// ANCHOR_END: simd_math

#[target_feature(enable = "sse2")]
pub(crate) fn exp(x: &[f32], y: &mut [f32]) {
    generic::exp_forward(Sse::new(), x, y)
}

#[target_feature(enable = "sse2")]
pub(crate) fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    generic::sigmoid_forward(Sse::new(), x, y)
}

#[target_feature(enable = "sse2")]
pub(crate) fn softmax_forward(cols: usize, x: &[f32], y: &mut [f32]) {
    generic::softmax_forward(Sse::new(), cols, x, y)
}
