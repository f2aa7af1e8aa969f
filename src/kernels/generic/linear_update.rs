//! Chapter 7: a linear layer's backward pass and the SGD step on its weight in one sweep over
//! the weight, so that fc1's 16.8 MB of weights cross the memory bus twice (read, written back)
//! instead of five times (read by the input gradient, the weight gradient written, then the
//! weights and their gradient read and the weights written by the update).

use super::{axpy, linear_backward_input, linear_backward_weight};
use crate::kernels::LinearShape;
use crate::kernels::simd::SimdF32;

/// Features per panel: a panel of W (`out` rows of this many floats, 256 KB for fc1's 128
/// outputs) and its gradient stay in the L2 while both gradients and the update use them, and
/// each row of the panel is 2 KB read in order, which the prefetcher follows. (On the Xeon of
/// chapter 7, fc1's fused pass took 4.4 ms with panels of 64 features, 4.1 with 256, 4.0 with
/// 512 and 4.8 with 1024, whose two panels no longer fit the L2 together.)
pub(crate) const PANEL: usize = 512;

// ANCHOR: linear_backward_update
/// The backward pass of a linear layer and SGD's update of its weight, `w -= lr * grad_w`,
/// without ever storing `grad_w`: panel by panel of `PANEL` features,
///
/// ```text
/// for each panel of features i0..i1:
///     wp[o][..]  = w[o, i0..i1]                    the only read of W from memory
///     gx[b, i0..i1] = sum over o of gy[b, o] wp[o][..]     (the weights before the update)
///     gp[o][..]  = sum over b of gy[b, o] x[b, i0..i1]
///     w[o, i0..i1] = wp[o][..] - lr * gp[o][..]    the only write of W
/// ```
///
/// Each panel runs the unfused kernels ([`linear_backward_input`], [`linear_backward_weight`],
/// [`axpy`]) on a layer as wide as the panel, so every value is the same sum in the same order
/// as theirs and the result is bit for bit that of the three passes. `grad_bias` is overwritten
/// with the bias gradient; the bias itself is left to the optimiser.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward_update<
    S: SimdF32,
    const BB: usize,
    const IVX: usize,
    const OB: usize,
    const IVW: usize,
>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    weight: &mut [f32],
    grad_bias: &mut [f32],
    mut grad_x: Option<&mut [f32]>,
    lr: f32,
) {
    shape.check_backward_weight(x, grad_y, weight, grad_bias);
    if let Some(gx) = grad_x.as_deref() {
        shape.check_backward_input(grad_y, weight, gx);
    }
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    let (mut wp, mut gp) = (vec![0.0; m * PANEL], vec![0.0; m * PANEL]);
    let (mut xp, mut gxp) = (vec![0.0; batch * PANEL], vec![0.0; batch * PANEL]);
    for i0 in (0..d).step_by(PANEL) {
        let width = PANEL.min(d - i0);
        let panel = LinearShape { batch, in_features: width, out_features: m };
        let (wp, gp) = (&mut wp[..m * width], &mut gp[..m * width]);
        let (xp, gxp) = (&mut xp[..batch * width], &mut gxp[..batch * width]);
        gather(weight, d, i0, width, wp);
        gather(x, d, i0, width, xp);
        if let Some(gx) = grad_x.as_deref_mut() {
            linear_backward_input::<S, BB, IVX>(s, &panel, grad_y, wp, gxp);
            scatter(gxp, gx, d, i0, width);
        }
        linear_backward_weight::<S, OB, IVW>(s, &panel, xp, grad_y, gp, grad_bias);
        axpy(s, -lr, gp, wp);
        scatter(wp, weight, d, i0, width);
    }
}
// ANCHOR_END: linear_backward_update

/// `panel[r][..width] = full[r, i0..i0 + width]` for every row of `full` (rows of `d` floats).
#[inline(always)]
fn gather(full: &[f32], d: usize, i0: usize, width: usize, panel: &mut [f32]) {
    for (row, out) in full.chunks_exact(d).zip(panel.chunks_exact_mut(width)) {
        out.copy_from_slice(&row[i0..i0 + width]);
    }
}

/// The inverse of [`gather`].
#[inline(always)]
fn scatter(panel: &[f32], full: &mut [f32], d: usize, i0: usize, width: usize) {
    for (row, src) in full.chunks_exact_mut(d).zip(panel.chunks_exact(width)) {
        row[i0..i0 + width].copy_from_slice(src);
    }
}
