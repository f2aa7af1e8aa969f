//! Chapter 3: the two networks of the book, written out layer by layer.
//!
//! Each model owns its layers and the buffers for its activations and their gradients. The
//! buffers are allocated once for a batch size and reused by every step: a training step
//! allocates nothing, which matters more than one would think (chapter 7).

pub(crate) mod cnn;
mod mlp;

pub use cnn::CatDogCnn;
pub use mlp::Mlp;

/// What one training step reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Examples of the batch the network got right (before the update).
    pub correct: usize,
}

/// Resizes a reusable buffer, keeping its allocation when it is already big enough.
fn ensure(buf: &mut crate::tensor::AlignedVec, len: usize) {
    if buf.len() != len {
        *buf = crate::tensor::AlignedVec::zeros(len);
    }
}
