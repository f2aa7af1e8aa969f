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

/// Checks what both transposes (this one and chapter 7's `tensor::squares::transpose`) need:
/// whole rows of `cols` floats, the block inside them, rows of `at` long enough for every row
/// of `a`, and all of `at`'s rows present. Returns the number of rows of `a`.
pub(crate) fn transpose_rows(a: &[f32], cols: usize, block: &Range<usize>, ld: usize, at: &[f32]) -> usize {
    assert!(cols > 0 && a.len().is_multiple_of(cols), "transpose: {} floats are not rows of {cols}", a.len());
    let rows = a.len() / cols;
    assert!(block.start <= block.end && block.end <= cols, "transpose: columns {block:?} of rows of {cols}");
    assert!(
        ld >= rows && at.len() >= block.len() * ld,
        "transpose: {} floats in rows of {ld} for {rows} rows",
        at.len()
    );
    rows
}

/// `at[j - j0][i] = a[i][j]` for the columns `j0..j1` (`block`) of the row-major matrix `a`
/// (rows of `cols` floats) and all its rows: `at` has rows of `ld` floats, and the floats of
/// each past `a`'s row count are left as they are. The obvious loop: one row of `a` at a time,
/// down a column of `at`. (Chapter 7 measures what that costs, and `tensor::squares` moves
/// squares of 16 x 16 instead.)
///
/// # Panics
/// If `cols` is 0 or does not divide `a`'s length, `block` is not inside a row, `ld` is less
/// than `a`'s row count, or `at` is shorter than `block.len()` rows of `ld`.
pub fn transpose(a: &[f32], cols: usize, block: Range<usize>, ld: usize, at: &mut [f32]) {
    transpose_rows(a, cols, &block, ld, at);
    for (i, row) in a.chunks_exact(cols).enumerate() {
        for (j, &v) in row[block.clone()].iter().enumerate() {
            at[j * ld + i] = v;
        }
    }
}
