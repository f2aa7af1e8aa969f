#[cfg(not(feature = "ch7"))]
use crate::tensor::layout::transpose;
#[cfg(feature = "ch7")]
use crate::tensor::squares::transpose;

/// Flattens NHWC feature maps `[n, h, w, c]` into rows `[n, c*h*w]` in PyTorch's order
/// (channel slowest), so that a `Linear` after it has exactly the weight PyTorch's
/// `nn.Flatten()` + `nn.Linear` would have. No arithmetic, only a transpose of each image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Flatten {
    pub fn features(&self) -> usize {
        self.h * self.w * self.c
    }

    // ANCHOR: flatten
    /// `x[b, y, x, ch]` -> `rows[b, ch*h*w + y*w + x]`
    pub fn forward(&self, x: &[f32], rows: &mut [f32]) {
        let Flatten { h, w, c } = *self;
        assert!(x.len() == rows.len() && x.len().is_multiple_of(self.features()), "flatten: lengths do not match");
        // Each image is a matrix of h*w pixels by c channels, and its row is that matrix
        // transposed: the obvious loop is `row[ch * h * w + pixel] = image[pixel * c + ch]`.
        for (image, row) in x.chunks_exact(self.features()).zip(rows.chunks_exact_mut(self.features())) {
            transpose(image, c, 0..c, h * w, row);
        }
    }
    // ANCHOR_END: flatten

    /// The inverse permutation: gradient rows back to NHWC.
    pub fn backward(&self, grad_rows: &[f32], grad_x: &mut [f32]) {
        let Flatten { h, w, c } = *self;
        assert!(
            grad_x.len() == grad_rows.len() && grad_x.len().is_multiple_of(self.features()),
            "flatten: lengths do not match"
        );
        for (row, image) in grad_rows.chunks_exact(self.features()).zip(grad_x.chunks_exact_mut(self.features())) {
            transpose(row, h * w, 0..h * w, c, image);
        }
    }
}
