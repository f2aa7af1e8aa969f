//! From bytes to the network's input: NHWC floats in [0, 1], optionally flipped and shifted.

use super::{CHANNELS, CatDog, CatDogError};
use crate::tensor::Tensor;
use crate::tensor::init::Rng;
use rand::RngExt;

/// How far a random crop may shift the image, in pixels, each way.
pub const PAD: usize = 8;

/// A batch of images ready for the network.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[n, size, size, 3]`, NHWC, values in [0, 1].
    pub x: Tensor,
    /// `[n]`: 0.0 for a cat, 1.0 for a dog.
    pub labels: Vec<f32>,
    /// The data-set index of each image.
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

// ANCHOR: to_unit_f32
/// `out[i] = image[i] / 255`: bytes to floats in [0, 1], as PyTorch's `x.float() / 255`.
pub fn to_unit_f32(image: &[u8], out: &mut [f32]) {
    assert_eq!(image.len(), out.len(), "one float per byte");
    for (o, &p) in out.iter_mut().zip(image) {
        *o = p as f32 / 255.0;
    }
}
// ANCHOR_END: to_unit_f32

/// One random change of an image: a crop of the image padded by [`PAD`] pixels on each side,
/// taken at offset `(dy, dx)` of the padded image, then a mirror image if `flip`.
/// `Augment { dy: PAD, dx: PAD, flip: false }` changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

impl Augment {
    /// The identity.
    pub const NONE: Augment = Augment { dy: PAD, dx: PAD, flip: false };

    /// Offsets uniform in `0..=2 * PAD`, a flip one time in two (the `--augment` of the
    /// PyTorch reference: `rng.integers(0, 17, size=2)`, `rng.random() < 0.5`).
    pub fn random(rng: &mut Rng) -> Augment {
        Augment { dy: rng.random_range(0..=2 * PAD), dx: rng.random_range(0..=2 * PAD), flip: rng.random_bool(0.5) }
    }
}

// ANCHOR: augment_into
/// Writes `aug` of the `[size, size, 3]` image into `out` as floats in [0, 1].
///
/// The padding mirrors the image without repeating its edge (NumPy's `np.pad(mode="reflect")`):
/// padded pixel `-1` is pixel `1`, padded pixel `size` is pixel `size - 2`. Output pixel
/// `(y, x)` is padded pixel `(y + dy, x + dx)`, or `(y + dy, size - 1 - x + dx)` once flipped;
/// no padded copy is ever made.
pub fn augment_into(image: &[u8], size: usize, aug: Augment, out: &mut [f32]) {
    assert!(aug.dy <= 2 * PAD && aug.dx <= 2 * PAD, "offsets are at most {}", 2 * PAD);
    assert!(size > PAD, "images must be wider than the padding");
    assert!(image.len() == size * size * CHANNELS && out.len() == image.len(), "one [size, size, 3] image");
    let reflect = |i: usize| -> usize {
        // `i` indexes the padded image, 0..size + 2 * PAD.
        let i = i as isize - PAD as isize;
        let n = size as isize;
        (if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        }) as usize
    };
    let columns: Vec<usize> =
        (0..size).map(|x| if aug.flip { size - 1 - x } else { x }).map(|x| reflect(x + aug.dx)).collect();
    for (y, out_row) in out.chunks_exact_mut(size * CHANNELS).enumerate() {
        let row = &image[reflect(y + aug.dy) * size * CHANNELS..][..size * CHANNELS];
        for (out_pixel, &x) in out_row.chunks_exact_mut(CHANNELS).zip(&columns) {
            for (o, &p) in out_pixel.iter_mut().zip(&row[x * CHANNELS..][..CHANNELS]) {
                *o = p as f32 / 255.0;
            }
        }
    }
}
// ANCHOR_END: augment_into

impl CatDog {
    // ANCHOR: batch
    /// Images `indices` as a [`Batch`], each augmented with a fresh [`Augment::random`] when
    /// `augment` holds a generator.
    pub fn batch(&self, indices: &[usize], mut augment: Option<&mut Rng>) -> Result<Batch, CatDogError> {
        let (size, len) = (self.image_size(), self.image_len());
        let mut x = Tensor::zeros(&[indices.len(), size, size, CHANNELS]);
        let mut pixels = vec![0u8; len];
        for (&i, out) in indices.iter().zip(x.as_mut_slice().chunks_exact_mut(len)) {
            self.read_image(i, &mut pixels)?;
            match augment.as_deref_mut() {
                Some(rng) => augment_into(&pixels, size, Augment::random(rng), out),
                None => to_unit_f32(&pixels, out),
            }
        }
        let labels = indices.iter().map(|&i| f32::from(self.labels()[i])).collect();
        Ok(Batch { x, labels, indices: indices.to_vec() })
    }
    // ANCHOR_END: batch
}
