//! Chapter 10: the 3x3 convolution (stride 1, padding 1) by Winograd's minimal filtering
//! algorithms F(2x2, 3x3) and F(4x4, 3x3), written once over [`SimdF32`].
//!
//! The output is cut into `M x M` tiles; tile `(ty, tx)` reads the `A x A` input patch (`A = M +
//! 2`) whose corner is pixel `(ty*M - 1, tx*M - 1)`, zero outside the image. For every input
//! channel the patch is transformed, `V = Bt d B`; every filter once, `U = G g Gt`; the two meet
//! in `A*A` independent products summed over the input channels,
//!
//! ```text
//! Mp[t, co] = sum over ci of Vp[t, ci] * Up[ci, co]      for each of the A*A points p,
//! ```
//!
//! which are `A*A` small matrix products `[tiles x c_in] x [c_in x c_out]`, and the output tile is
//! `Y = At M A`. A direct 3x3 convolution does `9 M^2` multiplications per tile, channel pair;
//! Winograd does `A^2`: 16 instead of 36 for F(2x2), 36 instead of 144 for F(4x4).
//!
//! The three transforms are fused per block of tiles: a block's `V` and `M` (a few hundred KB at
//! most) are written and read back while they are still in L2, and each product reads a slice of
//! `U` that stays in L1 while it sweeps the block's tiles. The products run on the same
//! register tile as the direct convolution: `R` tiles by `COV` vectors of output channels.
//!
//! Backward-input is the same computation on the output gradient with the kernel turned by 180
//! degrees and its channel axes exchanged; only the filter transform reads the weights
//! differently.

use super::packed_once::{PackCache, packed_once};
use crate::kernels::Conv2dShape;
use crate::kernels::simd::SimdF32;
use crate::tensor::AlignedVec;
use std::rc::Rc;

// ANCHOR: tile_trait
/// One of Winograd's algorithms F(M x M, 3 x 3): the three transforms, with `A = M + 2` points.
///
/// The vector transforms work on arrays of 6 (input, output) and return 6 or 4; F(2x2) uses
/// the first 4 and 2. Each is written out by hand: the matrices are full of zeros and ones,
/// and a general matrix product would multiply by them.
pub(crate) trait WinogradTile {
    /// Output pixels per tile side.
    const M: usize;
    /// Input pixels per tile side, and transform points per axis: `M + 2`.
    const A: usize;
    /// The filter transform `G`, `A x 3`, applied in f64 once per call.
    const G: &'static [[f64; 3]];
    /// `Bt d` for one line of `A` input vectors.
    fn input<S: SimdF32>(s: S, d: [S::V; 6]) -> [S::V; 6];
    /// `At m` for one line of `A` product vectors: `M` outputs.
    fn output<S: SimdF32>(s: S, m: [S::V; 6]) -> [S::V; 4];
}
// ANCHOR_END: tile_trait

/// `a - b`, from the operations `SimdF32` has.
#[inline(always)]
fn sub<S: SimdF32>(s: S, a: S::V, b: S::V) -> S::V {
    s.mul_add(s.splat(-1.0), b, a)
}

/// `c * a + b`.
#[inline(always)]
fn scaled<S: SimdF32>(s: S, c: f32, a: S::V, b: S::V) -> S::V {
    s.mul_add(s.splat(c), a, b)
}

// ANCHOR: f2
/// F(2x2, 3x3), on the points 0, 1, -1 and infinity.
///
/// ```text
///      [1  0 -1  0]        [ 1    0    0 ]
/// Bt = [0  1  1  0]    G = [1/2  1/2  1/2]    At = [1  1  1  0]
///      [0 -1  1  0]        [1/2 -1/2  1/2]         [0  1 -1 -1]
///      [0  1  0 -1]        [ 0    0    1 ]
/// ```
pub(crate) struct F2;

