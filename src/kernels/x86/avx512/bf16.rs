//! Chapter 11: the 3x3 convolutions with bf16 inputs and fp32 sums, on AVX-512 BF16.
//!
//! `vdpbf16ps` (`_mm512_dpbf16_ps`) takes two vectors of 32 bf16 values and adds, in each of
//! its 16 fp32 lanes, the products of one *pair*: `acc[i] += a[2i] * b[2i] + a[2i+1] * b[2i+1]`.
//! A kernel therefore chooses which dimension of its reduction forms the pairs, and packs both
//! operands so that the two halves of each 32-bit lane hold neighbours along that dimension:
//!
//! | pass            | sum over                     | pairs of               |
//! | --------------- | ---------------------------- | ---------------------- |
//! | forward         | taps x input channels        | input channels         |
//! | backward-input  | taps x output channels       | output channels        |
//! | weight gradient | images x rows x pixels       | neighbouring pixels    |
//!
//! Each call converts its operands to bf16 once (round to nearest even, [`to_bf16`]), into
//! packed copies with zero padding: one pixel of border around every image, so that no tile
//! tests an edge, and a zero partner where a pair dimension is odd. The sums stay fp32 in the
//! registers, the outputs are fp32, and so are the weights the optimiser updates: only the
//! products' operands are rounded.
//!
//! Every function is `#[target_feature(enable = "avx512f,avx512bf16")]`: the table holding them
//! exists only after the CPU was seen to have both (`Precision::Bf16` in `kernels::precision`).

use crate::kernels::{Conv2dShape, Kernels};
use crate::tensor::AlignedVec;
use std::arch::x86_64::*;
use std::cell::RefCell;

thread_local! {
    /// Each thread's two packed copies, kept from one call to the next. A fresh buffer of a few
    /// megabytes per call would cost a page fault for every 4 KB the first time it is written,
    /// which under a hypervisor took longer than the packing itself; a reused one is only
    /// cleared.
    static PACKED: RefCell<(Vec<u32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `buf` as `len` zeros, reusing its allocation.
#[inline(always)]
fn zeroed(buf: &mut Vec<u32>, len: usize) {
    buf.clear();
    buf.resize(len, 0);
}

// ANCHOR: to_bf16
/// The bf16 nearest to `x` (ties to even), as its 16 bits: the top half of the fp32 bits,
/// rounded. NaN stays a (quiet) NaN; infinities and overflow give infinity, as in hardware.
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    // Adding 0x7fff rounds up everything above half of the dropped 16 bits; adding the lowest
    // kept bit too moves an exact half up only when that makes the kept part even.
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    // A select rather than an early return, so that loops of conversions vectorise.
    if x.is_nan() { ((bits >> 16) | 0x40) as u16 } else { rounded }
}

/// `dst[i] = to_bf16(src[i])`: one loop the compiler vectorises (inside the kernels' AVX-512
/// functions, with AVX-512 instructions).
#[inline(always)]
fn convert(src: &[f32], dst: &mut [u16]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_bf16(v);
    }
}

/// Two bf16 values in one 32-bit lane: `lo` in the low half (the even element of the pair).
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}
// ANCHOR_END: to_bf16

/// A vector of 16 packed pairs from memory, as the bf16 vector type `vdpbf16ps` takes.
///
/// # Safety
/// `p` points to 16 readable `u32`s.
#[inline(always)]
unsafe fn load_pairs(p: *const u32) -> __m512bh {
    // SAFETY: 16 u32 are readable (the caller's contract); `__m512i` and `__m512bh` are both
    // 64 bytes of plain bits, so the transmute only renames the type.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p.cast())) }
}

/// One pair broadcast to all 16 lanes.
#[inline(always)]
fn splat_pair(v: u32) -> __m512bh {
    // SAFETY: as in `load_pairs`, a transmute between two 64-byte vector types.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(v as i32)) }
}

/// A mask of the first `min(rest, 16)` lanes.
#[inline(always)]
fn lanes_mask(rest: usize) -> __mmask16 {
    if rest >= 16 { 0xffff } else { ((1u32 << rest) - 1) as __mmask16 }
}

