//! Chapter 4's staircase: every step of the SSE forward convolution against the scalar kernel,
//! on generated shapes (batches of one, odd heights and widths below, at and above a tile of
//! pixels, input channels of any count), into output buffers filled with NaN so that an
//! element a step forgets to write fails the comparison.
mod common;

use common::{REQUIRE_ISA_ENV, compare, rand_vec, sum_atol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::bench::staircase::{Step, StepError, conv2d_forward, staircase_ops};
use simd_cnn::kernels::{Conv2dShape, Isa, Kernels};

/// Whether SSE may run here; if not, says why on one line, or fails when `SIMD_CNN_REQUIRE_ISA`
/// asks for SSE or more.
fn sse_runs() -> bool {
    match Isa::Sse.check() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var(REQUIRE_ISA_ENV).ok().and_then(|v| v.parse::<Isa>().ok());
            if required.is_some_and(|r| r >= Isa::Sse) {
                panic!("{REQUIRE_ISA_ENV} asks for SSE but it cannot run: {why}");
            }
            println!("skipping the staircase: {why}");
            false
        }
    }
}

const WIDTHS: [usize; 10] = [1, 2, 3, 5, 6, 7, 11, 15, 17, 33];
const IN_CHANNELS: [usize; 7] = [1, 2, 3, 5, 16, 17, 32];
/// Steps 1 to 3 take whole vectors of output channels: one vector, an odd number of vectors
/// (a group of two and one left over), and the layers' counts.
const OUT_VECTORS: [usize; 6] = [4, 8, 12, 20, 32, 64];
/// Step 4 takes any count.
const OUT_ANY: [usize; 8] = [1, 3, 4, 5, 12, 17, 33, 64];

fn shapes(c_outs: &'static [usize]) -> impl Strategy<Value = (Conv2dShape, u64)> + Clone {
    (
        prop_oneof![Just(1usize), Just(2)],
        1..=6usize,
        prop::sample::select(&WIDTHS[..]),
        prop::sample::select(&IN_CHANNELS[..]),
        prop::sample::select(c_outs),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c_in, c_out, seed)| (Conv2dShape { n, h, w, c_in, c_out }, seed))
}

/// `step` against the scalar kernel on `cases` generated shapes, with and without the ReLU.
fn matches_scalar(step: Step, cases: u32, c_outs: &'static [usize]) {
    if !sse_runs() {
        return;
    }
    let scalar = Kernels::scalar();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&shapes(c_outs), |(s, seed)| {
        let (x, w, b) =
            (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
        for relu in [false, true] {
            let (mut got, mut want) = (vec![f32::NAN; s.output_len()], vec![0.0; s.output_len()]);
            conv2d_forward(step, &s, &x, &w, &b, &mut got, relu).map_err(|e| TestCaseError::fail(e.to_string()))?;
            scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
            compare(&format!("{step} {s:?} relu {relu}"), &got, &want, sum_atol(9 * s.c_in), 1e-4)
                .map_err(TestCaseError::fail)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn step1_raw_intrinsics_matches_scalar() {
    matches_scalar(Step::RawIntrinsics, 48, &OUT_VECTORS);
}

#[test]
fn step2_one_pixel_in_registers_matches_scalar() {
    matches_scalar(Step::PixelInRegisters, 48, &OUT_VECTORS);
}

#[test]
fn step3_tile_matches_scalar() {
    matches_scalar(Step::Tile, 48, &OUT_VECTORS);
}

#[test]
fn step4_split_borders_matches_scalar_on_any_channel_count() {
    matches_scalar(Step::SplitBorders, 48, &OUT_ANY);
}

#[test]
fn shapes_a_step_cannot_compute_are_refused_with_an_error() {
    if !sse_runs() {
        return;
    }
    for c_out in [6, 0] {
        let s = Conv2dShape { n: 1, h: 3, w: 3, c_in: 2, c_out };
        let (x, w, b) = (rand_vec(s.input_len(), 1), rand_vec(s.weight_len(), 2), rand_vec(s.c_out, 3));
        for step in Step::ALL {
            let mut out = vec![f32::NAN; s.output_len()];
            let result = conv2d_forward(step, &s, &x, &w, &b, &mut out, false);
            if step == Step::SplitBorders && c_out > 0 {
                assert_eq!(result, Ok(()));
                continue;
            }
            assert_eq!(result, Err(StepError::Channels { step, c_out }));
            assert!(out.iter().all(|v| v.is_nan()), "{step} wrote into the output before refusing it");
            let message = format!(
                "{step} cannot compute {c_out} output channels: steps 1 to 3 take a positive multiple of 4, step 4 any positive number"
            );
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }
}

#[test]
fn staircase_ops_are_the_scalar_kernel_then_four_steps_for_each_convolution() {
    let names: Vec<String> = staircase_ops().into_iter().map(|op| op.name).collect();
    let mut want = Vec::new();
    for layer in ["conv1", "conv2", "conv3"] {
        want.push(format!("{layer}_forward"));
        want.extend((1..=4).map(|i| format!("{layer}_forward_sse_step{i}")));
    }
    assert_eq!(names, want);
}
