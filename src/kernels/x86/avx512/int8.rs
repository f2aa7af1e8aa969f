//! Chapter 11: the int8 product on AVX-512 VNNI.
//!
//! `vpdpbusd` (`_mm512_dpbusd_epi32`) multiplies 64 unsigned bytes by 64 signed bytes and adds
//! each group of four products to one of its 16 32-bit lanes: `acc[i] += a[4i] * b[4i] + ... +
//! a[4i+3] * b[4i+3]`. The tile below holds `R` output pixels x `C` vectors of 16 output
//! channels in `R * C` registers of sums; for each tap of the window and each group of four input
//! channels it loads `C` vectors of packed weights (16 channels x 4 input channels each), and for
//! each pixel broadcasts that pixel's four input bytes to all 16 lanes: `R * C` instructions for
//! `R + C` loads, chapter 4's register tile with four products per lane instead of one.
//!
//! A fully connected layer is the same loop: its "pixels" are the rows of the batch, one window
//! tap, and the groups run over all its inputs.

use crate::kernels::int8::{GROUP, Int8Layer, Int8Out, Int8Shape, LANES};
use std::arch::x86_64::*;

/// Bytes of one packed weight vector: 16 output channels x 4 input channels.
const VECTOR: usize = LANES * GROUP;

// ANCHOR: tile
/// The sums of `R` pixels x `C` vectors of output channels. Pixel `r` of the tile reads its
/// window at `a + r * stride + tap` for each tap in `taps`; `w` is the block's packed weights.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI (the only caller is `product`). Every byte read,
/// up to one before `a + r * stride + tap + groups * 4`, must be inside the input, and `w` must
/// hold `taps.len() * groups * C` vectors.
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize>(
    a: *const u8,
    stride: usize,
    taps: &[usize],
    groups: usize,
    w: *const i8,
) -> [[__m512i; C]; R] {
    // SAFETY: called only from `product`, whose `#[target_feature]` the table's existence
    // proves; every pointer below stays inside the input and the block (the caller's promise).
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        let mut wp = w;
        for &tap in taps {
            let at = a.add(tap);
            for g in 0..groups {
                let mut wv = [_mm512_setzero_si512(); C];
                for (c, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(wp.add(c * VECTOR).cast());
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    // Pixel r's four bytes of group g, in all 16 lanes.
                    let x = _mm512_set1_epi32(at.add(r * stride + g * GROUP).cast::<i32>().read_unaligned());
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_dpbusd_epi32(*acc, x, wv);
                    }
                }
                wp = wp.add(C * VECTOR);
            }
        }
        acc
    }
}
// ANCHOR_END: tile

/// Where a tile's outputs go and how its sums become them.
struct Store<'a> {
    scale: &'a [f32],
    bias: &'a [f32],
    out_stride: usize,
}

// ANCHOR: store
impl Store<'_> {
    /// Writes the tile's `R` pixels (from output pixel `pixel`) x `C` vectors (from channel
    /// `ch`): `y = acc * scale + bias` in f32, then bytes (ReLU, round to nearest even, saturate
    /// at 255) or floats.
    #[inline(always)]
    fn write<const R: usize, const C: usize>(
        &self,
        acc: &[[__m512i; C]; R],
        out: &mut Int8Out<'_>,
        pixel: usize,
        ch: usize,
    ) {
        for c in 0..C {
            let at = ch + c * LANES;
            let (scale, bias) = (&self.scale[at..at + LANES], &self.bias[at..at + LANES]);
            for (r, acc) in acc.iter().enumerate() {
                let o = (pixel + r) * self.out_stride + at;
                // SAFETY: called only from `product` (AVX-512 proven by the table); the loads
                // read 16 floats of `scale` and `bias`, and each store below 16 values of `dst`.
                unsafe {
                    let y = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(acc[c]),
                        _mm512_loadu_ps(scale.as_ptr()),
                        _mm512_loadu_ps(bias.as_ptr()),
                    );
                    match out {
                        Int8Out::U8(out) => {
                            let dst: &mut [u8; LANES] = (&mut out[o..o + LANES]).try_into().expect("16 bytes");
                            let q = _mm512_cvtps_epi32(_mm512_max_ps(y, _mm512_setzero_ps()));
                            _mm_storeu_si128(dst.as_mut_ptr().cast(), _mm512_cvtusepi32_epi8(q));
                        }
                        Int8Out::F32(out) => {
                            let dst: &mut [f32; LANES] = (&mut out[o..o + LANES]).try_into().expect("16 floats");
                            _mm512_storeu_ps(dst.as_mut_ptr(), y);
                        }
                    }
                }
            }
        }
    }
}
// ANCHOR_END: store

