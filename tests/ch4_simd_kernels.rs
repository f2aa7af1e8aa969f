//! Chapters 4-6: every SIMD kernel of every instruction set this CPU has, against the scalar
//! kernel, on shapes chosen to break them: widths 1, 3, 15, 17, 33, three input channels,
//! batches of one, lengths that are not a multiple of any vector width. Proptest generates the
//! shapes and data and, on a failure, shrinks them to the smallest one that still fails.
mod common;

use common::{compare, rand_vec, same_bits, sum_atol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::{Conv2dShape, Isa, Kernels, LinearShape, Pool2dShape};
use simd_cnn::tensor::AlignedVec;

/// Runs `check` on `cases` generated inputs for every SIMD instruction set available here.
fn for_each_simd_isa<T: std::fmt::Debug>(
    cases: u32,
    strategy: impl Strategy<Value = T> + Clone,
    check: impl Fn(&Kernels, &T) -> Result<(), TestCaseError>,
) {
    common::for_each_isa(|k| {
        if k.isa() == Isa::Scalar {
            return;
        }
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        if let Err(e) = runner.run(&strategy.clone(), |input| check(k, &input)) {
            panic!("{}: {e}", k.isa());
        }
    });
}

/// `common::compare` as a proptest failure, which proptest then shrinks.
fn close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Result<(), TestCaseError> {
    compare(what, got, want, atol, rtol).map_err(TestCaseError::fail)
}

// From chapter 7 on, 11, 14, 15 and 33 are rows whose AVX-512 two-vector tiles are 9, 12, 9 and 11 pixels
// wide (`pixels_per_tile`; 17 takes 9 and 40 takes 11).
const WIDTHS: [usize; 11] = [1, 2, 3, 7, 8, 11, 14, 15, 17, 33, 40];
const CHANNELS: [usize; 9] = [1, 3, 4, 5, 16, 17, 32, 33, 64];

fn conv_shapes() -> impl Strategy<Value = (Conv2dShape, u64)> + Clone {
    (
        1..=2usize,
        1..=5usize,
        prop::sample::select(&WIDTHS[..]),
        prop::sample::select(&CHANNELS[..]),
        prop::sample::select(&CHANNELS[..]),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c_in, c_out, seed)| (Conv2dShape { n, h, w, c_in, c_out }, seed))
}

#[test]
fn conv2d_forward_matches_scalar() {
    let scalar = Kernels::scalar();
    for_each_simd_isa(40, conv_shapes(), |k, &(s, seed)| {
        let (x, w, b) =
            (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
        for relu in [false, true] {
            let (mut got, mut want) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
            k.conv2d_forward(&s, &x, &w, &b, &mut got, relu);
            scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
            close(&format!("conv2d_forward {s:?} relu {relu}"), &got, &want, sum_atol(9 * s.c_in), 1e-4)?;
        }
        Ok(())
    });
}

#[test]
fn conv2d_backward_input_matches_scalar() {
    let scalar = Kernels::scalar();
    for_each_simd_isa(40, conv_shapes(), |k, &(s, seed)| {
        let (g, w) = (rand_vec(s.output_len(), seed), rand_vec(s.weight_len(), seed ^ 1));
        let (mut got, mut want) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
        k.conv2d_backward_input(&s, &g, &w, &mut got);
        scalar.conv2d_backward_input(&s, &g, &w, &mut want);
        close(&format!("conv2d_backward_input {s:?}"), &got, &want, sum_atol(9 * s.c_out), 1e-4)
    });
}

#[test]
fn conv2d_backward_weight_matches_scalar() {
    let scalar = Kernels::scalar();
    for_each_simd_isa(40, conv_shapes(), |k, &(s, seed)| {
        let (x, g) = (rand_vec(s.input_len(), seed), rand_vec(s.output_len(), seed ^ 1));
        let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; s.c_out]);
        let (mut want_w, mut want_b) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
        k.conv2d_backward_weight(&s, &x, &g, &mut gw, &mut gb);
        scalar.conv2d_backward_weight(&s, &x, &g, &mut want_w, &mut want_b);
        // Sums over up to n*h*w = 400 pixels: allow for the different order of additions.
        close(&format!("conv2d_backward_weight {s:?}"), &gw, &want_w, 1e-4, 1e-4)?;
        close(&format!("conv2d_backward_bias {s:?}"), &gb, &want_b, 1e-4, 1e-4)
    });
}

fn pool_shapes() -> impl Strategy<Value = (Pool2dShape, u64, bool)> + Clone {
    (1..=2usize, 1..=7usize, 1..=9usize, prop::sample::select(&CHANNELS[..]), any::<u64>(), any::<bool>())
        .prop_map(|(n, h, w, c, seed, ties)| (Pool2dShape { n, h, w, c }, seed, ties))
}

