//! Chapter 11: chapter 6's AVX-512 convolution tile, 6 pixels by 4 vectors of output channels,
//! written by hand with `asm!`, and the kernel table that uses it.
//!
//! Only the channel loop of the 6 x 4 tile is assembly; the tiles at the borders and those of
//! fewer vectors keep the compiler's loop, and everything around the loop (the bias, the taps,
//! the ReLU and the stores) is the generic kernel's. So the race against the compiler is on
//! exactly the loop `scripts/asm-listings.sh` extracts as `avx512-conv2d-forward`.

use super::Avx512;
use crate::kernels::generic::{self, ChannelLoop, Intrinsics};
use crate::kernels::{Conv2dShape, Kernels};
use std::arch::asm;
use std::arch::x86_64::__m512;

/// The channel loop of [`generic::conv2d_forward_with`]: [`tile_6x4`] for the 6 x 4 tile, the
/// compiler's loop for the others.
pub(crate) struct Asm;

impl ChannelLoop<Avx512> for Asm {
    #[inline(always)]
    unsafe fn channels<const P: usize, const C: usize>(
        s: Avx512,
        acc: &mut [[__m512; C]; P],
        px: *const f32,
        c_in: usize,
        taps: *const f32,
        c_out_p: usize,
    ) {
        if P == 6 && C == 4 && c_in > 0 {
            // SAFETY: with P = 6 and C = 4 both types are `[[__m512; 4]; 6]`; the pointers'
            // contract is the one `tile_6x4` asks for, and `s` proves AVX-512F.
            unsafe {
                tile_6x4(&mut *(acc as *mut [[__m512; C]; P]).cast::<[[__m512; 4]; 6]>(), px, c_in, taps, c_out_p)
            }
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { Intrinsics::channels(s, acc, px, c_in, taps, c_out_p) }
        }
    }
}