impl WinogradTile for F2 {
    const M: usize = 2;
    const A: usize = 4;
    const G: &'static [[f64; 3]] = &[[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

    #[inline(always)]
    fn input<S: SimdF32>(s: S, d: [S::V; 6]) -> [S::V; 6] {
        let z = s.zero();
        [sub(s, d[0], d[2]), s.add(d[1], d[2]), sub(s, d[2], d[1]), sub(s, d[1], d[3]), z, z]
    }

    #[inline(always)]
    fn output<S: SimdF32>(s: S, m: [S::V; 6]) -> [S::V; 4] {
        let z = s.zero();
        [s.add(s.add(m[0], m[1]), m[2]), sub(s, sub(s, m[1], m[2]), m[3]), z, z]
    }
}
// ANCHOR_END: f2

// ANCHOR: f4
/// F(4x4, 3x3), on the points 0, 1, -1, 2, -2 and infinity.
///
/// ```text
///      [4  0 -5  0  1  0]        [ 1/4     0     0  ]
///      [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6  ]         [1  1  1  1  1  0]
/// Bt = [0  4 -4 -1  1  0]    G = [-1/6   1/6  -1/6  ]    At = [0  1 -1  2 -2  0]
///      [0 -2 -1  2  1  0]        [1/24  1/12   1/6  ]         [0  1  1  4  4  0]
///      [0  2 -1 -2  1  0]        [1/24 -1/12   1/6  ]         [0  1 -1  8 -8  1]
///      [0  4  0 -5  0  1]        [  0     0     1   ]
/// ```
pub(crate) struct F4;

impl WinogradTile for F4 {
    const M: usize = 4;
    const A: usize = 6;
    const G: &'static [[f64; 3]] = &[
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input<S: SimdF32>(s: S, d: [S::V; 6]) -> [S::V; 6] {
        // Shared terms: rows 1 and 2 are a + b and a - b, rows 3 and 4 are c + 2e and c - 2e.
        let a = scaled(s, -4.0, d[2], d[4]); //       d4 - 4 d2
        let b = scaled(s, -4.0, d[1], d[3]); //       d3 - 4 d1
        let c = sub(s, d[4], d[2]); //                d4 - d2
        let e = sub(s, d[3], d[1]); //                d3 - d1
        [
            scaled(s, 4.0, d[0], scaled(s, -5.0, d[2], d[4])),
            s.add(a, b),
            sub(s, a, b),
            scaled(s, 2.0, e, c),
            scaled(s, -2.0, e, c),
            scaled(s, 4.0, d[1], scaled(s, -5.0, d[3], d[5])),
        ]
    }

    #[inline(always)]
    fn output<S: SimdF32>(s: S, m: [S::V; 6]) -> [S::V; 4] {
        let (p, q) = (s.add(m[1], m[2]), sub(s, m[1], m[2]));
        let (r, u) = (s.add(m[3], m[4]), sub(s, m[3], m[4]));
        [s.add(s.add(m[0], p), r), scaled(s, 2.0, u, q), scaled(s, 4.0, r, p), s.add(scaled(s, 8.0, u, q), m[5])]
    }
}
// ANCHOR_END: f4

/// Which way the filter transform reads the layer's weights.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filters {
    /// `g[ky, kx, ci, co] = w[ky, kx, ci, co]`.
    Forward,
    /// `g[ky, kx, co, ci] = w[2-ky, 2-kx, ci, co]`: backward-input's kernel, turned by 180
    /// degrees with the channel axes exchanged.
    Turned,
}

