//! Chapter 7: the 2x2 max-pool that keeps its winners, one byte per output, so that its backward
//! pass needs neither its input nor its output (see `kernels::scalar::max_pool2d_forward_winners`
//! for what the bytes mean).
//!
//! The vector code finds the winner as chapter 4's backward pass does, with a mask of the lanes
//! already served, and turns the masks into a vector of codes `1.0..=4.0` (zero where no input
//! gets the gradient). A vector of floats has no instruction to become bytes in every
//! instruction set, so the codes go through a small array on the stack, converted there over a
//! fixed length that the compiler vectorises (`put_bytes`, `get_bytes`).

use crate::kernels::Pool2dShape;
use crate::kernels::simd::SimdF32;

/// Lanes of the widest vector (AVX-512's 16 floats): the size of the stack array the codes
/// pass through.
const MAX_LANES: usize = 16;

/// Offsets, in floats, of the four inputs of the window whose top-left float is at 0.
fn window(w: usize, c: usize) -> [usize; 4] {
    [0, c, w * c, (w + 1) * c]
}

/// `bytes[i] = codes[i]` for the `bytes.len() <= S::LANES` codes `0.0..=4.0` a vector left in
/// `codes`. The conversion runs over all `S::LANES` codes, a fixed length the compiler turns into
/// vector instructions (`vcvttps2dq` and `vpmovdb` with AVX-512), and only the copy has the tail's
/// length; converting lane by lane took a scalar conversion, a clamp and a byte insert per lane.
#[inline(always)]
fn put_bytes<S: SimdF32>(bytes: &mut [u8], codes: &[f32; MAX_LANES]) {
    let mut all = [0u8; MAX_LANES];
    for (byte, &code) in all[..S::LANES].iter_mut().zip(&codes[..S::LANES]) {
        // SAFETY: every code is one of 0.0, 1.0, 2.0, 3.0, 4.0 (the array starts as zeros and
        // only ever holds vectors of codes): finite, and in u8's range once truncated.
        *byte = unsafe { code.to_int_unchecked::<u8>() };
    }
    if bytes.len() == S::LANES {
        bytes.copy_from_slice(&all[..S::LANES]); // a constant length
    } else {
        bytes.copy_from_slice(&all[..bytes.len()]);
    }
}

/// `codes[i] = bytes[i]` for the first `bytes.len() <= S::LANES` codes; the rest of the vector's
/// lanes become zeros, which match no window's input. The inverse of `put_bytes`: the conversion
/// runs over all `S::LANES` bytes, read where they are for a whole vector and from a copy only
/// for a tail. (Copying a whole vector's bytes too, as `put_bytes` still does, let the compiler
/// merge the two copies into one call of `memcpy` of variable length, 0.7 % of the fused step;
/// no such call shows in the profile of `put_bytes`, whose copies are stores.)
#[inline(always)]
fn get_bytes<S: SimdF32>(codes: &mut [f32; MAX_LANES], bytes: &[u8]) {
    let mut tail = [0u8; MAX_LANES];
    let bytes = match bytes.len() == S::LANES {
        true => bytes,
        false => {
            tail[..bytes.len()].copy_from_slice(bytes);
            &tail[..]
        }
    };
    for (code, &byte) in codes[..S::LANES].iter_mut().zip(&bytes[..S::LANES]) {
        *code = f32::from(byte);
    }
}

// ANCHOR: forward
#[inline(always)]
pub(crate) fn max_pool2d_forward_winners<S: SimdF32>(
    s: S,
    shape: &Pool2dShape,
    input: &[f32],
    output: &mut [f32],
    winners: &mut [u8],
    fuse_relu: bool,
) {
    shape.check_forward_winners(input, output, winners);
    assert!(S::LANES <= MAX_LANES);
    let Pool2dShape { n, h, w, c } = *shape;
    let (h_out, w_out) = (shape.h_out(), shape.w_out());
    let offsets = window(w, c);
    let codes = [1.0, 2.0, 3.0, 4.0].map(|k| s.splat(k));
    let zero = s.zero();
    let (src, dst) = (input.as_ptr(), output.as_mut_ptr());
    let mut lane_codes = [0.0f32; MAX_LANES];
    for img in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = ((img * h + 2 * y) * w + 2 * x) * c;
                let out = ((img * h_out + y) * w_out + x) * c;
                for ch in (0..c).step_by(S::LANES) {
                    let lanes = (c - ch).min(S::LANES);
                    // SAFETY: 2y+1 < h and 2x+1 < w, so the four pixels of the window are in
                    // the image and each `top_left + offset + ch + lanes <= input.len()`;
                    // `out + ch + lanes <= output.len()`; lengths checked above. `lane_codes`
                    // holds MAX_LANES >= LANES floats.
                    unsafe {
                        let p = src.add(top_left + ch);
                        let v = offsets.map(|off| s.load_n(p.add(off), lanes));
                        let m = s.max(s.max(v[0], v[1]), s.max(v[2], v[3]));
                        s.store_n(dst.add(out + ch), m, lanes);
                        let mut served = s.none();
                        let mut code = zero;
                        for (v, k) in v.into_iter().zip(codes) {
                            let hit = s.and_not(s.eq(v, m), served);
                            code = s.add(code, s.select(hit, k));
                            served = s.or(served, hit);
                        }
                        if fuse_relu {
                            code = s.select(s.gt(m, zero), code);
                        }
                        s.store(lane_codes.as_mut_ptr(), code);
                    }
                    put_bytes::<S>(&mut winners[out + ch..][..lanes], &lane_codes);
                }
            }
        }
    }
}
// ANCHOR_END: forward

// ANCHOR: backward
/// Every input of every window is written (the gradient where its code matches, zero
/// elsewhere); only an odd last row or column, which no window covers, needs zeroing.
#[inline(always)]
pub(crate) fn max_pool2d_backward_winners<S: SimdF32>(
    s: S,
    shape: &Pool2dShape,
    winners: &[u8],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    shape.check_backward_winners(winners, grad_output, grad_input);
    assert!(S::LANES <= MAX_LANES);
    let Pool2dShape { n, h, w, c } = *shape;
    let (h_out, w_out) = (shape.h_out(), shape.w_out());
    let offsets = window(w, c);
    let codes = [1.0, 2.0, 3.0, 4.0].map(|k| s.splat(k));
    let (g_out, g_in) = (grad_output.as_ptr(), grad_input.as_mut_ptr());
    let mut lane_codes = [0.0f32; MAX_LANES];
    for img in 0..n {
        for y in 0..h_out {
            for x in 0..w_out {
                let top_left = ((img * h + 2 * y) * w + 2 * x) * c;
                let out = ((img * h_out + y) * w_out + x) * c;
                for ch in (0..c).step_by(S::LANES) {
                    let lanes = (c - ch).min(S::LANES);
                    get_bytes::<S>(&mut lane_codes, &winners[out + ch..][..lanes]);
                    // SAFETY: as in the forward pass; `grad_input` has the input's length and
                    // `grad_output` the output's (checked above).
                    unsafe {
                        let code = s.load(lane_codes.as_ptr());
                        let g = s.load_n(g_out.add(out + ch), lanes);
                        for (off, k) in offsets.into_iter().zip(codes) {
                            s.store_n(g_in.add(top_left + off + ch), s.select(s.eq(code, k), g), lanes);
                        }
                    }
                }
            }
        }
    }
    super::pool::zero_outside_windows(shape, grad_input);
}
// ANCHOR_END: backward
