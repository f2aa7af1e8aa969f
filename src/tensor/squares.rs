//! Chapter 7: the transpose by squares of 16 x 16, which the forward pass of the fully connected
//! layer and the flatten call instead of chapter 4's obvious loop (`tensor::layout::transpose`,
//! same arguments, same result).

use super::layout::transpose_rows;
use std::ops::Range;

/// Floats per side of the squares [`transpose`] moves: one cache line of 64-byte-aligned floats.
const SQUARE: usize = 16;

// ANCHOR: squares
/// Chapter 4's [`transpose`](super::layout::transpose) (`at[j - j0][i] = a[i][j]` for the
/// columns `block` of `a` and all its rows, into rows of `ld` floats, leaving the floats past
/// `a`'s row count as they are), by squares of 16 x 16: 16 consecutive floats of each of 16
/// rows of `a` are copied to a square on the stack, and the square is then written out as 16
/// rows of `at` (each, when `ld` is 16 and `at` is aligned, one whole line).
///
/// The obvious loop, down one column of `at` per row of `a`, writes one float into each of
/// `j1 - j0` lines and comes back for the next row: for fc1's forward pass (blocks of 2048
/// features of 16 images, 128 KB of `at`, more than a Zen 4's L1 holds) every float was a store
/// to the L2, and on a Zen 4 (family 25, model 17) the squares took 7-18 % off that pass. Row by
/// row of `at` instead, each float read would be a line of its own, for fc1 sixteen lines 128
/// KB apart, all in one set of the L1.
///
/// Not inlined, so that every instruction set's kernel calls one compiled copy: inlined into
/// the AVX-512 forward pass of the fully connected layer, the obvious loop reloaded `ld` (the
/// batch rounded up to whole vectors) from the stack for every float, and with the transposes
/// more than half of the MNIST 64->10 layer's time, that put AVX-512 behind AVX2 there.
///
/// # Panics
/// As chapter 4's: if `cols` is 0 or does not divide `a`'s length, `block` is not inside a
/// row, `ld` is less than `a`'s row count, or `at` is shorter than `block.len()` rows of `ld`.
#[inline(never)]
pub fn transpose(a: &[f32], cols: usize, block: Range<usize>, ld: usize, at: &mut [f32]) {
    let rows = transpose_rows(a, cols, &block, ld, at);
    let mut square = [[0.0f32; SQUARE]; SQUARE];
    for jq in block.clone().step_by(SQUARE) {
        let js = SQUARE.min(block.end - jq);
        for iq in (0..rows).step_by(SQUARE) {
            let is = SQUARE.min(rows - iq);
            for (i, line) in square[..is].iter_mut().enumerate() {
                let from = (iq + i) * cols + jq;
                line[..js].copy_from_slice(&a[from..from + js]);
            }
            let first = (jq - block.start) * ld + iq;
            for (j, to) in (first..).step_by(ld).take(js).enumerate() {
                for (out, line) in at[to..to + is].iter_mut().zip(&square) {
                    *out = line[j];
                }
            }
        }
    }
}
// ANCHOR_END: squares

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::layout;

    /// Every float lands where chapter 4's obvious loop puts it, and the floats of `at`'s rows
    /// past `a`'s row count are not touched: 0, 1, 5, 15, 16, 17 and 33 rows, padded as SSE's
    /// and AVX-512's vectors pad a batch, and blocks that start past 0 and end inside a square.
    #[test]
    fn the_transpose_by_squares_is_the_obvious_transpose() {
        for rows in [0usize, 1, 5, 15, 16, 17, 33] {
            for (cols, block) in [(1, 0..1), (15, 0..15), (40, 3..37), (70, 16..70), (2100, 2048..2100)] {
                for ld in [rows.next_multiple_of(4).max(4), rows.next_multiple_of(16).max(16)] {
                    let a: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                    let (mut got, mut want) = (vec![f32::NAN; block.len() * ld], vec![f32::NAN; block.len() * ld]);
                    transpose(&a, cols, block.clone(), ld, &mut got);
                    layout::transpose(&a, cols, block.clone(), ld, &mut want);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "rows {rows}, cols {cols}, {block:?}, ld {ld}");
                    for (j, row) in got.chunks_exact(ld).enumerate() {
                        assert!(row[rows..].iter().all(|v| v.is_nan()), "rows {rows}, ld {ld}: padding of row {j}");
                        assert!(row[..rows].iter().enumerate().all(|(i, &v)| v == a[i * cols + block.start + j]));
                    }
                }
            }
        }
    }
}
