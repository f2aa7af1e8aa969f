//! Chapter 7: a linear layer's backward pass and the SGD step on its weight in one sweep over
//! the weight, so that fc1's 16.8 MB of weights cross the memory bus twice (read, written back)
//! instead of five times (read by the input gradient, the weight gradient written, then the
//! weights and their gradient read and the weights written by the update); and, for an
//! optimiser that needs the gradient itself, the same sweep with the gradient stored.

use super::feature_tiles;
use crate::kernels::LinearShape;
use crate::kernels::simd::SimdF32;

/// Features per panel. A panel of x and one of the input gradient (`batch` rows of this many
/// floats each, 8 KB apiece for a batch of 16) stay in L1 while every row of W passes over
/// them; W itself is read straight from where it lies, each row's 512 bytes in order. (On the
/// Zen 4 of chapter 7, panels of 64 and 256 features were no faster, in two rounds each.)
const PANEL: usize = 128;

// ANCHOR: linear_backward_update
/// The backward pass of a linear layer and SGD's update of its weight, `w -= lr * grad_w`,
/// without ever storing `grad_w`, and reading and writing each weight once:
///
/// ```text
/// for each panel of features i0..i1:
///     xp[b][..] = x[b, i0..i1];  gxp[b][..] = 0       (copies of `batch` rows, in L1)
///     for each tile of OB rows o0.. of W, each tile of V vectors of the panel:
///         wv[r][v] = w[o0 + r, ..]                    the only read of these weights
///         g[r][v] = 0
///         for b in 0..batch:                          1 broadcast per row, 2 FMAs per vector
///             gxp[b][v] += grad_y[b, o0 + r] * wv[r][v]      (the weights before the update)
///             g[r][v]   += grad_y[b, o0 + r] * xp[b][v]
///         w[o0 + r, ..] = wv[r][v] - lr * g[r][v]     the only write
///     grad_x[b, i0..i1] = gxp[b][..]
/// ```
///
/// Every number is the sum the unfused kernels take, in their order
/// ([`linear_backward_input`](super::linear_backward_input),
/// [`linear_backward_weight`](super::linear_backward_weight), [`axpy`](super::axpy)): each
/// input gradient over the outputs from the first, each weight gradient over the images from
/// the first, each from zero. So the result is theirs bit for bit. `grad_bias` is overwritten
/// with the bias gradient; the bias itself is left to the optimiser.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward_update<S: SimdF32, const OB: usize, const V: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_x: Option<&mut [f32]>,
    lr: f32,
) {
    shape.check_backward_sweep(x, grad_y, weight, weight, grad_bias, grad_x.as_deref());
    let w = weight.as_mut_ptr();
    // SAFETY: W, its gradient's place (W itself), x, grad_y and grad_x have the shape's
    // lengths (checked above).
    unsafe { sweep::<S, OB, V, true, false, false>(s, shape, x, grad_y, w, w, grad_bias, grad_x, lr) }
}

