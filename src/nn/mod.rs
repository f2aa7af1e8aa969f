//! Chapter 2 onwards: the layers, named as in PyTorch.
//!
//! A layer owns its parameters and knows its shapes; the arithmetic happens in the kernel table
//! it is handed. Layers keep no hidden state between forward and backward: the model that calls
//! them passes the activations the backward pass needs, so what is stored is visible there.

mod activation;
mod conv2d;
mod flatten;
mod linear;
pub mod loss;
mod param;
mod pool;

pub use activation::{ReLU, Sigmoid, Softmax};
pub use conv2d::Conv2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use param::Param;
pub use pool::MaxPool2d;
