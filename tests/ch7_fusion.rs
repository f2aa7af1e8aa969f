//! Chapter 7: a convolution fused with the pool after it. The pool that keeps one byte per
//! window is the pool of chapter 2 on every instruction set (the same maxima, the same
//! gradients, bit for bit, ties and ReLU included); a network that fuses computes the numbers
//! of one that does not; and it keeps the memory chapter 7 counts.
mod common;

use common::{assert_close, check_directions, compare, for_each_isa, rand_vec, same_bits, sum_atol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::bench::roofline::kept_bytes;
use simd_cnn::kernels::{ConvAlgorithm, Isa, Kernels, LinearShape, Pool2dShape};
use simd_cnn::model::{CATDOG, CatDogCnn, Layer, Network, Serial};
use simd_cnn::reference;
use simd_cnn::tensor::{AlignedVec, Tensor};
use simd_cnn::train::Sgd;

const CHANNELS: [usize; 9] = [1, 3, 4, 5, 15, 16, 17, 32, 33];

fn pool_shapes() -> impl Strategy<Value = (Pool2dShape, u64, bool)> + Clone {
    (1..=2usize, 1..=7usize, 1..=9usize, prop::sample::select(&CHANNELS[..]), any::<u64>(), any::<bool>())
        .prop_map(|(n, h, w, c, seed, ties)| (Pool2dShape { n, h, w, c }, seed, ties))
}

/// Random values, or with `ties` a few levels with zeros and negatives (what a ReLU and flat
/// regions leave), so that windows have several maxima and maxima that are not positive.
fn pool_input(len: usize, seed: u64, ties: bool) -> Vec<f32> {
    let x = rand_vec(len, seed);
    if ties { x.iter().map(|v| (v * 2.0).round()).collect() } else { x }
}

// ANCHOR: winners_test
/// On every instruction set: the pooled map is chapter 2's pool's, the winners are the scalar
/// kernel's, and the backward pass from the winners is chapter 2's backward pass from the
/// input and output, with and without the ReLU before it. Equal, not close: a pool moves
/// numbers, it does not compute new ones.
#[test]
fn the_pool_that_keeps_its_winners_is_the_pool_bit_for_bit() {
    let scalar = Kernels::scalar();
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 96, failure_persistence: None, ..Config::default() });
        let outcome = runner.run(&pool_shapes(), |(s, seed, ties)| {
            let x = pool_input(s.input_len(), seed, ties);
            let g = rand_vec(s.output_len(), seed ^ 3);
            for relu in [false, true] {
                let (mut y, mut want_y) = (vec![f32::NAN; s.output_len()], vec![0.0; s.output_len()]);
                let (mut won, mut want_won) = (vec![9u8; s.output_len()], vec![0u8; s.output_len()]);
                k.max_pool2d_forward_winners(&s, &x, &mut y, &mut won, relu);
                scalar.max_pool2d_forward(&s, &x, &mut want_y);
                scalar.max_pool2d_forward_winners(&s, &x, &mut vec![0.0; s.output_len()], &mut want_won, relu);
                prop_assert_eq!(&y, &want_y, "pooled {:?}", s);
                prop_assert_eq!(&won, &want_won, "winners {:?} relu {}", s, relu);
                prop_assert!(won.iter().all(|&b| b <= 4), "a winner byte names one of four inputs");

                let (mut gx, mut want_gx) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
                k.max_pool2d_backward_winners(&s, &won, &g, &mut gx);
                scalar.max_pool2d_backward(&s, &x, &y, &g, &mut want_gx, relu);
                prop_assert_eq!(&gx, &want_gx, "backward {:?} relu {}", s, relu);
            }
            Ok::<(), TestCaseError>(())
        });
        if let Err(e) = outcome {
            panic!("{}: {e}", k.isa());
        }
    });
}
// ANCHOR_END: winners_test