// ANCHOR: pack_input
/// `[n, h, w, c]` fp32 into `[n, h + 2, w + 2, ceil(c / 2)]` pairs of channels in bf16: the
/// image with a one-pixel zero border, and a zero partner for the last channel when `c` is odd.
///
/// On a little-endian machine a pair of channels in one `u32` is the two bf16 values one after the
/// other in memory, so the pixel's channels are converted straight into a `u16` view of the
/// buffer.
#[inline(always)]
fn pack_channel_pairs(x: &[f32], n: usize, h: usize, w: usize, c: usize, out: &mut Vec<u32>) {
    let pairs = c.div_ceil(2);
    let (hp, wp) = (h + 2, w + 2);
    zeroed(out, n * hp * wp * pairs);
    let out16: &mut [u16] = bytemuck::cast_slice_mut(out.as_mut_slice());
    for (src, dst) in x.chunks_exact(h * w * c).zip(out16.chunks_exact_mut(hp * wp * 2 * pairs)) {
        for y in 0..h {
            for xx in 0..w {
                let at = ((y + 1) * wp + xx + 1) * 2 * pairs;
                convert(&src[(y * w + xx) * c..][..c], &mut dst[at..at + c]);
            }
        }
    }
}
// ANCHOR_END: pack_input

// ANCHOR: pack_weights
/// HWIO weights `[3, 3, c_in, c_out]` into `[9, ceil(c_in / 2), c_out_p]` pairs of input
/// channels, with `c_out_p` the output channels rounded up to 16 (zeros after them): a vector
/// load gives one pair of input channels for 16 output channels.
fn pack_weight_pairs(weight: &[f32], c_in: usize, c_out: usize, c_out_p: usize, out: &mut Vec<u32>) {
    let pairs = c_in.div_ceil(2);
    zeroed(out, 9 * pairs * c_out_p);
    for tap in 0..9 {
        for ci in 0..c_in {
            for co in 0..c_out {
                let v = u32::from(to_bf16(weight[(tap * c_in + ci) * c_out + co]));
                out[(tap * pairs + ci / 2) * c_out_p + co] |= v << (16 * (ci % 2));
            }
        }
    }
}

/// The weights backward-input convolves with, `w'[ky, kx, co, ci] = w[2-ky, 2-kx, ci, co]`
/// (the kernel turned by 180 degrees, channel axes exchanged), packed in pairs of *output*
/// channels: `[9, ceil(c_out / 2), c_in_p]`.
fn pack_weight_pairs_transposed(weight: &[f32], c_in: usize, c_out: usize, c_in_p: usize, out: &mut Vec<u32>) {
    let pairs = c_out.div_ceil(2);
    zeroed(out, 9 * pairs * c_in_p);
    for tap in 0..9 {
        for ci in 0..c_in {
            for co in 0..c_out {
                let v = u32::from(to_bf16(weight[((8 - tap) * c_in + ci) * c_out + co]));
                out[(tap * pairs + co / 2) * c_in_p + ci] |= v << (16 * (co % 2));
            }
        }
    }
}
// ANCHOR_END: pack_weights

/// The sizes the convolution engine needs: `h x w` images whose packed input has `pairs` pairs
/// of channels per pixel, and `c_out` output channels (`c_out_p` rounded up to 16).
#[derive(Clone, Copy)]
struct Engine {
    h: usize,
    w: usize,
    pairs: usize,
    c_out: usize,
    c_out_p: usize,
    relu: bool,
}

