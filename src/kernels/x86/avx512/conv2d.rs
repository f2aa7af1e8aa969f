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
    // Up to 24 accumulators of the 32 registers, shaped to the layer: 4 vectors of output
    // channels (conv2's 64 or more; 49 already make 4) when there are that many, else 2 (conv1's
    // 32), by the width `pixels_per_tile` chooses from the row (6 x 4 and 12 x 2 at most).
    if shape.c_out.div_ceil(16) >= 4 {
        match pixels_per_tile(shape.w, &FOUR_VECTORS) {
            4 => generic::conv2d_forward::<_, 4, 4>(s, shape, input, weight, bias, output, fuse_relu),
            5 => generic::conv2d_forward::<_, 5, 4>(s, shape, input, weight, bias, output, fuse_relu),
            6 => generic::conv2d_forward::<_, 6, 4>(s, shape, input, weight, bias, output, fuse_relu),
            p => unreachable!("no tile of {p} pixels by four vectors"),
        }
    } else {
        match pixels_per_tile(shape.w, &TWO_VECTORS) {
            9 => generic::conv2d_forward::<_, 9, 2>(s, shape, input, weight, bias, output, fuse_relu),
            11 => generic::conv2d_forward::<_, 11, 2>(s, shape, input, weight, bias, output, fuse_relu),
            12 => generic::conv2d_forward::<_, 12, 2>(s, shape, input, weight, bias, output, fuse_relu),
            p => unreachable!("no tile of {p} pixels by two vectors"),
        }
    }
}

/// The widths a tile may have, widest first: 12 pixels (24 accumulators) or 11 by two vectors,
/// 6 by four. Chapter 7 adds narrower ones (`tiles::TWO_VECTORS`, `tiles::FOUR_VECTORS`).
pub(super) const CHAPTER_6_TWO_VECTORS: [usize; 2] = [12, 11];
pub(super) const CHAPTER_6_FOUR_VECTORS: [usize; 1] = [6];
#[cfg(not(feature = "ch7"))]
use self::{CHAPTER_6_FOUR_VECTORS as FOUR_VECTORS, CHAPTER_6_TWO_VECTORS as TWO_VECTORS};
#[cfg(feature = "ch7")]
use super::tiles::{FOUR_VECTORS, TWO_VECTORS};

