//! Fully connected layer on a batch: x `[batch, in]`, W `[out, in]`, y `[batch, out]`.
//!
//! The forward pass is a set of dot products along `in`, so it vectorises along `in` and ends
//! each dot product with a horizontal sum ("horizontal" work). The two backward passes
//! vectorise along `in` too but need no horizontal sums: every lane of an accumulator is an
//! output element of its own ("vertical" work).

use crate::kernels::LinearShape;
use crate::kernels::simd::SimdF32;

/// Features per block in the forward pass: a block of 6 weight rows (96 KB) and of the whole
/// batch of inputs (16 rows, 256 KB) stay in the 1 MB L2 cache while every tile of the block
/// reads them, so the 16 MB weight of the cat/dog network's fc1 streams from memory once.
const FORWARD_BLOCK: usize = 4096;

// ANCHOR: linear_forward
/// `y[b, o] = bias[o] + sum over i of x[b, i] w[o, i]`, tiles of `BB` rows by `OB` outputs.
///
/// ```text
/// y = bias
/// for each block of 4096 features k0..k1:
///     for each tile of OB outputs, for each tile of BB rows:
///         acc[BB][OB] = 0 (vectors)
///         for each vector of features k:     BB + OB loads, BB * OB multiply-adds
///             acc[r][c] += x[b0+r, k..] * w[o0+c, k..]
///         y[b0+r, o0+c] += sum of the lanes of acc[r][c]
/// ```
#[inline(always)]
pub(crate) fn linear_forward<S: SimdF32, const BB: usize, const OB: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    shape.check_forward(x, weight, bias, y);
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    for row in y.chunks_exact_mut(m) {
        row.copy_from_slice(bias);
    }
    let (px, pw, py) = (x.as_ptr(), weight.as_ptr(), y.as_mut_ptr());
    for k0 in (0..d).step_by(FORWARD_BLOCK) {
        let k1 = (k0 + FORWARD_BLOCK).min(d);
        let mut o0 = 0;
        while o0 < m {
            let oc = if m - o0 >= OB { OB } else { 1 };
            let mut b0 = 0;
            while b0 < batch {
                let bc = if batch - b0 >= BB { BB } else { 1 };
                let t = DotTile { d, m, b0, o0, k0, k1 };
                // SAFETY: b0 + bc <= batch, o0 + oc <= m and k1 <= d, so every row and feature
                // the tile touches is inside the slices checked above.
                unsafe {
                    match (bc == BB, oc == OB) {
                        (true, true) => t.run::<S, BB, OB>(s, px, pw, py),
                        (true, false) => t.run::<S, BB, 1>(s, px, pw, py),
                        (false, true) => t.run::<S, 1, OB>(s, px, pw, py),
                        (false, false) => t.run::<S, 1, 1>(s, px, pw, py),
                    }
                }
                b0 += bc;
            }
            o0 += oc;
        }
    }
}

/// Where a tile of dot products sits: rows `b0..b0+R`, outputs `o0..o0+C`, features `k0..k1`.
#[derive(Clone, Copy)]
struct DotTile {
    d: usize,
    m: usize,
    b0: usize,
    o0: usize,
    k0: usize,
    k1: usize,
}