/// One run of `len` output pixels from `pixel`, whose windows start `stride` bytes apart from
/// `base` in the input, for one block of `C` vectors: tiles of `R`, then single pixels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<const R: usize, const C: usize>(
    input: &[u8],
    base: usize,
    stride: usize,
    len: usize,
    taps: &[usize],
    groups: usize,
    w: &[i8],
    store: &Store<'_>,
    out: &mut Int8Out<'_>,
    pixel: usize,
    ch: usize,
) {
    // The last byte any pixel of this run reads, checked once for the whole run.
    let reach = base + (len - 1) * stride + taps.iter().max().expect("a tap") + groups * GROUP;
    assert!(reach <= input.len(), "a window beyond the input");
    assert!(w.len() >= taps.len() * groups * C * VECTOR, "packed weights too short");
    let mut x = 0;
    while x + R <= len {
        // SAFETY: the windows of pixels x..x + R are inside the input (reach, above), and `w`
        // holds the block.
        let acc = unsafe { tile::<R, C>(input.as_ptr().add(base + x * stride), stride, taps, groups, w.as_ptr()) };
        store.write::<R, C>(&acc, out, pixel + x, ch);
        x += R;
    }
    while x < len {
        // SAFETY: as above, for one pixel.
        let acc = unsafe { tile::<1, C>(input.as_ptr().add(base + x * stride), stride, taps, groups, w.as_ptr()) };
        store.write::<1, C>(&acc, out, pixel + x, ch);
        x += 1;
    }
}

// ANCHOR: product
/// The int8 product of `layer` on `input` (see `kernels::int8`): for each block of output
/// channels, each row of output pixels in tiles. A k x k convolution runs along each row of each
/// map; with `k = 1` every pixel's window is its own bytes, so the whole batch is one run.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) fn product(layer: &Int8Layer, s: &Int8Shape, input: &[u8], mut out: Int8Out<'_>) {
    let (p, groups) = (s.pad(), s.in_stride / GROUP);
    let (hp, wp) = (s.h + 2 * p, s.w + 2 * p);
    let taps: Vec<usize> = (0..s.k * s.k).map(|t| ((t / s.k) * wp + t % s.k) * s.in_stride).collect();
    let store = Store { scale: layer.scale(), bias: layer.bias(), out_stride: s.out_stride() };
    // (first input byte, first output pixel, pixels) of each run.
    let runs: Vec<(usize, usize, usize)> = if s.k == 1 {
        vec![(0, 0, s.n * s.h * s.w)]
    } else {
        (0..s.n * s.h).map(|row| (((row / s.h) * hp + row % s.h) * wp * s.in_stride, row * s.w, s.w)).collect()
    };
    for &(v0, vectors, offset) in layer.blocks() {
        let w = &layer.packed()[offset..];
        let ch = v0 * LANES;
        for &(base, pixel, len) in &runs {
            // 16 (or 12) of the 32 registers hold sums; the rest take the weights and a broadcast.
            match vectors {
                4 => run::<4, 4>(input, base, s.in_stride, len, &taps, groups, w, &store, &mut out, pixel, ch),
                2 => run::<8, 2>(input, base, s.in_stride, len, &taps, groups, w, &store, &mut out, pixel, ch),
                _ => run::<12, 1>(input, base, s.in_stride, len, &taps, groups, w, &store, &mut out, pixel, ch),
            }
        }
    }
}
// ANCHOR_END: product

/// Independent chains of the peak loop: `vpdpbusd` takes about 5 cycles and two can start per
/// cycle on the cores this book meets, so at least 10 must be in flight.
const CHAINS: usize = 12;

/// Integer operations of one iteration of [`peak`]: 12 instructions x 64 products, a multiply
/// and an add each.
pub(crate) const OPS_PER_ITERATION: u64 = (CHAINS * 64 * 2) as u64;

// ANCHOR: peak
/// `iterations` rounds of `acc[c] += a . b` (one `vpdpbusd` each) on 12 registers; returns the
/// sum of all lanes, so that the compiler must do the work.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) fn peak(iterations: u64, a: i32, b: i32) -> i32 {
    let (va, vb) = (_mm512_set1_epi32(a), _mm512_set1_epi32(b));
    let mut acc = [_mm512_setzero_si512(); CHAINS];
    for (c, v) in acc.iter_mut().enumerate() {
        *v = _mm512_set1_epi32(c as i32);
    }
    for _ in 0..iterations {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, va, vb);
        }
    }
    let mut total = _mm512_setzero_si512();
    for v in acc {
        total = _mm512_add_epi32(total, v);
    }
    _mm512_reduce_add_epi32(total)
}
// ANCHOR_END: peak