/// The width of `widths` (each has an arm in the `match`es above) that computes the fewest of a
/// row's interior pixels twice (the last tile of a row overlaps the one before it,
/// `generic::recomputed_pixels`), the first and so the wider on a tie: conv2's 62 interior pixels
/// take six tiles of 12 with 10 pixels done twice, six of 11 with 4, or seven of 9 with 1.
fn pixels_per_tile(w: usize, widths: &[usize]) -> usize {
    widths.iter().copied().min_by_key(|&p| generic::recomputed_pixels(w, p)).expect("a tile has a width")
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    let s = Avx512::new();
    // Here the output channels are the layer's input channels.
    if shape.c_in.div_ceil(16) >= 4 {
        match pixels_per_tile(shape.w, &FOUR_VECTORS) {
            4 => generic::conv2d_backward_input::<_, 4, 4>(s, shape, grad_output, weight, grad_input),
            5 => generic::conv2d_backward_input::<_, 5, 4>(s, shape, grad_output, weight, grad_input),
            6 => generic::conv2d_backward_input::<_, 6, 4>(s, shape, grad_output, weight, grad_input),
            p => unreachable!("no tile of {p} pixels by four vectors"),
        }
    } else {
        match pixels_per_tile(shape.w, &TWO_VECTORS) {
            9 => generic::conv2d_backward_input::<_, 9, 2>(s, shape, grad_output, weight, grad_input),
            11 => generic::conv2d_backward_input::<_, 11, 2>(s, shape, grad_output, weight, grad_input),
            12 => generic::conv2d_backward_input::<_, 12, 2>(s, shape, grad_output, weight, grad_input),
            p => unreachable!("no tile of {p} pixels by two vectors"),
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

    /// The forward pass and the input gradient of `shape` with tiles of `P` pixels by `C` vectors.
    #[target_feature(enable = "avx512f")]
    fn both_passes<const P: usize, const C: usize>(
        shape: &Conv2dShape,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        g: &[f32],
    ) -> [Vec<f32>; 2] {
        let s = Avx512::new();
        let (mut y, mut gx) = (vec![f32::NAN; shape.output_len()], vec![f32::NAN; shape.input_len()]);
        generic::conv2d_forward::<_, P, C>(s, shape, x, w, b, &mut y, true);
        generic::conv2d_backward_input::<_, P, C>(s, shape, g, w, &mut gx);
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
        let shapes = [
            (3, 11, 3, 32),
            (2, 14, 32, 17),
            (4, 15, 5, 32),
            (2, 33, 64, 3),
            (2, 128, 3, 32),
            (3, 9, 70, 64),
            (3, 9, 64, 70),
            (2, 64, 64, 64),
        ];
        for (h, w, c_in, c_out) in shapes {
            let shape = Conv2dShape { n: 2, h, w, c_in, c_out };
            let x: Vec<f32> = (0..shape.input_len()).map(|i| value(i, 1)).collect();
            let wt: Vec<f32> = (0..shape.weight_len()).map(|i| value(i, 2)).collect();
            let b: Vec<f32> = (0..c_out).map(|i| value(i, 3)).collect();
            let g: Vec<f32> = (0..shape.output_len()).map(|i| value(i, 4)).collect();
            // SAFETY: AVX-512 was checked above.
            let [twelve, eleven, nine] = unsafe {
                [both_passes::<12, 2>, both_passes::<11, 2>, both_passes::<9, 2>].map(|f| f(&shape, &x, &wt, &b, &g))
            };
            // SAFETY: as above.
            let [six, five, four] = unsafe {
                [both_passes::<6, 4>, both_passes::<5, 4>, both_passes::<4, 4>].map(|f| f(&shape, &x, &wt, &b, &g))
            };
            let others = [("11 x 2", &eleven), ("9 x 2", &nine), ("6 x 4", &six), ("5 x 4", &five), ("4 x 4", &four)];
            for (tile, other) in others {
                for (pass, (got, want)) in ["forward", "input gradient"].iter().zip(other.iter().zip(&twelve)) {
                    let same = got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{shape:?}: the {pass} with tiles of {tile} is not the bits of 12 x 2");
                }
            }
        }
    }

    /// Each width of the lists has its arm in the dispatch: a row of `p` interior pixels takes
    /// tiles of `p`, and the wrappers compute the generic kernel's bits with them.
    #[test]
    fn every_width_has_its_tile() {
        for widths in [&TWO_VECTORS[..], &FOUR_VECTORS[..]] {
            assert!(widths.iter().all(|&p| pixels_per_tile(p + 2, widths) == p), "{widths:?}");
        }
        if !Isa::Avx512.is_available() {
            println!("skipping: no AVX-512 here");
            return;
        }
        for (widths, c) in [(&TWO_VECTORS[..], 32), (&FOUR_VECTORS[..], 64)] {
            for &p in widths {
                let w = p + 2;
                let shape = Conv2dShape { n: 1, h: 2, w, c_in: c, c_out: c };
                let value = |i: usize| ((i * 7919) % 201) as f32 / 100.0 - 1.0;
                let x: Vec<f32> = (0..shape.input_len()).map(value).collect();
                let wt: Vec<f32> = (0..shape.weight_len()).map(|i| value(i + 1)).collect();
                let (mut y, mut gx) = (vec![f32::NAN; shape.output_len()], vec![f32::NAN; shape.input_len()]);
                // SAFETY: AVX-512 was checked above.
                let want = unsafe {
                    conv2d_forward(&shape, &x, &wt, &x[..c], &mut y, true);
                    conv2d_backward_input(&shape, &y, &wt, &mut gx);
                    both_passes::<12, 2>(&shape, &x, &wt, &x[..c], &y)
                };
                assert!(y.iter().zip(&want[0]).all(|(a, b)| a.to_bits() == b.to_bits()), "{p} pixels, forward");
                assert!(gx.iter().zip(&want[1]).all(|(a, b)| a.to_bits() == b.to_bits()), "{p} pixels, input gradient");
            }
        }
    }

    #[test]
    fn the_width_is_the_one_that_recomputes_least() {
        // conv2's rows: 62 interior pixels, 10 done twice by tiles of 12, 4 by tiles of 11 or 6.
        let recomputed = |w, p| generic::recomputed_pixels(w, p);
        assert_eq!((recomputed(64, 12), recomputed(64, 11), recomputed(64, 6)), (10, 4, 4));
        // conv1's rows: 126 interior pixels, 6 either way.
        assert_eq!((recomputed(128, 12), recomputed(128, 11)), (6, 6));
        for widths in [&TWO_VECTORS[..], &FOUR_VECTORS[..]] {
            assert!(widths.windows(2).all(|p| p[0] > p[1]), "{widths:?} are not widest first");
            for w in 0..300 {
                let p = pixels_per_tile(w, widths);
                for &q in widths {
                    let (mine, other) = (recomputed(w, p), recomputed(w, q));
                    assert!(mine < other || (mine == other && p >= q), "width {w}: {p} pixels against {q}");
                }
            }
        }
        // 11 or 12 interior pixels: one tile of that width.
        assert_eq!((pixels_per_tile(13, &TWO_VECTORS), pixels_per_tile(14, &TWO_VECTORS)), (11, 12));
    }

    #[test]
    fn the_layers_take_the_widths_that_cover_their_rows_best() {
        let two = |w| pixels_per_tile(w, &TWO_VECTORS);
        let four = |w| pixels_per_tile(w, &FOUR_VECTORS);
        // conv1: 126 = 14 x 9, none twice; conv2: 7 x 9 = 63, one twice, or 16 x 4, two twice.
        let recomputed = |w, p| generic::recomputed_pixels(w, p);
        assert_eq!((recomputed(128, 9), recomputed(64, 9), recomputed(64, 4)), (0, 1, 2));
        // Chapter 6 takes 11 for conv2's input gradient, 12 for conv1's forward pass and 6 for
        // conv2's; chapter 7 9, 9 and 4. conv3's 30 interior pixels are five tiles of 6.
        let chapter_7 = TWO_VECTORS.contains(&9);
        assert_eq!((two(64), two(128), four(64)), if chapter_7 { (9, 9, 4) } else { (11, 12, 6) });
        assert_eq!(four(32), 6);
        // 9 or 10 interior pixels: only the 9 fits, else one pixel at a time whatever the tile.
        assert_eq!((two(11), two(12)), if chapter_7 { (9, 9) } else { (12, 12) });
        assert_eq!((two(1), two(0), four(0)), (12, 12, 6));
    }
}