/// Random values, or with `ties` a handful of levels (flat image regions: equal neighbours,
/// and zeros as a ReLU leaves them) so that windows have several maxima.
fn pool_input(len: usize, seed: u64, ties: bool) -> Vec<f32> {
    let x = rand_vec(len, seed);
    if ties { x.iter().map(|v| (v * 2.0).round().max(0.0)).collect() } else { x }
}

#[test]
fn max_pool2d_matches_scalar_exactly_even_with_ties() {
    let scalar = Kernels::scalar();
    for_each_simd_isa(64, pool_shapes(), |k, &(s, seed, ties)| {
        let x = pool_input(s.input_len(), seed, ties);
        let (mut y, mut want_y) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
        k.max_pool2d_forward(&s, &x, &mut y);
        scalar.max_pool2d_forward(&s, &x, &mut want_y);
        prop_assert_eq!(&y, &want_y, "forward {:?}", s);
        let g = rand_vec(s.output_len(), seed ^ 3);
        for relu in [false, true] {
            let (mut gx, mut want_gx) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
            k.max_pool2d_backward(&s, &x, &y, &g, &mut gx, relu);
            scalar.max_pool2d_backward(&s, &x, &y, &g, &mut want_gx, relu);
            prop_assert_eq!(&gx, &want_gx, "backward {:?} relu {}", s, relu);
        }
        Ok(())
    });
}

fn linear_shapes() -> impl Strategy<Value = (LinearShape, u64)> + Clone {
    (1..=17usize, 1..=70usize, 1..=20usize, any::<u64>())
        .prop_map(|(batch, in_features, out_features, seed)| (LinearShape { batch, in_features, out_features }, seed))
}

fn check_linear(k: &Kernels, s: &LinearShape, seed: u64) -> Result<(), TestCaseError> {
    let scalar = Kernels::scalar();
    let (x, w, b) =
        (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.out_features, seed ^ 2));
    let (mut y, mut want_y) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
    k.linear_forward(s, &x, &w, &b, &mut y);
    scalar.linear_forward(s, &x, &w, &b, &mut want_y);
    let atol = 1e-6 * (s.in_features as f32).sqrt() * 10.0;
    close(&format!("linear_forward {s:?}"), &y, &want_y, atol, 1e-4)?;

    let g = rand_vec(s.output_len(), seed ^ 3);
    let (mut gx, mut want_gx) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
    k.linear_backward_input(s, &g, &w, &mut gx);
    scalar.linear_backward_input(s, &g, &w, &mut want_gx);
    close(&format!("linear_backward_input {s:?}"), &gx, &want_gx, 1e-5, 1e-4)?;

    let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; s.out_features]);
    let (mut want_gw, mut want_gb) = (vec![0.0; s.weight_len()], vec![0.0; s.out_features]);
    k.linear_backward_weight(s, &x, &g, &mut gw, &mut gb);
    scalar.linear_backward_weight(s, &x, &g, &mut want_gw, &mut want_gb);
    close(&format!("linear_backward_weight {s:?}"), &gw, &want_gw, 1e-5, 1e-4)?;
    close(&format!("linear_backward_bias {s:?}"), &gb, &want_gb, 1e-5, 1e-4)
}

#[test]
fn linear_matches_scalar() {
    for_each_simd_isa(64, linear_shapes(), |k, &(s, seed)| check_linear(k, &s, seed));
}

#[test]
fn linear_with_few_outputs_matches_scalar() {
    // Fewer than 4 outputs (fc2 has 1) take dot products along the features: lengths up to
    // several times the four accumulators of 16 lanes, with every kind of tail.
    let shapes = (1..=17usize, 1..=300usize, 1..=3usize, any::<u64>())
        .prop_map(|(batch, in_features, out_features, seed)| (LinearShape { batch, in_features, out_features }, seed));
    for_each_simd_isa(64, shapes, |k, &(s, seed)| check_linear(k, &s, seed));
}

#[test]
fn linear_matches_scalar_across_feature_blocks() {
    // More than one 2048-feature block in the forward pass (and 1536-feature panel in the weight
    // gradient), with a partial vector at the end.
    let shapes = (1..=5usize, 4090..=8300usize, 1..=7usize, any::<u64>())
        .prop_map(|(batch, in_features, out_features, seed)| (LinearShape { batch, in_features, out_features }, seed));
    for_each_simd_isa(6, shapes, |k, &(s, seed)| check_linear(k, &s, seed));
}

