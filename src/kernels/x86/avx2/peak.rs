//! The AVX2 peak: the most arithmetic one core can do per second with 256-bit registers and no
//! memory traffic at all. The report divides every AVX2 figure by it.

use std::arch::x86_64::*;

/// Independent accumulators. An FMA result is ready about 4 cycles after it starts and a core
/// starts up to 2 per cycle, so at least 8 must be in flight; 12 leaves headroom for CPUs with
/// longer latencies. With `a` and `b` that is 14 of the 16 `ymm` registers.
pub(crate) const CHAINS: usize = 12;

/// FLOPs of one iteration: 12 FMAs of 8 lanes, a multiply and an add each.
pub(crate) const FLOPS_PER_ITERATION: u64 = (CHAINS * 8 * 2) as u64;

// ANCHOR: peak_avx2
/// `iterations` rounds of `acc[c] = acc[c] * a + b` (one `vfmadd` each) on 12 registers, every
/// lane of chain `c` starting at `c`. Returns the sum of all lanes, so that the compiler must do
/// the work.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn peak(iterations: u64, a: f32, b: f32) -> f32 {
    let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = _mm256_set1_ps(c as f32);
    }
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, va, vb);
        }
    }
    let mut total = _mm256_setzero_ps();
    for v in acc {
        total = _mm256_add_ps(total, v);
    }
    // The two 128-bit halves onto one, then lanes 2, 3 onto 0, 1, then lane 1 onto lane 0.
    let half = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps::<1>(total));
    let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs)))
}
// ANCHOR_END: peak_avx2
