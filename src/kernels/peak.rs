//! Chapter 4 onwards: the machine's peak, the yardstick of every benchmark.
//!
//! "40 GFLOP/s" means little until it is set against what the core can do. The peak loops
//! keep 12 independent accumulators in registers and do nothing but arithmetic on them: no
//! loads, no stores, no dependencies the core has to wait for. Timing one of them gives the
//! most FLOPs per second that instruction set can reach on this core; `examples/bench_report`
//! reports every kernel as a percentage of it.

use super::isa::{Isa, IsaError};
use super::table::Kernels;
use std::hint::black_box;

// ANCHOR: peak_flops
/// Runs `iterations` rounds of the peak loop of `isa` on the calling thread and returns the
/// floating-point operations it performed (a fused multiply-add counts as two). Time the call
/// to get the peak: FLOPs / seconds.
///
/// | level  | one iteration                                  | FLOPs |
/// | ------ | ---------------------------------------------- | ----: |
/// | scalar | 6 `mulss` and 6 `addss` on independent chains  |    12 |
/// | sse    | 6 `mulps` and 6 `addps` (SSE has no FMA)       |    48 |
/// | avx2   | 12 `vfmadd` on `ymm` registers                 |   192 |
/// | avx512 | 12 `vfmadd` on `zmm` registers                 |   384 |
pub fn peak_flops(isa: Isa, iterations: u64) -> Result<u64, IsaError> {
    // `a` and `b` come through `black_box`: with constants the compiler could simplify the
    // arithmetic (x * 1 is x) or, for the scalar loop, pack the chains into SSE vectors.
    let run = run(isa, iterations, black_box(1.0), black_box(1.0))?;
    black_box(run.checksum);
    Ok(run.flops)
}
// ANCHOR_END: peak_flops

/// What one peak loop did: its FLOPs and the sum of its accumulators.
#[derive(Clone, Copy, Debug)]
struct PeakRun {
    flops: u64,
    checksum: f32,
}

/// The peak loop of `isa`, from its kernel table: one dispatch for the kernels and their peak.
fn run(isa: Isa, iterations: u64, a: f32, b: f32) -> Result<PeakRun, IsaError> {
    let (flops, checksum) = Kernels::for_isa(isa)?.peak(iterations, a, b);
    Ok(PeakRun { flops, checksum })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the peak loop of `isa` must return, worked out one lane at a time in f64: `lanes`
    /// copies of each chain; chains that multiply then add (FMA) or, without FMA, half of them
    /// only multiplying and half only adding. Every chain `c` starts at `c`.
    fn expected_checksum(isa: Isa, iterations: u64, a: f32, b: f32) -> f64 {
        let (a, b) = (f64::from(a), f64::from(b));
        let chains: Vec<Box<dyn Fn(f64) -> f64>> = match isa {
            Isa::Scalar | Isa::Sse => {
                let mul: Vec<Box<dyn Fn(f64) -> f64>> = (0..6).map(|_| Box::new(move |x| x * a) as _).collect();
                let add = (0..6).map(|_| Box::new(move |x| x + b) as _);
                mul.into_iter().chain(add).collect()
            }
            Isa::Avx2 | Isa::Avx512 => (0..12).map(|_| Box::new(move |x: f64| x * a + b) as _).collect(),
        };
        let per_lane: f64 =
            chains.iter().enumerate().map(|(c, step)| (0..iterations).fold(c as f64, |x, _| step(x))).sum();
        per_lane * isa.lanes() as f64
    }

    /// The loops do the operations they claim, as many times as they claim: the sum of the
    /// accumulators matches a lane-by-lane model of the loop. `a = -1` flips the multiply
    /// chains at every iteration and `b = 1` counts iterations in the add chains, so a missing
    /// chain, lane or iteration changes the sum. (All values are small integers: exact in f32.)
    #[test]
    fn peak_loops_do_the_work_they_count() {
        for isa in Isa::available() {
            let per_iteration = match isa {
                Isa::Scalar => 12,
                Isa::Sse => 48,
                Isa::Avx2 => 192,
                Isa::Avx512 => 384,
            };
            for iterations in [0, 1, 2, 3, 10, 101] {
                for (a, b) in [(1.0, 1.0), (-1.0, 1.0), (-1.0, 0.0)] {
                    let got = run(isa, iterations, a, b).unwrap();
                    assert_eq!(got.flops, iterations * per_iteration, "{isa}: FLOPs of {iterations} iterations");
                    let want = expected_checksum(isa, iterations, a, b);
                    assert_eq!(
                        f64::from(got.checksum),
                        want,
                        "{isa}: checksum after {iterations} iterations with a = {a}, b = {b}"
                    );
                }
            }
            assert_eq!(peak_flops(isa, 1000), Ok(1000 * per_iteration));
        }
    }

    #[test]
    fn unavailable_levels_are_an_error() {
        for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_available()) {
            assert_eq!(peak_flops(isa, 10), Err(isa.check().unwrap_err()));
        }
    }
}
