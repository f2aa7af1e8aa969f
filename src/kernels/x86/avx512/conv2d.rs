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
    // 24 accumulators of the 32 registers, shaped to the layer: 6 pixels x 4 vectors (64
    // output channels) when there are that many, else 12 pixels x 2 vectors (conv1's 32), or
    // 11 x 2 when that recomputes fewer pixels of a row.
    if shape.c_out.div_ceil(16) >= 4 {
        generic::conv2d_forward::<_, 6, 4>(s, shape, input, weight, bias, output, fuse_relu)
    } else if narrower_pays(shape.w) {
        generic::conv2d_forward::<_, 11, 2>(s, shape, input, weight, bias, output, fuse_relu)
    } else {
        generic::conv2d_forward::<_, 12, 2>(s, shape, input, weight, bias, output, fuse_relu)
    }
}

/// Whether tiles of 11 pixels recompute fewer of a row's interior pixels than tiles of 12
/// (the last tile of a row overlaps the one before it, `generic::recomputed_pixels`): conv2's
/// 62 interior pixels take six tiles of 12 with 10 pixels done twice, or six of 11 with 4.
fn narrower_pays(w: usize) -> bool {
    generic::recomputed_pixels(w, 11) < generic::recomputed_pixels(w, 12)
}

#[target_feature(enable = "avx512f")]
pub(crate) fn conv2d_backward_input(shape: &Conv2dShape, grad_output: &[f32], weight: &[f32], grad_input: &mut [f32]) {
    let s = Avx512::new();
    // Here the output channels are the layer's input channels.
    if shape.c_in.div_ceil(16) >= 4 {
        generic::conv2d_backward_input::<_, 6, 4>(s, shape, grad_output, weight, grad_input)
    } else if narrower_pays(shape.w) {
        generic::conv2d_backward_input::<_, 11, 2>(s, shape, grad_output, weight, grad_input)
    } else {
        generic::conv2d_backward_input::<_, 12, 2>(s, shape, grad_output, weight, grad_input)
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

    #[test]
    fn the_narrower_tile_is_taken_where_it_recomputes_less() {
        // conv2's rows: 62 interior pixels, 10 done twice by tiles of 12, 4 by tiles of 11.
        assert_eq!((generic::recomputed_pixels(64, 12), generic::recomputed_pixels(64, 11)), (10, 4));
        assert!(narrower_pays(64));
        // conv1's rows: 126 interior pixels, 6 either way, and the wider tile on a tie.
        assert!(!narrower_pays(128));
        // 11 interior pixels: one tile of 11, where 12 would go one pixel at a time.
        assert!(narrower_pays(13));
        // Too few for either: one pixel at a time whatever the tile.
        assert!(!narrower_pays(12) && !narrower_pays(1) && !narrower_pays(0));
    }
}
