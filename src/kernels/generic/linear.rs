//! Fully connected layer on a batch: x `[batch, in]`, W `[out, in]`, y `[batch, out]`.
//!
//! No pass needs a horizontal sum: in each, every lane of an accumulator is an output element
//! of its own. The forward pass runs its lanes along the batch (after transposing x block by
//! block), the two backward passes along the input features.

use crate::kernels::LinearShape;
use crate::kernels::simd::SimdF32;
use crate::tensor::AlignedVec;

/// Features per block in the forward pass: the transposed block of x (2048 features x 16
/// images, 128 KB) stays in L2 while every output tile reads it, and the block of W an output
/// tile reads (24 rows of 8 KB) in L1.
const FORWARD_BLOCK: usize = 2048;

/// How far ahead, in floats, the forward pass prefetches each weight row.
const PREFETCH_AHEAD: usize = 256;

// ANCHOR: linear_forward
// ANCHOR: linear_forward_fn
/// `y[b, o] = bias[o] + sum over i of x[b, i] w[o, i]`.
///
/// The obvious way, a dot product along `i` for each `(b, o)`, needs a horizontal sum at the
/// end of each and reads W once per tile of rows. Here the lanes run along the *batch*
/// instead: a block of x is transposed so that `xt[i]` holds feature `i` of every image, and
/// each weight `w[o, i]` is broadcast and multiplied into the accumulator of output `o`, whose
/// lanes are the images. W is read exactly once, in order, and no horizontal sum is needed.
///
/// ```text
/// yt[o][b] = bias[o]                                   (lanes: b, padded to LANES)
/// for each block of features k0..k1:
///     xt[k][b] = x[b, k0 + k]                          (transpose the block)
///     for each tile of OB outputs, each tile of BV vectors of images:
///         acc[OB][BV] = yt[tile]
///         for each chunk of KC features k:            KC * BV loads
///             for o in the tile, for k in the chunk:   1 broadcast, BV FMAs
///                 acc[o][v] += w[o0 + o, k0 + k] * xt[k][v]
///         yt[tile] = acc
/// y[b, o] = yt[o][b]
/// ```
#[inline(always)]
pub(crate) fn linear_forward<S: SimdF32, const OB: usize, const BV: usize, const KC: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    shape.check_forward(x, weight, bias, y);
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    let bp = batch.next_multiple_of(S::LANES);
    let vectors = bp / S::LANES;
    let mut yt = AlignedVec::zeros(m * bp);
    for (row, &b) in yt.chunks_exact_mut(bp).zip(bias) {
        row.fill(b);
    }
    // Lanes past the batch stay zero: they are computed and thrown away.
    let mut xt = AlignedVec::zeros(FORWARD_BLOCK.min(d) * bp);
    for k0 in (0..d).step_by(FORWARD_BLOCK) {
        let k1 = (k0 + FORWARD_BLOCK).min(d);
        for (b, row) in x.chunks_exact(d).enumerate() {
            for (k, &v) in row[k0..k1].iter().enumerate() {
                xt[k * bp + b] = v;
            }
        }
        let mut o0 = 0;
        while o0 < m {
            let oc = if m - o0 >= OB { OB } else { 1 };
            let mut v0 = 0;
            while v0 < vectors {
                let vc = if vectors - v0 >= BV { BV } else { 1 };
                let t = BatchTile { d, bp, o0, v0, k0, k1 };
                // SAFETY: o0 + oc <= m, v0 + vc <= bp / LANES and k1 <= d: the tile is inside
                // W ([m, d]), xt ([k1 - k0, bp]) and yt ([m, bp]).
                unsafe {
                    let (w, xt, yt) = (weight.as_ptr(), xt.as_ptr(), yt.as_mut_ptr());
                    match (oc == OB, vc == BV) {
                        (true, true) => t.run::<S, OB, BV, KC>(s, w, xt, yt),
                        (true, false) => t.run::<S, OB, 1, KC>(s, w, xt, yt),
                        (false, true) => t.run::<S, 1, BV, KC>(s, w, xt, yt),
                        (false, false) => t.run::<S, 1, 1, KC>(s, w, xt, yt),
                    }
                }
                v0 += vc;
            }
            o0 += oc;
        }
    }
    for (b, row) in y.chunks_exact_mut(m).enumerate() {
        for (o, out) in row.iter_mut().enumerate() {
            *out = yt[o * bp + b];
        }
    }
}
// ANCHOR_END: linear_forward_fn

/// Outputs `o0..o0+O` by image vectors `v0..v0+V`, over the features `k0..k1` of one block.
#[derive(Clone, Copy)]
struct BatchTile {
    d: usize,
    bp: usize,
    o0: usize,
    v0: usize,
    k0: usize,
    k1: usize,
}