impl Engine {
    // ANCHOR: conv_engine
    /// `out = conv(x, packed) + bias_p` over `n` images, `max(.., 0)` if `relu`. `x` is the
    /// bordered, paired input of [`pack_channel_pairs`], `packed` weights as
    /// [`pack_weight_pairs`] makes them. Tiles of `PIX` pixels of a row by `COV` vectors of 16
    /// output channels; the last tile of a row overlaps the one before it when `w` is not a
    /// multiple of `PIX`.
    #[inline(always)]
    fn run<const PIX: usize, const COV: usize>(
        self,
        n: usize,
        x: &[u32],
        packed: &[u32],
        bias_p: &[f32],
        out: &mut [f32],
    ) {
        let Engine { h, w, pairs, c_out, c_out_p, .. } = self;
        let vectors = c_out_p / 16;
        assert!(x.len() == n * (h + 2) * (w + 2) * pairs && packed.len() == 9 * pairs * c_out_p);
        assert!(bias_p.len() == c_out_p && out.len() == n * h * w * c_out && c_out <= c_out_p);
        for img in 0..n {
            for y in 0..h {
                let mut v0 = 0;
                while v0 < vectors {
                    let cov = if vectors - v0 >= COV { COV } else { 1 };
                    let mut x0 = 0;
                    while x0 < w {
                        let (p, at) = if w >= PIX { (PIX, x0.min(w - PIX)) } else { (1, x0) };
                        let t = (img, y, at, v0);
                        // SAFETY: img < n, y < h, pixels at..at+p inside 0..w, vectors
                        // v0..v0+cov inside 0..vectors, and the slice lengths asserted above.
                        unsafe {
                            match (p == PIX, cov == COV) {
                                (true, true) => self.tile::<PIX, COV>(x, packed, bias_p, out, t),
                                (true, false) => self.tile::<PIX, 1>(x, packed, bias_p, out, t),
                                (false, true) => self.tile::<1, COV>(x, packed, bias_p, out, t),
                                (false, false) => self.tile::<1, 1>(x, packed, bias_p, out, t),
                            }
                        }
                        x0 += p;
                    }
                    v0 += cov;
                }
            }
        }
    }

    /// One tile: pixels `x0..x0+P` of row `y` of image `img`, output vectors `v0..v0+C`.
    ///
    /// # Safety
    /// The tile is inside the image and the output channels (see `run`), the slices have the
    /// lengths `run` asserts, and the CPU has AVX-512F and AVX-512 BF16.
    #[inline(always)]
    unsafe fn tile<const P: usize, const C: usize>(
        self,
        x: &[u32],
        packed: &[u32],
        bias_p: &[f32],
        out: &mut [f32],
        (img, y, x0, v0): (usize, usize, usize, usize),
    ) {
        let Engine { h, w, pairs, c_out, c_out_p, relu } = self;
        // SAFETY: the caller's contract: every pointer below stays inside its slice. The
        // bordered input has rows y..y+3 and pixels x0..x0+P+2 for this tile.
        unsafe {
            let bp = bias_p.as_ptr().add(v0 * 16);
            let mut acc: [[__m512; C]; P] = [std::array::from_fn(|j| _mm512_loadu_ps(bp.add(j * 16))); P];
            for ky in 0..3 {
                for kx in 0..3 {
                    let px = x.as_ptr().add(((img * (h + 2) + y + ky) * (w + 2) + x0 + kx) * pairs);
                    let taps = packed.as_ptr().add((ky * 3 + kx) * pairs * c_out_p + v0 * 16);
                    for k in 0..pairs {
                        let wv: [__m512bh; C] = std::array::from_fn(|j| load_pairs(taps.add(k * c_out_p + j * 16)));
                        for (p, acc_p) in acc.iter_mut().enumerate() {
                            let xv = splat_pair(*px.add(p * pairs + k));
                            for (a, &wj) in acc_p.iter_mut().zip(&wv) {
                                *a = _mm512_dpbf16_ps(*a, xv, wj);
                            }
                        }
                    }
                }
            }
            let floor = if relu { _mm512_setzero_ps() } else { _mm512_set1_ps(f32::NEG_INFINITY) };
            for (p, acc_p) in acc.iter().enumerate() {
                let o = out.as_mut_ptr().add(((img * h + y) * w + x0 + p) * c_out);
                for (j, &a) in acc_p.iter().enumerate() {
                    let co = (v0 + j) * 16;
                    _mm512_mask_storeu_ps(o.add(co), lanes_mask(c_out - co), _mm512_max_ps(floor, a));
                }
            }
        }
    }
    // ANCHOR_END: conv_engine
}

// ANCHOR: conv2d_forward
/// `output = conv(input, weight) + bias` (then ReLU if `fuse_relu`), with input and weights
/// rounded to bf16 and fp32 sums: pairs of input channels.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) fn conv2d_forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    shape.check_forward(input, weight, bias, output);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let c_out_p = c_out.next_multiple_of(16);
    let (mut x, mut packed) = PACKED.take();
    pack_channel_pairs(input, n, h, w, c_in, &mut x);
    pack_weight_pairs(weight, c_in, c_out, c_out_p, &mut packed);
    let mut bias_p = AlignedVec::zeros(c_out_p);
    bias_p[..c_out].copy_from_slice(bias);
    let engine = Engine { h, w, pairs: c_in.div_ceil(2), c_out, c_out_p, relu: fuse_relu };
    // 24 of the 32 registers accumulate, as in chapter 6's fp32 kernel: 6 pixels x 4 vectors for
    // 64 or more output channels, else 12 x 2.
    if c_out_p / 16 >= 4 {
        engine.run::<6, 4>(n, &x, &packed, &bias_p, output)
    } else {
        engine.run::<12, 2>(n, &x, &packed, &bias_p, output)
    }
    PACKED.set((x, packed));
}
// ANCHOR_END: conv2d_forward

