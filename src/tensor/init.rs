//! Seeded weight initialisation.
//!
//! Every run of this crate that starts from the same seed starts from the same weights, on every
//! machine: the generator is [`Xoshiro256PlusPlus`], a named algorithm whose output `rand`
//! promises not to change (unlike `StdRng`, which may switch algorithms between versions).

use super::Tensor;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Normal, Uniform};

// ANCHOR: rng
/// The random generator used everywhere in the crate.
pub type Rng = Xoshiro256PlusPlus;

/// A generator seeded from a `u64`.
pub fn rng(seed: u64) -> Rng {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}
// ANCHOR_END: rng

// ANCHOR: he_normal
/// He (Kaiming) normal initialisation for a layer followed by ReLU: N(0, 2 / fan_in).
///
/// With this variance the activations keep roughly the same scale from layer to layer, because
/// ReLU zeroes half of its inputs and so halves their second moment.
pub fn he_normal(shape: &[usize], fan_in: usize, rng: &mut Rng) -> Tensor {
    let std = (2.0 / fan_in as f64).sqrt() as f32;
    let normal = Normal::new(0.0f32, std).expect("standard deviation is finite and positive");
    Tensor::from_fn(shape, |_| normal.sample(rng))
}
// ANCHOR_END: he_normal

// ANCHOR: xavier_uniform
/// Xavier (Glorot) uniform initialisation: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)),
/// which keeps the variance of both the forward activations and the backward gradients.
pub fn xavier_uniform(shape: &[usize], fan_in: usize, fan_out: usize, rng: &mut Rng) -> Tensor {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    let uniform = Uniform::new_inclusive(-a, a).expect("bounds are finite and ordered");
    Tensor::from_fn(shape, |_| uniform.sample(rng))
}
// ANCHOR_END: xavier_uniform

/// Uniform values in `[lo, hi)`, for tests and examples.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
    let uniform = Uniform::new(lo, hi).expect("bounds are finite and ordered");
    Tensor::from_fn(shape, |_| uniform.sample(rng))
}
