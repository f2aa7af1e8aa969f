//! Chapter 9: the learning rate over a run.

use std::fmt;
use std::str::FromStr;

// ANCHOR: schedule
/// How the learning rate changes from step to step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrSchedule {
    /// The same learning rate for every step (the original recipe).
    #[default]
    Constant,
    /// Half a cosine from the base learning rate down to zero at the last step: large steps
    /// while the weights are far from any minimum, small ones to settle into one at the end.
    Cosine,
}

impl LrSchedule {
    /// The learning rate of step `step` (counting from 0) of a run of `total` steps.
    pub fn lr(self, base: f32, step: u64, total: u64) -> f32 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}
// ANCHOR_END: schedule

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        })
    }
}

/// A schedule's name that is neither `constant` nor `cosine`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown learning-rate schedule '{0}': expected constant or cosine")]
pub struct UnknownSchedule(pub String);

impl FromStr for LrSchedule {
    type Err = UnknownSchedule;
    fn from_str(s: &str) -> Result<Self, UnknownSchedule> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => Err(UnknownSchedule(s.to_string())),
        }
    }
}