// ANCHOR: conv2d_backward_input
/// `grad_input = conv_transpose(grad_output, weight)` in bf16 with fp32 sums: the forward
/// engine on the output gradient, with pairs of output channels.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    shape.check_backward_input(grad_output, weight, grad_input);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let c_in_p = c_in.next_multiple_of(16);
    let (mut g, mut packed) = PACKED.take();
    pack_channel_pairs(grad_output, n, h, w, c_out, &mut g);
    pack_weight_pairs_transposed(weight, c_in, c_out, c_in_p, &mut packed);
    let zero_bias = AlignedVec::zeros(c_in_p);
    let engine = Engine { h, w, pairs: c_out.div_ceil(2), c_out: c_in, c_out_p: c_in_p, relu: false };
    if c_in_p / 16 >= 4 {
        engine.run::<6, 4>(n, &g, &packed, &zero_bias, grad_input)
    } else {
        engine.run::<12, 2>(n, &g, &packed, &zero_bias, grad_input)
    }
    PACKED.set((g, packed));
}
// ANCHOR_END: conv2d_backward_input

// ANCHOR: pack_pixel_pairs
/// The input of the weight gradient, `[n, h + 2, w + 2, c]`: at bordered pixel `x'` of each
/// bordered row, channel `ci` holds the pair (pixel `x'`, pixel `x' + 1`), so that the pair
/// read for output pixels `(2q, 2q + 1)` and kernel column `kx` starts at `x' = 2q + kx`.
/// Every value is stored twice (once as the low, once as the high half of a pair): the bf16
/// copy is as big as the fp32 input.
#[inline(always)]
fn pack_pixel_pairs(x: &[f32], n: usize, h: usize, w: usize, c: usize, out: &mut Vec<u32>) {
    let (hp, wp) = (h + 2, w + 2);
    zeroed(out, n * hp * wp * c);
    // One bordered row in bf16: pixel 0 and pixels w + 1, w + 2 are zeros.
    let mut row = vec![0u16; (wp + 1) * c];
    for (img, src) in x.chunks_exact(h * w * c).enumerate() {
        for y in 0..h {
            convert(&src[y * w * c..][..w * c], &mut row[c..(w + 1) * c]);
            let dst = &mut out[((img * hp + y + 1) * wp) * c..][..wp * c];
            // Pixel x' and pixel x' + 1 of the same channel are c values apart.
            for ((d, &lo), &hi) in dst.iter_mut().zip(&row).zip(&row[c..]) {
                *d = u32::from(lo) | (u32::from(hi) << 16);
            }
        }
    }
}

/// The output gradient `[n, h, w, c_out]` as `[n, h, ceil(w / 2), c_out_p]` pairs of
/// neighbouring pixels (a zero partner after an odd last pixel, zeros after `c_out`).
#[inline(always)]
fn pack_gradient_pairs(g: &[f32], n: usize, h: usize, w: usize, c_out: usize, c_out_p: usize, out: &mut Vec<u32>) {
    let wq = w.div_ceil(2);
    zeroed(out, n * h * wq * c_out_p);
    // One row in bf16, with a zero pixel after it for an odd width.
    let mut row = vec![0u16; 2 * wq * c_out];
    for (r, src) in g.chunks_exact(w * c_out).enumerate() {
        convert(src, &mut row[..w * c_out]);
        for q in 0..wq {
            let d = &mut out[(r * wq + q) * c_out_p..][..c_out];
            let (lo, hi) = row[2 * q * c_out..][..2 * c_out].split_at(c_out);
            for ((v, &l), &h) in d.iter_mut().zip(lo).zip(hi) {
                *v = u32::from(l) | (u32::from(h) << 16);
            }
        }
    }
}
// ANCHOR_END: pack_pixel_pairs

