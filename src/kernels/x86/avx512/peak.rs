//! The AVX-512 peak: the most arithmetic one core can do per second with 512-bit registers and
//! no memory traffic at all. The report divides every figure by it ("% of peak").

use std::arch::x86_64::*;

/// Independent accumulators. An FMA result is ready about 4 cycles after it starts and a core
/// with two 512-bit FMA units starts 2 per cycle, so at least 8 must be in flight; 12 leaves
/// headroom (there are 32 `zmm` registers).
pub(crate) const CHAINS: usize = 12;

/// FLOPs of one iteration: 12 FMAs of 16 lanes, a multiply and an add each.
pub(crate) const FLOPS_PER_ITERATION: u64 = (CHAINS * 16 * 2) as u64;

// ANCHOR: peak_avx512
/// `iterations` rounds of `acc[c] = acc[c] * a + b` (one `vfmadd` each) on 12 registers, every
/// lane of chain `c` starting at `c`. Returns the sum of all lanes, so that the compiler must do
/// the work.
#[target_feature(enable = "avx512f")]
pub(crate) fn peak(iterations: u64, a: f32, b: f32) -> f32 {
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = _mm512_set1_ps(c as f32);
    }
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, va, vb);
        }
    }
    let mut total = _mm512_setzero_ps();
    for v in acc {
        total = _mm512_add_ps(total, v);
    }
    _mm512_reduce_add_ps(total)
}
// ANCHOR_END: peak_avx512
