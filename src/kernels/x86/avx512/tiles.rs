//! Chapter 7: fc1's tile from the shape of this CPU's L1 and from timing, instead of from this
//! book's machine.
//!
//! Chapter 6 sized the forward pass's tile at 12 rows for a 12-way L1: the rows of fc1 are
//! 128 KB apart, so the twelve lines a chunk reads, one per row, share one L1 set, and twelve is
//! how many lines a set of a 12-way cache holds. A Zen 4 or a Skylake has 8 ways, and twelve
//! rows evict each other there. The rule below reads the ways with `cpuid` and keeps one way
//! free as a margin for other lines (chapter 6's chunk kept the transposed input on the
//! stack). The rule does not choose well where it matters: for weights whose rows are a page or
//! more apart, each row a stream of its own, the fastest tile was below it on two Xeons and
//! above it on a Zen 4. So for those the first call times every tile and keeps the fastest
//! (`kernels::forward_tile`); the rule sizes the tile of the other layers.
//!
//! The convolution's tiles gain narrower widths, [`TWO_VECTORS`] and [`FOUR_VECTORS`].

use super::Avx512;
use super::conv2d::{CHAPTER_6_FOUR_VECTORS, CHAPTER_6_TWO_VECTORS};
use crate::kernels::cache::data_cache;
use crate::kernels::forward_tile::{ForwardTile, TILE_ROWS, chosen_or};
use crate::kernels::{LinearShape, generic};
use std::sync::OnceLock;
use std::time::Instant;

/// The widths a convolution tile of two vectors may have, widest first
/// (`conv2d::pixels_per_tile`): chapter 6's 12 and 11, and 9 (18 accumulators), which covers
/// conv1's 126 interior pixels exactly and conv2's 62 with one done twice.
pub(super) const TWO_VECTORS: [usize; 3] = [CHAPTER_6_TWO_VECTORS[0], CHAPTER_6_TWO_VECTORS[1], 9];
/// The same for four vectors: chapter 6's 6 (conv3's 30 interior pixels, five tiles exactly),
/// then 5 (20 accumulators) and 4 (16), which compute 3 and 2 of conv2's 62 twice where 6
/// computes 4.
pub(super) const FOUR_VECTORS: [usize; 3] = [CHAPTER_6_FOUR_VECTORS[0], 5, 4];

/// The most rows the AVX-512 tile can hold in registers: 12 accumulators and 16 vectors of the
/// transposed input, 28 of the 32 `zmm` registers.
const REGISTER_ROWS: usize = 12;

/// Times each candidate tile is run when the tile is chosen; the fastest of the runs counts,
/// and the first round also brings the inputs into the caches.
const TIMING_ROUNDS: usize = 3;

// ANCHOR: rows_for_l1
/// Rows per tile of the forward pass for an L1 of `ways` ways: one line per row in one set,
/// and one way left as a margin (chapter 6's chunk of 16 features kept its inputs on the
/// stack; the tiles of 7 to 11 rows no longer do), at most [`REGISTER_ROWS`], at least 4.
pub(crate) fn rows_for_l1(ways: usize) -> usize {
    ways.saturating_sub(1).clamp(4, REGISTER_ROWS)
}

/// [`rows_for_l1`] of this CPU's L1, read once; 7 (an 8-way L1) if the CPU does not say.
fn rows() -> usize {
    static ROWS: OnceLock<usize> = OnceLock::new();
    *ROWS.get_or_init(|| rows_for_l1(data_cache(1).map_or(8, |l1| l1.ways)))
}
// ANCHOR_END: rows_for_l1

/// Whether each row of the weights is a stream of its own: rows a page (4 KB) or more apart,
/// which the prefetchers follow one by one, since they do not cross pages. fc1's rows are
/// 128 KB apart, however its rows are shared out between threads; the MNIST network's are 3 KB.
fn streams(shape: &LinearShape) -> bool {
    shape.in_features.saturating_mul(size_of::<f32>()) >= 4096
}

