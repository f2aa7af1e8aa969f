//! Fully connected layer on a batch: x `[batch, in]`, W `[out, in]`, y `[batch, out]`.
//!
//! No pass needs a horizontal sum: in each, every lane of an accumulator is an output element
//! of its own. The forward pass runs its lanes along the batch (after transposing x block by
//! block), the two backward passes along the input features. The one exception is the forward
//! pass of a layer with fewer than four outputs (fc2), too small to pay for the transpose: it
//! takes dot products and sums each one's lanes at the end.

use crate::kernels::LinearShape;
use crate::kernels::simd::SimdF32;
use crate::tensor::AlignedVec;
#[cfg(not(feature = "ch7"))]
use crate::tensor::layout::transpose;
#[cfg(feature = "ch7")]
use crate::tensor::squares::transpose;

/// Features per block in the forward pass: the transposed block of x (2048 features x 16
/// images, 128 KB) stays in L2 while every output tile reads it, and the block of W an output
/// tile reads (24 rows of 8 KB) in L1.
const FORWARD_BLOCK: usize = 2048;

/// How far ahead, in floats, the forward pass prefetches each weight row.
const PREFETCH_AHEAD: usize = 256;

/// With fewer outputs than this, the forward pass takes one dot product per output instead
/// (`linear_forward_dots`): the transposed copy of x would be read by too few outputs to pay
/// for itself.
const FEW_OUTPUTS: usize = 4;

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
///         for each chunk of KC features:              KC * BV loads
///             for k in the chunk, for o in the tile:   1 broadcast, BV FMAs
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
    if m < FEW_OUTPUTS {
        return linear_forward_dots(s, d, x, weight, bias, y);
    }
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
        transpose(x, d, k0..k1, bp, &mut xt);
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
    transpose_back(&yt, bp, y, m);
}
// ANCHOR_END: linear_forward_fn

/// `y[b, o] = yt[o][b]`: the result back in the caller's layout (`[batch, m]`), dropping the
/// lanes past the batch. Not inlined, for the reason chapter 7's `tensor::squares::transpose` gives.
#[inline(never)]
fn transpose_back(yt: &[f32], bp: usize, y: &mut [f32], m: usize) {
    for (b, row) in y.chunks_exact_mut(m).enumerate() {
        for (out, &v) in row.iter_mut().zip(yt[b..].iter().step_by(bp)) {
            *out = v;
        }
    }
}

// ANCHOR: linear_forward_dots
/// The forward pass of a layer with a few outputs (fc2: 128 features to 1), the obvious way:
/// for each image and output, a dot product along the features, with four accumulators so
/// that consecutive multiply-adds do not wait for one another, and one horizontal sum at the
/// end, through memory and in pairs. Each output is computed on its own, so it does not
/// depend on which other images share the batch.
#[inline(always)]
fn linear_forward_dots<S: SimdF32>(s: S, d: usize, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
    const { assert!(S::LANES <= 16, "the horizontal sum stores a vector in 16 floats") };
    let lanes = S::LANES;
    let step = 4 * lanes;
    let m = bias.len();
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(m)) {
        for ((wr, &b), out) in weight.chunks_exact(d).zip(bias).zip(yr.iter_mut()) {
            let (xp, wp) = (xr.as_ptr(), wr.as_ptr());
            let mut acc = [s.zero(); 4];
            let mut i = 0;
            // SAFETY: i + step <= d, so every load reads inside the rows xr and wr of d floats.
            unsafe {
                while i + step <= d {
                    for (j, a) in acc.iter_mut().enumerate() {
                        let at = i + j * lanes;
                        *a = s.mul_add(s.load(xp.add(at)), s.load(wp.add(at)), *a);
                    }
                    i += step;
                }
            }
            // SAFETY: i < d inside the loop, and load_n reads min(d - i, LANES) floats from i.
            unsafe {
                while i < d {
                    let n = d - i;
                    acc[0] = s.mul_add(s.load_n(xp.add(i), n), s.load_n(wp.add(i), n), acc[0]);
                    i += lanes;
                }
            }
            let sum = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
            let mut spill = [0.0f32; 16];
            // SAFETY: spill holds 16 floats, and LANES <= 16 (the assertion above).
            unsafe { s.store(spill.as_mut_ptr(), sum) };
            // Pairwise, halving the width each time: 4 dependent adds for 16 lanes, not 15.
            let mut width = lanes;
            while width > 1 {
                width /= 2;
                for j in 0..width {
                    spill[j] += spill[j + width];
                }
            }
            *out = b + spill[0];
        }
    }
}
// ANCHOR_END: linear_forward_dots

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
    /// `KC` features at a time: their `KC * V` vectors of xt are loaded once per chunk, and within
    /// the chunk the loop walks the features outside and the `O` outputs inside, so consecutive
    /// multiply-adds feed different accumulators. The `O` weight rows are read in order, one
    /// cache line per row every 16 features, and those `O` lines are live together: rows of
    /// 32768 floats lie 128 KB apart, a multiple of 4 KB, so the lines all fall in one set of the
    /// 12-way L1 (it is indexed by address bits 6-11, the same for all of them). `O` must stay
    /// within the 12 ways, or the rows evict one another and every line is fetched again.
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
                // one before it. LLVM unrolls the loop over the outputs (it need not unroll the
                // one over the chunk's features, and does not for KC = 16, reloading xt[kk] from
                // the stack instead), which is what keeps `acc` in registers.
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
    for (i0, iv) in feature_tiles(d, S::LANES, IV) {
        let mut b0 = 0;
        while b0 < batch {
            let rows = if batch - b0 >= BB { BB } else { 1 };
            // Terms are the outputs o; a[o, r] = grad_y[b0 + r, o]; the rows summed are W's.
            let tile = Rank1Tile { terms: m, d, i0, a_t: 1, a_r: m };
            // SAFETY: rows b0..b0+rows of grad_y ([batch, m]) and grad_x ([batch, d]) exist, W is
            // [m, d], and the feature tile is as `feature_tiles` promises.
            unsafe {
                let (a, out) = (grad_y.as_ptr().add(b0 * m), grad_x.as_mut_ptr().add(b0 * d));
                tile.dispatch::<S, BB, IV>(s, rows, iv, a, weight.as_ptr(), out);
            }
            b0 += rows;
        }
    }
}

