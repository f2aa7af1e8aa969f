//! Chapter 4's staircase: the SSE forward convolution (3x3, padding 1, stride 1, NHWC, HWIO
//! weights) built up one idea at a time, each step a complete kernel that the tests hold to the
//! scalar one and `bench_report --staircase` times.
//!
//! 1. [`step1`]: the scalar loop with its innermost loop written in `_mm_*` intrinsics. The
//!    output row of a pixel is loaded and stored again for every input value.
//! 2. [`step2`]: the outputs of one pixel, two vectors at a time, stay in registers for the
//!    whole sum of `9 * c_in` terms and are stored once.
//! 3. [`step3`]: the same code with a tile of `P = 5` pixels: each weight vector loaded is used
//!    five times.
//! 4. [`step4`]: the crate's SSE kernel, whose tiles need no border test (the first and the last
//!    pixel of a row have tiles of their own).
//!
//! Steps 1 to 3 take `c_out` a positive multiple of 4 (the layers have 32, 64 and 128 output
//! channels); step 4 takes any shape. The caller checks that (`crate::bench::staircase`).

// A tile indexes its accumulators by (pixel, vector); index loops show the tile.
#![allow(clippy::needless_range_loop)]

use crate::kernels::{Conv2dShape, Isa, IsaError};
use std::arch::x86_64::*;

/// Output pixels of a row computed together by step 3's tiles.
pub(crate) const PIX: usize = 5;
/// Vectors of 4 output channels computed together by the tiles of steps 2 and 3.
pub(crate) const COV: usize = 2;

/// A forward convolution as the kernel table stores it: `#[target_feature]` functions coerce
/// only to `unsafe fn` pointers.
type Conv2dForward = unsafe fn(&Conv2dShape, &[f32], &[f32], &[f32], &mut [f32], bool);

/// The four steps, in order.
const STEPS: [Conv2dForward; 4] = [step1, step2, step3, step4];

/// Runs step `number` (1 to 4) if SSE may run here (the CPU has it and `SIMD_CNN_MAX_ISA` does
/// not rule it out).
pub(crate) fn conv2d_forward(
    number: usize,
    s: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    relu: bool,
) -> Result<(), IsaError> {
    Isa::Sse.check()?;
    let kernel = STEPS[number - 1];
    // SAFETY: every step needs SSE2 and nothing else, and `Isa::Sse.check()` found it.
    unsafe { kernel(s, input, weight, bias, output, relu) };
    Ok(())
}

// ANCHOR: step1
/// Step 1: chapter 2's loop, with the update of the output row written in intrinsics.
#[target_feature(enable = "sse2")]
pub(crate) fn step1(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], relu: bool) {
    s.check_forward(input, weight, bias, output);
    let Conv2dShape { h, w, c_in, c_out, .. } = *s;
    assert!(c_out.is_multiple_of(4), "step 1 needs whole vectors of output channels");
    for (pixel, out) in output.chunks_exact_mut(c_out).enumerate() {
        let (b, y, x) = (pixel / (h * w), pixel / w % h, pixel % w);
        out.copy_from_slice(bias);
        for ky in 0..3 {
            let Some(iy) = (y + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
            for kx in 0..3 {
                let Some(ix) = (x + kx).checked_sub(1).filter(|&ix| ix < w) else { continue };
                let values = &input[((b * h + iy) * w + ix) * c_in..][..c_in];
                let taps = &weight[(ky * 3 + kx) * c_in * c_out..][..c_in * c_out];
                for (&v, w_row) in values.iter().zip(taps.chunks_exact(c_out)) {
                    let v = _mm_set1_ps(v);
                    for (o, wt) in out.chunks_exact_mut(4).zip(w_row.chunks_exact(4)) {
                        // SAFETY: `o` and `wt` are 4 floats each.
                        unsafe {
                            let sum = _mm_add_ps(_mm_loadu_ps(o.as_ptr()), _mm_mul_ps(v, _mm_loadu_ps(wt.as_ptr())));
                            _mm_storeu_ps(o.as_mut_ptr(), sum);
                        }
                    }
                }
            }
        }
        if relu {
            out.iter_mut().for_each(|o| *o = o.max(0.0));
        }
    }
}
// ANCHOR_END: step1

// ANCHOR: step2
/// Step 2: one pixel at a time, its outputs in registers, `COV` vectors of 4 channels at a time.
#[target_feature(enable = "sse2")]
pub(crate) fn step2(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], relu: bool) {
    tiles::<1>(s, input, weight, bias, output, relu)
}