// ANCHOR: filter_transform
/// `U[p, ci, co] = (G g[ci, co] Gt)[p]` for the convolution `shape` runs (its `c_in` and `c_out`,
/// which for backward-input are the layer's `c_out` and `c_in`), in f64, rounded once; `co` is
/// padded with zeros to `c_out_p` so that every product loads whole vectors.
fn transform_filters<T: WinogradTile>(weight: &[f32], shape: &Conv2dShape, c_out_p: usize, how: Filters) -> AlignedVec {
    let (a, c_in, c_out) = (T::A, shape.c_in, shape.c_out);
    let mut u = AlignedVec::zeros(a * a * c_in * c_out_p);
    for ci in 0..c_in {
        for co in 0..c_out {
            let g = |ky: usize, kx: usize| -> f64 {
                f64::from(match how {
                    Filters::Forward => weight[((ky * 3 + kx) * c_in + ci) * c_out + co],
                    Filters::Turned => weight[(((2 - ky) * 3 + (2 - kx)) * c_out + co) * c_in + ci],
                })
            };
            // G g, then (G g) Gt.
            let gg: Vec<[f64; 3]> =
                T::G.iter().map(|gi| std::array::from_fn(|kx| (0..3).map(|ky| gi[ky] * g(ky, kx)).sum())).collect();
            for (i, row) in gg.iter().enumerate() {
                for (j, gj) in T::G.iter().enumerate() {
                    let v: f64 = (0..3).map(|kx| row[kx] * gj[kx]).sum();
                    u[((i * a + j) * c_in + ci) * c_out_p + co] = v as f32;
                }
            }
        }
    }
    u
}
// ANCHOR_END: filter_transform

// ANCHOR: filter_cache
/// Filters transformed per thread: a layer's weights are the same for every image of a step,
/// and chapter 7's fused passes call a convolution once per image.
const CACHED_FILTERS: usize = 8;

/// What a transform depends on besides the weights: the tile, the direction, the shape and
/// the padding.
type FilterKey = (usize, Filters, usize, usize, usize);

thread_local! {
    static TRANSFORMED: PackCache<FilterKey> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The transformed filters of `weight`, transformed only if this thread has not transformed
/// these very weights (compared bit for bit, not by address: SGD changes weights in place) for
/// this shape and direction, with chapter 7's [`packed_once`]. The comparison reads each weight
/// once; the transform does 18 multiply-adds in f64 per weight (F(4x4, 3x3): 162 per 3x3
/// filter) and writes four floats.
fn transformed<T: WinogradTile>(weight: &[f32], shape: &Conv2dShape, c_out_p: usize, how: Filters) -> Rc<AlignedVec> {
    let key = (T::A, how, shape.c_in, shape.c_out, c_out_p);
    TRANSFORMED.with(|cache| {
        packed_once(cache, CACHED_FILTERS, key, weight, || transform_filters::<T>(weight, shape, c_out_p, how))
    })
}
// ANCHOR_END: filter_cache

// ANCHOR: winograd_entry
/// `output = conv(input, weight) + bias` (then ReLU if `fuse_relu`) by F(M x M, 3 x 3).
#[inline(always)]
pub(crate) fn conv2d_forward<S: SimdF32, T: WinogradTile, const R: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    shape.check_forward(input, weight, bias, output);
    let c_out_p = shape.c_out.next_multiple_of(S::LANES);
    let mut bias_p = AlignedVec::zeros(c_out_p);
    bias_p[..shape.c_out].copy_from_slice(bias);
    let u = transformed::<T>(weight, shape, c_out_p, Filters::Forward);
    winograd::<S, T, R, COV>(s, shape, input, &u, &bias_p, output, fuse_relu);
}

/// `grad_input = conv_transpose(grad_output, weight)` by F(M x M, 3 x 3): the forward engine
/// on the output gradient, with the turned kernel.
#[inline(always)]
pub(crate) fn conv2d_backward_input<S: SimdF32, T: WinogradTile, const R: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    grad_output: &[f32],
    weight: &[f32],
    grad_input: &mut [f32],
) {
    shape.check_backward_input(grad_output, weight, grad_input);
    let transposed = Conv2dShape { c_in: shape.c_out, c_out: shape.c_in, ..*shape };
    let c_out_p = transposed.c_out.next_multiple_of(S::LANES);
    let zero_bias = AlignedVec::zeros(c_out_p);
    let u = transformed::<T>(weight, &transposed, c_out_p, Filters::Turned);
    winograd::<S, T, R, COV>(s, &transposed, grad_output, &u, &zero_bias, grad_input, false);
}
// ANCHOR_END: winograd_entry

