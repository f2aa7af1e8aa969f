//! Chapter 11: [`SimdMath`] for AVX2, and the vectorised `exp`, sigmoid and softmax compiled
//! for it.

use super::Avx2;
use crate::kernels::generic;
use crate::kernels::generic::SimdMath;
use std::arch::x86_64::*;

// ANCHOR: simd_math
impl SimdMath for Avx2 {
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn blend(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        // blendv takes its second operand where the mask lane is set.
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    fn pow2(self, k: __m256) -> __m256 {
        // k is a whole number, so the conversion is exact; add the bias, shift into the exponent.
        // SAFETY: `self` proves AVX2; no memory is touched.
        unsafe {
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(k),
                _mm256_set1_epi32(127),
            )))
        }
    }
}
// ANCHOR_END: simd_math

#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp(x: &[f32], y: &mut [f32]) {
    generic::exp_forward(Avx2::new(), x, y)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    generic::sigmoid_forward(Avx2::new(), x, y)
}

#[target_feature(enable = "avx2,fma")]
pub(crate) fn softmax_forward(cols: usize, x: &[f32], y: &mut [f32]) {
    generic::softmax_forward(Avx2::new(), cols, x, y)
}
