//! 3x3 convolution, stride 1, padding 1, on NHWC activations with HWIO weights, blocked for
//! registers.
//!
//! Forward: a tile of `PIX` neighbouring output pixels of one row by `COV` vectors of output
//! channels lives in `PIX * COV` accumulator registers for the whole sum over the 9 taps and the
//! input channels. Each step loads `COV` weight vectors, broadcasts `PIX` input values and does
//! `PIX * COV` multiply-adds: every weight vector is used `PIX` times and every input value
//! `COV` times before it leaves its register.
//!
//! Backward-input is the same computation on the output gradient with the kernel turned by 180
//! degrees and its channel axes exchanged, so it runs the same engine on repacked weights.
//!
//! Backward-weight is a reduction over every pixel of the batch: a tile of
//! `3 (kx) * CIB (input channels) * COV (vectors of output channels)` accumulators collects one
//! kernel row's taps along an image row, then goes back to memory.
//!
//! Borders: the pixels of a row other than the first and the last read all three kernel columns,
//! so their tiles need no test; the first and the last pixel go through one-pixel tiles that
//! skip the column outside the image. Rows outside the image skip a whole kernel row.

// Chapter 7 keeps the turned weights of each layer for the whole step instead of making them
// in every call.
#[cfg(not(feature = "ch7"))]
use self::pack_weights_transposed as transposed_weights;
#[cfg(feature = "ch7")]
use super::packed_once::transposed_weights;
use crate::kernels::Conv2dShape;
use crate::kernels::simd::SimdF32;
use crate::tensor::AlignedVec;

/// Weights `[3, 3, c_in, c_out]` copied into `[3, 3, c_in, c_out_p]`, zero-padded to a whole
/// number of vectors of output channels so that every weight load is a full vector, and
/// 64-byte aligned so that no AVX-512 load straddles two cache lines. (All the kernels' scratch
/// buffers are `AlignedVec`s for the same reason.)
fn pack_weights(weight: &[f32], c_in: usize, c_out: usize, c_out_p: usize) -> AlignedVec {
    let mut packed = AlignedVec::zeros(9 * c_in * c_out_p);
    for (src, dst) in weight.chunks_exact(c_out).zip(packed.chunks_exact_mut(c_out_p)) {
        dst[..c_out].copy_from_slice(src);
    }
    packed
}

// ANCHOR: pack_weights_transposed
/// The weights backward-input convolves with: `w'[ky, kx, co, ci] = w[2-ky, 2-kx, ci, co]`,
/// the kernel turned by 180 degrees with input and output channels exchanged, and `ci` padded
/// to `c_in_p`.
pub(super) fn pack_weights_transposed(weight: &[f32], c_in: usize, c_out: usize, c_in_p: usize) -> AlignedVec {
    let mut packed = AlignedVec::zeros(9 * c_out * c_in_p);
    for ky in 0..3 {
        for kx in 0..3 {
            let src = &weight[((2 - ky) * 3 + (2 - kx)) * c_in * c_out..][..c_in * c_out];
            let dst = &mut packed[(ky * 3 + kx) * c_out * c_in_p..][..c_out * c_in_p];
            for ci in 0..c_in {
                for co in 0..c_out {
                    dst[co * c_in_p + ci] = src[ci * c_out + co];
                }
            }
        }
    }
    packed
}
// ANCHOR_END: pack_weights_transposed

// ANCHOR: conv2d_forward
#[inline(always)]
pub(crate) fn conv2d_forward<S: SimdF32, const PIX: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    conv2d_forward_with::<S, Intrinsics, PIX, COV>(s, shape, input, weight, bias, output, fuse_relu)
}

