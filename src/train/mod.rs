//! Chapter 3: the optimiser and the pieces of a training loop.

mod sgd;

pub use sgd::Sgd;