// ANCHOR: linear_forward
/// Chapter 6's `linear_forward`, with the rows of the batch-16 tile from the timed choice for
/// weights whose rows are separate streams, and from [`rows`] for the others. The sums are the
/// same, feature by feature in the same order, whatever the rows: only the speed changes.
#[target_feature(enable = "avx512f")]
pub(crate) fn linear_forward(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    if shape.batch > 16 {
        // Chapter 6's 8 x 2 tile with chunks of 8 features instead of 4. Chapter 6's chunk of
        // 4 compiles to blocks of 64 FMAs that move 16 vectors through the stack; a chunk of 8
        // to blocks of 128 that move none. On a Zen 4 (family 25, model 17) the MNIST layers at
        // batch 32 ran 2-8 % ahead of AVX2's tile with 8, 7-17 % behind with 4.
        return generic::linear_forward::<_, 8, 2, 8>(Avx512::new(), shape, x, weight, bias, y);
    }
    let rows = match streams(shape) {
        // The closure has this function's target features, so it may call `time_tiles`.
        true => chosen_or(|| time_tiles(shape, x, weight, bias, y)).rows,
        false => rows(),
    };
    forward_rows(rows, shape, x, weight, bias, y)
}

/// Runs each tile on the caller's inputs, [`TIMING_ROUNDS`] times in turn, and keeps the
/// fastest. Each run writes the same `y`. Every tile is a candidate, not only those [`rows`]
/// allows: on a Zen 4 (family 25, model 17, an 8-way L1, so a rule of 7 rows) the 8-row tile
/// was the fastest.
#[target_feature(enable = "avx512f")]
fn time_tiles(shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) -> ForwardTile {
    let mut timings: Vec<(usize, f64)> = TILE_ROWS.into_iter().map(|r| (r, f64::INFINITY)).collect();
    for _ in 0..TIMING_ROUNDS {
        for (rows, fastest) in &mut timings {
            let start = Instant::now();
            forward_rows(*rows, shape, x, weight, bias, y);
            *fastest = fastest.min(start.elapsed().as_secs_f64());
        }
    }
    timings.sort_by(|a, b| a.1.total_cmp(&b.1));
    ForwardTile { rows: timings[0].0, timings }
}