#[test]
fn elementwise_kernels_match_scalar() {
    let scalar = Kernels::scalar();
    let strategy = (0..=100usize, any::<u64>(), -2.0f32..2.0, 0.0f32..0.99);
    for_each_simd_isa(64, strategy, |k, &(len, seed, alpha, momentum)| {
        let x = rand_vec(len, seed);
        let (mut got, mut want) = (x.clone(), x.clone());
        k.relu_forward(&mut got);
        scalar.relu_forward(&mut want);
        prop_assert_eq!(&got, &want, "relu_forward len {}", len);

        let g = rand_vec(len, seed ^ 1);
        let (mut got, mut want) = (g.clone(), g.clone());
        k.relu_backward(&x, &mut got);
        scalar.relu_backward(&x, &mut want);
        prop_assert_eq!(&got, &want, "relu_backward len {}", len);

        let (mut got, mut want) = (x.clone(), x.clone());
        k.axpy(alpha, &g, &mut got);
        scalar.axpy(alpha, &g, &mut want);
        close(&format!("axpy len {len}"), &got, &want, 1e-6, 1e-6)?;

        let v0 = rand_vec(len, seed ^ 2);
        let (mut p, mut v, mut want_p, mut want_v) = (x.clone(), v0.clone(), x.clone(), v0.clone());
        k.sgd_momentum_update(&mut p, &g, &mut v, 0.1, momentum);
        scalar.sgd_momentum_update(&mut want_p, &g, &mut want_v, 0.1, momentum);
        close(&format!("sgd velocity len {len}"), &v, &want_v, 1e-6, 1e-6)?;
        close(&format!("sgd param len {len}"), &p, &want_p, 1e-6, 1e-6)
    });
}

#[test]
fn kernels_leave_memory_outside_their_output_alone() {
    // A partial vector at the end of a row must not write past it: run each kernel on a slice
    // of a larger buffer and check the rest is untouched.
    common::for_each_isa(|k| {
        let s = Conv2dShape { n: 1, h: 3, w: 5, c_in: 3, c_out: 17 };
        let mut buf = vec![7.0f32; s.output_len() + 40];
        let (x, w, b) = (rand_vec(s.input_len(), 1), rand_vec(s.weight_len(), 2), rand_vec(17, 3));
        k.conv2d_forward(&s, &x, &w, &b, &mut buf[..s.output_len()], true);
        assert!(buf[s.output_len()..].iter().all(|&v| v == 7.0), "{}: conv2d_forward wrote past its output", k.isa());

        let mut buf = vec![7.0f32; 23 + 40];
        buf[..23].copy_from_slice(&rand_vec(23, 4));
        k.relu_forward(&mut buf[..23]);
        assert!(buf[23..].iter().all(|&v| v == 7.0), "{}: relu_forward wrote past its slice", k.isa());

        // The weight gradient summed in place (rows of whole vectors, on a cache line) stops at
        // its end too.
        let s = Conv2dShape { n: 1, h: 3, w: 5, c_in: 3, c_out: 16 };
        let mut buf = AlignedVec::zeros(s.weight_len() + 40);
        buf.fill(7.0);
        let (x, gy, mut gb) = (rand_vec(s.input_len(), 7), rand_vec(s.output_len(), 8), vec![0.0; 16]);
        k.conv2d_backward_weight(&s, &x, &gy, &mut buf[..s.weight_len()], &mut gb);
        assert!(
            buf[s.weight_len()..].iter().all(|&v| v == 7.0),
            "{}: conv2d_backward_weight wrote past its output",
            k.isa()
        );

        let ls = LinearShape { batch: 3, in_features: 21, out_features: 5 };
        let mut buf = vec![7.0f32; ls.input_len() + 40];
        k.linear_backward_input(&ls, &rand_vec(15, 5), &rand_vec(105, 6), &mut buf[..ls.input_len()]);
        assert!(
            buf[ls.input_len()..].iter().all(|&v| v == 7.0),
            "{}: linear_backward_input wrote past its output",
            k.isa()
        );
    });
}

/// A buffer of `len` floats that starts on a cache line, and one of `len` floats that does not
/// (one or two floats into a larger one): the two ways into the convolution's engine.
fn on_and_off_a_line(len: usize) -> (AlignedVec, Vec<f32>, std::ops::Range<usize>) {
    let buffer = vec![f32::NAN; len + 2];
    let shift = if buffer.as_ptr().addr() % 64 == 60 { 2 } else { 1 };
    assert!(!buffer[shift..].as_ptr().addr().is_multiple_of(64));
    (AlignedVec::zeros(len), buffer, shift..shift + len)
}