/// How many tiles ahead the input transform asks for its patches.
const PREFETCH_AHEAD: usize = 2;

/// How much of L2 one block's transformed input and products may take.
const BLOCK_BYTES: usize = 512 * 1024;

/// The sizes every stage of the engine shares.
#[derive(Clone, Copy)]
struct Plan {
    h: usize,
    w: usize,
    c_in: usize,
    c_out: usize,
    /// Channels rounded up to whole vectors: the strides of `V` and `M` rows.
    c_in_p: usize,
    c_out_p: usize,
    tiles_x: usize,
    tiles_per_image: usize,
    /// Tiles per block: the stride between two transform points in `V` and `M`.
    block: usize,
}

// ANCHOR: engine
/// The fused engine: `output = conv(input, U) + bias_p`, block of tiles by block of tiles.
///
/// ```text
/// for each block of tiles (consecutive in (image, tile row, tile column) order):
///     V[p, t, ci] = (Bt d[t, ci] B)[p]             input transform, every tile and channel
///     M[p, t, co] = sum over ci of V[p, t, ci] U[p, ci, co]
///                                                  A*A products on R x COV register tiles
///     out[t, co]  = (At M[., t, co] A) + bias      output transform, cut at the image's edge
/// ```
#[inline(always)]
fn winograd<S: SimdF32, T: WinogradTile, const R: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    u: &[f32],
    bias_p: &[f32],
    output: &mut [f32],
    relu: bool,
) {
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let (m, a) = (T::M, T::A);
    let c_in_p = c_in.next_multiple_of(S::LANES);
    let c_out_p = bias_p.len();
    assert!(input.len() == shape.input_len() && output.len() == shape.output_len());
    assert!(c_out_p.is_multiple_of(S::LANES) && c_out_p >= c_out && u.len() == a * a * c_in * c_out_p);
    let (tiles_x, tiles_y) = (w.div_ceil(m), h.div_ceil(m));
    let tiles = n * tiles_x * tiles_y;
    if tiles == 0 {
        return;
    }
    // As many tiles as fit the budget, a whole number of register tiles, no more than needed.
    let per_tile = a * a * (c_in_p + c_out_p) * 4;
    let block = (BLOCK_BYTES / per_tile).max(R).min(tiles.next_multiple_of(R)) / R * R;
    let plan = Plan { h, w, c_in, c_out, c_in_p, c_out_p, tiles_x, tiles_per_image: tiles_x * tiles_y, block };
    let mut v = AlignedVec::zeros(a * a * block * c_in_p);
    let mut prod = AlignedVec::zeros(a * a * block * c_out_p);
    let mut t0 = 0;
    while t0 < tiles {
        let count = block.min(tiles - t0);
        for t in 0..count {
            // The patches are read from memory, six image rows apart: ask for the next-but-one
            // tile's while this one is transformed.
            if t0 + t + PREFETCH_AHEAD < tiles {
                plan.prefetch_patch::<S, T>(s, input.as_ptr(), t0 + t + PREFETCH_AHEAD);
            }
            // SAFETY: tile t0 + t < tiles is inside the batch; t < block.
            unsafe { plan.input_tile::<S, T>(s, input.as_ptr(), v.as_mut_ptr(), t0 + t, t) };
        }
        // SAFETY: count.next_multiple_of(R) <= block (block is a multiple of R); u, v and prod
        // have the sizes `Plan` describes.
        unsafe {
            plan.products::<S, T, R, COV>(s, v.as_ptr(), u.as_ptr(), prod.as_mut_ptr(), count.next_multiple_of(R))
        };
        for t in 0..count {
            // The output pixels are written to memory that is not in the caches either: ask
            // for the lines of the next-but-one tile while this one is stored.
            if t + PREFETCH_AHEAD < count {
                plan.prefetch_output::<S, T>(s, output.as_ptr(), t0 + t + PREFETCH_AHEAD);
            }
            // SAFETY: as for the input transform.
            unsafe { plan.output_tile::<S, T>(s, prod.as_ptr(), bias_p, output.as_mut_ptr(), t0 + t, t, relu) };
        }
        t0 += count;
    }
}
// ANCHOR_END: engine

