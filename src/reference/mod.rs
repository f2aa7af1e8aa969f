//! The oracle: naive, obviously correct versions of every op, in PyTorch's layouts (NCHW
//! activations, OIHW convolution weights) and with every sum accumulated in `f64`.
//!
//! Nothing here is fast and nothing here will ever change: every kernel in the crate, scalar
//! or SIMD, is tested against these functions, and these functions are tested against PyTorch
//! itself (`tests/golden/`). Each one is a transcription of the formula in its doc comment.

// Index loops on purpose: they read like the formulas they transcribe.
#![allow(clippy::needless_range_loop)]

mod activation;
mod conv2d;
mod linear;
mod loss;
mod pool;

pub use activation::{relu_backward, relu_forward, sigmoid, softmax};
pub use conv2d::{conv2d_backward, conv2d_forward};
pub use linear::{linear_backward, linear_forward};
pub use loss::{bce_with_logits, softmax_cross_entropy};
pub use pool::{max_pool2d_backward, max_pool2d_forward};
