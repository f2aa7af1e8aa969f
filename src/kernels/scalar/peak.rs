//! The scalar peak: the most arithmetic one core does per second one float per instruction.
//! `kernels::peak` explains what a peak is for.

/// Independent multiply and add chains of the scalar loop (as in the SSE one).
const MUL_CHAINS: usize = 6;
const ADD_CHAINS: usize = 6;
pub(crate) const FLOPS_PER_ITERATION: u64 = (MUL_CHAINS + ADD_CHAINS) as u64;

// ANCHOR: scalar_peak
/// The scalar level: plain Rust, one float per instruction. `m[c] *= a` on 6 chains and
/// `s[c] += b` on 6 others, chain `c` (numbered 0..12, multiplies first) starting at `c`.
/// Kept out of line so that `a` and `b` stay unknown to the compiler.
#[inline(never)]
pub(crate) fn peak(iterations: u64, a: f32, b: f32) -> f32 {
    let mut m: [f32; MUL_CHAINS] = std::array::from_fn(|c| c as f32);
    let mut s: [f32; ADD_CHAINS] = std::array::from_fn(|c| (MUL_CHAINS + c) as f32);
    for _ in 0..iterations {
        for (mc, sc) in m.iter_mut().zip(s.iter_mut()) {
            *mc *= a;
            *sc += b;
        }
    }
    m.iter().chain(&s).sum()
}
// ANCHOR_END: scalar_peak