impl Plan {
    /// Image, first row and first column of global tile `g`'s output.
    #[inline(always)]
    fn origin<T: WinogradTile>(&self, g: usize) -> (usize, usize, usize) {
        let (img, rest) = (g / self.tiles_per_image, g % self.tiles_per_image);
        (img, rest / self.tiles_x * T::M, rest % self.tiles_x * T::M)
    }

    /// Asks for the input pixels of global tile `g`'s patch that the tile before it did not read
    /// (its last `M` columns, or all `A` for the first of a row) to be brought into L1.
    #[inline(always)]
    fn prefetch_patch<S: SimdF32, T: WinogradTile>(&self, s: S, src: *const f32, g: usize) {
        let Plan { h, w, c_in, .. } = *self;
        let (img, y0, x0) = self.origin::<T>(g);
        let first_col = if x0 == 0 { 0 } else { 2 };
        for i in 0..T::A {
            let Some(iy) = (y0 + i).checked_sub(1).filter(|&iy| iy < h) else { continue };
            for j in first_col..T::A {
                let Some(ix) = (x0 + j).checked_sub(1).filter(|&ix| ix < w) else { continue };
                let pixel = ((img * h + iy) * w + ix) * c_in;
                for c in (0..c_in).step_by(16) {
                    // A hint: it never faults, and the address is inside the input anyway.
                    s.prefetch(src.wrapping_add(pixel + c));
                }
            }
        }
    }

    /// Asks for the output lines of global tile `g` to be brought into L1 before it is stored.
    #[inline(always)]
    fn prefetch_output<S: SimdF32, T: WinogradTile>(&self, s: S, dst: *const f32, g: usize) {
        let Plan { h, w, c_out, .. } = *self;
        let (img, y0, x0) = self.origin::<T>(g);
        for y in y0..(y0 + T::M).min(h) {
            let row = ((img * h + y) * w + x0) * c_out;
            for c in (0..(w - x0).min(T::M) * c_out).step_by(16) {
                // A hint: it never faults, and the address is inside the output anyway.
                s.prefetch(dst.wrapping_add(row + c));
            }
        }
    }