// ANCHOR: batch_tile
impl BatchTile {
    /// `KC` features at a time: their `KC * V` vectors of xt sit in registers while each of the
    /// `O` weight rows gives its `KC` consecutive weights, so a row's cache line is used whole
    /// before the next row's is touched. (Walking all `O` rows one feature at a time would keep
    /// `O` lines of W live at once; rows of 32768 floats lie 128 KB apart, a power of two, so
    /// those lines share one set of the 12-way L1 (indexed by the low 12 bits of the address,
    /// the same for all of them) and evict one another.)
    ///
    /// # Safety
    /// `w` is `[m, d]`, `xt` is `[k1 - k0, bp]`, `yt` is `[m, bp]`, and the tile is inside them.
    #[inline(always)]
    unsafe fn run<S: SimdF32, const O: usize, const V: usize, const KC: usize>(
        self,
        s: S,
        w: *const f32,
        xt: *const f32,
        yt: *mut f32,
    ) {
        let BatchTile { d, bp, o0, v0, k0, k1 } = self;
        let lanes = S::LANES;
        let kb = k1 - k0;
        let full = kb / KC * KC;
        // SAFETY: every pointer below stays inside the tile (the caller's contract).
        unsafe {
            let mut acc: [[S::V; V]; O] =
                std::array::from_fn(|o| std::array::from_fn(|v| s.load(yt.add((o0 + o) * bp + (v0 + v) * lanes))));
            let xt = xt.add(v0 * lanes);
            let w = w.add(o0 * d + k0);
            // ANCHOR: batch_tile_chunk
            for k in (0..full).step_by(KC) {
                let xv: [[S::V; V]; KC] =
                    std::array::from_fn(|kk| std::array::from_fn(|v| s.load(xt.add((k + kk) * bp + v * lanes))));
                // Rows are separate streams the hardware prefetcher follows only loosely: ask for
                // the line PREFETCH_AHEAD floats ahead (wrapping_add: the hint may point past the
                // row, which is harmless).
                for o in 0..O {
                    s.prefetch(w.add(o * d + k).wrapping_add(PREFETCH_AHEAD));
                }
                // Consecutive multiply-adds go to different accumulators, so none waits for the
                // one before it; the whole body (O * KC * V of them) stays small enough for
                // LLVM to unroll, which is what keeps `acc` in registers.
                for kk in 0..KC {
                    for o in 0..O {
                        let wv = s.splat(*w.add(o * d + k + kk));
                        for v in 0..V {
                            acc[o][v] = s.mul_add(wv, xv[kk][v], acc[o][v]);
                        }
                    }
                }
            }
            // ANCHOR_END: batch_tile_chunk
            for k in full..kb {
                let xv: [S::V; V] = std::array::from_fn(|v| s.load(xt.add(k * bp + v * lanes)));
                for o in 0..O {
                    let wv = s.splat(*w.add(o * d + k));
                    for v in 0..V {
                        acc[o][v] = s.mul_add(wv, xv[v], acc[o][v]);
                    }
                }
            }
            for o in 0..O {
                for v in 0..V {
                    s.store(yt.add((o0 + o) * bp + (v0 + v) * lanes), acc[o][v]);
                }
            }
        }
    }
}
// ANCHOR_END: batch_tile
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
    for (i0, iv) in feature_tiles(d, S::LANES, IV) {
        let mut b0 = 0;
        while b0 < batch {
            let bc = if batch - b0 >= BB { BB } else { 1 };
            let t = ColumnTile { d, m, b0, i0 };
            // SAFETY: b0 + bc <= batch, and `feature_tiles` gives tiles of whole vectors inside
            // 0..d, or (iv == 0) the one partial vector at its end.
            unsafe {
                match (bc == BB, iv) {
                    (true, 0) => t.backward_input::<S, BB, 1, true>(s, pg, pw, px),
                    (true, 1) => t.backward_input::<S, BB, 1, false>(s, pg, pw, px),
                    (true, _) => t.backward_input::<S, BB, IV, false>(s, pg, pw, px),
                    (false, 0) => t.backward_input::<S, 1, 1, true>(s, pg, pw, px),
                    (false, 1) => t.backward_input::<S, 1, 1, false>(s, pg, pw, px),
                    (false, _) => t.backward_input::<S, 1, IV, false>(s, pg, pw, px),
                }
            }
            b0 += bc;
        }
    }
}