/// [`conv2d_forward`] with the channel loop `K` in its tiles.
#[inline(always)]
pub(crate) fn conv2d_forward_with<S: SimdF32, K: ChannelLoop<S>, const PIX: usize, const COV: usize>(
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
    // The copy is needed only to pad the output channels or to align the first weight (for
    // speed alone: every load is unaligned-safe, so both ways give the same bits); the weights
    // of every layer of our networks need neither, and are read where they are.
    let copy;
    let packed = match c_out_p == shape.c_out && weight.as_ptr().addr().is_multiple_of(64) {
        true => weight,
        false => {
            copy = pack_weights(weight, shape.c_in, shape.c_out, c_out_p);
            &copy[..]
        }
    };
    let mut bias_p = AlignedVec::zeros(c_out_p);
    bias_p[..shape.c_out].copy_from_slice(bias);
    conv3x3::<S, K, PIX, COV>(s, shape, input, packed, &bias_p, output, fuse_relu);
}
// ANCHOR_END: conv2d_forward

// ANCHOR: conv2d_backward_input
#[inline(always)]
pub(crate) fn conv2d_backward_input<S: SimdF32, const PIX: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    grad_output: &[f32],
    weight: &[f32],
    grad_input: &mut [f32],
) {
    shape.check_backward_input(grad_output, weight, grad_input);
    let c_in_p = shape.c_in.next_multiple_of(S::LANES);
    let packed = transposed_weights(weight, shape.c_in, shape.c_out, c_in_p);
    let zero_bias = AlignedVec::zeros(c_in_p);
    // The output gradient is the input of this convolution and the input gradient its output.
    let transposed = Conv2dShape { c_in: shape.c_out, c_out: shape.c_in, ..*shape };
    conv3x3::<S, Intrinsics, PIX, COV>(s, &transposed, grad_output, &packed[..], &zero_bias, grad_input, false);
}
// ANCHOR_END: conv2d_backward_input

// ANCHOR: conv3x3
/// How many of a row's interior pixels (all but the first and the last) [`conv3x3`] computes
/// twice with tiles of `pix` pixels: its last tile ends at the row's end and overlaps the one
/// before it. A row with fewer interior pixels than a tile goes one pixel at a time and
/// recomputes none, but counts here as the worst case, so that a tile too wide for the row is
/// never the one chosen.
pub(crate) fn recomputed_pixels(w: usize, pix: usize) -> usize {
    let interior = w.saturating_sub(2);
    match interior >= pix {
        true => interior.div_ceil(pix) * pix - interior,
        false => usize::MAX,
    }
}

/// The engine of both: `output = conv(input, packed) + bias_p`, with `packed` `[3, 3, c_in,
/// c_out_p]` and `bias_p` `[c_out_p]`.
///
/// ```text
/// for each image, each row y, each tile of COV output-channel vectors:
///     one-pixel tile at x = 0 (kernel columns 1..3)
///     tiles of PIX pixels from x = 1 (all kernel columns); the last one ends at w-2
///         and may overlap the one before it, recomputing a few pixels
///     one-pixel tile at x = w-1 (kernel columns 0..2)
/// ```
#[inline(always)]
fn conv3x3<S: SimdF32, K: ChannelLoop<S>, const PIX: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    packed: &[f32],
    bias_p: &[f32],
    output: &mut [f32],
    relu: bool,
) {
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let c_out_p = bias_p.len();
    let vectors = c_out_p / S::LANES;
    assert!(input.len() == shape.input_len() && output.len() == shape.output_len());
    assert!(c_out_p.is_multiple_of(S::LANES) && c_out_p >= c_out && packed.len() == 9 * c_in * c_out_p);
    for img in 0..n {
        let geometry = Geometry { h, w, c_in, c_out, c_out_p, relu };
        // SAFETY: `img < n`, so the image's input and output planes are inside the slices.
        let (src, dst) =
            unsafe { (input.as_ptr().add(img * h * w * c_in), output.as_mut_ptr().add(img * h * w * c_out)) };
        for y in 0..h {
            let mut v0 = 0;
            while v0 < vectors {
                let cov = if vectors - v0 >= COV { COV } else { 1 };
                let at = Tile { y, x0: 0, v0, kx: 0..3 };
                // SAFETY: every tile below has y < h, its pixels inside 0..w, its kernel
                // columns reading pixels inside 0..w, and its channel vectors inside
                // 0..vectors; `Geometry::run` relies on nothing else.
                unsafe {
                    // First and last pixel of the row.
                    geometry.edge::<S, K, COV>(
                        s,
                        cov,
                        src,
                        packed,
                        bias_p,
                        dst,
                        Tile { kx: 1..if w == 1 { 2 } else { 3 }, ..at.clone() },
                    );
                    if w > 1 {
                        geometry.edge::<S, K, COV>(
                            s,
                            cov,
                            src,
                            packed,
                            bias_p,
                            dst,
                            Tile { x0: w - 1, kx: 0..2, ..at.clone() },
                        );
                    }
                    // Interior pixels 1..w-1 in tiles of PIX.
                    let interior = w.saturating_sub(2);
                    if interior >= PIX {
                        let mut x0 = 1;
                        loop {
                            let x = x0.min(w - 1 - PIX);
                            let t = Tile { x0: x, ..at.clone() };
                            match cov == COV {
                                true => geometry.run::<S, K, PIX, COV>(s, src, packed, bias_p, dst, t),
                                false => geometry.run::<S, K, PIX, 1>(s, src, packed, bias_p, dst, t),
                            }
                            if x + PIX >= w - 1 {
                                break;
                            }
                            x0 += PIX;
                        }
                    } else {
                        for x in 1..1 + interior {
                            geometry.edge::<S, K, COV>(s, cov, src, packed, bias_p, dst, Tile { x0: x, ..at.clone() });
                        }
                    }
                }
                v0 += cov;
            }
        }
    }
}
// ANCHOR_END: conv3x3