/// Sizes of the weight-gradient reduction.
#[derive(Clone, Copy)]
struct Reduce {
    h: usize,
    w: usize,
    c_in: usize,
    c_out_p: usize,
}

impl Reduce {
    // ANCHOR: weight_tile
    /// Adds the pixels of output row `y` of image `img` to the taps `(ky, 0..3, ci0..ci0+CI,
    /// vectors v0..v0+C)` of `gw` (`[9, c_in, c_out_p]` fp32): `3 * CI * C` accumulators, one
    /// `vdpbf16ps` per accumulator and pair of pixels.
    ///
    /// # Safety
    /// `img`, `y` inside the batch, `ky < 3`, `ci0 + CI <= c_in`, `(v0 + C) * 16 <= c_out_p`,
    /// `x` and `g` packed by [`pack_pixel_pairs`] and [`pack_gradient_pairs`] for these sizes,
    /// `gw` as above; AVX-512F and AVX-512 BF16.
    #[inline(always)]
    unsafe fn tile<const CI: usize, const C: usize>(
        self,
        x: &[u32],
        g: &[u32],
        gw: &mut [f32],
        (img, y, ky, ci0, v0): (usize, usize, usize, usize, usize),
    ) {
        let Reduce { h, w, c_in, c_out_p } = self;
        let wq = w.div_ceil(2);
        let at = |kx: usize, c: usize, j: usize| ((ky * 3 + kx) * c_in + ci0 + c) * c_out_p + (v0 + j) * 16;
        // SAFETY: the caller's contract; every offset below stays inside its slice.
        unsafe {
            let gwp = gw.as_mut_ptr();
            // Plain loops, not `std::array::from_fn`: this function gets AVX-512 only by being
            // inlined into a `#[target_feature]` one, its closures get none, and the compiler
            // left these loads as calls to `_mm512_loadu_ps`.
            let mut acc = [[[_mm512_setzero_ps(); C]; CI]; 3];
            for (kx, acc_kx) in acc.iter_mut().enumerate() {
                for (c, acc_c) in acc_kx.iter_mut().enumerate() {
                    for (j, a) in acc_c.iter_mut().enumerate() {
                        *a = _mm512_loadu_ps(gwp.add(at(kx, c, j)));
                    }
                }
            }
            let g_row = g.as_ptr().add((img * h + y) * wq * c_out_p + v0 * 16);
            let x_row = x.as_ptr().add((img * (h + 2) + y + ky) * (w + 2) * c_in + ci0);
            for q in 0..wq {
                let gv: [__m512bh; C] = std::array::from_fn(|j| load_pairs(g_row.add(q * c_out_p + j * 16)));
                for (kx, acc_kx) in acc.iter_mut().enumerate() {
                    let xp = x_row.add((2 * q + kx) * c_in);
                    for (c, acc_c) in acc_kx.iter_mut().enumerate() {
                        let xv = splat_pair(*xp.add(c));
                        for (a, &gj) in acc_c.iter_mut().zip(&gv) {
                            *a = _mm512_dpbf16_ps(*a, xv, gj);
                        }
                    }
                }
            }
            for (kx, acc_kx) in acc.iter().enumerate() {
                for (c, acc_c) in acc_kx.iter().enumerate() {
                    for (j, &a) in acc_c.iter().enumerate() {
                        _mm512_storeu_ps(gwp.add(at(kx, c, j)), a);
                    }
                }
            }
        }
    }
    // ANCHOR_END: weight_tile

    #[inline(always)]
    fn run<const CIB: usize, const COV: usize>(self, n: usize, x: &[u32], g: &[u32], gw: &mut [f32]) {
        let Reduce { h, w, c_in, c_out_p } = self;
        let vectors = c_out_p / 16;
        assert!(x.len() == n * (h + 2) * (w + 2) * c_in && g.len() == n * h * w.div_ceil(2) * c_out_p);
        assert!(gw.len() == 9 * c_in * c_out_p);
        for img in 0..n {
            for y in 0..h {
                for ky in 0..3 {
                    // Bordered input row y + ky is the zero border when it is 0 or h + 1.
                    if y + ky == 0 || y + ky > h {
                        continue;
                    }
                    let mut ci0 = 0;
                    while ci0 < c_in {
                        let cib = if c_in - ci0 >= CIB { CIB } else { 1 };
                        let mut v0 = 0;
                        while v0 < vectors {
                            let cov = if vectors - v0 >= COV { COV } else { 1 };
                            let t = (img, y, ky, ci0, v0);
                            // SAFETY: img < n, y < h, ky < 3, ci0 + cib <= c_in, v0 + cov <=
                            // vectors, and the lengths asserted above.
                            unsafe {
                                match (cib == CIB, cov == COV) {
                                    (true, true) => self.tile::<CIB, COV>(x, g, gw, t),
                                    (true, false) => self.tile::<CIB, 1>(x, g, gw, t),
                                    (false, true) => self.tile::<1, COV>(x, g, gw, t),
                                    (false, false) => self.tile::<1, 1>(x, g, gw, t),
                                }
                            }
                            v0 += cov;
                        }
                        ci0 += cib;
                    }
                }
            }
        }
    }
}

