//! Chapter 3: the optimiser and the pieces of a training loop.

mod epoch;
mod evaluate;
mod sgd;

#[cfg(feature = "ch9")]
mod schedule;

pub use epoch::{Divergence, EpochOrder, EpochStats, LossGuard};
pub use evaluate::{MnistEvaluator, argmax};
#[cfg(feature = "ch9")]
pub use schedule::{LrSchedule, UnknownSchedule};
pub use sgd::Sgd;
