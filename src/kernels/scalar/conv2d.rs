//! 3x3 convolution, stride 1, padding 1, on NHWC activations with HWIO weights.
//!
//! Glossary: `n` batch, `h`/`w` height and width (the same for input and output), `c_in` and
//! `c_out` channels, `ky`/`kx` the kernel row and column (0..3), `y`/`x` an output pixel,
//! `iy = y + ky - 1`, `ix = x + kx - 1` the input pixel it reads (outside the image: zero).

use crate::kernels::Conv2dShape;

/// The input pixel that kernel tap `k` of output coordinate `o` reads, if it is inside `0..len`.
#[inline]
pub(super) fn tap(o: usize, k: usize, len: usize) -> Option<usize> {
    (o + k).checked_sub(1).filter(|&i| i < len)
}

// ANCHOR: conv2d_forward
/// input `[n, h, w, c_in]`, weight `[3, 3, c_in, c_out]`, bias `[c_out]` -> output `[n, h, w, c_out]`
///
/// ```text
/// for each output pixel (b, y, x):
///     out[b, y, x, :] = bias
///     for ky, kx in 3x3, for ci in c_in:
///         out[b, y, x, :] += in[b, y+ky-1, x+kx-1, ci] * w[ky, kx, ci, :]
/// ```
pub fn conv2d_forward(
    s: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    s.check_forward(input, weight, bias, output);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let out = &mut output[((b * h + y) * w + x) * c_out..][..c_out];
                out.copy_from_slice(bias);
                for ky in 0..3 {
                    let Some(iy) = tap(y, ky, h) else { continue };
                    for kx in 0..3 {
                        let Some(ix) = tap(x, kx, w) else { continue };
                        let pixel = &input[((b * h + iy) * w + ix) * c_in..][..c_in];
                        let taps = &weight[(ky * 3 + kx) * c_in * c_out..][..c_in * c_out];
                        for (ci, &v) in pixel.iter().enumerate() {
                            let w_row = &taps[ci * c_out..][..c_out];
                            for (o, &wt) in out.iter_mut().zip(w_row) {
                                *o += v * wt;
                            }
                        }
                    }
                }
                if fuse_relu {
                    out.iter_mut().for_each(|o| *o = o.max(0.0));
                }
            }
        }
    }
}
// ANCHOR_END: conv2d_forward

// ANCHOR: conv2d_backward_input
/// grad_output `[n, h, w, c_out]`, weight `[3, 3, c_in, c_out]` -> grad_input `[n, h, w, c_in]`
///
/// Input pixel (iy, ix) was read by output pixel (iy-ky+1, ix-kx+1) through tap (ky, kx), so
/// ```text
/// grad_in[b, iy, ix, ci] = sum over ky, kx, co of grad_out[b, iy-ky+1, ix-kx+1, co] * w[ky, kx, ci, co]
/// ```
pub fn conv2d_backward_input(s: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    s.check_backward_input(grad_output, weight, grad_input);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    for b in 0..n {
        for iy in 0..h {
            for ix in 0..w {
                let g_in = &mut grad_input[((b * h + iy) * w + ix) * c_in..][..c_in];
                g_in.fill(0.0);
                for ky in 0..3 {
                    // The output row that read input row iy through kernel row ky.
                    let Some(y) = tap(iy, 2 - ky, h) else {
                        continue;
                    };
                    for kx in 0..3 {
                        let Some(x) = tap(ix, 2 - kx, w) else {
                            continue;
                        };
                        let g_out = &grad_output[((b * h + y) * w + x) * c_out..][..c_out];
                        let taps = &weight[(ky * 3 + kx) * c_in * c_out..][..c_in * c_out];
                        for (ci, g) in g_in.iter_mut().enumerate() {
                            let w_row = &taps[ci * c_out..][..c_out];
                            *g += g_out.iter().zip(w_row).map(|(a, b)| a * b).sum::<f32>();
                        }
                    }
                }
            }
        }
    }
}
// ANCHOR_END: conv2d_backward_input

// ANCHOR: conv2d_backward_weight
/// input `[n, h, w, c_in]`, grad_output `[n, h, w, c_out]`
/// -> grad_weight `[3, 3, c_in, c_out]`, grad_bias `[c_out]`
///
/// ```text
/// grad_w[ky, kx, ci, co] = sum over b, y, x of in[b, y+ky-1, x+kx-1, ci] * grad_out[b, y, x, co]
/// grad_b[co]             = sum over b, y, x of grad_out[b, y, x, co]
/// ```
pub fn conv2d_backward_weight(
    s: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    s.check_backward_weight(input, grad_output, grad_weight, grad_bias);
    let Conv2dShape { n, h, w, c_in, c_out } = *s;
    grad_weight.fill(0.0);
    grad_bias.fill(0.0);
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                let g_out = &grad_output[((b * h + y) * w + x) * c_out..][..c_out];
                for (gb, g) in grad_bias.iter_mut().zip(g_out) {
                    *gb += g;
                }
                for ky in 0..3 {
                    let Some(iy) = tap(y, ky, h) else { continue };
                    for kx in 0..3 {
                        let Some(ix) = tap(x, kx, w) else { continue };
                        let pixel = &input[((b * h + iy) * w + ix) * c_in..][..c_in];
                        let taps = &mut grad_weight[(ky * 3 + kx) * c_in * c_out..][..c_in * c_out];
                        for (ci, &v) in pixel.iter().enumerate() {
                            let gw_row = &mut taps[ci * c_out..][..c_out];
                            for (gw, g) in gw_row.iter_mut().zip(g_out) {
                                *gw += v * g;
                            }
                        }
                    }
                }
            }
        }
    }
}
// ANCHOR_END: conv2d_backward_weight