    // ANCHOR: input_tile
    /// `V[p, t, ..] = (Bt d B)[p]` for every input-channel vector of global tile `g`, slot `t`.
    ///
    /// # Safety
    /// `src` is the whole input `[n, h, w, c_in]`, `g < n * tiles_per_image`, `v` is
    /// `[A*A, block, c_in_p]` and `t < block`.
    #[inline(always)]
    unsafe fn input_tile<S: SimdF32, T: WinogradTile>(&self, s: S, src: *const f32, v: *mut f32, g: usize, t: usize) {
        let Plan { h, w, c_in, c_in_p, block, .. } = *self;
        let a = T::A;
        let (img, y0, x0) = self.origin::<T>(g);
        // The patch's rows and columns y0 - 1 .. y0 - 1 + A that are inside the image.
        let inside = |o: usize, i: usize, len: usize| (o + i).checked_sub(1).filter(|&p| p < len);
        let (mut rows, mut cols) = ([None; 6], [None; 6]);
        for i in 0..a {
            (rows[i], cols[i]) = (inside(y0, i, h), inside(x0, i, w));
        }
        let interior = y0 >= 1 && y0 - 1 + a <= h && x0 >= 1 && x0 - 1 + a <= w;
        let mut ci = 0;
        while ci < c_in {
            let lanes = c_in - ci;
            // d[y][x]: the patch, zero outside the image and beyond the last channel.
            let mut d = [[s.zero(); 6]; 6];
            if interior && lanes >= S::LANES {
                // Most tiles: the whole patch is inside the image and the vector is full, so
                // the loads need no test.
                // SAFETY: the patch's rows y0-1..y0-1+A and columns x0-1..x0-1+A are inside the
                // image (`interior`), and ci + LANES <= c_in.
                let corner = unsafe { src.add(((img * h + y0 - 1) * w + x0 - 1) * c_in + ci) };
                for y in 0..a {
                    for x in 0..a {
                        // SAFETY: as above.
                        d[y][x] = unsafe { s.load(corner.add((y * w + x) * c_in)) };
                    }
                }
            } else {
                for (dy, row) in d.iter_mut().zip(rows) {
                    let Some(iy) = row else { continue };
                    for (dyx, col) in dy.iter_mut().zip(cols) {
                        let Some(ix) = col else { continue };
                        // SAFETY: pixel (img, iy, ix) is in the input and ci + min(lanes, LANES)
                        // <= c_in.
                        *dyx = unsafe { s.load_n(src.add(((img * h + iy) * w + ix) * c_in + ci), lanes) };
                    }
                }
            }
            // Bt along each row, then Bt down each column. (Plain loops: a closure passed to
            // `array::from_fn` may not be inlined, and a vector crossing that call leaves its
            // register.)
            let mut rows_t = [[s.zero(); 6]; 6];
            for y in 0..a {
                rows_t[y] = T::input(s, d[y]);
            }
            for x in 0..a {
                let mut line = [s.zero(); 6];
                for y in 0..a {
                    line[y] = rows_t[y][x];
                }
                let col = T::input(s, line);
                for (i, &val) in col.iter().take(a).enumerate() {
                    // SAFETY: point (i, x) < A*A, slot t < block, ci < c_in_p.
                    unsafe { s.store(v.add(((i * a + x) * block + t) * c_in_p + ci), val) };
                }
            }
            ci += S::LANES;
        }
    }
    // ANCHOR_END: input_tile

    // ANCHOR: products
    /// `M[p, t, co] = sum over ci of V[p, t, ci] U[p, ci, co]` for the `tiles` first slots.
    ///
    /// # Safety
    /// `v` is `[A*A, block, c_in_p]`, `u` `[A*A, c_in, c_out_p]`, `m` `[A*A, block, c_out_p]`,
    /// `tiles` a multiple of `R` no larger than `block`.
    #[inline(always)]
    unsafe fn products<S: SimdF32, T: WinogradTile, const R: usize, const COV: usize>(
        &self,
        s: S,
        v: *const f32,
        u: *const f32,
        m: *mut f32,
        tiles: usize,
    ) {
        let Plan { c_in, c_in_p, c_out_p, block, .. } = *self;
        let vectors = c_out_p / S::LANES;
        for p in 0..T::A * T::A {
            // SAFETY: p < A*A; every offset below stays inside point p's slice.
            unsafe {
                let (vp, up, mp) = (v.add(p * block * c_in_p), u.add(p * c_in * c_out_p), m.add(p * block * c_out_p));
                let mut v0 = 0;
                while v0 < vectors {
                    let cov = if vectors - v0 >= COV { COV } else { 1 };
                    let (uo, mo) = (up.add(v0 * S::LANES), mp.add(v0 * S::LANES));
                    for r0 in (0..tiles).step_by(R) {
                        let (vr, mr) = (vp.add(r0 * c_in_p), mo.add(r0 * c_out_p));
                        match cov == COV {
                            true => self.product_tile::<S, R, COV>(s, vr, uo, mr),
                            false => self.product_tile::<S, R, 1>(s, vr, uo, mr),
                        }
                    }
                    v0 += cov;
                }
            }
        }
    }

