//! Chapter 7: the read-bandwidth kernel. It does nothing with the data but add it up, so that
//! the time it takes is the time the data takes to arrive.

use crate::kernels::simd::SimdF32;

/// Independent sums. An add is ready about 3 cycles after it starts and a core starts two loads
/// per cycle, so at least 6 chains must be in flight for the loads, not the adds, to set the
/// pace; 8 leaves headroom.
const CHAINS: usize = 8;

// ANCHOR: read_sum
/// The sum of one vector every `stride` vectors of `data` (`stride = 1`: every float), in
/// `CHAINS` independent vector sums. Returns the sum so that the compiler must do the loads.
///
/// ```text
/// step = stride * LANES                  (floats from one load to the next)
/// for each group of CHAINS loads:        CHAINS loads, CHAINS adds, no dependency between them
///     acc[c] += data[(i + c) * step .. + LANES]
/// the loads left over (fewer than CHAINS) go to acc[0]; a last partial vector too
/// return the sum of every lane of every acc
/// ```
///
/// `stride = 0` is read as 1.
#[inline(always)]
pub(crate) fn read_sum<S: SimdF32>(s: S, data: &[f32], stride: usize) -> f32 {
    const { assert!(S::LANES <= 16, "the final sum stores a vector in 16 floats") };
    let step = stride.max(1) * S::LANES;
    let len = data.len();
    // Whole vectors that start at a multiple of `step`: start + LANES <= len.
    let loads = if len < S::LANES { 0 } else { (len - S::LANES) / step + 1 };
    let p = data.as_ptr();
    let mut acc = [s.zero(); CHAINS];
    let mut i = 0;
    // SAFETY: load i starts at i * step and i < loads, so it ends at most at
    // (loads - 1) * step + LANES <= len.
    unsafe {
        while i + CHAINS <= loads {
            for (c, a) in acc.iter_mut().enumerate() {
                *a = s.add(*a, s.load(p.add((i + c) * step)));
            }
            i += CHAINS;
        }
        while i < loads {
            acc[0] = s.add(acc[0], s.load(p.add(i * step)));
            i += 1;
        }
    }
    // With stride 1, the floats after the last whole vector: fewer than LANES of them.
    let done = loads * S::LANES;
    if stride <= 1 && done < len {
        // SAFETY: `done < len`, and load_partial reads the `len - done < LANES` floats from there.
        acc[1] = s.add(acc[1], unsafe { s.load_partial(p.add(done), len - done) });
    }
    let mut total = s.zero();
    for a in acc {
        total = s.add(total, a);
    }
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` holds 16 >= LANES floats.
    unsafe { s.store(lanes.as_mut_ptr(), total) };
    lanes[..S::LANES].iter().sum()
}
// ANCHOR_END: read_sum
