//! Conversions between memory layouts.
//!
//! The same image can be laid out with the channel varying slowest (NCHW) or fastest (NHWC).
//! PyTorch stores activations as NCHW and convolution weights as OIHW (`[c_out, c_in, kh, kw]`);
//! our kernels use NHWC activations and HWIO weights (`[kh, kw, c_in, c_out]`), so that the
//! innermost loop of a convolution runs over contiguous output channels.

use super::Tensor;
use std::ops::Range;

// ANCHOR: nchw_to_nhwc
/// `[N, C, H, W]` to `[N, H, W, C]`.
pub fn nchw_to_nhwc(x: &Tensor) -> Tensor {
    let &[n, c, h, w] = x.shape() else { panic!("expected a 4-D tensor, got {:?}", x.shape()) };
    let mut y = Tensor::zeros(&[n, h, w, c]);
    for b in 0..n {
        for ch in 0..c {
            for row in 0..h {
                for col in 0..w {
                    y[[b, row, col, ch]] = x[[b, ch, row, col]];
                }
            }
        }
    }
    y
}
// ANCHOR_END: nchw_to_nhwc

/// `[N, H, W, C]` to `[N, C, H, W]`.
pub fn nhwc_to_nchw(x: &Tensor) -> Tensor {
    let &[n, h, w, c] = x.shape() else { panic!("expected a 4-D tensor, got {:?}", x.shape()) };
    let mut y = Tensor::zeros(&[n, c, h, w]);
    for b in 0..n {
        for row in 0..h {
            for col in 0..w {
                for ch in 0..c {
                    y[[b, ch, row, col]] = x[[b, row, col, ch]];
                }
            }
        }
    }
    y
}

/// Convolution weights `[c_out, c_in, kh, kw]` (PyTorch) to `[kh, kw, c_in, c_out]` (ours).
pub fn oihw_to_hwio(w: &Tensor) -> Tensor {
    let &[o, i, kh, kw] = w.shape() else { panic!("expected a 4-D tensor, got {:?}", w.shape()) };
    let mut y = Tensor::zeros(&[kh, kw, i, o]);
    for co in 0..o {
        for ci in 0..i {
            for r in 0..kh {
                for s in 0..kw {
                    y[[r, s, ci, co]] = w[[co, ci, r, s]];
                }
            }
        }
    }
    y
}

/// Convolution weights `[kh, kw, c_in, c_out]` (ours) to `[c_out, c_in, kh, kw]` (PyTorch).
pub fn hwio_to_oihw(w: &Tensor) -> Tensor {
    let &[kh, kw, i, o] = w.shape() else { panic!("expected a 4-D tensor, got {:?}", w.shape()) };
    let mut y = Tensor::zeros(&[o, i, kh, kw]);
    for r in 0..kh {
        for s in 0..kw {
            for ci in 0..i {
                for co in 0..o {
                    y[[co, ci, r, s]] = w[[r, s, ci, co]];
                }
            }
        }
    }
    y
}

/// Floats per side of the squares [`transpose`] moves: one cache line.
const SQUARE: usize = 16;

// ANCHOR: transpose
/// `at[j - j0][i] = a[i][j]` for the columns `j0..j1` (`block`) of the row-major matrix `a`
/// (rows of `cols` floats) and all its rows: `at` has rows of `ld` floats, and the floats of
/// each past `a`'s row count are left as they are.
///
/// It moves squares of 16 x 16: each row's 16 floats of the square (one line of `a`) are copied
/// to a square on the stack, and the square is then written out as 16 rows of `at` (each, when
/// `ld` is 16, one whole line). The obvious loop, down one column of `at` per row of `a`, writes
/// one float into each of `j1 - j0` lines and comes back for the next row: for fc1's forward
/// pass (blocks of 2048 features of 16 images, 128 KB of `at`, more than a Zen 4's L1 holds)
/// every float was a store to the L2, and on a Zen 4 (family 25, model 17) the squares took 8-18 %
/// off that pass. Row by row of `at` instead, each float read would be a line of its own, for
/// fc1 sixteen lines 128 KB apart, all in one set of the L1.
///
/// Not inlined, so that every instruction set's kernel calls one compiled copy: inlined into
/// the AVX-512 forward pass of the fully connected layer, the obvious loop reloaded its row
/// length from the stack for every float, and with the transposes more than half of the MNIST
/// 64->10 layer's time, that put AVX-512 behind AVX2 there.
///
/// # Panics
/// If `a`'s rows do not have the columns of `block`, or `at` is shorter than `block.len()` rows
/// of `ld` floats with `ld` less than `a`'s row count.
#[inline(never)]
pub fn transpose(a: &[f32], cols: usize, block: Range<usize>, ld: usize, at: &mut [f32]) {
    let rows = a.len() / cols;
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
// ANCHOR_END: transpose

#[cfg(test)]
mod tests {
    use super::*;

    /// Every float lands where the obvious loop (`at[j - j0][i] = a[i][j]`) puts it, and the
    /// floats of `at`'s rows past `a`'s row count are not touched: row counts around the
    /// square's side, padded as SSE's and AVX-512's vectors pad a batch, and blocks that start
    /// past 0 and end inside a square.
    #[test]
    fn the_transpose_by_squares_is_the_obvious_transpose() {
        for rows in [1usize, 5, 15, 16, 17, 33] {
            for (cols, block) in [(1, 0..1), (15, 0..15), (40, 3..37), (70, 16..70), (2100, 2048..2100)] {
                for ld in [rows.next_multiple_of(4), rows.next_multiple_of(16)] {
                    let a: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
                    let mut at = vec![f32::NAN; block.len() * ld];
                    transpose(&a, cols, block.clone(), ld, &mut at);
                    for (j, row) in at.chunks_exact(ld).enumerate() {
                        for (i, &got) in row.iter().enumerate() {
                            let want = if i < rows { a[i * cols + block.start + j] } else { f32::NAN };
                            let at = format!("rows {rows}, cols {cols}, {block:?}, ld {ld}: at[{j}][{i}]");
                            assert_eq!(got.to_bits(), want.to_bits(), "{at}");
                        }
                    }
                }
            }
        }
    }
}