/// The sizes of one image and what to do with the sums.
#[derive(Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    c_in: usize,
    c_out: usize,
    c_out_p: usize,
    relu: bool,
}

/// `P` pixels of row `y` from column `x0`, output-channel vectors `v0..v0+C`, and the kernel
/// columns the tile reads.
#[derive(Clone)]
struct Tile {
    y: usize,
    x0: usize,
    v0: usize,
    kx: std::ops::Range<usize>,
}

impl Geometry {
    /// A one-pixel tile of `cov` (`COV` or 1) vectors.
    ///
    /// # Safety
    /// As for [`Geometry::run`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn edge<S: SimdF32, K: ChannelLoop<S>, const COV: usize>(
        self,
        s: S,
        cov: usize,
        src: *const f32,
        packed: &[f32],
        bias: &[f32],
        dst: *mut f32,
        t: Tile,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe {
            if cov == COV {
                self.run::<S, K, 1, COV>(s, src, packed, bias, dst, t)
            } else {
                self.run::<S, K, 1, 1>(s, src, packed, bias, dst, t)
            }
        }
    }

    // ANCHOR: conv_tile
    /// # Safety
    /// `src` is one image `[h, w, c_in]`, `dst` one image `[h, w, c_out]`; the tile's pixels
    /// `x0..x0+P` and the pixels its kernel columns read (`x0 + kx - 1`) are inside `0..w`;
    /// `v0 + C <= c_out_p / LANES`; `packed` and `bias` as in `conv3x3`.
    #[inline(always)]
    unsafe fn run<S: SimdF32, K: ChannelLoop<S>, const P: usize, const C: usize>(
        self,
        s: S,
        src: *const f32,
        packed: &[f32],
        bias: &[f32],
        dst: *mut f32,
        t: Tile,
    ) {
        let Geometry { h, w, c_in, c_out, c_out_p, relu } = self;
        let lanes = S::LANES;
        let (wp, bp) = (packed.as_ptr(), bias.as_ptr());
        // SAFETY: bias has c_out_p floats and (v0 + j + 1) * LANES <= c_out_p.
        let mut acc: [[S::V; C]; P] = unsafe { [std::array::from_fn(|j| s.load(bp.add((t.v0 + j) * lanes))); P] };
        for ky in 0..3 {
            // Input row y + ky - 1; outside the image it is zero padding and adds nothing.
            let Some(iy) = (t.y + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
            for kx in t.kx.clone() {
                // SAFETY: pixel x0 + kx - 1 of row iy is in the image (the caller's contract),
                // so `px` and the P pixels after it are inside `src`; the weight vectors of
                // tap (ky, kx), input channel ci < c_in and output vectors v0..v0+C are inside
                // `packed` (9 * c_in * c_out_p floats).
                unsafe {
                    let px = src.add((iy * w + t.x0 + kx - 1) * c_in);
                    let taps = wp.add((ky * 3 + kx) * c_in * c_out_p + t.v0 * lanes);
                    K::channels(s, &mut acc, px, c_in, taps, c_out_p);
                }
            }
        }
        // LLVM keeps `acc` in registers only if it can unroll every loop that indexes it, so the
        // epilogue is kept small: ReLU is `max(floor, acc)` with a floor of 0 or of -infinity
        // (which changes nothing), and the partial vector a c_out that is not a multiple of
        // LANES leaves at the end of each pixel is stored in a loop of its own.
        let floor = if relu { s.zero() } else { s.splat(f32::NEG_INFINITY) };
        let last = (t.v0 + C - 1) * lanes;
        let last_is_full = c_out - last >= lanes;
        let mut tails = [floor; P];
        for (p, acc_p) in acc.iter().enumerate() {
            // SAFETY: pixel x0 + p of row y is in the image; vectors v0..v0+C-1 are full and
            // inside the pixel's c_out channels, and so is the last one when it is full.
            unsafe {
                let out = dst.add((t.y * w + t.x0 + p) * c_out + t.v0 * lanes);
                for j in 0..C - 1 {
                    s.store(out.add(j * lanes), s.max(floor, acc_p[j]));
                }
                if last_is_full {
                    s.store(out.add((C - 1) * lanes), s.max(floor, acc_p[C - 1]));
                } else {
                    tails[p] = s.max(floor, acc_p[C - 1]);
                }
            }
        }
        if !last_is_full {
            for (p, &v) in tails.iter().enumerate() {
                // SAFETY: the last vector of pixel x0 + p stops at c_out (last < c_out because
                // c_out_p is c_out rounded up to a vector).
                unsafe { s.store_partial(dst.add((t.y * w + t.x0 + p) * c_out + last), v, c_out - last) }
            }
        }
    }
    // ANCHOR_END: conv_tile
}