/// A window whose inputs are all negative after no ReLU still routes its gradient; after a
/// ReLU (its maximum is not positive) it routes none: byte 0.
#[test]
fn a_window_that_the_relu_zeroed_gets_no_gradient() {
    let s = Pool2dShape { n: 1, h: 2, w: 2, c: 1 };
    let x = [-3.0, -1.0, -2.0, -1.0];
    for_each_isa(|k| {
        let (mut y, mut won) = ([0.0], [0u8]);
        k.max_pool2d_forward_winners(&s, &x, &mut y, &mut won, false);
        assert_eq!((y, won), ([-1.0], [2]), "{}: the first of two equal maxima wins", k.isa());
        k.max_pool2d_forward_winners(&s, &x, &mut y, &mut won, true);
        assert_eq!(won, [0], "{}", k.isa());
    });
}

/// Four convolutions, two of them followed by a pool after a ReLU, one by a pool without a
/// ReLU, one by nothing: every way a convolution meets a pool.
const TABLE: [Layer; 14] = [
    Layer::Conv2d { name: "conv1", c_out: 8 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool1" },
    Layer::Conv2d { name: "conv2", c_out: 16 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool2" },
    Layer::Conv2d { name: "conv3", c_out: 16 },
    Layer::ReLU,
    Layer::Conv2d { name: "conv4", c_out: 17 },
    Layer::MaxPool2d { name: "pool3" },
    Layer::Flatten,
    Layer::Linear { name: "fc1", out_features: 24 },
    Layer::ReLU,
    Layer::Linear { name: "fc2", out_features: 1 },
];
const SIDE: usize = 24;

fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = rand_vec(n * SIDE * SIDE * 3, seed).iter().map(|v| 0.5 + 0.5 * v).collect();
    (x, (0..n).map(|i| (i % 2) as f32).collect())
}

// ANCHOR: fused_step_test
/// Fused, one step computes chapter 6's numbers: the same logits and loss, and the same
/// gradient for every parameter, bit for bit, except the weight and bias gradients of the fused
/// convolutions: those are summed image by image (one image's gradient at a time) where chapter
/// 6's kernel sums the batch inside, so they agree up to the order of one sum. Every
/// instruction set, direct and Winograd. (On a pool of threads, which sums image by image too,
/// fused and unfused agree bit for bit: `tests/ch8_threads.rs`.)
#[test]
fn a_fused_step_is_the_unfused_step() {
    for_each_isa(|best| {
        for conv in [ConvAlgorithm::Direct, ConvAlgorithm::Winograd] {
            let Ok(k) = Kernels::for_isa_with(best.isa(), conv) else { continue };
            let (x, labels) = batch(5, 40);
            let mut fused = Network::new(&TABLE, SIDE, SIDE, 3, 5);
            let mut unfused = fused.clone();
            unfused.set_fusion(false);
            let (a, b) = (fused.forward_backward(k, &x, &labels), unfused.forward_backward(k, &x, &labels));
            assert_eq!(a, b, "{} {conv:?}: loss and correct answers", k.isa());
            let fused_convs = ["conv1", "conv2", "conv4"];
            for ((name, p), q) in fused.param_names().iter().zip(fused.params()).zip(unfused.params()) {
                let what = format!("{} {conv:?} {name}", k.isa());
                if fused_convs.iter().any(|c| name.starts_with(c)) {
                    assert_close(&what, p.grad.as_slice(), q.grad.as_slice(), 1e-6, 1e-4);
                } else {
                    assert!(p.grad.as_slice() == q.grad.as_slice(), "{what}: not bit for bit");
                }
            }
        }
    });
}
// ANCHOR_END: fused_step_test

/// The fused forward pass gives the logits of the pass that keeps every map.
#[test]
fn a_fused_forward_pass_gives_the_same_logits() {
    for_each_isa(|k| {
        let mut net = Network::new(&TABLE, SIDE, SIDE, 3, 6);
        let (x, _) = batch(3, 7);
        let kept = net.forward_keeping_outputs(k, &x).to_vec();
        assert!(net.outputs().iter().all(|o| !o.is_empty()), "every step's output kept");
        assert!(net.forward(k, &x) == kept, "{}", k.isa());
        let empty = net.outputs().iter().filter(|o| o.is_empty()).count();
        assert_eq!(
            empty,
            if k.keeps_pool_winners() { 3 } else { 0 },
            "{}: the fused convolutions keep nothing",
            k.isa()
        );
    });
}

/// Finite differences through the fused passes, where the fused backward pass is the only
/// backward pass, for every parameter, on every instruction set (as chapter 3 checks its
/// table; see `common::check_directions` for the tolerance).
#[test]
fn the_fused_backward_pass_is_the_derivative() {
    for_each_isa(|k| {
        let mut net = Network::new(&TABLE, 16, 16, 3, 8);
        let x: Vec<f32> = rand_vec(2 * 16 * 16 * 3, 9).iter().map(|v| 0.5 + 0.5 * v).collect();
        let labels = [1.0, 0.0];
        net.forward_backward(k, &x, &labels);
        for (p, name) in net.param_names().iter().enumerate() {
            let (grad, values) = (net.params()[p].grad.as_slice().to_vec(), net.params()[p].value.as_slice().to_vec());
            assert!(grad.iter().any(|&g| g != 0.0), "{name}: the gradient is zero, the check would be empty");
            let mut probe = net.clone();
            check_directions(&format!("{name} ({}, fused)", k.isa()), &grad, &values, 50 + p as u64, |v| {
                probe.params_mut()[p].value.as_mut_slice().copy_from_slice(v);
                let logits = Tensor::from_slice(&[2], probe.forward(k, &x));
                reference::bce_with_logits(&logits, &labels).0
            })
            .unwrap();
        }
    });
}

// ANCHOR: kept_bytes_test
/// The bytes chapter 7 counts from the table are the bytes a network holds after a step,
/// fused and not; and fusing keeps less.
#[test]
fn the_counted_bytes_are_the_bytes_a_step_keeps() {
    let k = Kernels::best().unwrap();
    for (table, side) in [(&TABLE[..], SIDE), (&CATDOG[..], 16)] {
        for fuse in [false, true] {
            let mut net = Network::new(table, side, side, 3, 1);
            net.set_fusion(fuse);
            let n = 3;
            let x = vec![0.5; n * side * side * 3];
            net.forward_backward(k, &x, &vec![1.0; n]);
            let fused = fuse && k.keeps_pool_winners();
            assert_eq!(net.kept_bytes() as u64, kept_bytes(net.plan(), n, fused), "fused {fused}");
        }
    }
    let plan = CatDogCnn::new(128, 128, 0).plan().clone();
    let (ch6, ch7) = (kept_bytes(&plan, 16, false), kept_bytes(&plan, 16, true));
    assert!(ch7 * 10 < ch6 * 3, "fused {ch7} bytes against {ch6}");
}
// ANCHOR_END: kept_bytes_test

/// A build before chapter 7, or a table asked not to fuse, runs chapter 6's passes.
#[test]
fn fusion_can_be_turned_off() {
    let k = Kernels::for_isa(Isa::Scalar).unwrap();
    let mut net = Network::new(&TABLE, SIDE, SIDE, 3, 6);
    net.set_fusion(false);
    net.forward(k, &batch(2, 1).0);
    assert!(net.outputs().iter().all(|o| !o.is_empty()));
}

fn linear_shapes() -> impl Strategy<Value = (LinearShape, u64, bool)> + Clone {
    // Up to 1300 features: up to eleven of the sweep's panels of 128, the last one often not
    // a multiple of any vector width.
    (1..=17usize, 1..=1300usize, 1..=20usize, any::<u64>(), any::<bool>())
        .prop_map(|(batch, d, m, seed, gx)| (LinearShape { batch, in_features: d, out_features: m }, seed, gx))
}

// ANCHOR: linear_update_test
/// The backward pass fused with the update is the three passes it replaces, bit for bit, on
/// every instruction set (the input gradient from the weights before the update), and the
/// scalar reference's numbers up to the order of the sums.
#[test]
fn the_fused_linear_update_is_the_three_passes_bit_for_bit() {
    let scalar = Kernels::scalar();
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
        let result = runner.run(&linear_shapes(), |(s, seed, with_gx)| {
            let (x, gy, w) =
                (rand_vec(s.input_len(), seed), rand_vec(s.output_len(), seed ^ 1), rand_vec(s.weight_len(), seed ^ 2));
            let lr = 0.5;
            let (mut w3, mut gw, mut gb3, mut gx3) =
                (w.clone(), vec![0.0; s.weight_len()], vec![0.0; s.out_features], vec![0.0; s.input_len()]);
            if with_gx {
                k.linear_backward_input(&s, &gy, &w, &mut gx3);
            }
            k.linear_backward_weight(&s, &x, &gy, &mut gw, &mut gb3);
            k.axpy(-lr, &gw, &mut w3);
            let (mut wf, mut gbf, mut gxf) = (w.clone(), vec![f32::NAN; s.out_features], vec![f32::NAN; s.input_len()]);
            k.linear_backward_update(&s, &x, &gy, &mut wf, &mut gbf, with_gx.then_some(&mut gxf[..]), lr);
            prop_assert!(same_bits(&wf, &w3), "{}: updated weights differ from the three passes on {s:?}", k.isa());
            prop_assert!(same_bits(&gbf, &gb3), "{}: bias gradient on {s:?}", k.isa());
            let (mut ws, mut gbs, mut gxs) = (w.clone(), vec![0.0; s.out_features], vec![0.0; s.input_len()]);
            scalar.linear_backward_update(&s, &x, &gy, &mut ws, &mut gbs, with_gx.then_some(&mut gxs[..]), lr);
            let fail = |e: String| TestCaseError::fail(format!("{}: {e}", k.isa()));
            compare(&format!("weights {s:?}"), &wf, &ws, lr * sum_atol(s.batch), 1e-5).map_err(fail)?;
            compare(&format!("bias gradient {s:?}"), &gbf, &gbs, sum_atol(s.batch), 1e-5).map_err(fail)?;
            if with_gx {
                prop_assert!(same_bits(&gxf, &gx3), "{}: input gradient on {s:?}", k.isa());
                compare(&format!("input gradient {s:?}"), &gxf, &gxs, sum_atol(s.out_features), 1e-4).map_err(fail)?;
            } else {
                prop_assert!(gxf.iter().all(|v| v.is_nan()), "no input gradient was asked for");
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}
// ANCHOR_END: linear_update_test

/// Both gradients from one sweep are the two passes' gradients, bit for bit, on every
/// instruction set, on awkward shapes: with the gradient on a whole vector and `d` a multiple
/// of 16, and without either. Every float of the gradient is written, whatever was there
/// before. (These layers are too small to be streamed; the next test's is not.)
#[test]
fn the_linear_sweep_is_the_two_passes_bit_for_bit() {
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
        let result = runner.run(&(linear_shapes(), any::<bool>()), |((s, seed, with_gx), whole)| {
            let d = if whole { s.in_features.next_multiple_of(16) } else { s.in_features };
            let s = LinearShape { in_features: d, ..s };
            let (x, gy, w) =
                (rand_vec(s.input_len(), seed), rand_vec(s.output_len(), seed ^ 1), rand_vec(s.weight_len(), seed ^ 2));
            let (mut gw2, mut gb2, mut gx2) =
                (vec![0.0; s.weight_len()], vec![0.0; s.out_features], vec![0.0; s.input_len()]);
            k.linear_backward_weight(&s, &x, &gy, &mut gw2, &mut gb2);
            k.linear_backward_input(&s, &gy, &w, &mut gx2);
            // One float more than the gradient, so that it can start on a whole vector or one
            // float after one.
            let mut room = AlignedVec::zeros(s.weight_len() + 1);
            room.fill(f32::NAN);
            let gw = &mut room[usize::from(!whole)..][..s.weight_len()];
            let (mut gb, mut gx) = (vec![f32::NAN; s.out_features], vec![f32::NAN; s.input_len()]);
            k.linear_backward_sweep(&s, &x, &gy, &w, gw, &mut gb, with_gx.then_some(&mut gx[..]));
            prop_assert!(same_bits(gw, &gw2), "{}: weight gradient on {s:?}", k.isa());
            prop_assert!(same_bits(&gb, &gb2), "{}: bias gradient on {s:?}", k.isa());
            match with_gx {
                true => prop_assert!(same_bits(&gx, &gx2), "{}: input gradient on {s:?}", k.isa()),
                false => prop_assert!(gx.iter().all(|v| v.is_nan()), "no input gradient was asked for"),
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

/// The input gradient made by the sweep, reading the weights in rows, is chapter 4's, bit for
/// bit, on every instruction set and on awkward shapes; every float of it is written.
#[test]
fn the_input_gradient_in_rows_is_the_input_gradient_bit_for_bit() {
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
        let result = runner.run(&linear_shapes(), |(s, seed, _)| {
            let (gy, w) = (rand_vec(s.output_len(), seed), rand_vec(s.weight_len(), seed ^ 1));
            // Layers this small are read down their columns, as chapter 4 reads them (on any
            // CPU whose last-level cache is larger than a few of them).
            prop_assume!(!k.linear_reads_in_rows(&s));
            let mut gx2 = vec![0.0; s.input_len()];
            k.linear_backward_input(&s, &gy, &w, &mut gx2);
            let mut gx = vec![f32::NAN; s.input_len()];
            k.linear_backward_input_in_rows(&s, &gy, &w, &mut gx);
            prop_assert!(same_bits(&gx, &gx2), "{}: input gradient on {s:?}", k.isa());
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

/// The sweeps of a layer with no image, no feature or no output go to the scalar kernels, as
/// chapter 2's passes do, and every table computes what the scalar one does: a gradient of
/// zeros where there is no image, weights moved by nothing, nothing written where there is
/// nothing to write.
#[test]
fn the_sweeps_of_empty_layers_compute_what_scalar_does() {
    for (batch, in_features, out_features) in [(0, 5, 3), (2, 0, 3), (2, 5, 0), (16, 0, 128), (0, 0, 0)] {
        let s = LinearShape { batch, in_features, out_features };
        let (x, gy, w) = (vec![1.0; s.input_len()], vec![0.5; s.output_len()], vec![2.0; s.weight_len()]);
        let run = |k: &Kernels| {
            let (mut gw, mut gb, mut gx) =
                (vec![f32::NAN; s.weight_len()], vec![f32::NAN; out_features], vec![f32::NAN; s.input_len()]);
            k.linear_backward_sweep(&s, &x, &gy, &w, &mut gw, &mut gb, Some(&mut gx));
            let mut gx_rows = vec![f32::NAN; s.input_len()];
            k.linear_backward_input_in_rows(&s, &gy, &w, &mut gx_rows);
            let (mut wu, mut gbu, mut gxu) = (w.clone(), vec![f32::NAN; out_features], vec![f32::NAN; s.input_len()]);
            k.linear_backward_update(&s, &x, &gy, &mut wu, &mut gbu, Some(&mut gxu), 0.5);
            [gw, gb, gx, gx_rows, wu, gbu, gxu]
        };
        let want = run(Kernels::scalar());
        assert!(want.iter().flatten().all(|v| v.is_finite()), "{s:?}: the scalar sweeps left a value unwritten");
        for_each_isa(|k| assert_eq!(run(k), want, "{} {s:?}", k.isa()));
    }
}

// ANCHOR: linear_sweep_test
/// A layer whose weights and gradient fill the last-level cache, which AVX-512's sweep streams
/// (Listing 7.21): rows of 4112 features (32 panels of 128 and one of a single AVX-512 vector),
/// one row more than a power of two (a last tile of one row), as many rows as it takes. The two
/// passes' bits on every instruction set, the gradient aligned (streamed, with AVX-512) and one
/// float off (not).
#[test]
fn a_streamed_gradient_is_the_two_passes_bit_for_bit() {
    for_each_isa(|k| {
        let shape = |m| LinearShape { batch: 3, in_features: 4112, out_features: m };
        // Up to 512 MB of weights: larger than the last-level cache of any CPU we know.
        let rows = (6..=15).map(|p| (1usize << p) + 1).find(|&m| k.linear_sweep_streams(&shape(m)));
        if k.isa() == Isa::Avx512 {
            assert!(rows.is_some(), "AVX-512's sweep streams no gradient of up to 512 MB");
        }
        let s = shape(rows.unwrap_or(65));
        let (x, gy, w) = (rand_vec(s.input_len(), 5), rand_vec(s.output_len(), 6), rand_vec(s.weight_len(), 7));
        let (mut gw2, mut gb2, mut gx2) =
            (vec![0.0; s.weight_len()], vec![0.0; s.out_features], vec![0.0; s.input_len()]);
        k.linear_backward_weight(&s, &x, &gy, &mut gw2, &mut gb2);
        // A layer this large has its input gradient read in rows, by the sweep itself;
        // `the_input_gradient_in_rows_is_the_input_gradient_bit_for_bit` holds that path to
        // chapter 4's on shapes of every kind.
        k.linear_backward_input(&s, &gy, &w, &mut gx2);
        let mut room = AlignedVec::zeros(s.weight_len() + 1);
        for offset in [0, 1] {
            room.fill(f32::NAN);
            let gw = &mut room[offset..][..s.weight_len()];
            let (mut gb, mut gx) = (vec![f32::NAN; s.out_features], vec![f32::NAN; s.input_len()]);
            k.linear_backward_sweep(&s, &x, &gy, &w, gw, &mut gb, Some(&mut gx));
            assert!(same_bits(gw, &gw2), "{}: weight gradient, {offset} floats off, {s:?}", k.isa());
            assert!(same_bits(&gb, &gb2) && same_bits(&gx, &gx2), "{}: bias or input gradient, {s:?}", k.isa());
        }
    });
}
// ANCHOR_END: linear_sweep_test

/// With momentum, a network with fusion on takes its linear layers' gradients from the sweep,
/// and the optimiser moves those layers' weights exactly as it does with fusion off.
/// (The fused convolutions' gradients differ in the order of one sum, Listing 7.14, so only
/// one step is compared.)
#[test]
fn a_momentum_step_with_swept_gradients_moves_the_same_weights() {
    for_each_isa(|k| {
        let mut fused = Network::new(&TABLE, SIDE, SIDE, 3, 8);
        let mut unfused = fused.clone();
        unfused.set_fusion(false);
        let (mut opt_fused, mut opt_unfused) = (Sgd::new(0.05, 0.9), Sgd::new(0.05, 0.9));
        let (x, labels) = batch(4, 70);
        let a = fused.train_step(k, &x, &labels, &mut opt_fused);
        let b = unfused.train_step(k, &x, &labels, &mut opt_unfused);
        assert_eq!(a, b, "{}: loss and correct answers", k.isa());
        for ((name, p), q) in fused.param_names().iter().zip(fused.params()).zip(unfused.params()) {
            if name.starts_with("fc") {
                assert!(p.grad.as_slice() == q.grad.as_slice(), "{} {name}: gradient not bit for bit", k.isa());
                assert!(p.value.as_slice() == q.value.as_slice(), "{} {name}: weights not bit for bit", k.isa());
            }
        }
    });
}

/// A training step with fc1's and fc2's updates fused into their backward passes leaves the
/// weights of the step followed by the optimiser, bit for bit, step after step.
#[test]
fn a_training_step_with_fused_updates_trains_the_same_weights() {
    for_each_isa(|k| {
        let mut fused = Network::new(&TABLE, SIDE, SIDE, 3, 6);
        let mut separate = fused.clone();
        let (mut opt_fused, mut opt_separate) = (Sgd::new(0.05, 0.0), Sgd::new(0.05, 0.0));
        for step in 0..3 {
            let (x, labels) = batch(5, 50 + step);
            let a = fused.train_step(k, &x, &labels, &mut opt_fused);
            let b = separate.forward_backward(k, &x, &labels);
            opt_separate.step(k, &mut separate.params_mut());
            assert_eq!(a, b, "{}: loss and correct answers", k.isa());
        }
        for ((name, p), q) in fused.param_names().iter().zip(fused.params()).zip(separate.params()) {
            assert!(p.value.as_slice() == q.value.as_slice(), "{} {name}: not bit for bit", k.isa());
        }
    });
}

/// The check sees the loss before anything changes: a step it refuses leaves every weight.
#[test]
fn a_step_whose_loss_is_refused_changes_no_weight() {
    let k = Kernels::best().unwrap();
    let (x, labels) = batch(3, 60);
    let mut net = Network::new(&TABLE, SIDE, SIDE, 3, 7);
    let before: Vec<Vec<f32>> = net.params().iter().map(|p| p.value.as_slice().to_vec()).collect();
    let mut opt = Sgd::new(0.05, 0.0);
    let refused = net.train_step_with(&mut Serial(k), &x, &labels, &mut opt, |s| Err(s.loss));
    assert!(refused.is_err());
    let after: Vec<Vec<f32>> = net.params().iter().map(|p| p.value.as_slice().to_vec()).collect();
    assert!(before == after, "a refused step changed weights");
}