/// The feature tiles of a row of `d` floats as `(first feature, vectors)`: tiles of `iv` whole
/// vectors, then single whole vectors, then `(start, 0)` for a last, partial vector if `d` is
/// not a multiple of `lanes`. Hot loops load whole vectors only; the partial one gets a tile
/// of its own.
fn feature_tiles(d: usize, lanes: usize, iv: usize) -> impl Iterator<Item = (usize, usize)> {
    let whole = d / lanes;
    let big = whole / iv;
    let tiles = (0..big).map(move |t| (t * iv * lanes, iv));
    let singles = (big * iv..whole).map(move |v| (v * lanes, 1));
    let tail = (!d.is_multiple_of(lanes)).then_some((whole * lanes, 0));
    tiles.chain(singles).chain(tail)
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
    /// `g` is `[batch, m]`, `w` is `[m, d]`, `gx` is `[batch, d]`; rows `b0..b0+R` exist; the
    /// `V` vectors from feature `i0` are whole and inside `0..d`, or, with `PARTIAL` (and
    /// `V == 1`), one vector from `i0` runs past `d` and only `d - i0` lanes are touched.
    #[inline(always)]
    unsafe fn backward_input<S: SimdF32, const R: usize, const V: usize, const PARTIAL: bool>(
        self,
        s: S,
        g: *const f32,
        w: *const f32,
        gx: *mut f32,
    ) {
        let ColumnTile { d, m, b0, i0 } = self;
        let mut acc = [[s.zero(); V]; R];
        // SAFETY: rows and features inside the tile (the caller's contract).
        unsafe {
            for o in 0..m {
                let wo = w.add(o * d + i0);
                let wv: [S::V; V] = if PARTIAL {
                    [s.load_partial(wo, d - i0); V]
                } else {
                    std::array::from_fn(|v| s.load(wo.add(v * S::LANES)))
                };
                for r in 0..R {
                    let gv = s.splat(*g.add((b0 + r) * m + o));
                    for v in 0..V {
                        acc[r][v] = s.mul_add(gv, wv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..R {
                let out = gx.add((b0 + r) * d + i0);
                for v in 0..V {
                    if PARTIAL {
                        s.store_partial(out, acc[r][0], d - i0);
                    } else {
                        s.store(out.add(v * S::LANES), acc[r][v]);
                    }
                }
            }
        }
    }

    /// The same tile shape for the weight gradient: rows are outputs `o0 = b0..`, and the sum
    /// runs over the batch instead of the outputs.
    ///
    /// # Safety
    /// `x` is `[batch, d]`, `g` is `[batch, m]`, `gw` is `[m, d]`; outputs `b0..b0+R` exist;
    /// features as in `backward_input`.
    #[inline(always)]
    unsafe fn backward_weight<S: SimdF32, const R: usize, const V: usize, const PARTIAL: bool>(
        self,
        s: S,
        batch: usize,
        x: *const f32,
        g: *const f32,
        gw: *mut f32,
    ) {
        let ColumnTile { d, m, b0: o0, i0 } = self;
        let mut acc = [[s.zero(); V]; R];
        // SAFETY: as in `backward_input`, with the roles of the operands exchanged.
        unsafe {
            for b in 0..batch {
                let xb = x.add(b * d + i0);
                let xv: [S::V; V] = if PARTIAL {
                    [s.load_partial(xb, d - i0); V]
                } else {
                    std::array::from_fn(|v| s.load(xb.add(v * S::LANES)))
                };
                for r in 0..R {
                    let gv = s.splat(*g.add(b * m + o0 + r));
                    for v in 0..V {
                        acc[r][v] = s.mul_add(gv, xv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..R {
                let out = gw.add((o0 + r) * d + i0);
                for v in 0..V {
                    if PARTIAL {
                        s.store_partial(out, acc[r][0], d - i0);
                    } else {
                        s.store(out.add(v * S::LANES), acc[r][v]);
                    }
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
    for (i0, iv) in feature_tiles(d, S::LANES, IV) {
        let mut o0 = 0;
        while o0 < m {
            let oc = if m - o0 >= OB { OB } else { 1 };
            let t = ColumnTile { d, m, b0: o0, i0 };
            // SAFETY: o0 + oc <= m, and the feature tile is as `feature_tiles` promises.
            unsafe {
                match (oc == OB, iv) {
                    (true, 0) => t.backward_weight::<S, OB, 1, true>(s, batch, px, pg, pw),
                    (true, 1) => t.backward_weight::<S, OB, 1, false>(s, batch, px, pg, pw),
                    (true, _) => t.backward_weight::<S, OB, IV, false>(s, batch, px, pg, pw),
                    (false, 0) => t.backward_weight::<S, 1, 1, true>(s, batch, px, pg, pw),
                    (false, 1) => t.backward_weight::<S, 1, 1, false>(s, batch, px, pg, pw),
                    (false, _) => t.backward_weight::<S, 1, IV, false>(s, batch, px, pg, pw),
                }
            }
            o0 += oc;
        }
    }
}
// ANCHOR_END: linear_backward_weight
