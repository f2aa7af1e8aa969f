//! AVX-512 convolutions: the generic kernels with tiles sized for 32 registers of 16 floats.

use super::Avx512;
use crate::kernels::{Conv2dShape, generic};

// ANCHOR: conv2d
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
    // Up to 24 accumulators of the 32 registers, shaped to the layer: 6 pixels x 4 vectors (64
    // output channels) when there are that many, else 2 vectors (conv1's 32) by the width
    // `pixels_per_tile` chooses from the row.
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_forward::<_, 6, 4>(s, shape, input, weight, bias, output, fuse_relu)
    } else {
        match pixels_per_tile(shape.w) {
            9 => generic::conv2d_forward::<_, 9, 2>(s, shape, input, weight, bias, output, fuse_relu),
            11 => generic::conv2d_forward::<_, 11, 2>(s, shape, input, weight, bias, output, fuse_relu),
            _ => generic::conv2d_forward::<_, 12, 2>(s, shape, input, weight, bias, output, fuse_relu),
        }
    }
}

/// The widths a two-vector tile may have, widest first: 12 (24 accumulators) and 11. Chapter 7
/// adds a third (`tiles::PIXELS`).
pub(super) const CHAPTER_6_PIXELS: [usize; 2] = [12, 11];
#[cfg(not(feature = "ch7"))]
use self::CHAPTER_6_PIXELS as PIXELS;
#[cfg(feature = "ch7")]
use super::tiles::PIXELS;