/// The batch-16 forward pass with tiles of `rows` rows (one of [`TILE_ROWS`]).
///
/// The tiles of 7 to 11 rows take the features 8 at a time, not 16 as chapter 6's tile does:
/// LLVM unrolls a chunk of 8 and keeps its 8 vectors of `xt` in registers, where chapter 6's
/// 12-row tile reloads each vector of its chunk of 16 from the stack. On a Zen 4 (family 25,
/// model 17) that took 16-20 % off the 7-row tile's time, and 10 % off the 8-row one's; the
/// 4-row tile, whose chunk of 16 stays in registers, ran as fast either way and keeps 16.
#[target_feature(enable = "avx512f")]
fn forward_rows(rows: usize, shape: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    let s = Avx512::new();
    match rows {
        // Chapter 6's tile.
        12.. => super::linear::linear_forward(shape, x, weight, bias, y),
        11 => generic::linear_forward::<_, 11, 1, 8>(s, shape, x, weight, bias, y),
        8..=10 => generic::linear_forward::<_, 8, 1, 8>(s, shape, x, weight, bias, y),
        7 => generic::linear_forward::<_, 7, 1, 8>(s, shape, x, weight, bias, y),
        _ => generic::linear_forward::<_, 4, 1, 16>(s, shape, x, weight, bias, y),
    }
}
// ANCHOR_END: linear_forward

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::forward_tile::forward_tile;
    use crate::kernels::{Isa, scalar};

    fn value(i: usize, seed: usize) -> f32 {
        ((i * 7919 + seed * 104_729) % 201) as f32 / 100.0 - 1.0
    }

    /// `x`, `weight` and `bias` of `shape`, from `seed`.
    fn inputs(shape: &LinearShape, seed: usize) -> [Vec<f32>; 3] {
        let LinearShape { batch, in_features: d, out_features: m } = *shape;
        [1, 2, 3].map(|part| (0..[batch * d, m * d, m][part - 1]).map(|i| value(i, seed + part)).collect())
    }

    /// Every tile the choice can take, not only this CPU's, computes what the scalar kernel
    /// does on awkward shapes (row counts that leave single rows, batches below 16), and all of
    /// them compute the same bits, which is what lets the timing choose freely.
    #[test]
    fn every_tile_matches_scalar_and_the_others_bit_for_bit() {
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        for (batch, d, m) in [(1, 1, 4), (3, 17, 5), (16, 33, 13), (16, 70, 23), (5, 2049, 12), (16, 40, 128)] {
            let shape = LinearShape { batch, in_features: d, out_features: m };
            let [x, w, b] = inputs(&shape, batch + d);
            let mut want = vec![0.0; batch * m];
            scalar::linear_forward(&shape, &x, &w, &b, &mut want);
            let mut first: Option<Vec<f32>> = None;
            for rows in TILE_ROWS {
                let mut got = vec![f32::NAN; batch * m];
                // SAFETY: AVX-512 was checked above.
                unsafe { forward_rows(rows, &shape, &x, &w, &b, &mut got) };
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-4 * (1.0 + e.abs()), "{rows} rows, {shape:?}: y[{i}] = {g}, want {e}");
                }
                let first = first.get_or_insert_with(|| got.clone());
                assert!(
                    got.iter().zip(first.iter()).all(|(g, f)| g.to_bits() == f.to_bits()),
                    "{rows} rows, {shape:?}: not the bits of {} rows",
                    TILE_ROWS[0]
                );
            }
        }
    }

    /// A layer whose rows are a page apart gets a tile chosen among all of them, with a time
    /// for each, and computes chapter 6's bits with it.
    #[test]
    fn a_streaming_layer_gets_the_fastest_timed_tile() {
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        let shape = LinearShape { batch: 16, in_features: 1024, out_features: 64 };
        assert!(streams(&shape) && !streams(&LinearShape { in_features: 1023, ..shape }));
        let [x, w, b] = inputs(&shape, 7);
        let (mut got, mut want) = (vec![f32::NAN; 16 * 64], vec![f32::NAN; 16 * 64]);
        // SAFETY: AVX-512 was checked above.
        unsafe {
            linear_forward(&shape, &x, &w, &b, &mut got);
            super::super::linear::linear_forward(&shape, &x, &w, &b, &mut want);
        }
        assert!(got.iter().zip(&want).all(|(g, e)| g.to_bits() == e.to_bits()));
        let tile = forward_tile().expect("the first streaming call chooses the tile");
        assert!(TILE_ROWS.contains(&tile.rows), "{tile:?}");
        // Another test of this process may have asked for the rows before: then nothing was timed.
        if !tile.timings.is_empty() {
            let mut timed: Vec<usize> = tile.timings.iter().map(|t| t.0).collect();
            let mut all = TILE_ROWS.to_vec();
            timed.sort_unstable();
            all.sort_unstable();
            assert_eq!(timed, all, "{tile:?}");
            assert_eq!(tile.timings[0].0, tile.rows, "{tile:?}");
            assert!(tile.timings.windows(2).all(|t| t[0].1 <= t[1].1 && t[0].1 > 0.0), "{tile:?}");
        }
    }

    /// Above 16 images the tile takes chunks of 8 features where chapter 6's takes 4: the same
    /// sums in the same order, so the same bits, on shapes with leftover rows, vectors and
    /// features.
    #[test]
    fn the_tile_for_larger_batches_computes_chapter_6s_bits() {
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        for (batch, d, m) in [(17, 33, 13), (32, 70, 23), (40, 2049, 12), (64, 9, 130)] {
            let shape = LinearShape { batch, in_features: d, out_features: m };
            let [x, w, b] = inputs(&shape, batch * d);
            let (mut got, mut want) = (vec![f32::NAN; batch * m], vec![f32::NAN; batch * m]);
            // SAFETY: AVX-512 was checked above.
            unsafe {
                linear_forward(&shape, &x, &w, &b, &mut got);
                super::super::linear::linear_forward(&shape, &x, &w, &b, &mut want);
            }
            assert!(got.iter().zip(&want).all(|(g, e)| g.to_bits() == e.to_bits()), "{shape:?}");
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
