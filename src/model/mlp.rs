use super::{StepStats, ensure};
use crate::kernels::Kernels;
use crate::nn::{Linear, Param, ReLU, loss};
use crate::tensor::AlignedVec;
use crate::tensor::init::rng;

/// Layer widths of the MNIST network: 784 pixels in, 10 digits out.
pub const MLP_SIZES: [usize; 4] = [784, 128, 64, 10];

// ANCHOR: mlp
/// The MNIST network: Linear 784->128, ReLU, Linear 128->64, ReLU, Linear 64->10, softmax.
#[derive(Clone, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    buf: Buffers,
}

/// Activations and their gradients for one batch, reused from step to step.
#[derive(Clone, Debug, Default)]
struct Buffers {
    h1: AlignedVec,
    h2: AlignedVec,
    logits: AlignedVec,
    probs: AlignedVec,
    g_logits: AlignedVec,
    g_h2: AlignedVec,
    g_h1: AlignedVec,
}
// ANCHOR_END: mlp

impl Mlp {
    /// PyTorch `state_dict` names of the parameters, in the order of [`Mlp::params_mut`].
    pub const PARAM_NAMES: [&'static str; 6] =
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"];

    pub fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let [i, h1, h2, o] = MLP_SIZES;
        Mlp {
            fc1: Linear::new(i, h1, &mut rng),
            fc2: Linear::new(h1, h2, &mut rng),
            fc3: Linear::new(h2, o, &mut rng),
            buf: Buffers::default(),
        }
    }

    fn resize(&mut self, batch: usize) {
        let [_, h1, h2, o] = MLP_SIZES;
        let b = &mut self.buf;
        ensure(&mut b.h1, batch * h1);
        ensure(&mut b.h2, batch * h2);
        for buf in [&mut b.logits, &mut b.probs, &mut b.g_logits] {
            ensure(buf, batch * o);
        }
        ensure(&mut b.g_h2, batch * h2);
        ensure(&mut b.g_h1, batch * h1);
    }

    // ANCHOR: mlp_forward
    /// x `[batch, 784]` -> logits `[batch, 10]`
    pub fn forward(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        let batch = x.len() / MLP_SIZES[0];
        self.resize(batch);
        let b = &mut self.buf;
        self.fc1.forward(k, batch, x, &mut b.h1);
        ReLU.forward(k, &mut b.h1);
        self.fc2.forward(k, batch, &b.h1, &mut b.h2);
        ReLU.forward(k, &mut b.h2);
        self.fc3.forward(k, batch, &b.h2, &mut b.logits);
        &b.logits
    }
    // ANCHOR_END: mlp_forward

    // ANCHOR: mlp_backward
    /// Forward, loss and backward for one batch: leaves dL/dparam in every parameter's
    /// `grad`. The optimiser step is separate ([`crate::train::Sgd::step`]).
    pub fn forward_backward(&mut self, k: &Kernels, x: &[f32], labels: &[u8]) -> StepStats {
        let batch = labels.len();
        assert_eq!(x.len(), batch * MLP_SIZES[0], "x must be [batch, 784]");
        self.forward(k, x);
        let classes = MLP_SIZES[3];
        let b = &mut self.buf;
        let loss = loss::softmax_cross_entropy(k, classes, &b.logits, labels, &mut b.probs, &mut b.g_logits);
        let correct = count_correct(&b.logits, labels, classes);

        self.fc3.backward(k, batch, &b.h2, &b.g_logits, Some(&mut b.g_h2));
        ReLU.backward(k, &b.h2, &mut b.g_h2);
        self.fc2.backward(k, batch, &b.h1, &b.g_h2, Some(&mut b.g_h1));
        ReLU.backward(k, &b.h1, &mut b.g_h1);
        self.fc1.backward(k, batch, x, &b.g_h1, None);
        StepStats { loss, correct }
    }
    // ANCHOR_END: mlp_backward

    /// The predicted digit of each image.
    pub fn predict(&mut self, k: &Kernels, x: &[f32]) -> Vec<u8> {
        let logits = self.forward(k, x);
        logits.chunks_exact(MLP_SIZES[3]).map(argmax).collect()
    }

    pub fn params(&self) -> [&Param; 6] {
        [&self.fc1.weight, &self.fc1.bias, &self.fc2.weight, &self.fc2.bias, &self.fc3.weight, &self.fc3.bias]
    }

    pub fn params_mut(&mut self) -> [&mut Param; 6] {
        [
            &mut self.fc1.weight,
            &mut self.fc1.bias,
            &mut self.fc2.weight,
            &mut self.fc2.bias,
            &mut self.fc3.weight,
            &mut self.fc3.bias,
        ]
    }
}

fn argmax(row: &[f32]) -> u8 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u8
}

fn count_correct(logits: &[f32], labels: &[u8], classes: usize) -> usize {
    logits.chunks_exact(classes).zip(labels).filter(|(row, label)| argmax(row) == **label).count()
}