// ANCHOR: tile_6x4
/// `acc[p][j] += px[p * c_in + ci] * taps[ci * c_out_p + 16 j ..][..16]` for `ci` in
/// `0..c_in`: 24 accumulators, 4 weight vectors and one broadcast value, 29 of the 32 `zmm`
/// registers, and six general registers for the addresses and the count.
///
/// # Safety
/// The CPU has AVX-512F; `c_in > 0`; `px` is valid for reading `6 * c_in` floats and `taps`
/// for `c_in` rows of `c_out_p` floats, of which the first 64 are read.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_6x4(acc: &mut [[__m512; 4]; 6], px: *const f32, c_in: usize, taps: *const f32, c_out_p: usize) {
    let [
        [mut a00, mut a01, mut a02, mut a03],
        [mut a10, mut a11, mut a12, mut a13],
        [mut a20, mut a21, mut a22, mut a23],
        [mut a30, mut a31, mut a32, mut a33],
        [mut a40, mut a41, mut a42, mut a43],
        [mut a50, mut a51, mut a52, mut a53],
    ] = *acc;
    // SAFETY: the loop reads `c_in` rows of 64 floats from `taps`, `c_out_p` floats apart, and
    // `c_in` floats of each of the 6 pixels `c_in` floats apart from `px` (pixel 3 onwards
    // through `px3`), all inside what the caller guarantees; it writes only registers.
    unsafe {
        asm!(
            "2:",
            // the 4 weight vectors of input channel ci (64 output channels)
            "vmovups {w0}, zmmword ptr [{taps}]",
            "vmovups {w1}, zmmword ptr [{taps} + 64]",
            "vmovups {w2}, zmmword ptr [{taps} + 128]",
            "vmovups {w3}, zmmword ptr [{taps} + 192]",
            // pixel 0: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px}]",
            "vfmadd231ps {a00}, {x}, {w0}",
            "vfmadd231ps {a01}, {x}, {w1}",
            "vfmadd231ps {a02}, {x}, {w2}",
            "vfmadd231ps {a03}, {x}, {w3}",
            // pixel 1: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px} + {stride}]",
            "vfmadd231ps {a10}, {x}, {w0}",
            "vfmadd231ps {a11}, {x}, {w1}",
            "vfmadd231ps {a12}, {x}, {w2}",
            "vfmadd231ps {a13}, {x}, {w3}",
            // pixel 2: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px} + {stride} * 2]",
            "vfmadd231ps {a20}, {x}, {w0}",
            "vfmadd231ps {a21}, {x}, {w1}",
            "vfmadd231ps {a22}, {x}, {w2}",
            "vfmadd231ps {a23}, {x}, {w3}",
            // pixel 3: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px3}]",
            "vfmadd231ps {a30}, {x}, {w0}",
            "vfmadd231ps {a31}, {x}, {w1}",
            "vfmadd231ps {a32}, {x}, {w2}",
            "vfmadd231ps {a33}, {x}, {w3}",
            // pixel 4: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px3} + {stride}]",
            "vfmadd231ps {a40}, {x}, {w0}",
            "vfmadd231ps {a41}, {x}, {w1}",
            "vfmadd231ps {a42}, {x}, {w2}",
            "vfmadd231ps {a43}, {x}, {w3}",
            // pixel 5: one input value to all 16 lanes, times the 4 weight vectors
            "vbroadcastss {x}, dword ptr [{px3} + {stride} * 2]",
            "vfmadd231ps {a50}, {x}, {w0}",
            "vfmadd231ps {a51}, {x}, {w1}",
            "vfmadd231ps {a52}, {x}, {w2}",
            "vfmadd231ps {a53}, {x}, {w3}",
            // next input channel: one float along each pixel, one row of weights down
            "add {px}, 4",
            "add {px3}, 4",
            "add {taps}, {row}",
            "dec {n}",
            "jnz 2b",
            a00 = inout(zmm_reg) a00,
            a01 = inout(zmm_reg) a01,
            a02 = inout(zmm_reg) a02,
            a03 = inout(zmm_reg) a03,
            a10 = inout(zmm_reg) a10,
            a11 = inout(zmm_reg) a11,
            a12 = inout(zmm_reg) a12,
            a13 = inout(zmm_reg) a13,
            a20 = inout(zmm_reg) a20,
            a21 = inout(zmm_reg) a21,
            a22 = inout(zmm_reg) a22,
            a23 = inout(zmm_reg) a23,
            a30 = inout(zmm_reg) a30,
            a31 = inout(zmm_reg) a31,
            a32 = inout(zmm_reg) a32,
            a33 = inout(zmm_reg) a33,
            a40 = inout(zmm_reg) a40,
            a41 = inout(zmm_reg) a41,
            a42 = inout(zmm_reg) a42,
            a43 = inout(zmm_reg) a43,
            a50 = inout(zmm_reg) a50,
            a51 = inout(zmm_reg) a51,
            a52 = inout(zmm_reg) a52,
            a53 = inout(zmm_reg) a53,
            w0 = out(zmm_reg) _,
            w1 = out(zmm_reg) _,
            w2 = out(zmm_reg) _,
            w3 = out(zmm_reg) _,
            x = out(zmm_reg) _,
            px = inout(reg) px => _,
            px3 = inout(reg) px.add(3 * c_in) => _,
            taps = inout(reg) taps => _,
            n = inout(reg) c_in => _,
            stride = in(reg) c_in * 4,
            row = in(reg) c_out_p * 4,
            options(nostack, readonly),
        );
    }
    *acc = [
        [a00, a01, a02, a03],
        [a10, a11, a12, a13],
        [a20, a21, a22, a23],
        [a30, a31, a32, a33],
        [a40, a41, a42, a43],
        [a50, a51, a52, a53],
    ];
}
// ANCHOR_END: tile_6x4

// ANCHOR: conv2d_forward_asm
/// `conv2d_forward` with [`Asm`] as the channel loop, and chapter 6's widest tiles: 6 x 4 for
/// four vectors of output channels or more (49 channels), else 12 x 2; not chapter 7's narrower
/// widths, which the hand-written loop does not have. So the 6 x 4 tiles run the hand-written
/// loop.
#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) {
    let s = Avx512::new();
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_forward_with::<_, Asm, 6, 4>(s, shape, input, weight, bias, output, fuse_relu)
    } else {
        generic::conv2d_forward_with::<_, Asm, 12, 2>(s, shape, input, weight, bias, output, fuse_relu)
    }
}

/// The AVX-512 table with the hand-written convolution forward pass.
pub(crate) static KERNELS: Kernels = Kernels { conv2d_forward, ..super::KERNELS };
// ANCHOR_END: conv2d_forward_asm
