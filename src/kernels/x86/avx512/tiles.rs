//! Chapter 7: fc1's tile from the shape of this CPU's L1, instead of from this book's machine.
//!
//! Chapter 6 sized the forward pass's tile at 12 rows for a 12-way L1: the rows of fc1 are
//! 128 KB apart, so the twelve lines a chunk reads, one per row, share one L1 set, and twelve is
//! how many lines a set of a 12-way cache holds. A Zen 4 or a Skylake has 8 ways, and twelve
//! rows evict each other there. The rule below reads the ways with `cpuid` and keeps one way
//! free for the other lines a chunk touches (the stack slots of the transposed input).

use super::Avx512;
use crate::kernels::cache::data_cache;
use crate::kernels::{LinearShape, generic};
use std::sync::OnceLock;

/// The most rows the AVX-512 tile can hold in registers: 12 accumulators and 16 vectors of the
/// transposed input, 28 of the 32 `zmm` registers.
const REGISTER_ROWS: usize = 12;

// ANCHOR: rows_for_l1
/// Rows per tile of the forward pass for an L1 of `ways` ways: one line per row in one set,
/// and one way left for the stack, at most [`REGISTER_ROWS`], at least 4.
pub(crate) fn rows_for_l1(ways: usize) -> usize {
    ways.saturating_sub(1).clamp(4, REGISTER_ROWS)
}

/// [`rows_for_l1`] of this CPU's L1, read once; 7 (an 8-way L1) if the CPU does not say.
fn rows() -> usize {
    static ROWS: OnceLock<usize> = OnceLock::new();
    *ROWS.get_or_init(|| rows_for_l1(data_cache(1).map_or(8, |l1| l1.ways)))
}
// ANCHOR_END: rows_for_l1

// ANCHOR: linear_forward
/// Chapter 6's `linear_forward`, with the rows of the batch-16 tile from [`rows`]. The sums
/// are the same, feature by feature in the same order, whatever the rows: only the speed
/// changes.
#[target_feature(enable = "avx512f")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    let s = Avx512::new();
    if shape.batch > 16 {
        return generic::linear_forward::<_, 8, 2, 4>(s, shape, x, weight, bias, y);
    }
    match rows() {
        // Chapter 6's tile: a 13-way or wider L1.
        12.. => super::linear::linear_forward(shape, x, weight, bias, y),
        11 => generic::linear_forward::<_, 11, 1, 16>(s, shape, x, weight, bias, y),
        8..=10 => generic::linear_forward::<_, 8, 1, 16>(s, shape, x, weight, bias, y),
        7 => generic::linear_forward::<_, 7, 1, 16>(s, shape, x, weight, bias, y),
        _ => generic::linear_forward::<_, 4, 1, 16>(s, shape, x, weight, bias, y),
    }
}
// ANCHOR_END: linear_forward

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Isa, scalar};

    /// The batch-16 tile with `OB` rows.
    #[target_feature(enable = "avx512f")]
    fn forward_rows<const OB: usize>(shape: &LinearShape, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32]) {
        generic::linear_forward::<_, OB, 1, 16>(Avx512::new(), shape, x, w, b, y)
    }

    /// Every tile the rule can choose, not only this CPU's, computes what the scalar kernel
    /// does, on awkward shapes (row counts that leave single rows, batches below 16).
    #[test]
    fn every_row_count_matches_scalar() {
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        type Forward = fn(&LinearShape, &[f32], &[f32], &[f32], &mut [f32]);
        let tiles: [(usize, Forward); 4] = [
            // SAFETY: AVX-512 was checked above.
            (4, |s, x, w, b, y| unsafe { forward_rows::<4>(s, x, w, b, y) }),
            // SAFETY: as above.
            (7, |s, x, w, b, y| unsafe { forward_rows::<7>(s, x, w, b, y) }),
            // SAFETY: as above.
            (8, |s, x, w, b, y| unsafe { forward_rows::<8>(s, x, w, b, y) }),
            // SAFETY: as above.
            (11, |s, x, w, b, y| unsafe { forward_rows::<11>(s, x, w, b, y) }),
        ];
        let value = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 201) as f32 / 100.0 - 1.0;
        for (batch, d, m) in [(1, 1, 4), (3, 17, 5), (16, 33, 13), (16, 70, 23), (5, 2049, 12), (16, 40, 128)] {
            let shape = LinearShape { batch, in_features: d, out_features: m };
            let x: Vec<f32> = (0..batch * d).map(|i| value(i, 1)).collect();
            let w: Vec<f32> = (0..m * d).map(|i| value(i, 2)).collect();
            let b: Vec<f32> = (0..m).map(|i| value(i, 3)).collect();
            let mut want = vec![0.0; batch * m];
            scalar::linear_forward(&shape, &x, &w, &b, &mut want);
            for (rows, forward) in tiles {
                let mut got = vec![f32::NAN; batch * m];
                forward(&shape, &x, &w, &b, &mut got);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-4 * (1.0 + e.abs()), "{rows} rows, {shape:?}: y[{i}] = {g}, want {e}");
                }
            }
        }
    }

    #[test]
    fn rows_leave_one_way_free() {
        assert_eq!(rows_for_l1(8), 7, "Zen 1-4, Skylake");
        assert_eq!(rows_for_l1(12), 11, "Zen 5, Ice Lake");
        assert_eq!(rows_for_l1(16), 12, "the registers cap it");
        assert_eq!(rows_for_l1(2), 4);
        assert_eq!(rows_for_l1(0), 4);
    }
}
