use super::{StepStats, ensure};
use crate::kernels::{Conv2dShape, Kernels, Pool2dShape};
use crate::nn::{Conv2d, Flatten, Linear, MaxPool2d, Param, ReLU, loss};
use crate::tensor::AlignedVec;
use crate::tensor::init::rng;

/// Channels after each convolution.
pub const CNN_CHANNELS: [usize; 4] = [3, 32, 64, 128];
/// Width of the hidden fully connected layer.
pub const CNN_HIDDEN: usize = 128;

/// Every convolution of the network is followed by a ReLU, which the convolution kernel
/// applies as it stores its output; the pool's backward pass applies the ReLU's backward.
pub(crate) const FUSE_RELU: bool = true;

// ANCHOR: cnn
/// The cat/dog network, for RGB images of `h` x `w` pixels (both multiples of 8):
///
/// ```text
/// conv1 3->32, ReLU, max-pool 2   [n, h,   w,   3]  -> [n, h/2, w/2, 32]
/// conv2 32->64, ReLU, max-pool 2                    -> [n, h/4, w/4, 64]
/// conv3 64->128, ReLU, max-pool 2                   -> [n, h/8, w/8, 128]
/// flatten (PyTorch's C, H, W order)                 -> [n, 128 * h/8 * w/8]   (32768 at 128x128)
/// fc1 + ReLU                                        -> [n, 128]
/// fc2                                               -> [n, 1], the logit of "dog"
/// ```
#[derive(Clone, Debug)]
pub struct CatDogCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    h: usize,
    w: usize,
    pub(crate) buf: Buffers,
}

/// Activations kept for the backward pass, and their gradients. `r*` are the ReLU outputs of
/// the convolutions, `p*` the pooled maps.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buffers {
    pub(crate) n: usize,
    pub(crate) r1: AlignedVec,
    pub(crate) p1: AlignedVec,
    pub(crate) r2: AlignedVec,
    pub(crate) p2: AlignedVec,
    pub(crate) r3: AlignedVec,
    pub(crate) p3: AlignedVec,
    pub(crate) flat: AlignedVec,
    pub(crate) h1: AlignedVec,
    pub(crate) logits: AlignedVec,
    pub(crate) g_logits: AlignedVec,
    pub(crate) g_h1: AlignedVec,
    pub(crate) g_flat: AlignedVec,
    pub(crate) g_p3: AlignedVec,
    pub(crate) g_r3: AlignedVec,
    pub(crate) g_p2: AlignedVec,
    pub(crate) g_r2: AlignedVec,
    pub(crate) g_p1: AlignedVec,
    pub(crate) g_r1: AlignedVec,
}
// ANCHOR_END: cnn

/// The shapes of one forward pass over `n` images.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shapes {
    pub(crate) conv: [Conv2dShape; 3],
    pub(crate) pool: [Pool2dShape; 3],
    pub(crate) flatten: Flatten,
}

