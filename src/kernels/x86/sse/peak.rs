//! The SSE peak: the most arithmetic one core can do per second with 128-bit registers and no
//! memory traffic at all. The report divides every SSE figure by it.
//!
//! SSE has no fused multiply-add, so the most SSE code can reach is to keep the multiplier and
//! the adder busy at the same time: independent `mulps` and `addps`, interleaved. That is the
//! loop below, and it is the honest ceiling of every SSE kernel (each of their multiply-adds is
//! a `mulps` followed by an `addps`, two instructions for two FLOPs per lane).

use std::arch::x86_64::*;

/// Independent multiply chains and add chains. A `mulps` result is ready about 3 cycles after
/// it starts, and a core starts up to 2 per cycle, so at least 6 multiplies must be in flight
/// to keep the multipliers busy; the adders are faster, 6 chains cover them too. Twelve
/// accumulators plus `a` and `b` take 14 of the 16 `xmm` registers.
pub(crate) const MUL_CHAINS: usize = 6;
pub(crate) const ADD_CHAINS: usize = 6;

/// FLOPs of one iteration: one per lane of every `mulps` and every `addps`.
pub(crate) const FLOPS_PER_ITERATION: u64 = ((MUL_CHAINS + ADD_CHAINS) * 4) as u64;

// ANCHOR: peak_sse
/// `iterations` rounds of `m[c] *= a` on 6 registers and `s[c] += b` on 6 others, every lane of
/// chain `c` (numbered 0..12, multiplies first) starting at `c`. Returns the sum of all lanes,
/// so that the compiler must do the work.
#[target_feature(enable = "sse2")]
pub(crate) fn peak(iterations: u64, a: f32, b: f32) -> f32 {
    let (va, vb) = (_mm_set1_ps(a), _mm_set1_ps(b));
    let mut m = [_mm_setzero_ps(); MUL_CHAINS];
    let mut s = [_mm_setzero_ps(); ADD_CHAINS];
    for (c, v) in m.iter_mut().enumerate() {
        *v = _mm_set1_ps(c as f32);
    }
    for (c, v) in s.iter_mut().enumerate() {
        *v = _mm_set1_ps((MUL_CHAINS + c) as f32);
    }
    for _ in 0..iterations {
        for (mc, sc) in m.iter_mut().zip(s.iter_mut()) {
            *mc = _mm_mul_ps(*mc, va);
            *sc = _mm_add_ps(*sc, vb);
        }
    }
    let mut total = _mm_setzero_ps();
    for v in m.into_iter().chain(s) {
        total = _mm_add_ps(total, v);
    }
    // Lanes 2, 3 onto 0, 1, then lane 1 onto lane 0.
    let pairs = _mm_add_ps(total, _mm_movehl_ps(total, total));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs)))
}
// ANCHOR_END: peak_sse
