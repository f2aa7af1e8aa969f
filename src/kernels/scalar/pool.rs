//! 2x2 max-pool, stride 2, on NHWC activations.

use crate::kernels::Pool2dShape;

/// The four inputs of a window in scan order (row by row), as offsets in pixels from its
/// top-left input.
fn window(w: usize) -> [usize; 4] {
    [0, 1, w, w + 1]
}

// ANCHOR: max_pool2d_forward
/// input `[n, h, w, c]` -> output `[n, h/2, w/2, c]`
///
/// ```text
/// out[b, y, x, ch] = max(in[b, 2y, 2x, ch], in[b, 2y, 2x+1, ch], in[b, 2y+1, 2x, ch], in[b, 2y+1, 2x+1, ch])
/// ```
pub fn max_pool2d_forward(s: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    s.check_forward(input, output);
    let Pool2dShape { n, h, w, c } = *s;
    let (h_out, w_out) = (s.h_out(), s.w_out());
    for b in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = (b * h + 2 * y) * w + 2 * x;
                let out = &mut output[((b * h_out + y) * w_out + x) * c..][..c];
                out.copy_from_slice(&input[top_left * c..][..c]);
                for offset in &window(w)[1..] {
                    let pixel = &input[(top_left + offset) * c..][..c];
                    for (o, &v) in out.iter_mut().zip(pixel) {
                        // A select rather than an `if` that stores: the compiler turns it into
                        // vector compares and blends. (Which of two equal values is kept does
                        // not matter here; the backward pass looks for the first input that
                        // equals the maximum.)
                        *o = if v > *o { v } else { *o };
                    }
                }
            }
        }
    }
}
// ANCHOR_END: max_pool2d_forward

// ANCHOR: max_pool2d_backward
/// input, output, grad_output -> grad_input `[n, h, w, c]`
///
/// Only the input that won the max affects the output, so only it receives the gradient. When
/// several inputs tie (flat image regions do), the first in scan order wins, as in PyTorch.
pub fn max_pool2d_backward(
    s: &Pool2dShape,
    input: &[f32],
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    fuse_relu: bool,
) {
    s.check_backward(input, output, grad_output, grad_input);
    let Pool2dShape { n, h, w, c } = *s;
    let (h_out, w_out) = (s.h_out(), s.w_out());
    // Rows and columns an odd size leaves out of every window get no gradient at all.
    grad_input.fill(0.0);
    for b in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = (b * h + 2 * y) * w + 2 * x;
                let at = ((b * h_out + y) * w_out + x) * c;
                for ch in 0..c {
                    let (max, g) = (output[at + ch], grad_output[at + ch]);
                    if fuse_relu && max <= 0.0 {
                        continue;
                    }
                    if let Some(offset) = window(w).into_iter().find(|off| input[(top_left + off) * c + ch] == max) {
                        grad_input[(top_left + offset) * c + ch] = g;
                    }
                }
            }
        }
    }
}
// ANCHOR_END: max_pool2d_backward

// ANCHOR: winners
/// Chapter 7: the forward pass of [`max_pool2d_forward`] that also keeps, for the backward pass,
/// which input of each window won: one byte per output, `1..=4` for the first input equal to
/// the maximum in scan order (as [`max_pool2d_backward`] chooses it), `0` when no input gets the
/// gradient (the maximum is not positive and a ReLU came before, or it is NaN). With the
/// winners kept, the backward pass no longer needs the pool's input, which can then live in a
/// scratch buffer of one image instead of a buffer of the whole batch.
pub fn max_pool2d_forward_winners(
    s: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    winners: &mut [u8],
    fuse_relu: bool,
) {
    s.check_forward_winners(input, output, winners);
    max_pool2d_forward(s, input, output);
    let Pool2dShape { n, h, w, c } = *s;
    let (h_out, w_out) = (s.h_out(), s.w_out());
    for b in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = (b * h + 2 * y) * w + 2 * x;
                let at = ((b * h_out + y) * w_out + x) * c;
                for ch in 0..c {
                    let max = output[at + ch];
                    let first = window(w).into_iter().position(|off| input[(top_left + off) * c + ch] == max);
                    winners[at + ch] = match first {
                        Some(k) if !(fuse_relu && max <= 0.0) => k as u8 + 1,
                        _ => 0,
                    };
                }
            }
        }
    }
}

/// The backward pass from the winners: each output's gradient goes to the input its byte names,
/// every other input of the window gets zero. The same numbers as [`max_pool2d_backward`] given
/// the input and output the winners were taken from.
pub fn max_pool2d_backward_winners(s: &Pool2dShape, winners: &[u8], grad_output: &[f32], grad_input: &mut [f32]) {
    s.check_backward_winners(winners, grad_output, grad_input);
    let Pool2dShape { n, h, w, c } = *s;
    let (h_out, w_out) = (s.h_out(), s.w_out());
    grad_input.fill(0.0);
    for b in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = (b * h + 2 * y) * w + 2 * x;
                let at = ((b * h_out + y) * w_out + x) * c;
                for ch in 0..c {
                    if let Some(k) = (winners[at + ch] as usize).checked_sub(1) {
                        grad_input[(top_left + window(w)[k & 3]) * c + ch] = grad_output[at + ch];
                    }
                }
            }
        }
    }
}
// ANCHOR_END: winners
