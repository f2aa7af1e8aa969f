//! Chapter 11: the error of each instruction set's vectorised `exp` over every `f32`, in units
//! in the last place, against `f64::exp`, and what it costs beside `f32::exp`.
//!
//!     cargo run --example exp_error
//!
//! Prints one line per kernel table this CPU can run: the largest error, an input where it
//! occurs, the share of the 2^32 inputs whose result is correctly rounded, and the time of one
//! `exp` over a batch of 4096 values in (-88, 88).

use simd_cnn::bench::{Machine, TimingSettings, time_calls};
use simd_cnn::kernels::math::{EXP_MAX_ULPS, exp_errors};
use simd_cnn::kernels::{Isa, Kernels};

fn main() {
    let tables: Vec<&Kernels> = Isa::ALL.into_iter().filter_map(|isa| Kernels::for_isa(isa).ok()).collect();
    let x: Vec<f32> = (0..4096).map(|i| (i as f32 / 4096.0 - 0.5) * 176.0).collect();
    let mut y = vec![0.0f32; x.len()];
    let settings = TimingSettings { min_run_seconds: 0.2, runs: 5 };
    println!("{}", Machine::detect().cpu_model);
    println!("exp over all 2^32 f32 inputs, against f64::exp (bound: {EXP_MAX_ULPS} ulp)");
    println!("{:<8} {:>9} {:>15} {:>18} {:>14}", "ISA", "max ulp", "at x", "correctly rounded", "ns per value");
    let errors = exp_errors(&tables);
    for (k, e) in tables.iter().zip(&errors) {
        let timing = time_calls(&settings, || k.exp(&x, &mut y));
        let label = if k.isa() == Isa::Scalar { "f32::exp".to_string() } else { k.isa().to_string() };
        println!(
            "{:<8} {:>9.3} {:>15e} {:>17.2}% {:>14.2}",
            label,
            e.max_ulps,
            e.worst_input,
            100.0 * e.correctly_rounded as f64 / e.inputs as f64,
            timing.seconds * 1e9 / x.len() as f64
        );
    }
}
