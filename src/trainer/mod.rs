//! Chapter 9: the cat/dog trainer, everything a run of `cargo run --example train_catdog` is
//! made of above the network, the data and the checkpoint files.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `run.rs` | [`Trainer`]: the loop, its [`Config`], the [`Event`]s it reports, resume and stop |
//! | `state.rs` | [`TrainState`]: where a run stands, saved in every checkpoint |
//! | `plot.rs` | [`training_curves`]: the loss and accuracy of every epoch, as an SVG |
//! | `pictures.rs` | [`conv1_filters`], [`feature_maps`]: what the network learned, as PNGs |
//!
//! The chapter 3 pieces it is built from (the optimiser, the epoch order, the loss guard, the
//! learning-rate schedule) stay in [`crate::train`]; the checkpoint files are [`crate::checkpoint`].

mod pictures;
mod plot;
mod run;
mod state;

pub use pictures::{PhotoError, conv1_filters, feature_maps, photo_input, save_png};
pub use plot::{PlotError, training_curves};
pub use run::{Config, Event, MAX_EPOCHS, MAX_THREADS, Outcome, TrainError, Trainer, check_outputs, run_split};
pub use state::{EpochMetrics, Hyperparameters, TrainState};
