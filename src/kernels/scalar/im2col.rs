//! Chapter 7: the convolution as one matrix product, the way most frameworks compute it (and its
//! weight gradient as another, `A^T G`).
//!
//! im2col ("image to columns") copies, for every output pixel, the 3x3 window of input pixels it
//! reads into one row of a matrix `A [h*w, 9*c_in]`, with zeros where the window leaves the
//! image. HWIO weights are already a matrix `B [9*c_in, c_out]`, row `(ky*3 + kx)*c_in + ci`,
//! and an NHWC output is a matrix `C [h*w, c_out]`, so one image's convolution is
//!
//! ```text
//! C = A B + bias        (h*w by 9*c_in) times (9*c_in by c_out)
//! ```
//!
//! The price is the copy: every input value appears in up to nine rows of `A`. The scalar
//! table multiplies with the plain loops below; the kernels of `kernels::generic::im2col` make
//! the same `A` with [`im2col`] and multiply with a register-tiled micro-kernel.
//!
//! The input gradient runs the other way: `D = G B^T` gives, for every output pixel, the
//! gradient of each value its window read, `[h*w, 9*c_in]` in `A`'s layout, and [`col2im`]
//! adds each row back to the nine input pixels its window came from.

use super::conv2d::tap;
use crate::kernels::Conv2dShape;

// ANCHOR: im2col
/// One image's windows as rows: `input` is one image `[h, w, c_in]` of `shape` and `cols` is
/// `[h*w, 9*c_in]`, row `y*w + x` holding pixel `(y, x)`'s window in the weights' order
/// (kernel row, kernel column, input channel).
pub(crate) fn im2col(shape: &Conv2dShape, input: &[f32], cols: &mut [f32]) {
    let Conv2dShape { h, w, c_in, .. } = *shape;
    assert!(input.len() == h * w * c_in && cols.len() == h * w * 9 * c_in);
    if c_in == 0 {
        return; // no channels, no columns
    }
    for (pixel, row) in cols.chunks_exact_mut(9 * c_in).enumerate() {
        let (y, x) = (pixel / w, pixel % w);
        // Input pixels x-1..=x+1 that are inside the row, and how many taps fall off on the left.
        let (lo, hi) = (x.saturating_sub(1), (x + 2).min(w));
        let left = lo + 1 - x;
        for (ky, dst) in row.chunks_exact_mut(3 * c_in).enumerate() {
            let Some(iy) = tap(y, ky, h) else {
                dst.fill(0.0);
                continue;
            };
            // One kernel row's three taps are three neighbouring pixels, one run of memory.
            let (pad, rest) = dst.split_at_mut(left * c_in);
            let (inside, pad_right) = rest.split_at_mut((hi - lo) * c_in);
            pad.fill(0.0);
            inside.copy_from_slice(&input[(iy * w + lo) * c_in..(iy * w + hi) * c_in]);
            pad_right.fill(0.0);
        }
    }
}
// ANCHOR_END: im2col

// ANCHOR: col2im
/// [`im2col`]'s copy run backwards, as a sum (its transpose, not its inverse: a value that
/// im2col copied into nine rows gets the sum of all nine back): `grad_input` (one image
/// `[h, w, c_in]`) plus, for
/// every pixel's row of `cols` (`[h*w, 9*c_in]`, in `A`'s layout), each tap's `c_in` values
/// added to the input pixel that tap read. Taps that fell outside the image add nothing.
pub(crate) fn col2im(shape: &Conv2dShape, cols: &[f32], grad_input: &mut [f32]) {
    let Conv2dShape { h, w, c_in, .. } = *shape;
    assert!(grad_input.len() == h * w * c_in && cols.len() == h * w * 9 * c_in);
    if c_in == 0 {
        return; // no channels, nothing to add
    }
    for (pixel, row) in cols.chunks_exact(9 * c_in).enumerate() {
        let (y, x) = (pixel / w, pixel % w);
        let (lo, hi) = (x.saturating_sub(1), (x + 2).min(w));
        let left = lo + 1 - x;
        for (ky, src) in row.chunks_exact(3 * c_in).enumerate() {
            let Some(iy) = tap(y, ky, h) else { continue };
            // One kernel row's taps that are inside the image: one run of memory, added to one.
            let inside = &src[left * c_in..(left + hi - lo) * c_in];
            let dst = &mut grad_input[(iy * w + lo) * c_in..(iy * w + hi) * c_in];
            dst.iter_mut().zip(inside).for_each(|(d, &v)| *d += v);
        }
    }
}
// ANCHOR_END: col2im