impl CatDogCnn {
    /// PyTorch `state_dict` names of the parameters, in the order of [`CatDogCnn::params_mut`].
    pub const PARAM_NAMES: [&'static str; 10] = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "conv3.weight",
        "conv3.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ];

    /// A network for `h` x `w` images with He-normal weights drawn from `seed`.
    ///
    /// # Panics
    /// If `h` or `w` is not a positive multiple of 8 (three 2x2 pools must divide evenly).
    pub fn new(h: usize, w: usize, seed: u64) -> Self {
        assert!(
            h > 0 && w > 0 && h.is_multiple_of(8) && w.is_multiple_of(8),
            "image size {h}x{w}: both sides must be positive multiples of 8"
        );
        let mut rng = rng(seed);
        let [c0, c1, c2, c3] = CNN_CHANNELS;
        CatDogCnn {
            conv1: Conv2d::new(c0, c1, &mut rng),
            conv2: Conv2d::new(c1, c2, &mut rng),
            conv3: Conv2d::new(c2, c3, &mut rng),
            fc1: Linear::new(c3 * (h / 8) * (w / 8), CNN_HIDDEN, &mut rng),
            fc2: Linear::new(CNN_HIDDEN, 1, &mut rng),
            h,
            w,
            buf: Buffers::default(),
        }
    }

    /// Input height and width.
    pub fn image_size(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// Floats in one input image, `h * w * 3`.
    pub fn image_len(&self) -> usize {
        self.h * self.w * CNN_CHANNELS[0]
    }

    pub(crate) fn shapes(&self, n: usize) -> Shapes {
        let [c0, c1, c2, c3] = CNN_CHANNELS;
        let (h, w) = (self.h, self.w);
        let conv = |h, w, c_in, c_out| Conv2dShape { n, h, w, c_in, c_out };
        let pool = |h, w, c| Pool2dShape { n, h, w, c };
        Shapes {
            conv: [conv(h, w, c0, c1), conv(h / 2, w / 2, c1, c2), conv(h / 4, w / 4, c2, c3)],
            pool: [pool(h, w, c1), pool(h / 2, w / 2, c2), pool(h / 4, w / 4, c3)],
            flatten: Flatten { h: h / 8, w: w / 8, c: c3 },
        }
    }

    pub(crate) fn resize(&mut self, s: &Shapes) {
        let n = s.conv[0].n;
        let b = &mut self.buf;
        b.n = n;
        ensure(&mut b.r1, s.conv[0].output_len());
        ensure(&mut b.g_r1, s.conv[0].output_len());
        ensure(&mut b.p1, s.pool[0].output_len());
        ensure(&mut b.g_p1, s.pool[0].output_len());
        ensure(&mut b.r2, s.conv[1].output_len());
        ensure(&mut b.g_r2, s.conv[1].output_len());
        ensure(&mut b.p2, s.pool[1].output_len());
        ensure(&mut b.g_p2, s.pool[1].output_len());
        ensure(&mut b.r3, s.conv[2].output_len());
        ensure(&mut b.g_r3, s.conv[2].output_len());
        ensure(&mut b.p3, s.pool[2].output_len());
        ensure(&mut b.g_p3, s.pool[2].output_len());
        ensure(&mut b.flat, s.pool[2].output_len());
        ensure(&mut b.g_flat, s.pool[2].output_len());
        ensure(&mut b.h1, n * CNN_HIDDEN);
        ensure(&mut b.g_h1, n * CNN_HIDDEN);
        ensure(&mut b.logits, n);
        ensure(&mut b.g_logits, n);
    }

    // ANCHOR: cnn_forward
    /// x `[n, h, w, 3]` (NHWC, values in [0, 1]) -> logits `[n]`
    pub fn forward(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        assert!(!x.is_empty() && x.len().is_multiple_of(self.image_len()), "x must be [n, {}, {}, 3]", self.h, self.w);
        let s = self.shapes(x.len() / self.image_len());
        self.resize(&s);
        let n = s.conv[0].n;
        let b = &mut self.buf;
        self.conv1.forward(k, &s.conv[0], x, &mut b.r1, FUSE_RELU);
        MaxPool2d.forward(k, &s.pool[0], &b.r1, &mut b.p1);
        self.conv2.forward(k, &s.conv[1], &b.p1, &mut b.r2, FUSE_RELU);
        MaxPool2d.forward(k, &s.pool[1], &b.r2, &mut b.p2);
        self.conv3.forward(k, &s.conv[2], &b.p2, &mut b.r3, FUSE_RELU);
        MaxPool2d.forward(k, &s.pool[2], &b.r3, &mut b.p3);
        s.flatten.forward(&b.p3, &mut b.flat);
        self.fc1.forward(k, n, &b.flat, &mut b.h1);
        ReLU.forward(k, &mut b.h1);
        self.fc2.forward(k, n, &b.h1, &mut b.logits);
        &b.logits
    }
    // ANCHOR_END: cnn_forward

    // ANCHOR: cnn_backward
    /// Forward, loss and backward for one batch (`labels`: 0 cat, 1 dog): leaves dL/dparam
    /// in every parameter's `grad`.
    pub fn forward_backward(&mut self, k: &Kernels, x: &[f32], labels: &[f32]) -> StepStats {
        self.forward(k, x);
        let s = self.shapes(labels.len());
        assert_eq!(self.buf.n, labels.len(), "one label per image");
        let n = s.conv[0].n;
        let b = &mut self.buf;
        let loss = loss::bce_with_logits(k, &b.logits, labels, &mut b.g_logits);
        let correct = b.logits.iter().zip(labels).filter(|&(&z, &t)| (z > 0.0) == (t > 0.5)).count();

        self.fc2.backward(k, n, &b.h1, &b.g_logits, Some(&mut b.g_h1));
        ReLU.backward(k, &b.h1, &mut b.g_h1);
        self.fc1.backward(k, n, &b.flat, &b.g_h1, Some(&mut b.g_flat));
        s.flatten.backward(&b.g_flat, &mut b.g_p3);
        MaxPool2d.backward(k, &s.pool[2], &b.r3, &b.p3, &b.g_p3, &mut b.g_r3, FUSE_RELU);
        self.conv3.backward(k, &s.conv[2], &b.p2, &b.g_r3, Some(&mut b.g_p2));
        MaxPool2d.backward(k, &s.pool[1], &b.r2, &b.p2, &b.g_p2, &mut b.g_r2, FUSE_RELU);
        self.conv2.backward(k, &s.conv[1], &b.p1, &b.g_r2, Some(&mut b.g_p1));
        MaxPool2d.backward(k, &s.pool[0], &b.r1, &b.p1, &b.g_p1, &mut b.g_r1, FUSE_RELU);
        self.conv1.backward(k, &s.conv[0], x, &b.g_r1, None);
        StepStats { loss, correct }
    }
    // ANCHOR_END: cnn_backward

    /// The probability that each image shows a dog.
    pub fn predict_proba(&mut self, k: &Kernels, x: &[f32]) -> Vec<f32> {
        let logits = self.forward(k, x).to_vec();
        let mut p = vec![0.0; logits.len()];
        k.sigmoid_forward(&logits, &mut p);
        p
    }

    pub fn params(&self) -> [&Param; 10] {
        [
            &self.conv1.weight,
            &self.conv1.bias,
            &self.conv2.weight,
            &self.conv2.bias,
            &self.conv3.weight,
            &self.conv3.bias,
            &self.fc1.weight,
            &self.fc1.bias,
            &self.fc2.weight,
            &self.fc2.bias,
        ]
    }

    pub fn params_mut(&mut self) -> [&mut Param; 10] {
        [
            &mut self.conv1.weight,
            &mut self.conv1.bias,
            &mut self.conv2.weight,
            &mut self.conv2.bias,
            &mut self.conv3.weight,
            &mut self.conv3.bias,
            &mut self.fc1.weight,
            &mut self.fc1.bias,
            &mut self.fc2.weight,
            &mut self.fc2.bias,
        ]
    }
}
