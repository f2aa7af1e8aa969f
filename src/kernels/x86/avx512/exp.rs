//! Chapter 11: [`SimdMath`] for AVX-512F, and the vectorised `exp`, sigmoid and softmax compiled
//! for it.

use super::Avx512;
use crate::kernels::generic;
use crate::kernels::generic::SimdMath;
use std::arch::x86_64::*;

// ANCHOR: simd_math
impl SimdMath for Avx512 {
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn blend(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // mask_blend takes its second operand where the mask bit is set.
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe { _mm512_mask_blend_ps(m, b, a) }
    }
    #[inline(always)]
    fn pow2(self, k: __m512) -> __m512 {
        // k is a whole number, so the conversion is exact; add the bias, shift into the exponent.
        // SAFETY: `self` proves AVX-512F; no memory is touched.
        unsafe {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                _mm512_cvtps_epi32(k),
                _mm512_set1_epi32(127),
            )))
        }
    }
}
// ANCHOR_END: simd_math

#[target_feature(enable = "avx512f")]
pub(crate) fn exp(x: &[f32], y: &mut [f32]) {
    generic::exp_forward(Avx512::new(), x, y)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    generic::sigmoid_forward(Avx512::new(), x, y)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn softmax_forward(cols: usize, x: &[f32], y: &mut [f32]) {
    generic::softmax_forward(Avx512::new(), cols, x, y)
}