// ANCHOR: channel_loop
/// The innermost loop of a tile: `acc[p][j] += px[p][ci] * taps[ci][j]` for every input channel
/// `ci`, where `px[p]` is pixel `p`'s `c_in` input values and `taps[ci]` the tap's `C` weight
/// vectors for channel `ci`.
pub(crate) trait ChannelLoop<S: SimdF32> {
    /// # Safety
    /// `px` is valid for reading `P * c_in` floats, `taps` for `c_in` rows of `c_out_p` floats
    /// whose first `C` vectors are read.
    unsafe fn channels<const P: usize, const C: usize>(
        s: S,
        acc: &mut [[S::V; C]; P],
        px: *const f32,
        c_in: usize,
        taps: *const f32,
        c_out_p: usize,
    );
}

/// The loop of chapters 4-6, written with the trait: for each input channel, load `C` weight
/// vectors into `wv`, then for each pixel broadcast one input value and do `C` multiply-adds.
pub(crate) struct Intrinsics;

impl<S: SimdF32> ChannelLoop<S> for Intrinsics {
    #[inline(always)]
    unsafe fn channels<const P: usize, const C: usize>(
        s: S,
        acc: &mut [[S::V; C]; P],
        px: *const f32,
        c_in: usize,
        taps: *const f32,
        c_out_p: usize,
    ) {
        for ci in 0..c_in {
            // SAFETY: ci < c_in and j < C, inside what the caller guarantees.
            let wv: [S::V; C] = std::array::from_fn(|j| unsafe { s.load(taps.add(ci * c_out_p + j * S::LANES)) });
            for (p, acc_p) in acc.iter_mut().enumerate() {
                // SAFETY: p < P and ci < c_in.
                let xv = s.splat(unsafe { *px.add(p * c_in + ci) });
                for (a, &wj) in acc_p.iter_mut().zip(&wv) {
                    *a = s.mul_add(xv, wj, *a);
                }
            }
        }
    }
}
// ANCHOR_END: channel_loop

