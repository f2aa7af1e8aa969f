//! Test-set accuracy of the MNIST network, with buffers allocated once.

use crate::data::mnist::{IMAGE_LEN, MnistSplit};
use crate::kernels::Kernels;
use crate::model::Mlp;

// ANCHOR: evaluate
/// Measures the [`Mlp`] on a whole MNIST split, `chunk` images at a time. The index, image and
/// label buffers are allocated here once, for a full chunk, and reused by every chunk of every
/// call, so evaluating after each epoch costs no allocation.
#[derive(Clone, Debug)]
pub struct MnistEvaluator {
    chunk: usize,
    indices: Vec<usize>,
    x: Vec<f32>,
    labels: Vec<u8>,
}

impl MnistEvaluator {
    /// Buffers for `chunk` images (`chunk >= 1`): `chunk * 784` floats.
    pub fn new(chunk: usize) -> Self {
        assert!(chunk > 0, "an evaluation chunk holds at least one image");
        MnistEvaluator {
            chunk,
            indices: Vec::with_capacity(chunk),
            x: vec![0.0; chunk * IMAGE_LEN],
            labels: vec![0; chunk],
        }
    }

    /// The fraction of `split` the model classifies right: the digit with the largest logit
    /// (the first one, on a tie) against the label. An empty split scores 0.
    pub fn accuracy(&mut self, k: &Kernels, model: &mut Mlp, split: &MnistSplit) -> f64 {
        let mut correct = 0;
        let mut start = 0;
        while start < split.len() {
            let n = self.chunk.min(split.len() - start);
            self.indices.clear();
            self.indices.extend(start..start + n);
            let (x, labels) = (&mut self.x[..n * IMAGE_LEN], &mut self.labels[..n]);
            split.batch(&self.indices, x, labels);
            let logits = model.forward(k, x);
            let classes = logits.len() / n;
            correct += logits
                .chunks_exact(classes)
                .zip(labels.iter())
                .filter(|(row, l)| argmax(row) == usize::from(**l))
                .count();
            start += n;
        }
        if split.is_empty() { 0.0 } else { correct as f64 / split.len() as f64 }
    }
}
// ANCHOR_END: evaluate

/// The index of the largest value, the first one on a tie. Every comparison with NaN is false, so
/// a NaN never displaces an earlier value.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}
