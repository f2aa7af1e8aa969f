//! Helpers shared by the test files: seeded data, closeness checks that say where they fail,
//! finite differences, and the loop over every instruction set this CPU has.
#![allow(dead_code)]

pub mod http;
#[cfg(feature = "ch9")]
pub mod images;

use simd_cnn::kernels::{Isa, IsaError, Kernels};
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::init::{rng, uniform};

/// Environment variable naming an instruction set whose tests must not be skipped.
pub const REQUIRE_ISA_ENV: &str = "SIMD_CNN_REQUIRE_ISA";

/// A seeded tensor of values in [-1, 1).
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    uniform(shape, -1.0, 1.0, &mut rng(seed))
}

/// A seeded vector of values in [-1, 1).
pub fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    rand_tensor(&[len], seed).as_slice().to_vec()
}

/// A seeded tensor whose values are all distinct and at least `gap` apart (a shuffled ramp
/// with the sign of random values), for ops with kinks: max-pool ties and ReLU's zero.
pub fn distinct_tensor(shape: &[usize], gap: f32, seed: u64) -> Tensor {
    use rand::seq::SliceRandom;
    let len: usize = shape.iter().product();
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rng(seed));
    // k * gap + gap / 2 for k in -len/2..: never zero, never two alike.
    let half = (len / 2) as f32;
    Tensor::from_fn(shape, |i| (order[i] as f32 - half) * gap + gap / 2.0)
}

/// The absolute tolerance for two sums of `terms` products of values in [-1, 1) that add in
/// different orders. Each addition rounds by up to half an ulp of a partial sum that grows like
/// the square root of the terms added, so the two results drift apart by a few `EPSILON * terms`
/// at worst in practice (a sum of 576 products once differed by 1.3e-5 from the f64 value, where
/// a fixed 1e-5 had been allowed); never less than 1e-5. A dropped or doubled term moves the sum
/// by about 0.3, far past this.
pub fn sum_atol(terms: usize) -> f32 {
    (2.0 * f32::EPSILON * terms as f32).max(1e-5)
}

/// Compares `got` with `want` element by element, `|got - want| <= atol + rtol * |want|`, and
/// describes the worst element and how many failed.
pub fn compare(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, expected {}", got.len(), want.len()));
    }
    let mut bad = 0;
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        // A NaN on either side fails: `err > tol` alone would let it through.
        if err.is_nan() || err > atol + rtol * w.abs() {
            bad += 1;
            if worst.is_none_or(|(_, e)| err > e || e.is_nan()) {
                worst = Some((i, err));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, err)) => Err(format!(
            "{what}: {bad} of {} elements differ; worst at {i}: got {} want {} (|diff| {err:e})",
            got.len(),
            got[i],
            want[i]
        )),
    }
}

/// Whether `a` and `b` hold the same floats bit for bit (NaNs included), with no tolerance:
/// what two ways of computing one sum in one order must give.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
}

/// [`compare`], panicking with its description.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    if let Err(e) = compare(what, got, want, atol, rtol) {
        panic!("{e}");
    }
}