/// The forward pass reads the weights where they are when they start on a cache line and the
/// output channels fill whole vectors, as a layer's do (its tensors are 64-byte aligned), and
/// copies them otherwise; the weight gradient is summed in place or in a copy on the same
/// terms. Both ways give the same bits, for every table, and the scalar result.
#[test]
fn weights_read_in_place_give_the_bits_of_a_copy() {
    common::for_each_isa(|k| {
        for c_out in [3, 16, 17, 32, 64] {
            let s = Conv2dShape { n: 2, h: 4, w: 15, c_in: 5, c_out };
            let (x, b, gy) = (rand_vec(s.input_len(), 1), rand_vec(c_out, 2), rand_vec(s.output_len(), 4));
            let (mut aligned, mut buffer, off) = on_and_off_a_line(s.weight_len());
            aligned.copy_from_slice(&rand_vec(s.weight_len(), 3));
            buffer[off.clone()].copy_from_slice(&aligned);
            let forward = |k: &Kernels, w: &[f32]| {
                let mut y = vec![0.0; s.output_len()];
                k.conv2d_forward(&s, &x, w, &b, &mut y, true);
                y
            };
            let in_place = forward(k, &aligned);
            assert!(same_bits(&in_place, &forward(k, &buffer[off.clone()])), "{} forward, c_out {c_out}", k.isa());
            compare("in place", &in_place, &forward(Kernels::scalar(), &aligned), sum_atol(9 * s.c_in), 1e-4)
                .unwrap_or_else(|e| panic!("{}: {e}", k.isa()));

            let (mut gw, mut buffer, off) = on_and_off_a_line(s.weight_len());
            gw.fill(f32::NAN);
            let mut gb = vec![0.0; c_out];
            k.conv2d_backward_weight(&s, &x, &gy, &mut gw, &mut gb);
            k.conv2d_backward_weight(&s, &x, &gy, &mut buffer[off.clone()], &mut gb);
            assert!(same_bits(&gw, &buffer[off]), "{} weight gradient, c_out {c_out}", k.isa());
            let mut want = vec![0.0; s.weight_len()];
            Kernels::scalar().conv2d_backward_weight(&s, &x, &gy, &mut want, &mut gb);
            compare("in place", &gw, &want, sum_atol(s.n * s.h * s.w), 1e-4)
                .unwrap_or_else(|e| panic!("{}: {e}", k.isa()));
        }
    });
}

/// Runs `run` on the scalar table and on every other this CPU has, which must give the same
/// results, and the scalar one a value for every output.
fn same_as_scalar(what: &str, run: impl Fn(&Kernels) -> [Vec<f32>; 4]) {
    let want = run(Kernels::scalar());
    assert!(want.iter().flatten().all(|v| v.is_finite()), "{what}: the scalar kernels left a value unwritten");
    for isa in Isa::available() {
        assert_eq!(run(Kernels::for_isa(isa).unwrap()), want, "{isa:?} {what}");
    }
}

/// A shape with a dimension of 0 (no pixel, or no channel of one kind) goes to the scalar
/// kernels, on every table: the vector kernels assume at least one of each. A row of width 0
/// once ran its first border tile anyway, reading and writing through the pointers of empty
/// slices, and no input or output channel made the packing panic.
#[test]
fn convolutions_of_empty_shapes_compute_what_scalar_does() {
    for (n, h, w, c_in, c_out) in
        [(1, 3, 0, 3, 32), (2, 0, 5, 3, 32), (0, 3, 3, 3, 32), (1, 2, 0, 64, 64), (1, 3, 3, 0, 4), (1, 3, 3, 4, 0)]
    {
        let s = Conv2dShape { n, h, w, c_in, c_out };
        let (x, weight, bias) = (vec![1.0; s.input_len()], vec![1.0; s.weight_len()], vec![-0.5; c_out]);
        same_as_scalar(&format!("{s:?}"), |k| {
            let mut y = vec![f32::NAN; s.output_len()];
            k.conv2d_forward(&s, &x, &weight, &bias, &mut y, true);
            let mut gx = vec![f32::NAN; s.input_len()];
            k.conv2d_backward_input(&s, &y, &weight, &mut gx);
            let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; c_out]);
            k.conv2d_backward_weight(&s, &x, &y, &mut gw, &mut gb);
            [y, gx, gw, gb]
        });
    }
}

/// The same for a linear layer with no image, no feature or no output (no input feature once
/// made a vector kernel panic).
#[test]
fn linear_layers_of_empty_shapes_compute_what_scalar_does() {
    for (batch, in_features, out_features) in [(0, 5, 3), (2, 0, 3), (2, 5, 0), (16, 0, 128), (0, 0, 0)] {
        let s = LinearShape { batch, in_features, out_features };
        let (x, w, b) = (vec![1.0; s.input_len()], vec![1.0; s.weight_len()], vec![0.5; out_features]);
        same_as_scalar(&format!("{s:?}"), |k| {
            let mut y = vec![f32::NAN; s.output_len()];
            k.linear_forward(&s, &x, &w, &b, &mut y);
            let mut gx = vec![f32::NAN; s.input_len()];
            k.linear_backward_input(&s, &y, &w, &mut gx);
            let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; out_features]);
            k.linear_backward_weight(&s, &x, &y, &mut gw, &mut gb);
            [y, gx, gw, gb]
        });
    }
}