/// The sweep behind all three: with `GW`, each tile of W's gradient is stored at `out`
/// (`STORE`, by streaming stores with `STREAM`) or taken from the weights at `w` times `lr` and
/// the result written at `out`, which is then `w` itself; without, only the input gradient is
/// made, and `x`, `out` and `grad_bias` are not touched.
///
/// # Safety
/// `w` and `out` hold `shape.weight_len()` floats and are either equal or disjoint; `grad_y`
/// and `grad_x` have the shape's lengths, and so do `x` and `grad_bias` with `GW`. With
/// `STREAM`, `out` is aligned to a whole vector and `in_features` is a multiple of `LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn sweep<S: SimdF32, const OB: usize, const V: usize, const GW: bool, const STORE: bool, const STREAM: bool>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    w: *const f32,
    out: *mut f32,
    grad_bias: &mut [f32],
    mut grad_x: Option<&mut [f32]>,
    lr: f32,
) {
    // Streaming stores rely on it: with `d` a multiple of `LANES`, every panel then starts on a
    // whole vector of each row.
    const { assert!(PANEL.is_multiple_of(S::LANES), "whole vectors in a panel") };
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    if GW {
        grad_bias.fill(0.0);
        for row in grad_y.chunks_exact(m) {
            for (gb, g) in grad_bias.iter_mut().zip(row) {
                *gb += g;
            }
        }
    }
    let mut xp = vec![0.0; if GW { batch * PANEL.min(d) } else { 0 }];
    let mut gxp = vec![0.0; if grad_x.is_some() { batch * PANEL.min(d) } else { 0 }];
    for i0 in (0..d).step_by(PANEL) {
        let width = PANEL.min(d - i0);
        let xp = &mut xp[..if GW { batch * width } else { 0 }];
        for (row, out) in x.chunks_exact(d).zip(xp.chunks_exact_mut(width)) {
            out.copy_from_slice(&row[i0..i0 + width]);
        }
        let panel = Panel { batch, d, m, width, lr };
        // SAFETY: W and `out` are [m, d] and grad_y [batch, m] (the caller's contract),
        // `i0 + width <= d` by the loop, and the panels hold `batch` rows of `width` where they
        // are used: that of x with `GW`, that of the input gradient with `grad_x`.
        unsafe {
            let (w, out) = (w.add(i0), out.add(i0));
            if grad_x.is_some() {
                let gxp = &mut gxp[..batch * width];
                gxp.fill(0.0);
                let at = Operands { gy: grad_y.as_ptr(), xp: xp.as_ptr(), gxp: gxp.as_mut_ptr(), w, out };
                panel.run::<S, OB, V, GW, true, STORE, STREAM>(s, at);
            } else {
                let at = Operands { gy: grad_y.as_ptr(), xp: xp.as_ptr(), gxp: std::ptr::null_mut(), w, out };
                panel.run::<S, OB, V, GW, false, STORE, STREAM>(s, at);
            }
        }
        if let Some(gx) = grad_x.as_deref_mut() {
            for (row, src) in gx.chunks_exact_mut(d).zip(gxp[..batch * width].chunks_exact(width)) {
                row[i0..i0 + width].copy_from_slice(src);
            }
        }
    }
}
// ANCHOR_END: linear_backward_update

// ANCHOR: linear_backward_sweep
/// Both gradients of a linear layer in one sweep over its weight, for an optimiser that needs
/// the gradient itself (SGD with momentum): the same sweep, each tile of `grad_w` stored where
/// [`linear_backward_update`] would have updated the weights. W is read once, by the tile that
/// also makes its share of the input gradient, where the separate passes read it in a pass of
/// their own. Bit for bit those passes.
///
/// With `stream`, the gradient goes out by streaming stores where they can be used (every
/// row of the gradient starts on a whole vector: `grad_w` so aligned and `d` a multiple of
/// `LANES`): nothing reads a line of it before it is written, so 16.8 MB of fc1's 50 MB
/// of traffic are not moved. Otherwise each tile asks for the lines of the gradient it will
/// write next, as it does for those of W.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward_sweep<S: SimdF32, const OB: usize, const V: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    weight: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    grad_x: Option<&mut [f32]>,
    stream: bool,
) {
    shape.check_backward_sweep(x, grad_y, weight, grad_weight, grad_bias, grad_x.as_deref());
    let (w, gw) = (weight.as_ptr(), grad_weight.as_mut_ptr());
    let whole_vectors = gw.addr().is_multiple_of(4 * S::LANES) && shape.in_features.is_multiple_of(S::LANES);
    // SAFETY: W and its gradient, x, grad_y and grad_x have the shape's lengths (checked
    // above), and the gradient, borrowed mutably, overlaps none of the others. Streaming
    // stores are chosen only where every full vector of the gradient is aligned.
    unsafe {
        match stream && whole_vectors {
            true => {
                // Fences the streaming stores when the sweep ends, even by a panic: nothing,
                // this thread included, may read the gradient before (`_mm_sfence`'s rule).
                let _fence = Fence(s);
                sweep::<S, OB, V, true, true, true>(s, shape, x, grad_y, w, gw, grad_bias, grad_x, 0.0);
            }
            false => sweep::<S, OB, V, true, true, false>(s, shape, x, grad_y, w, gw, grad_bias, grad_x, 0.0),
        }
    }
}

/// Orders every streaming store before it ahead of everything after it, when dropped.
struct Fence<S: SimdF32>(S);

impl<S: SimdF32> Drop for Fence<S> {
    fn drop(&mut self) {
        self.0.store_fence();
    }
}