/// The width of [`PIXELS`] that computes the fewest of a row's interior pixels twice (the last
/// tile of a row overlaps the one before it, `generic::recomputed_pixels`), the first and so the
/// wider on a tie: conv2's 62 interior pixels take six tiles of 12 with 10 pixels done twice,
/// six of 11 with 4, or seven of 9 with 1.
fn pixels_per_tile(w: usize) -> usize {
    PIXELS.into_iter().min_by_key(|&p| generic::recomputed_pixels(w, p)).expect("PIXELS is not empty")
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    let s = Avx512::new();
    // Here the output channels are the layer's input channels.
    if shape.c_in.div_ceil(16) >= 4 {
        generic::conv2d_backward_input::<_, 6, 4>(s, shape, grad_output, weight, grad_input)
    } else {
        match pixels_per_tile(shape.w) {
            9 => generic::conv2d_backward_input::<_, 9, 2>(s, shape, grad_output, weight, grad_input),
            11 => generic::conv2d_backward_input::<_, 11, 2>(s, shape, grad_output, weight, grad_input),
            _ => generic::conv2d_backward_input::<_, 12, 2>(s, shape, grad_output, weight, grad_input),
        }
    }
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_weight(
    shape: &Conv2dShape,
    input: &[f32],
    grad_output: &[f32],
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    let s = Avx512::new();
    // 3 kernel columns x input channels x output vectors: 3 x 2 x 4 = 24 accumulators for 64
    // or more output channels, 3 x 4 x 2 for 32, and 3 x 3 x 2 for conv1's 3 input channels.
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_backward_weight::<_, 2, 4>(s, shape, input, grad_output, grad_weight, grad_bias)
    } else if shape.c_in.is_multiple_of(4) {
        generic::conv2d_backward_weight::<_, 4, 2>(s, shape, input, grad_output, grad_weight, grad_bias)
    } else {
        generic::conv2d_backward_weight::<_, 3, 2>(s, shape, input, grad_output, grad_weight, grad_bias)
    }
}
// ANCHOR_END: conv2d

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    /// The forward pass and the input gradient of `shape` with two-vector tiles of `P` pixels.
    #[target_feature(enable = "avx512f")]
    fn both_passes<const P: usize>(shape: &Conv2dShape, x: &[f32], w: &[f32], b: &[f32], g: &[f32]) -> [Vec<f32>; 2] {
        let s = Avx512::new();
        let (mut y, mut gx) = (vec![f32::NAN; shape.output_len()], vec![f32::NAN; shape.input_len()]);
        generic::conv2d_forward::<_, P, 2>(s, shape, x, w, b, &mut y, true);
        generic::conv2d_backward_input::<_, P, 2>(s, shape, g, w, &mut gx);
        [y, gx]
    }

    /// Every width `pixels_per_tile` may take sums each output in the same order, so the choice
    /// changes no bit: rows whose tiles overlap by different amounts, at the borders and inside.
    #[test]
    fn every_width_computes_the_same_bits() {
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        let value = |i: usize, seed: usize| ((i * 7919 + seed * 104_729) % 201) as f32 / 100.0 - 1.0;
        for (h, w, c_in, c_out) in [(3, 11, 3, 32), (2, 14, 32, 17), (4, 15, 5, 32), (2, 33, 32, 3), (2, 128, 3, 32)] {
            let shape = Conv2dShape { n: 2, h, w, c_in, c_out };
            let x: Vec<f32> = (0..shape.input_len()).map(|i| value(i, 1)).collect();
            let wt: Vec<f32> = (0..shape.weight_len()).map(|i| value(i, 2)).collect();
            let b: Vec<f32> = (0..c_out).map(|i| value(i, 3)).collect();
            let g: Vec<f32> = (0..shape.output_len()).map(|i| value(i, 4)).collect();
            // SAFETY: AVX-512 was checked above.
            let [twelve, eleven, nine] =
                unsafe { [both_passes::<12>, both_passes::<11>, both_passes::<9>].map(|f| f(&shape, &x, &wt, &b, &g)) };
            for (p, other) in [(11, &eleven), (9, &nine)] {
                for (pass, (got, want)) in ["forward", "input gradient"].iter().zip(other.iter().zip(&twelve)) {
                    let same = got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{shape:?}: the {pass} with {p} pixels is not the bits of 12");
                }
            }
        }
    }

    #[test]
    fn the_width_is_the_one_that_recomputes_least() {
        // conv2's rows: 62 interior pixels, 10 done twice by tiles of 12, 4 by tiles of 11.
        assert_eq!((generic::recomputed_pixels(64, 12), generic::recomputed_pixels(64, 11)), (10, 4));
        // conv1's rows: 126 interior pixels, 6 either way.
        assert_eq!((generic::recomputed_pixels(128, 12), generic::recomputed_pixels(128, 11)), (6, 6));
        for w in 0..300 {
            let p = pixels_per_tile(w);
            for q in PIXELS {
                let (mine, other) = (generic::recomputed_pixels(w, p), generic::recomputed_pixels(w, q));
                assert!(mine < other || (mine == other && p >= q), "width {w}: {p} pixels against {q}");
            }
        }
        // 11 or 12 interior pixels: one tile of that width.
        assert_eq!((pixels_per_tile(13), pixels_per_tile(14)), (11, 12));
    }

    #[test]
    fn conv1_and_conv2_take_the_widths_that_cover_their_rows_best() {
        // conv1: 126 = 14 x 9, none twice; conv2: 7 x 9 = 63, one twice.
        assert_eq!((generic::recomputed_pixels(128, 9), generic::recomputed_pixels(64, 9)), (0, 1));
        let with_9 = PIXELS.contains(&9);
        // Chapter 6 takes 11 for conv2 and 12 for conv1, chapter 7 9 for both.
        assert_eq!((pixels_per_tile(64), pixels_per_tile(128)), if with_9 { (9, 9) } else { (11, 12) });
        // 9 or 10 interior pixels: only the 9 fits, else one pixel at a time whatever the tile.
        assert_eq!((pixels_per_tile(11), pixels_per_tile(12)), if with_9 { (9, 9) } else { (12, 12) });
        assert_eq!((pixels_per_tile(1), pixels_per_tile(0)), (12, 12));
    }
}
