//! Train and validation: a split that depends only on the labels and a seed.

use super::{CLASSES, CatDog, CatDogError};
use crate::tensor::init::rng;
use rand::seq::SliceRandom;

/// Indices into a data set, each in exactly one of the two lists, both sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

impl Split {
    // ANCHOR: split
    /// Puts `round(val_fraction * n_c)` images of each class `c` (chosen at random with `seed`)
    /// in `val` and the rest in `train`, so both keep the proportion of cats and dogs. The same
    /// labels and seed always give the same split.
    ///
    /// A split that cannot train and validate the network is an error: a class missing from
    /// `train`, or no image in `val` although `val_fraction` asks for some.
    pub fn new(labels: &[u8], val_fraction: f64, seed: u64) -> Result<Split, CatDogError> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(CatDogError::Invalid(format!("the validation fraction {val_fraction} is not in [0, 1)")));
        }
        let mut rng = rng(seed);
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for class in 0..CLASSES.len() as u8 {
            let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
            members.shuffle(&mut rng);
            let n_val = (members.len() as f64 * val_fraction).round() as usize;
            if n_val == members.len() {
                return Err(CatDogError::Invalid(format!(
                    "no {} image left for training: {} of them, a validation fraction of {val_fraction}",
                    CLASSES[class as usize].to_lowercase(),
                    members.len()
                )));
            }
            val.extend_from_slice(&members[..n_val]);
            train.extend_from_slice(&members[n_val..]);
        }
        if val_fraction > 0.0 && val.is_empty() {
            return Err(CatDogError::Invalid(format!(
                "no validation image: {} images are too few for a validation fraction of {val_fraction}",
                labels.len()
            )));
        }
        train.sort_unstable();
        val.sort_unstable();
        Ok(Split { train, val })
    }
    // ANCHOR_END: split
}

impl CatDog {
    /// [`Split::new`] of this data set's labels (`val_fraction` 0.2 is the usual choice).
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<Split, CatDogError> {
        Split::new(self.labels(), val_fraction, seed)
    }
}

// ANCHOR: sub_seed
/// The seed of stream `(a, b)` of a run seeded with `seed`, e.g. the shuffle of epoch `b`: every
/// pair gets its own, unrelated generator, and the same triple always the same one. (The
/// SplitMix64 finaliser, so that nearby inputs give far-apart seeds.)
pub fn sub_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
// ANCHOR_END: sub_seed
