//! Chapter 3: the optimiser and the pieces of a training loop.

mod epoch;
mod evaluate;
mod sgd;

pub use epoch::{Divergence, EpochOrder, EpochStats, LossGuard};
pub use evaluate::{MnistEvaluator, argmax};
pub use sgd::Sgd;