// ANCHOR: for_each_isa
/// Calls `f` with the kernel table of every instruction set, from scalar up. An instruction set
/// that cannot run here is skipped with a printed line, unless `SIMD_CNN_REQUIRE_ISA` names it
/// (or a higher one), in which case the skip is a failure.
pub fn for_each_isa(mut f: impl FnMut(&'static Kernels)) {
    let required: Option<Isa> = std::env::var(REQUIRE_ISA_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{REQUIRE_ISA_ENV}: {e}")));
    for isa in Isa::ALL {
        match Kernels::for_isa(isa) {
            Ok(k) => f(k),
            // A level this build does not contain (an earlier chapter's build) is not a skip the
            // requirement is about; a level the CPU or the cap rules out is.
            Err(why @ IsaError::NotCompiled { .. }) => println!("skipping {isa}: {why}"),
            Err(why) if required.is_some_and(|r| isa <= r) => {
                panic!("{REQUIRE_ISA_ENV}={} but {isa} cannot run: {why}", required.unwrap())
            }
            Err(why) => println!("skipping {isa}: {why}"),
        }
    }
}
// ANCHOR_END: for_each_isa

// ANCHOR: numeric_grad
/// Central differences `(f(x + eps e_i) - f(x - eps e_i)) / 2 eps` for each `i` in `indices`.
pub fn numeric_grad(x: &mut [f32], indices: &[usize], eps: f32, mut f: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
    indices
        .iter()
        .map(|&i| {
            let saved = x[i];
            x[i] = saved + eps;
            let plus = f(x);
            x[i] = saved - eps;
            let minus = f(x);
            x[i] = saved;
            (plus - minus) / (2.0 * eps as f64)
        })
        .collect()
}
// ANCHOR_END: numeric_grad

/// Compares analytic gradients at `indices` with numeric ones; `Err` names the worst mismatch.
pub fn check_grad(
    what: &str,
    analytic: &[f32],
    indices: &[usize],
    numeric: &[f64],
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    let mut worst: Option<(usize, f64)> = None;
    for (&i, &num) in indices.iter().zip(numeric) {
        let an = analytic[i] as f64;
        let excess = (an - num).abs() - (atol + rtol * num.abs());
        // A NaN on either side fails: `excess > 0.0` alone would let it through.
        let excess = if excess.is_nan() { f64::INFINITY } else { excess };
        if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => {
            let num = numeric[indices.iter().position(|&j| j == i).unwrap()];
            Err(format!("{what}: gradient at {i} is {} by backprop but {num} by finite differences", analytic[i]))
        }
    }
}

/// Up to `count` indices spread over `0..len` (all of them when `len <= count`).
pub fn sample_indices(len: usize, count: usize, seed: u64) -> Vec<usize> {
    use rand::seq::index::sample;
    if len <= count {
        return (0..len).collect();
    }
    let mut idx = sample(&mut rng(seed), len, count).into_vec();
    idx.sort_unstable();
    idx
}

// ANCHOR: dot64
/// `sum(y * r)` in f64: a scalar "loss" whose gradient with respect to `y` is exactly `r`.
pub fn dot64(y: &[f32], r: &[f32]) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}
// ANCHOR_END: dot64

// ANCHOR: check_directions
/// For a whole network, one coordinate at a time drowns in f32 rounding: the change of the loss
/// is smaller than the noise of thousands of f32 additions. We check each parameter tensor along
/// random directions `d` instead: `(L(w + eps d) - L(w - eps d)) / 2 eps` must equal `<grad, d>`,
/// which sums every element of the gradient and stands far above the noise.
///
/// Even so no single step `eps` suits every direction: a large step moves some ReLU or
/// max-pool across its kink (where the loss is not differentiable), a small one drowns in
/// rounding. So each direction is tried with steps from 1e-3 down to 3e-5 and must agree within
/// 5 % at the step where those two errors balance. (With thousands of kinks in the network
/// that is as close as f32 finite differences get: the same gradient computed by the f64
/// reference ops agrees with ours to 1e-7. The layer tests of `tests/ch3_gradcheck.rs` hold every single element to
/// 0.1 %; this test is about the wiring between layers, where a mistake costs far more than 5 %.)
pub fn check_directions(
    what: &str,
    grad: &[f32],
    values: &[f32],
    seed: u64,
    mut loss: impl FnMut(&[f32]) -> f64,
) -> Result<(), String> {
    const STEPS: [f64; 4] = [1e-3, 3e-4, 1e-4, 3e-5];
    for trial in 0..3 {
        let d = rand_vec(values.len(), seed * 10 + trial);
        let analytic: f64 = grad.iter().zip(&d).map(|(&g, &dv)| g as f64 * dv as f64).sum();
        let mut best = f64::INFINITY;
        for eps in STEPS {
            let moved = |sign: f64| -> Vec<f32> {
                values.iter().zip(&d).map(|(&v, &dv)| (v as f64 + sign * eps * dv as f64) as f32).collect()
            };
            let numeric = (loss(&moved(1.0)) - loss(&moved(-1.0))) / (2.0 * eps);
            // NaN never improves `best`, so a NaN gradient or loss fails.
            best = best.min((numeric - analytic).abs() / analytic.abs().max(1e-6));
        }
        if best > 0.05 {
            return Err(format!(
                "{what}: along direction {trial} backprop says {analytic:e}; finite differences differ by {:.1} % at best",
                best * 100.0
            ));
        }
    }
    Ok(())
}
// ANCHOR_END: check_directions
