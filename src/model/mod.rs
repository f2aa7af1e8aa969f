//! Chapter 3: the two networks of the book.
//!
//! The cat/dog network is a table of layers ([`CATDOG`]); its parameter names, their shapes in
//! memory and in PyTorch, the benchmarks' list of layers and the description saved with its
//! weights are all derived from that table ([`Plan`]). One forward pass and one backward pass
//! run any table, on any [`Executor`]: [`Serial`] on one thread here, a pool of threads in
//! chapter 8. [`Network`] builds a network from any other table. The MNIST [`Mlp`] is still
//! written out layer by layer, the way chapter 3 first shows a network.
//!
//! Each model owns its layers and the buffers for its activations and their gradients. The
//! buffers are allocated once for a batch size and reused by every step: a training step
//! allocates nothing, which matters more than one would think (chapter 7).

mod cnn;
#[cfg(feature = "ch11")]
mod int8;
mod mlp;
mod network;
mod table;

pub use cnn::{CATDOG, CATDOG_CHANNELS, CatDogCnn};
#[cfg(feature = "ch11")]
pub use int8::{Calibration, Int8Network};
pub use mlp::Mlp;
pub(crate) use network::check_conv_pool;
pub use network::{Executor, Network, Serial, conv_pool_backward_image, conv_pool_forward_image};
pub use table::{Layer, NAME_ROOM, Plan, Step, StepOp, as_names, spell_param_names};

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