    /// One register tile: `R` tiles by `C` vectors of output channels, summed over `c_in`.
    ///
    /// # Safety
    /// `v` holds `R` rows of `c_in_p`; `u` `c_in` rows of `c_out_p` of which the tile reads `C`
    /// vectors; `m` `R` rows of `c_out_p` of which it writes `C` vectors.
    #[inline(always)]
    unsafe fn product_tile<S: SimdF32, const R: usize, const C: usize>(
        &self,
        s: S,
        v: *const f32,
        u: *const f32,
        m: *mut f32,
    ) {
        let Plan { c_in, c_in_p, c_out_p, .. } = *self;
        let lanes = S::LANES;
        let mut acc = [[s.zero(); C]; R];
        // SAFETY: the caller's contract.
        unsafe {
            for ci in 0..c_in {
                let mut uv = [s.zero(); C];
                for j in 0..C {
                    uv[j] = s.load(u.add(ci * c_out_p + j * lanes));
                }
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = s.splat(*v.add(r * c_in_p + ci));
                    for (a, &uj) in acc_r.iter_mut().zip(&uv) {
                        *a = s.mul_add(x, uj, *a);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                for (j, &a) in acc_r.iter().enumerate() {
                    s.store(m.add(r * c_out_p + j * lanes), a);
                }
            }
        }
    }
    // ANCHOR_END: products

    // ANCHOR: output_tile
    /// `out = At M A + bias` (then ReLU) for global tile `g`, slot `t`: the tile's pixels
    /// inside the image, every output-channel vector.
    ///
    /// # Safety
    /// `m` is `[A*A, block, c_out_p]`, `dst` the whole output `[n, h, w, c_out]`,
    /// `g < n * tiles_per_image`, `t < block`; `bias` has `c_out_p` floats.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn output_tile<S: SimdF32, T: WinogradTile>(
        &self,
        s: S,
        m: *const f32,
        bias: &[f32],
        dst: *mut f32,
        g: usize,
        t: usize,
        relu: bool,
    ) {
        let Plan { h, w, c_out, c_out_p, block, .. } = *self;
        let (mm, a) = (T::M, T::A);
        let (img, y0, x0) = self.origin::<T>(g);
        let (rows, cols) = ((h - y0).min(mm), (w - x0).min(mm));
        let floor = if relu { s.zero() } else { s.splat(f32::NEG_INFINITY) };
        let mut co = 0;
        while co < c_out {
            let lanes = c_out - co;
            // SAFETY: co < c_out_p, so the bias vector is inside `bias`.
            let b = unsafe { s.load(bias.as_ptr().add(co)) };
            // At along each row of the A x A products, then At down each of the M columns.
            let mut rows_t = [[s.zero(); 4]; 6];
            for i in 0..a {
                let mut line = [s.zero(); 6];
                for k in 0..a {
                    // SAFETY: point (i, k) < A*A, slot t < block, co < c_out_p.
                    line[k] = unsafe { s.load(m.add(((i * a + k) * block + t) * c_out_p + co)) };
                }
                rows_t[i] = T::output(s, line);
            }
            for x in 0..cols {
                let mut line = [s.zero(); 6];
                for i in 0..a {
                    line[i] = rows_t[i][x];
                }
                let col = T::output(s, line);
                for (y, &val) in col.iter().take(rows).enumerate() {
                    let out = s.max(floor, s.add(val, b));
                    // SAFETY: pixel (img, y0 + y, x0 + x) is inside the image (y < rows,
                    // x < cols) and co + min(lanes, LANES) <= c_out.
                    unsafe { s.store_n(dst.add(((img * h + y0 + y) * w + x0 + x) * c_out + co), out, lanes) };
                }
            }
            co += S::LANES;
        }
    }
    // ANCHOR_END: output_tile
}