/// [`super::conv2d_backward_input`] by a plain matrix product and col2im, one image at a
/// time: for each pixel, `D[row, k] = sum over co of G[row, co] * B[k, co]`, then `D` added back.
pub fn conv2d_backward_input_im2col(s: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    s.check_backward_input(grad_output, weight, grad_input);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    let k = 9 * c_in;
    grad_input.fill(0.0);
    let mut cols = vec![0.0; h * w * k];
    for img in 0..n {
        let g = &grad_output[img * h * w * c_out..][..h * w * c_out];
        // Indexed rather than in chunks: a shape may have no channels, and chunks of 0 panic.
        for pixel in 0..h * w {
            let (d_row, g_row) = (&mut cols[pixel * k..][..k], &g[pixel * c_out..][..c_out]);
            for (i, d) in d_row.iter_mut().enumerate() {
                *d = weight[i * c_out..][..c_out].iter().zip(g_row).map(|(&b, &v)| b * v).sum();
            }
        }
        col2im(s, &cols, &mut grad_input[img * h * w * c_in..][..h * w * c_in]);
    }
}

/// [`super::conv2d_backward_weight`] by im2col and a plain matrix product, one image at a time:
/// for each row of `A` and of `G`, `grad_weight[k] += A[row, k] * G[row]`.
pub fn conv2d_backward_weight_im2col(
    s: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    s.check_backward_weight(input, grad_output, grad_weight, grad_bias);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    let k = 9 * c_in;
    grad_weight.fill(0.0);
    grad_bias.fill(0.0);
    let mut cols = vec![0.0; h * w * k];
    for img in 0..n {
        im2col(s, &input[img * h * w * c_in..][..h * w * c_in], &mut cols);
        let g = &grad_output[img * h * w * c_out..][..h * w * c_out];
        // Indexed rather than in chunks: a shape may have no channels, and chunks of 0 panic.
        for pixel in 0..h * w {
            let (a_row, g_row) = (&cols[pixel * k..][..k], &g[pixel * c_out..][..c_out]);
            grad_bias.iter_mut().zip(g_row).for_each(|(b, &v)| *b += v);
            for (i, &a) in a_row.iter().enumerate() {
                let gw_row = &mut grad_weight[i * c_out..][..c_out];
                gw_row.iter_mut().zip(g_row).for_each(|(gw, &v)| *gw += a * v);
            }
        }
    }
}

/// [`super::conv2d_forward`] by im2col and a plain matrix product, one image at a time: for
/// each row of `A`, `C[row] = bias + sum over k of A[row, k] * B[k]`.
pub fn conv2d_forward_im2col(
    s: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    s.check_forward(input, weight, bias, output);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    let k = 9 * c_in;
    let mut cols = vec![0.0; h * w * k];
    for img in 0..n {
        im2col(s, &input[img * h * w * c_in..][..h * w * c_in], &mut cols);
        let out = &mut output[img * h * w * c_out..][..h * w * c_out];
        // Indexed rather than in chunks: a shape may have no channels, and chunks of 0 panic.
        for pixel in 0..h * w {
            let (a_row, c_row) = (&cols[pixel * k..][..k], &mut out[pixel * c_out..][..c_out]);
            c_row.copy_from_slice(bias);
            for (i, &a) in a_row.iter().enumerate() {
                for (c, &b) in c_row.iter_mut().zip(&weight[i * c_out..][..c_out]) {
                    *c += a * b;
                }
            }
            if fuse_relu {
                c_row.iter_mut().for_each(|c| *c = c.max(0.0));
            }
        }
    }
}