// ANCHOR: conv2d_backward_weight
/// `grad_w[ky, kx, ci, co] = sum over b, y, x of in[b, y+ky-1, x+kx-1, ci] * grad_out[b, y, x, co]`
/// and `grad_b[co] = sum of grad_out[.., co]`.
///
/// ```text
/// grad_w = 0
/// for each image, each row y, each kernel row ky (input row y+ky-1 inside the image):
///     for each tile of CIB input channels and COV output-channel vectors:
///         acc[3][CIB][COV] = grad_w[ky, 0..3, tile]
///         for each pixel x of the row:            COV loads, 3 * CIB broadcasts,
///             acc[kx][c][j] += in[y+ky-1, x+kx-1, ci0+c] * grad_out[y, x, co vector j]
///         grad_w[ky, 0..3, tile] = acc
/// ```
/// One image row of the output gradient and three of the input stay in L1 while every tile
/// sweeps them; the gradient itself (at most 288 KB here) stays in L2.
#[inline(always)]
pub(crate) fn conv2d_backward_weight<S: SimdF32, const CIB: usize, const COV: usize>(
    s: S,
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    shape.check_backward_weight(input, grad_output, grad_weight, grad_bias);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let c_out_p = c_out.next_multiple_of(S::LANES);
    let vectors = c_out_p / S::LANES;
    // The sums go straight into `grad_weight` when its rows are whole vectors and it starts on
    // a cache line, as a layer's gradient does; otherwise into a padded, aligned copy. Either
    // way `gw` points to 9 * c_in * c_out_p floats: `check_backward_weight` holds
    // grad_weight.len() == 9 * c_in * c_out, and `in_place` needs c_out == c_out_p.
    let in_place = c_out == c_out_p && grad_weight.as_ptr().addr().is_multiple_of(64);
    let mut padded_gw = AlignedVec::zeros(if in_place { 0 } else { 9 * c_in * c_out_p });
    let gw = match in_place {
        true => {
            grad_weight.fill(0.0);
            grad_weight.as_mut_ptr()
        }
        false => padded_gw.as_mut_ptr(),
    };
    let mut gb = AlignedVec::zeros(c_out_p);
    // The tiles load whole vectors of the output gradient; when c_out is not a multiple of
    // LANES, each row is first copied into a zero-padded one.
    let mut padded_row = AlignedVec::zeros(if c_out == c_out_p { 0 } else { w * c_out_p });
    let reduce = Reduce { w, c_in, c_out_p };
    for img in 0..n {
        for y in 0..h {
            let g_row = &grad_output[((img * h + y) * w) * c_out..][..w * c_out];
            let g_row = if c_out == c_out_p {
                g_row.as_ptr()
            } else {
                for (dst, src) in padded_row.chunks_exact_mut(c_out_p).zip(g_row.chunks_exact(c_out)) {
                    dst[..c_out].copy_from_slice(src);
                }
                padded_row.as_ptr()
            };
            // SAFETY: g_row has w pixels of c_out_p channels; gb has c_out_p floats.
            unsafe { reduce.bias::<S>(s, g_row, gb.as_mut_ptr(), vectors) };
            let next_row = grad_output.as_ptr().wrapping_add((img * h + y + 1) * w * c_out);
            for ky in 0..3 {
                let Some(iy) = (y + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
                // SAFETY: image img, row iy is inside input.
                let in_row = unsafe { input.as_ptr().add(((img * h + iy) * w) * c_in) };
                // SAFETY: kernel row ky of the gradient, 3 * c_in rows of c_out_p, is inside gw.
                let gw_ky = unsafe { gw.add(ky * 3 * c_in * c_out_p) };
                let mut ci0 = 0;
                while ci0 < c_in {
                    let cib = if c_in - ci0 >= CIB { CIB } else { 1 };
                    // The first input channels of kernel row 1 (there for every y) ask for the
                    // output gradient's next row, pixel by pixel, while they use this one.
                    let g_next = if ky == 1 && ci0 == 0 && c_out == c_out_p { next_row } else { std::ptr::null() };
                    let mut v0 = 0;
                    while v0 < vectors {
                        let cov = if vectors - v0 >= COV { COV } else { 1 };
                        // SAFETY: ci0 + cib <= c_in and v0 + cov <= vectors.
                        unsafe {
                            match (cib == CIB, cov == COV) {
                                (true, true) => reduce.tile::<S, CIB, COV>(s, in_row, g_row, g_next, gw_ky, ci0, v0),
                                (true, false) => reduce.tile::<S, CIB, 1>(s, in_row, g_row, g_next, gw_ky, ci0, v0),
                                (false, true) => reduce.tile::<S, 1, COV>(s, in_row, g_row, g_next, gw_ky, ci0, v0),
                                (false, false) => reduce.tile::<S, 1, 1>(s, in_row, g_row, g_next, gw_ky, ci0, v0),
                            }
                        }
                        v0 += cov;
                    }
                    ci0 += cib;
                }
            }
        }
    }
    if !in_place {
        for (dst, src) in grad_weight.chunks_exact_mut(c_out).zip(padded_gw.chunks_exact(c_out_p)) {
            dst.copy_from_slice(&src[..c_out]);
        }
    }
    grad_bias.copy_from_slice(&gb[..c_out]);
}
// ANCHOR_END: conv2d_backward_weight

/// The two image rows a weight tile reads, and where the tile starts.
#[derive(Clone, Copy)]
struct Rows {
    in_row: *const f32,
    g_row: *const f32,
    /// The output gradient's next row, prefetched while this one is used (any address: a
    /// prefetch never faults).
    g_next: *const f32,
    ci0: usize,
    v0: usize,
}

/// Vectors of the bias gradient summed side by side.
const BIAS_CHAINS: usize = 8;

/// Sizes for the weight-gradient reduction over one image row. Gradient rows have `c_out_p`
/// channels (padded when needed).
#[derive(Clone, Copy)]
struct Reduce {
    w: usize,
    c_in: usize,
    c_out_p: usize,
}

impl Reduce {
    /// `gb += sum over the row's pixels of g`.
    ///
    /// # Safety
    /// `g_row` is `w` pixels of `c_out_p` floats; `gb` has `vectors * LANES = c_out_p` floats.
    #[inline(always)]
    unsafe fn bias<S: SimdF32>(self, s: S, g_row: *const f32, gb: *mut f32, vectors: usize) {
        // Up to BIAS_CHAINS vectors at a time, each its own chain of additions along the row:
        // one chain alone waits an addition's latency per pixel.
        for v0 in (0..vectors).step_by(BIAS_CHAINS) {
            let nv = BIAS_CHAINS.min(vectors - v0);
            // SAFETY: the caller's contract; v0 + v < vectors.
            unsafe {
                let mut acc = [s.zero(); BIAS_CHAINS];
                for v in 0..nv {
                    acc[v] = s.load(gb.add((v0 + v) * S::LANES));
                }
                for x in 0..self.w {
                    let px = g_row.add(x * self.c_out_p + v0 * S::LANES);
                    for v in 0..nv {
                        acc[v] = s.add(acc[v], s.load(px.add(v * S::LANES)));
                    }
                }
                for v in 0..nv {
                    s.store(gb.add((v0 + v) * S::LANES), acc[v]);
                }
            }
        }
    }

    // ANCHOR: weight_tile
    /// Adds one image row's contribution to the taps `(ky, 0..3, ci0..ci0+CI, vectors
    /// v0..v0+C)`.
    ///
    /// # Safety
    /// `in_row` is input row y+ky-1 (`w` pixels of `c_in`), `g_row` output-gradient row y (`w`
    /// pixels of `c_out_p`), `gw_ky` kernel row ky of the gradient, padded or not (`3 * c_in * c_out_p`);
    /// `ci0 + CI <= c_in`; `(v0 + C) * LANES <= c_out_p`.
    #[inline(always)]
    unsafe fn tile<S: SimdF32, const CI: usize, const C: usize>(
        self,
        s: S,
        in_row: *const f32,
        g_row: *const f32,
        g_next: *const f32,
        gw_ky: *mut f32,
        ci0: usize,
        v0: usize,
    ) {
        let Reduce { c_in, c_out_p, .. } = self;
        let lanes = S::LANES;
        let at = |kx: usize, c: usize, j: usize| (kx * c_in + ci0 + c) * c_out_p + (v0 + j) * lanes;
        // SAFETY: every (kx, c, j) indexes a vector inside kernel row ky (the caller's contract).
        let mut acc: [[[S::V; C]; CI]; 3] = unsafe {
            std::array::from_fn(|kx| std::array::from_fn(|c| std::array::from_fn(|j| s.load(gw_ky.add(at(kx, c, j))))))
        };
        let rows = Rows { in_row, g_row, g_next, ci0, v0 };
        // SAFETY: the caller's contract, which `row` needs.
        unsafe {
            if g_next.is_null() {
                self.row::<S, CI, C, false>(s, &mut acc, rows);
            } else {
                self.row::<S, CI, C, true>(s, &mut acc, rows);
            }
            for (kx, acc_kx) in acc.iter().enumerate() {
                for (c, acc_c) in acc_kx.iter().enumerate() {
                    for (j, &a) in acc_c.iter().enumerate() {
                        s.store(gw_ky.add(at(kx, c, j)), a);
                    }
                }
            }
        }
    }

    /// Every pixel of the row, the first and the last with their kernel columns cut; with `PF`,
    /// each pixel also asks for the same channels of the next row (`rows.g_next`).
    ///
    /// # Safety
    /// As for `tile`.
    #[inline(always)]
    unsafe fn row<S: SimdF32, const CI: usize, const C: usize, const PF: bool>(
        self,
        s: S,
        acc: &mut [[[S::V; C]; CI]; 3],
        rows: Rows,
    ) {
        let w = self.w;
        // SAFETY: pixel x of both rows is inside 0..w, and so is pixel x + kx - 1 for the
        // kernel columns each call lets through: the first pixel skips column 0, the last
        // column 2.
        unsafe {
            if w == 1 {
                self.pixel::<S, CI, C, 1, 2, PF>(s, acc, rows, 0);
            } else {
                self.pixel::<S, CI, C, 1, 3, PF>(s, acc, rows, 0);
                for x in 1..w - 1 {
                    self.pixel::<S, CI, C, 0, 3, PF>(s, acc, rows, x);
                }
                self.pixel::<S, CI, C, 0, 2, PF>(s, acc, rows, w - 1);
            }
        }
    }

    /// One pixel's contribution: `acc[kx][c][j] += in[x + kx - 1, ci0 + c] * g[x, v0 + j]` for
    /// the kernel columns `KX0..KX1`.
    ///
    /// # Safety
    /// Pixel x and pixels x + kx - 1 for kx in KX0..KX1 are inside the rows; as for `tile`.
    #[inline(always)]
    unsafe fn pixel<S: SimdF32, const CI: usize, const C: usize, const KX0: usize, const KX1: usize, const PF: bool>(
        self,
        s: S,
        acc: &mut [[[S::V; C]; CI]; 3],
        rows: Rows,
        x: usize,
    ) {
        let Reduce { c_in, c_out_p, .. } = self;
        let lanes = S::LANES;
        // SAFETY: the caller's contract.
        unsafe {
            let gp = rows.g_row.add(x * c_out_p + rows.v0 * lanes);
            let g: [S::V; C] = std::array::from_fn(|j| s.load(gp.add(j * lanes)));
            if PF {
                for j in 0..C {
                    s.prefetch(rows.g_next.wrapping_add(x * c_out_p + (rows.v0 + j) * lanes));
                }
            }
            for kx in KX0..KX1 {
                let ip = rows.in_row.add((x + kx - 1) * c_in + rows.ci0);
                for c in 0..CI {
                    let xv = s.splat(*ip.add(c));
                    for j in 0..C {
                        acc[kx][c][j] = s.mul_add(xv, g[j], acc[kx][c][j]);
                    }
                }
            }
        }
    }
    // ANCHOR_END: weight_tile
}
