//! Chapter 11: the vectorised `exp` of every instruction set this CPU has, over every `f32`,
//! its special values, and the sigmoid and softmax built on it against the scalar kernels.
mod common;

use common::{compare, for_each_isa};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::math::{EXP_MAX_ULPS, exp_errors, ulp_error};
use simd_cnn::kernels::{Isa, Kernels};

/// The SIMD tables available here.
fn simd_tables() -> Vec<&'static Kernels> {
    let mut tables = Vec::new();
    for_each_isa(|k| {
        if k.isa() != Isa::Scalar {
            tables.push(k)
        }
    });
    tables
}

// ANCHOR: every_f32
/// All 2^32 inputs, against `f64::exp`: the bound holds everywhere, NaNs and infinities
/// included (an infinity or a NaN where the exact result is neither counts as an infinite
/// error).
#[test]
fn exp_is_within_the_bound_for_every_f32() {
    for e in exp_errors(&simd_tables()) {
        println!("{}: max {:.3} ulp at x = {:e}", e.isa, e.max_ulps, e.worst_input);
        assert_eq!(e.inputs, 1 << 32);
        assert!(
            e.max_ulps <= EXP_MAX_ULPS,
            "{}: exp({:e}) is {:.3} ulp off, the bound is {EXP_MAX_ULPS}",
            e.isa,
            e.worst_input,
            e.max_ulps
        );
    }
}
// ANCHOR_END: every_f32

#[test]
fn ulp_error_measures_in_units_of_the_result() {
    assert_eq!(ulp_error(1.0, 1.0), 0.0);
    assert_eq!(ulp_error(1.0 + f32::EPSILON, 1.0), 1.0);
    assert_eq!(ulp_error(1.0, 1.0 + f32::EPSILON as f64 / 4.0), 0.25);
    assert_eq!(ulp_error(0.0, 2f64.powi(-149)), 1.0);
    assert_eq!(ulp_error(f32::INFINITY, 1e39), 0.0);
    assert_eq!(ulp_error(f32::MAX, 1e39), f64::INFINITY);
    assert_eq!(ulp_error(f32::INFINITY, 1e38), f64::INFINITY);
    assert_eq!(ulp_error(f32::NAN, f64::NAN), 0.0);
    assert_eq!(ulp_error(0.0, f64::NAN), f64::INFINITY);
}

#[test]
fn exp_special_values() {
    let x = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        88.72,  // just below f32::MAX
        88.73,  // just above
        89.5,   // above the clamp
        -87.33, // near f32::MIN_POSITIVE
        -100.0, // subnormal
        -103.9, // the smallest subnormals
        -104.5, // rounds to 0
        f32::MAX,
        f32::MIN,
    ];
    for k in simd_tables() {
        let mut y = [0.0; 14];
        k.exp(&x, &mut y);
        let isa = k.isa();
        assert!(y[0].is_nan(), "{isa}: exp(NaN) = {}", y[0]);
        assert_eq!(y[1..5], [f32::INFINITY, 0.0, 1.0, 1.0], "{isa}");
        assert!(y[5].is_finite() && y[5] > 3.3e38, "{isa}: exp(88.72) = {}", y[5]);
        assert_eq!([y[6], y[7]], [f32::INFINITY; 2], "{isa}");
        assert!(y[8] >= f32::MIN_POSITIVE * 0.99, "{isa}: exp(-87.33) = {}", y[8]);
        assert!(y[9] > 0.0 && y[9] < f32::MIN_POSITIVE, "{isa}: exp(-100) = {} is not subnormal", y[9]);
        assert!(y[10] > 0.0, "{isa}: exp(-103.9) = {} flushed", y[10]);
        assert_eq!([y[11], y[12], y[13]], [0.0, f32::INFINITY, 0.0], "{isa}");
    }
}

/// Lengths that are not a multiple of any vector width, and values over the whole range of a
/// logit, for the sigmoid and softmax tables against the scalar kernels (which use `f32::exp`).
#[test]
fn sigmoid_and_softmax_match_scalar() {
    let scalar = Kernels::scalar();
    let strategy = (1..=70usize, prop::sample::select(&[1usize, 2, 3, 10, 17][..]), any::<u64>());
    for k in simd_tables() {
        let mut runner = TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() });
        let result = runner.run(&strategy, |(rows, cols, seed)| {
            let x: Vec<f32> = common::rand_vec(rows * cols, seed).iter().map(|v| v * 40.0).collect();
            let (mut got, mut want) = (vec![f32::NAN; x.len()], vec![0.0; x.len()]);
            k.sigmoid_forward(&x, &mut got);
            scalar.sigmoid_forward(&x, &mut want);
            compare("sigmoid", &got, &want, 1e-30, 1e-6).map_err(TestCaseError::fail)?;
            k.softmax_forward(cols, &x, &mut got);
            scalar.softmax_forward(cols, &x, &mut want);
            compare("softmax", &got, &want, 1e-30, 2e-6).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!("{}: {e}", k.isa());
        }
    }
}

/// Chapter 2's overflow test, for the vectorised tables.
#[test]
fn vectorised_sigmoid_and_softmax_do_not_overflow() {
    for k in simd_tables() {
        let x = [-1000.0f32, -100.0, 0.0, 100.0, 1000.0];
        let mut s = [0.0; 5];
        k.sigmoid_forward(&x, &mut s);
        assert_eq!([s[0], s[2], s[3], s[4]], [0.0, 0.5, 1.0, 1.0], "{}", k.isa());
        assert!(s[1] > 0.0 && s[1] < 1e-40, "{}: sigmoid(-100) = {}", k.isa(), s[1]);
        let mut p = [0.0; 5];
        k.softmax_forward(5, &x, &mut p);
        assert!(p.iter().all(|v| v.is_finite()), "{}: {p:?}", k.isa());
        assert_eq!(p[4], 1.0, "{}", k.isa());
    }
}