/// The input gradient alone, `grad_x = grad_y W`, by the same sweep: W read row by row, a
/// panel's 512 bytes of `OB` rows at a time, into the panel of the input gradient that stays
/// in L1. Chapter 4's [`linear_backward_input`](super::linear_backward_input) reads W down its
/// columns instead, a few vectors of each of its rows in turn, which is as fast while W is in
/// a cache and much slower when it comes from memory (fc1: 128 rows 128 KB apart). Bit for bit
/// that kernel: each input gradient is the sum over the outputs from the first, from zero.
#[inline(always)]
pub(crate) fn linear_backward_input_sweep<S: SimdF32, const OB: usize, const V: usize>(
    s: S,
    shape: &LinearShape,
    grad_y: &[f32],
    weight: &[f32],
    grad_x: &mut [f32],
) {
    shape.check_backward_input(grad_y, weight, grad_x);
    let w = weight.as_ptr();
    // SAFETY: W, grad_y and grad_x have the shape's lengths (checked above); without the
    // weight gradient the sweep reads neither x nor the bias gradient, and writes nothing at
    // `out` (W itself, passed only as a valid place).
    unsafe { sweep::<S, OB, V, false, true, false>(s, shape, &[], grad_y, w, w.cast_mut(), &mut [], Some(grad_x), 0.0) }
}
// ANCHOR_END: linear_backward_sweep

/// One panel of the sweep: `width` features of every row of W.
#[derive(Clone, Copy)]
struct Panel {
    batch: usize,
    /// Floats per row of W.
    d: usize,
    /// Rows of W, and floats per row of grad_y.
    m: usize,
    /// Floats per row of the panels.
    width: usize,
    lr: f32,
}

// ANCHOR: sweep_tile
/// Where a tile's operands start: grad_y at its first row's column, the panels of x and of the
/// input gradient at its first feature, W and what the tile writes (W's gradient, or W itself
/// when it is updated) at its first row and feature.
#[derive(Clone, Copy)]
struct Operands {
    gy: *const f32,
    xp: *const f32,
    gxp: *mut f32,
    w: *const f32,
    out: *mut f32,
}

impl Panel {
    /// Every row of W over the panel, `OB` rows at a time (then one at a time), each row in
    /// tiles of `V` vectors, then single vectors, then a partial one. `GW` and `GX` say which
    /// gradients the tiles make, the weights' and the input's; `STORE` and `STREAM` are
    /// [`sweep`]'s.
    ///
    /// # Safety
    /// `at.gy` is grad_y `[batch, m]`; `at.xp` (if `GW`) and `at.gxp` (if `GX`) hold `batch`
    /// rows of `width`; `at.w` and `at.out` are the panel's first feature in row 0 of a W (and of its
    /// gradient, or of W again) of `m` rows of `d` floats; with `STREAM`, `at.out` is aligned
    /// to a whole vector and `d` is a whole number of vectors, so every row's panel starts on
    /// one.
    #[inline(always)]
    unsafe fn run<
        S: SimdF32,
        const OB: usize,
        const V: usize,
        const GW: bool,
        const GX: bool,
        const STORE: bool,
        const STREAM: bool,
    >(
        self,
        s: S,
        at: Operands,
    ) {
        let mut o0 = 0;
        while o0 < self.m {
            let rows = if self.m - o0 >= OB { OB } else { 1 };
            for (f, nv) in feature_tiles(self.width, S::LANES, V) {
                // SAFETY: rows o0..o0+rows of W exist, and the feature tile is inside the panel
                // (the caller's contract and `feature_tiles`). The panels of x and of the input
                // gradient are empty or null without `GW` or `GX`, and grad_y is empty for a
                // batch of 0, so those three move by `wrapping_add`; the tile reads them only
                // where they exist.
                unsafe {
                    let at = Operands {
                        gy: at.gy.wrapping_add(o0),
                        xp: at.xp.wrapping_add(f),
                        gxp: at.gxp.wrapping_add(f),
                        w: at.w.add(o0 * self.d + f),
                        out: at.out.add(o0 * self.d + f),
                    };
                    match (rows == OB, nv) {
                        (true, 0) => self.tile::<S, OB, 1, true, GW, GX, STORE, STREAM>(s, at, f),
                        (true, 1) => self.tile::<S, OB, 1, false, GW, GX, STORE, STREAM>(s, at, f),
                        (true, _) => self.tile::<S, OB, V, false, GW, GX, STORE, STREAM>(s, at, f),
                        (false, 0) => self.tile::<S, 1, 1, true, GW, GX, STORE, STREAM>(s, at, f),
                        (false, 1) => self.tile::<S, 1, 1, false, GW, GX, STORE, STREAM>(s, at, f),
                        (false, _) => self.tile::<S, 1, V, false, GW, GX, STORE, STREAM>(s, at, f),
                    }
                }
            }
            o0 += rows;
        }
    }

