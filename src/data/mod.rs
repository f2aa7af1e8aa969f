//! Data sets: where they live, how they are read, and how they are fetched when missing.
//!
//! Every loader looks in the directory it is given; the examples default to
//! `$SIMD_CNN_DATA/<set>`, else `data/<set>` (see [`default_dir`]).

pub mod download;

#[cfg(feature = "ch9")]
pub mod catdog;
pub mod mnist;

use std::path::PathBuf;

/// The environment variable naming the folder that holds the data sets.
pub const DATA_ENV: &str = "SIMD_CNN_DATA";

/// `$SIMD_CNN_DATA/<name>` if the variable is set, else `data/<name>`.
pub fn default_dir(name: &str) -> PathBuf {
    match std::env::var_os(DATA_ENV) {
        Some(root) if !root.is_empty() => PathBuf::from(root).join(name),
        _ => PathBuf::from("data").join(name),
    }
}