/// The feature tiles of a row of `d` floats as `(first feature, vectors)`: tiles of `iv` whole
/// vectors, then single whole vectors, then `(start, 0)` for a last, partial vector if `d` is
/// not a multiple of `lanes`. Hot loops load whole vectors only; the partial one gets a tile
/// of its own.
pub(super) fn feature_tiles(d: usize, lanes: usize, iv: usize) -> impl Iterator<Item = (usize, usize)> {
    let whole = d / lanes;
    let big = whole / iv;
    let tiles = (0..big).map(move |t| (t * iv * lanes, iv));
    let singles = (big * iv..whole).map(move |v| (v * lanes, 1));
    let tail = (!d.is_multiple_of(lanes)).then_some((whole * lanes, 0));
    tiles.chain(singles).chain(tail)
}

// ANCHOR: rank1_tile
/// A tile of `R` output rows by `V` vectors of features from `i0`, computed as a sum of
/// rank-1 updates: `out[r, i0..] = sum over t of a[t, r] * rows[t, i0..]`, with `a[t, r]` at
/// `a + t * a_t + r * a_r`. Both backward passes of the layer are this one tile:
///
/// | pass | terms `t` | `rows` | `a[t, r]` | `out` |
/// | --- | --- | --- | --- | --- |
/// | input gradient | outputs `o` | W `[out, in]` | `grad_y[b0 + r, o]` | grad_x rows `b0..` |
/// | weight gradient | images `b` | x `[batch, in]` | `grad_y[b, o0 + r]` | grad_w rows `o0..` |
#[derive(Clone, Copy)]
struct Rank1Tile {
    terms: usize,
    /// Floats per row of `rows` and of `out`.
    d: usize,
    i0: usize,
    a_t: usize,
    a_r: usize,
}

impl Rank1Tile {
    /// Runs the tile with `rows` (`R` or 1) output rows and `iv` vectors (`IV`, 1, or 0 for
    /// the one partial vector at the end of a row).
    ///
    /// # Safety
    /// `a` holds `a[t, r]` for every term and row, `rows` is `[terms, d]`, `out` has `rows`
    /// rows of `d`; the feature tile is whole vectors from `i0` that end at or before `d`, or,
    /// with `iv == 0`, the one partial vector at the end of a row (`d - i0 < LANES`), as
    /// [`feature_tiles`] gives them.
    #[inline(always)]
    unsafe fn dispatch<S: SimdF32, const R: usize, const IV: usize>(
        self,
        s: S,
        rows: usize,
        iv: usize,
        a: *const f32,
        src: *const f32,
        out: *mut f32,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match (rows == R, iv) {
                (true, 0) => self.run::<S, R, 1, true>(s, a, src, out),
                (true, 1) => self.run::<S, R, 1, false>(s, a, src, out),
                (true, _) => self.run::<S, R, IV, false>(s, a, src, out),
                (false, 0) => self.run::<S, 1, 1, true>(s, a, src, out),
                (false, 1) => self.run::<S, 1, 1, false>(s, a, src, out),
                (false, _) => self.run::<S, 1, IV, false>(s, a, src, out),
            }
        }
    }

    /// # Safety
    /// As [`Rank1Tile::dispatch`]; with `PARTIAL` (and `V == 1`) the one vector from `i0` runs
    /// past `d` and only `d - i0` lanes are touched.
    #[inline(always)]
    unsafe fn run<S: SimdF32, const R: usize, const V: usize, const PARTIAL: bool>(
        self,
        s: S,
        a: *const f32,
        src: *const f32,
        out: *mut f32,
    ) {
        let Rank1Tile { terms, d, i0, a_t, a_r } = self;
        let mut acc = [[s.zero(); V]; R];
        // SAFETY: every term, row and feature is inside the operands (the caller's contract).
        unsafe {
            for t in 0..terms {
                let row = src.add(t * d + i0);
                let rv: [S::V; V] = if PARTIAL {
                    [s.load_partial(row, d - i0); V]
                } else {
                    std::array::from_fn(|v| s.load(row.add(v * S::LANES)))
                };
                for r in 0..R {
                    let av = s.splat(*a.add(t * a_t + r * a_r));
                    for v in 0..V {
                        acc[r][v] = s.mul_add(av, rv[v], acc[r][v]);
                    }
                }
            }
            for r in 0..R {
                let dst = out.add(r * d + i0);
                for v in 0..V {
                    if PARTIAL {
                        s.store_partial(dst, acc[r][0], d - i0);
                    } else {
                        s.store(dst.add(v * S::LANES), acc[r][v]);
                    }
                }
            }
        }
    }
}
// ANCHOR_END: rank1_tile
// ANCHOR_END: linear_backward_input