    /// `R` rows of W by `V` vectors of features (with `PARTIAL`, one vector of the
    /// `width - f` features left). The weights are read once, into registers, and the same
    /// features of the next row tile, `R` rows down, are asked for: that tile runs a panel's
    /// worth of feature tiles later (on the Zen 4 of chapter 7, AVX-512's sweep took 1.2-1.5x
    /// as long without, in each of three alternating pairs).
    ///
    /// # Safety
    /// As [`Panel::run`], with the pointers moved to row `o0` and feature `f`; with `STREAM`,
    /// every full vector the tile writes at `at.out` is aligned to a whole vector.
    #[inline(always)]
    unsafe fn tile<
        S: SimdF32,
        const R: usize,
        const V: usize,
        const PARTIAL: bool,
        const GW: bool,
        const GX: bool,
        const STORE: bool,
        const STREAM: bool,
    >(
        self,
        s: S,
        at: Operands,
        f: usize,
    ) {
        let (Panel { batch, d, m, width, lr }, Operands { gy, xp, gxp, w, out }) = (self, at);
        let n = width - f;
        // SAFETY: every row, image and feature touched is inside the operands (the caller's
        // contract); with `PARTIAL` only the `n` features left are.
        unsafe {
            let load = |p: *const f32| if PARTIAL { s.load_partial(p, n) } else { s.load(p) };
            // The weights serve the input gradient and the update; a sweep that only stores the
            // weight gradient (a first layer, with no input gradient) does not read them.
            let reads_w = GX || !STORE;
            let wv: [[S::V; V]; R] = match reads_w {
                true => std::array::from_fn(|r| std::array::from_fn(|v| load(w.add(r * d + v * S::LANES)))),
                false => [[s.zero(); V]; R],
            };
            for r in 0..R {
                for v in 0..V {
                    if reads_w {
                        s.prefetch(w.wrapping_add((r + R) * d + v * S::LANES));
                    }
                    if GW && STORE && !STREAM {
                        s.prefetch(out.wrapping_add((r + R) * d + v * S::LANES));
                    }
                }
            }
            let mut g = [[s.zero(); V]; R];
            for b in 0..batch {
                let xv: [S::V; V] =
                    if GW { std::array::from_fn(|v| load(xp.add(b * width + v * S::LANES))) } else { [s.zero(); V] };
                let mut gxv: [S::V; V] =
                    if GX { std::array::from_fn(|v| load(gxp.add(b * width + v * S::LANES))) } else { [s.zero(); V] };
                for r in 0..R {
                    let a = s.splat(*gy.add(b * m + r));
                    for v in 0..V {
                        if GW {
                            g[r][v] = s.mul_add(a, xv[v], g[r][v]);
                        }
                        if GX {
                            gxv[v] = s.mul_add(a, wv[r][v], gxv[v]);
                        }
                    }
                }
                if GX {
                    for v in 0..V {
                        let dst = gxp.add(b * width + v * S::LANES);
                        if PARTIAL { s.store_partial(dst, gxv[v], n) } else { s.store(dst, gxv[v]) }
                    }
                }
            }
            if !GW {
                return;
            }
            let step = s.splat(-lr);
            for r in 0..R {
                for v in 0..V {
                    let dst = out.add(r * d + v * S::LANES);
                    let new = if STORE { g[r][v] } else { s.mul_add(step, g[r][v], wv[r][v]) };
                    match (PARTIAL, STREAM) {
                        (true, _) => s.store_partial(dst, new, n),
                        (false, true) => s.store_stream(dst, new),
                        (false, false) => s.store(dst, new),
                    }
                }
            }
        }
    }
}
// ANCHOR_END: sweep_tile
