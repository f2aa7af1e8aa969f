//! 2x2 max-pool on NHWC activations: the channels of a pixel are contiguous, so a window is
//! four vector loads and three `max` instructions per `LANES` channels.

use crate::kernels::Pool2dShape;
use crate::kernels::simd::SimdF32;

/// Offsets, in floats, of the four inputs of the window whose top-left float is at 0, in scan
/// order.
fn window(w: usize, c: usize) -> [usize; 4] {
    [0, c, w * c, (w + 1) * c]
}

// ANCHOR: max_pool2d_forward
#[inline(always)]
pub(crate) fn max_pool2d_forward<S: SimdF32>(s: S, shape: &Pool2dShape, input: &[f32], output: &mut [f32]) {
    shape.check_forward(input, output);
    let Pool2dShape { n, h, w, c } = *shape;
    let (h_out, w_out) = (shape.h_out(), shape.w_out());
    let [a, b, d, e] = window(w, c);
    let (src, dst) = (input.as_ptr(), output.as_mut_ptr());
    for img in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = ((img * h + 2 * y) * w + 2 * x) * c;
                let out = ((img * h_out + y) * w_out + x) * c;
                for ch in (0..c).step_by(S::LANES) {
                    let lanes = c - ch;
                    // SAFETY: 2y+1 < h and 2x+1 < w, so all four pixels of the window are in
                    // the image and `top_left + (w+1)c + c <= input.len()`; `out + c` is within
                    // `output`; the lengths were checked above.
                    unsafe {
                        let p = src.add(top_left + ch);
                        let top = s.max(s.load_n(p.add(a), lanes), s.load_n(p.add(b), lanes));
                        let bottom = s.max(s.load_n(p.add(d), lanes), s.load_n(p.add(e), lanes));
                        s.store_n(dst.add(out + ch), s.max(top, bottom), lanes);
                    }
                }
            }
        }
    }
}
// ANCHOR_END: max_pool2d_forward

// ANCHOR: max_pool2d_backward
/// The gradient goes to the first input (in scan order) equal to the window's maximum. With
/// vectors we cannot stop at the first match, so we keep a mask of the lanes already served:
/// each input takes the gradient in the lanes where it equals the maximum and no earlier input
/// did, and zero elsewhere. Every input of every window is written, so no zeroing pass is needed
/// except for an odd last row or column, which no window covers.
#[inline(always)]
pub(crate) fn max_pool2d_backward<S: SimdF32>(
    s: S,
    shape: &Pool2dShape,
    input: &[f32],
    output: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
    fuse_relu: bool,
) {
    shape.check_backward(input, output, grad_output, grad_input);
    let Pool2dShape { n, h, w, c } = *shape;
    let (h_out, w_out) = (shape.h_out(), shape.w_out());
    let offsets = window(w, c);
    let zero = s.zero();
    let (src, max, g_out, g_in) = (input.as_ptr(), output.as_ptr(), grad_output.as_ptr(), grad_input.as_mut_ptr());
    for img in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = ((img * h + 2 * y) * w + 2 * x) * c;
                let out = ((img * h_out + y) * w_out + x) * c;
                for ch in (0..c).step_by(S::LANES) {
                    let lanes = c - ch;
                    // SAFETY: as in the forward pass, the window and the output pixel are
                    // inside their slices; `grad_input` has the length of `input`.
                    unsafe {
                        let m = s.load_n(max.add(out + ch), lanes);
                        let mut g = s.load_n(g_out.add(out + ch), lanes);
                        if fuse_relu {
                            g = s.select(s.gt(m, zero), g);
                        }
                        let mut served = s.none();
                        for off in offsets {
                            let at = top_left + off + ch;
                            let hit = s.and_not(s.eq(s.load_n(src.add(at), lanes), m), served);
                            s.store_n(g_in.add(at), s.select(hit, g), lanes);
                            served = s.or(served, hit);
                        }
                    }
                }
            }
        }
    }
    zero_outside_windows(shape, grad_input);
}
// ANCHOR_END: max_pool2d_backward

/// Zeroes the gradient of an odd last column and an odd last row, which belong to no window.
pub(crate) fn zero_outside_windows(shape: &Pool2dShape, grad_input: &mut [f32]) {
    let Pool2dShape { n, h, w, c } = *shape;
    let (h_out, w_out) = (shape.h_out(), shape.w_out());
    for img in 0..n {
        for y in 0..h {
            let row = &mut grad_input[(img * h + y) * w * c..][..w * c];
            if y >= 2 * h_out {
                row.fill(0.0);
            } else if w > 2 * w_out {
                row[2 * w_out * c..].fill(0.0);
            }
        }
    }
}