// ANCHOR: linear_backward_weight
/// `grad_w[o, i] = sum over b of grad_y[b, o] x[b, i]` and `grad_b[o] = sum over b of
/// grad_y[b, o]`, tiles of `OB` outputs by `IV` vectors of features: the tile of
/// [`linear_backward_input`] with the batch as the terms and x as the rows.
///
/// The features are cut into panels of [`WEIGHT_PANEL`]; within a panel, each tile of output
/// rows runs along all of the panel's feature tiles before the next tile of rows starts. So
/// each row of the gradient is written in runs of a panel's width (6 KB), and the panel of x
/// the tiles read (96 KB at batch 16) stays in L2. With the feature tiles as the outer loop
/// over every row, fc1's 128 rows were 128 streams of writes advancing a tile's few vectors at
/// a time.
#[inline(always)]
pub(crate) fn linear_backward_weight<S: SimdF32, const OB: usize, const IV: usize>(
    s: S,
    shape: &LinearShape,
    x: &[f32],
    grad_y: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    const { assert!(WEIGHT_PANEL.is_multiple_of(S::LANES * IV), "whole feature tiles in a panel") };
    shape.check_backward_weight(x, grad_y, grad_weight, grad_bias);
    let LinearShape { batch, in_features: d, out_features: m } = *shape;
    grad_bias.fill(0.0);
    for row in grad_y.chunks_exact(m) {
        for (gb, g) in grad_bias.iter_mut().zip(row) {
            *gb += g;
        }
    }
    for p0 in (0..d).step_by(WEIGHT_PANEL) {
        let width = WEIGHT_PANEL.min(d - p0);
        let mut o0 = 0;
        while o0 < m {
            let rows = if m - o0 >= OB { OB } else { 1 };
            for (f, iv) in feature_tiles(width, S::LANES, IV) {
                // Terms are the images b; a[b, r] = grad_y[b, o0 + r]; the rows summed are x's.
                let tile = Rank1Tile { terms: batch, d, i0: p0 + f, a_t: m, a_r: 1 };
                // SAFETY: outputs o0..o0+rows exist in grad_y ([batch, m]) and grad_w ([m, d]), x
                // is [batch, d], and the feature tile is inside the panel, which ends at or before
                // d, as `feature_tiles` promises; a panel is whole vectors (asserted above), so
                // only the last one can end in the partial vector, where d - i0 < LANES.
                unsafe {
                    let (a, out) = (grad_y.as_ptr().add(o0), grad_weight.as_mut_ptr().add(o0 * d));
                    tile.dispatch::<S, OB, IV>(s, rows, iv, a, x.as_ptr(), out);
                }
            }
            o0 += rows;
        }
    }
}
// ANCHOR_END: linear_backward_weight

/// Features per panel of [`linear_backward_weight`]: a whole number of every instruction set's
/// feature tiles (16 of AVX-512's 6 vectors), so that only the last panel can end in a
/// partial vector. On the Zen 4 of chapter 7 (family 25, model 17), fc1's two gradient passes
/// (the report's `fc1_backward`) took 4.6-5.3 ms with AVX-512 and 7.3-9.1 ms with AVX2 with
/// the weight gradient in panels of 1536 features (eight runs each), against 5.1-5.4 and
/// 8.7-9.3 ms with its feature tiles outermost (four runs each, alternating with them); panels
/// of 384 features were no faster than none, and panels of 4096 no faster than 1536.
const WEIGHT_PANEL: usize = 1536;