// ANCHOR: isa_tables
/// The Winograd kernels and tables of one instruction set: `$token` proves it, `$feature` is
/// what its functions are compiled for, and the register tiles are `[R, COV]` when the
/// convolution has at least `COV` vectors of output channels, `[R2, COV2]` otherwise.
///
/// It defines `TABLES`: the instruction set's kernel table with the Winograd convolutions (F(4x4)
/// where enough input channels make it pay, the direct kernel elsewhere), and two tables that
/// take F(2x2) or F(4x4) for every convolution, for tests and measurements.
macro_rules! isa_tables {
    ($token:ty, $feature:literal, [$r:literal, $cov:literal], [$r2:literal, $cov2:literal]) => {
        use $crate::kernels::Conv2dShape;
        use $crate::kernels::conv_algorithm::{WinogradTables, winograd_pays};
        use $crate::kernels::generic::winograd::{self as wg, F2, F4, WinogradTile};
        use $crate::kernels::simd::SimdF32;

        #[target_feature(enable = $feature)]
        fn forward<T: WinogradTile>(
            shape: &Conv2dShape,
            input: &[f32],
            weight: &[f32],
            bias: &[f32],
            output: &mut [f32],
            fuse_relu: bool,
        ) {
            let s = <$token>::new();
            if shape.c_out.div_ceil(<$token as SimdF32>::LANES) >= $cov {
                wg::conv2d_forward::<_, T, $r, $cov>(s, shape, input, weight, bias, output, fuse_relu)
            } else {
                wg::conv2d_forward::<_, T, $r2, $cov2>(s, shape, input, weight, bias, output, fuse_relu)
            }
        }

        #[target_feature(enable = $feature)]
        fn backward_input<T: WinogradTile>(
            shape: &Conv2dShape,
            grad_output: &[f32],
            weight: &[f32],
            grad_input: &mut [f32],
        ) {
            let s = <$token>::new();
            // Here the output channels are the layer's input channels.
            if shape.c_in.div_ceil(<$token as SimdF32>::LANES) >= $cov {
                wg::conv2d_backward_input::<_, T, $r, $cov>(s, shape, grad_output, weight, grad_input)
            } else {
                wg::conv2d_backward_input::<_, T, $r2, $cov2>(s, shape, grad_output, weight, grad_input)
            }
        }

        #[target_feature(enable = $feature)]
        fn forward_chosen(
            shape: &Conv2dShape,
            input: &[f32],
            weight: &[f32],
            bias: &[f32],
            output: &mut [f32],
            fuse_relu: bool,
        ) {
            match winograd_pays(shape.c_in) {
                true => forward::<F4>(shape, input, weight, bias, output, fuse_relu),
                false => super::conv2d_forward(shape, input, weight, bias, output, fuse_relu),
            }
        }

        #[target_feature(enable = $feature)]
        fn backward_input_chosen(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
            // Backward-input convolves the output gradient: its input channels are the layer's
            // output channels.
            match winograd_pays(shape.c_out) {
                true => backward_input::<F4>(shape, grad_output, weight, grad_input),
                false => super::conv2d_backward_input(shape, grad_output, weight, grad_input),
            }
        }

        pub(crate) static TABLES: WinogradTables = WinogradTables {
            chosen: $crate::kernels::Kernels {
                conv2d_forward: forward_chosen,
                conv2d_backward_input: backward_input_chosen,
                ..super::KERNELS
            },
            f2: $crate::kernels::Kernels {
                conv2d_forward: forward::<F2>,
                conv2d_backward_input: backward_input::<F2>,
                ..super::KERNELS
            },
            f4: $crate::kernels::Kernels {
                conv2d_forward: forward::<F4>,
                conv2d_backward_input: backward_input::<F4>,
                ..super::KERNELS
            },
        };
    };
}
pub(crate) use isa_tables;
// ANCHOR_END: isa_tables