/// Every row of every image in tiles of `P` pixels (then single pixels for the rest of the
/// row), each tile for every group of `COV` vectors of output channels (then single vectors).
#[target_feature(enable = "sse2")]
#[inline]
fn tiles<const P: usize>(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32], relu: bool) {
    s.check_forward(input, weight, bias, out);
    assert!(s.c_out.is_multiple_of(4), "steps 2 and 3 need whole vectors of output channels");
    for (b, y) in (0..s.n).flat_map(|b| (0..s.h).map(move |y| (b, y))) {
        let mut x0 = 0;
        while x0 < s.w {
            let p = if s.w - x0 >= P { P } else { 1 };
            let mut o0 = 0;
            while o0 < s.c_out {
                let c = if s.c_out - o0 >= 4 * COV { COV } else { 1 };
                let at = At { b, y, x0, o0 };
                match (p == P, c == COV) {
                    (true, true) => tile::<P, COV>(s, input, weight, bias, out, relu, at),
                    (true, false) => tile::<P, 1>(s, input, weight, bias, out, relu, at),
                    (false, true) => tile::<1, COV>(s, input, weight, bias, out, relu, at),
                    (false, false) => tile::<1, 1>(s, input, weight, bias, out, relu, at),
                }
                o0 += 4 * c;
            }
            x0 += p;
        }
    }
}

/// Where a tile is: image `b`, row `y`, pixels from `x0`, output channels from `o0`.
#[derive(Clone, Copy)]
struct At {
    b: usize,
    y: usize,
    x0: usize,
    o0: usize,
}

/// `P` pixels by `C` vectors of output channels: `P * C` accumulators that live in registers
/// from the bias to the store. Each input value is broadcast once and used `C` times, each
/// weight vector loaded once and used `P` times. A pixel whose kernel column falls outside the
/// image is skipped by the test `inside[p]`, in the innermost loop.
#[target_feature(enable = "sse2")]
#[inline]
fn tile<const P: usize, const C: usize>(
    s: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    relu: bool,
    at: At,
) {
    let Conv2dShape { h, w, c_in, c_out, .. } = *s;
    let At { b, y, x0, o0 } = at;
    let bias = &bias[o0..][..4 * C];
    // SAFETY: `bias` has 4 * C floats.
    let mut acc: [[__m128; C]; P] = [std::array::from_fn(|j| unsafe { _mm_loadu_ps(bias.as_ptr().add(4 * j)) }); P];
    for ky in 0..3 {
        let Some(iy) = (y + ky).checked_sub(1).filter(|&iy| iy < h) else { continue };
        let row = input[(b * h + iy) * w * c_in..][..w * c_in].as_ptr();
        for kx in 0..3 {
            let inside: [bool; P] = std::array::from_fn(|p| (1..=w).contains(&(x0 + p + kx)));
            let taps = weight[(ky * 3 + kx) * c_in * c_out..][..c_in * c_out].as_ptr();
            for ci in 0..c_in {
                // SAFETY: ci < c_in and o0 + 4 * C <= c_out: inside this tap's weights.
                let wv: [__m128; C] =
                    std::array::from_fn(|j| unsafe { _mm_loadu_ps(taps.add(ci * c_out + o0 + 4 * j)) });
                for p in 0..P {
                    if inside[p] {
                        // SAFETY: pixel x0 + p + kx - 1 is in the row (`inside[p]`) and ci < c_in.
                        let xv = _mm_set1_ps(unsafe { *row.add((x0 + p + kx - 1) * c_in + ci) });
                        for j in 0..C {
                            acc[p][j] = _mm_add_ps(acc[p][j], _mm_mul_ps(xv, wv[j]));
                        }
                    }
                }
            }
        }
    }
    let floor = if relu { _mm_setzero_ps() } else { _mm_set1_ps(f32::NEG_INFINITY) };
    let out = output[((b * h + y) * w + x0) * c_out..][..(P - 1) * c_out + o0 + 4 * C].as_mut_ptr();
    for p in 0..P {
        for j in 0..C {
            // SAFETY: the slice above ends with vector j = C - 1 of pixel p = P - 1.
            unsafe { _mm_storeu_ps(out.add(p * c_out + o0 + 4 * j), _mm_max_ps(floor, acc[p][j])) }
        }
    }
}
// ANCHOR_END: step2

// ANCHOR: step3
/// Step 3: tiles of `PIX` pixels of a row, with the code of step 2.
#[target_feature(enable = "sse2")]
pub(crate) fn step3(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], relu: bool) {
    tiles::<PIX>(s, input, weight, bias, output, relu)
}
// ANCHOR_END: step3

// ANCHOR: step4
/// Step 4: the crate's SSE kernel, whose interior tiles have no border test.
#[target_feature(enable = "sse2")]
pub(crate) fn step4(s: &Conv2dShape, input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32], relu: bool) {
    super::conv2d_forward(s, input, weight, bias, output, relu)
}
// ANCHOR_END: step4