impl DotTile {
    /// # Safety
    /// `x` is `[batch, d]`, `w` is `[m, d]` and `y` is `[batch, m]` with the tile inside them.
    #[inline(always)]
    unsafe fn run<S: SimdF32, const R: usize, const C: usize>(self, s: S, x: *const f32, w: *const f32, y: *mut f32) {
        let DotTile { d, m, b0, o0, k0, k1 } = self;
        let mut acc = [[s.zero(); C]; R];
        let full_end = k0 + (k1 - k0) / S::LANES * S::LANES;
        let mut k = k0;
        // SAFETY: every load reads LANES floats starting at feature k < full_end <= d of a row
        // inside the tile (the caller's contract), or, for the last partial vector, k1 - k.
        unsafe {
            while k < full_end {
                let xv: [S::V; R] = std::array::from_fn(|r| s.load(x.add((b0 + r) * d + k)));
                let wv: [S::V; C] = std::array::from_fn(|c| s.load(w.add((o0 + c) * d + k)));
                for r in 0..R {
                    for c in 0..C {
                        acc[r][c] = s.mul_add(xv[r], wv[c], acc[r][c]);
                    }
                }
                k += S::LANES;
            }
            if k < k1 {
                let xv: [S::V; R] = std::array::from_fn(|r| s.load_partial(x.add((b0 + r) * d + k), k1 - k));
                let wv: [S::V; C] = std::array::from_fn(|c| s.load_partial(w.add((o0 + c) * d + k), k1 - k));
                for r in 0..R {
                    for c in 0..C {
                        acc[r][c] = s.mul_add(xv[r], wv[c], acc[r][c]);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    *y.add((b0 + r) * m + o0 + c) += s.reduce_add(acc[r][c]);
                }
            }
        }
    }
}
// ANCHOR_END: linear_forward

// ANCHOR: linear_backward_input
/// `grad_x[b, i] = sum over o of grad_y[b, o] w[o, i]`, tiles of `BB` rows by `IV` vectors of
/// features.
///
/// ```text
/// for each tile of IV vectors of features i0.., for each tile of BB rows:
///     acc[BB][IV] = 0
///     for o in 0..out:                  IV loads, BB broadcasts, BB * IV multiply-adds
///         acc[r][v] += grad_y[b0+r, o] * w[o, i0 + v*LANES ..]
///     grad_x[b0+r, i0 + v*LANES ..] = acc[r][v]
/// ```
/// The feature tiles are the outer loop: the column block of W they read (out x IV vectors)
/// stays in L1 while every row tile uses it, so W is read from memory once.
#[inline(always)]
pub(crate) fn linear_backward_input<S: SimdF32, const BB: usize, const IV: usize>(
    s: S,
    shape: &LinearShape,
    grad_y: &[f32],
    weight: &[f32],
    grad_x: &mut [f32],
) {
    shape.check_backward_input(grad_y, weight, grad_x);
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    let (pg, pw, px) = (grad_y.as_ptr(), weight.as_ptr(), grad_x.as_mut_ptr());
    let mut i0 = 0;
    while i0 < d {
        let iv = if (d - i0).div_ceil(S::LANES) >= IV { IV } else { 1 };
        let mut b0 = 0;
        while b0 < batch {
            let bc = if batch - b0 >= BB { BB } else { 1 };
            let t = ColumnTile { d, m, b0, i0 };
            // SAFETY: b0 + bc <= batch and each of the iv vectors starts below d; the last one
            // is cut to d by `load_n`/`store_n`.
            unsafe {
                match (bc == BB, iv == IV) {
                    (true, true) => t.backward_input::<S, BB, IV>(s, pg, pw, px),
                    (true, false) => t.backward_input::<S, BB, 1>(s, pg, pw, px),
                    (false, true) => t.backward_input::<S, 1, IV>(s, pg, pw, px),
                    (false, false) => t.backward_input::<S, 1, 1>(s, pg, pw, px),
                }
            }
            b0 += bc;
        }
        i0 += iv * S::LANES;
    }
}

/// A tile of rows `b0..` (of the batch, or of the outputs) by vectors of features `i0..`.
#[derive(Clone, Copy)]
struct ColumnTile {
    d: usize,
    m: usize,
    b0: usize,
    i0: usize,
}

impl ColumnTile {
    /// # Safety
    /// `g` is `[batch, m]`, `w` is `[m, d]`, `gx` is `[batch, d]`; rows `b0..b0+R` exist and
    /// `i0 + (V-1) * LANES < d`.
    #[inline(always)]
    unsafe fn backward_input<S: SimdF32, const R: usize, const V: usize>(
        self,
        s: S,
        g: *const f32,
        w: *const f32,
        gx: *mut f32,
    ) {
        let ColumnTile { d, m, b0, i0 } = self;
        let lanes: [usize; V] = std::array::from_fn(|v| d - (i0 + v * S::LANES));
        let mut acc = [[s.zero(); V]; R];
        // SAFETY: rows and features inside the tile (the caller's contract); `load_n` and
        // `store_n` stop at feature d.
        unsafe {
            for o in 0..m {
                let wv: [S::V; V] = std::array::from_fn(|v| s.load_n(w.add(o * d + i0 + v * S::LANES), lanes[v]));
                for r in 0..R {
                    let gv = s.splat(*g.add((b0 + r) * m + o));
                    for v in 0..V {
                        acc[r][v] = s.mul_add(gv, wv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..R {
                for v in 0..V {
                    s.store_n(gx.add((b0 + r) * d + i0 + v * S::LANES), acc[r][v], lanes[v]);
                }
            }
        }
    }

    /// The same tile shape for the weight gradient: rows are outputs `o0 = b0..`, and the sum
    /// runs over the batch instead of the outputs.
    ///
    /// # Safety
    /// `x` is `[batch, d]`, `g` is `[batch, m]`, `gw` is `[m, d]`; outputs `b0..b0+R` exist and
    /// `i0 + (V-1) * LANES < d`.
    #[inline(always)]
    unsafe fn backward_weight<S: SimdF32, const R: usize, const V: usize>(
        self,
        s: S,
        batch: usize,
        x: *const f32,
        g: *const f32,
        gw: *mut f32,
    ) {
        let ColumnTile { d, m, b0: o0, i0 } = self;
        let lanes: [usize; V] = std::array::from_fn(|v| d - (i0 + v * S::LANES));
        let mut acc = [[s.zero(); V]; R];
        // SAFETY: as in `backward_input`, with the roles of the operands exchanged.
        unsafe {
            for b in 0..batch {
                let xv: [S::V; V] = std::array::from_fn(|v| s.load_n(x.add(b * d + i0 + v * S::LANES), lanes[v]));
                for r in 0..R {
                    let gv = s.splat(*g.add(b * m + o0 + r));
                    for v in 0..V {
                        acc[r][v] = s.mul_add(gv, xv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..R {
                for v in 0..V {
                    s.store_n(gw.add((o0 + r) * d + i0 + v * S::LANES), acc[r][v], lanes[v]);
                }
            }
        }
    }
}
// ANCHOR_END: linear_backward_input

// ANCHOR: linear_backward_weight
/// `grad_w[o, i] = sum over b of grad_y[b, o] x[b, i]` and `grad_b[o] = sum over b of
/// grad_y[b, o]`, tiles of `OB` outputs by `IV` vectors of features. The feature tiles are the
/// outer loop, so the column block of x they read stays in L1 for every output tile.
#[inline(always)]
pub(crate) fn linear_backward_weight<S: SimdF32, const OB: usize, const IV: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    shape.check_backward_weight(x, grad_y, grad_weight, grad_bias);
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    grad_bias.fill(0.0);
    for row in grad_y.chunks_exact(m) {
        for (gb, g) in grad_bias.iter_mut().zip(row) {
            *gb += g;
        }
    }
    let (px, pg, pw) = (x.as_ptr(), grad_y.as_ptr(), grad_weight.as_mut_ptr());
    let mut i0 = 0;
    while i0 < d {
        let iv = if (d - i0).div_ceil(S::LANES) >= IV { IV } else { 1 };
        let mut o0 = 0;
        while o0 < m {
            let oc = if m - o0 >= OB { OB } else { 1 };
            let t = ColumnTile { d, m, b0: o0, i0 };
            // SAFETY: o0 + oc <= m and each of the iv vectors starts below d.
            unsafe {
                match (oc == OB, iv == IV) {
                    (true, true) => t.backward_weight::<S, OB, IV>(s, batch, px, pg, pw),
                    (true, false) => t.backward_weight::<S, OB, 1>(s, batch, px, pg, pw),
                    (false, true) => t.backward_weight::<S, 1, IV>(s, batch, px, pg, pw),
                    (false, false) => t.backward_weight::<S, 1, 1>(s, batch, px, pg, pw),
                }
            }
            o0 += oc;
        }
        i0 += iv * S::LANES;
    }
}
// ANCHOR_END: linear_backward_weight