// ANCHOR: conv2d_backward_weight
/// `grad_weight` in bf16 with fp32 sums, pairs of neighbouring pixels; `grad_bias` in fp32
/// from the fp32 output gradient (it needs no product).
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) fn conv2d_backward_weight(
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    shape.check_backward_weight(input, grad_output, grad_weight, grad_bias);
    let Conv2dShape { n, h, w, c_in, c_out } = *shape;
    let c_out_p = c_out.next_multiple_of(16);
    let (mut x, mut g) = PACKED.take();
    pack_pixel_pairs(input, n, h, w, c_in, &mut x);
    pack_gradient_pairs(grad_output, n, h, w, c_out, c_out_p, &mut g);
    let mut gw = AlignedVec::zeros(9 * c_in * c_out_p);
    let reduce = Reduce { h, w, c_in, c_out_p };
    // 3 kernel columns x input channels x output vectors = 24 accumulators, as in fp32.
    if c_out_p / 16 >= 4 {
        reduce.run::<2, 4>(n, &x, &g, &mut gw)
    } else if c_in.is_multiple_of(4) {
        reduce.run::<4, 2>(n, &x, &g, &mut gw)
    } else {
        reduce.run::<3, 2>(n, &x, &g, &mut gw)
    }
    PACKED.set((x, g));
    for (dst, src) in grad_weight.chunks_exact_mut(c_out).zip(gw.chunks_exact(c_out_p)) {
        dst.copy_from_slice(&src[..c_out]);
    }
    grad_bias.fill(0.0);
    for px in grad_output.chunks_exact(c_out) {
        for (b, &v) in grad_bias.iter_mut().zip(px) {
            *b += v;
        }
    }
}
// ANCHOR_END: conv2d_backward_weight

// ANCHOR: peak_bf16
/// Independent `vdpbf16ps` chains, as many as the fp32 peak loop's FMA chains.
pub(crate) const CHAINS: usize = 12;

/// FLOPs of one iteration: 12 instructions x 16 lanes x 2 products, a multiply and an add each.
pub(crate) const FLOPS_PER_ITERATION: u64 = (CHAINS * 16 * 2 * 2) as u64;

/// `iterations` rounds of `acc[c] += a * b` by pairs (one `vdpbf16ps` each) on 12 registers,
/// every lane of chain `c` starting at `c`, with `a` and `b` in all 32 bf16 elements. Returns
/// the sum of all lanes, so that the compiler must do the work.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) fn peak(iterations: u64, a: f32, b: f32) -> f32 {
    let (va, vb) = (splat_pair(pair(a, a)), splat_pair(pair(b, b)));
    let mut acc: [__m512; CHAINS] = std::array::from_fn(|c| _mm512_set1_ps(c as f32));
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm512_dpbf16_ps(*v, va, vb);
        }
    }
    let mut total = _mm512_setzero_ps();
    for v in acc {
        total = _mm512_add_ps(total, v);
    }
    _mm512_reduce_add_ps(total)
}
// ANCHOR_END: peak_bf16

// ANCHOR: table
/// The AVX-512 table with the bf16 convolutions; everything else (pooling, the dense layers,
/// the optimiser on the fp32 master weights) is the fp32 AVX-512 table's.
pub(crate) static KERNELS: Kernels = Kernels {
    conv2d_forward,
    conv2d_backward_input,
    conv2d_backward_weight,
    peak,
    peak_flops_per_iteration: FLOPS_PER_ITERATION,
    ..super::KERNELS
};
// ANCHOR_END: table
