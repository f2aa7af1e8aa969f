//! Chapter 10: the Winograd convolutions of every instruction set this CPU has, F(2x2, 3x3) and
//! F(4x4, 3x3), against the scalar direct convolution on shapes chosen to break them (heights and
//! widths that are not a multiple of the tile, 1 to 5 and 17 channels, batches of one), with the
//! tolerance chapter 10 derives; and the whole network's gradient by finite differences on the
//! Winograd path.
mod common;

use common::{check_directions, rand_vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::{Conv2dShape, ConvAlgorithm, Isa, Kernels, WinogradSize};
use simd_cnn::model::CatDogCnn;
use simd_cnn::reference;
use simd_cnn::tensor::Tensor;

const SIZES: [WinogradSize; 2] = [WinogradSize::F2, WinogradSize::F4];

// ANCHOR: tolerance
/// The tolerance of chapter 10, in units of the scale of each output (below): the worst-case
/// growth of one tile's rounding error, `(8/3)^2 ~ 7` for F(2x2) and `16^2 = 256` for F(4x4),
/// times a rounding per stage (two input transforms, the filter, the product, two output
/// transforms) and per added channel, times f32's unit roundoff `2^-24`.
fn tolerance(size: WinogradSize, c_in: usize) -> f32 {
    let growth = match size {
        WinogradSize::F2 => (8.0f32 / 3.0).powi(2),
        WinogradSize::F4 => 16.0f32.powi(2),
    };
    growth * (6 + c_in) as f32 * f32::EPSILON / 2.0
}
// ANCHOR_END: tolerance

// ANCHOR: scale
/// The scale of each output: `|bias| + sum |x| |w|` over the 9 taps and the channels it reads
/// (the scalar convolution of the absolute values), plus the mean of that over the tensor. The
/// first term bounds a direct convolution's rounding; Winograd's reads the whole `A x A` patch of
/// every channel, whose size the mean stands in for where the 9 taps happen to be small.
fn scale(abs_conv: &[f32]) -> Vec<f32> {
    let mean = abs_conv.iter().map(|&v| v as f64).sum::<f64>() / abs_conv.len().max(1) as f64;
    abs_conv.iter().map(|&v| v + mean as f32).collect()
}
// ANCHOR_END: scale

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// `got` against `want` within `tol * scale`; a NaN anywhere fails.
fn within(what: &str, got: &[f32], want: &[f32], scale: &[f32], tol: f32) -> Result<(), TestCaseError> {
    let mut worst: Option<(usize, f32)> = None;
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (g - w).abs() / s.max(f32::MIN_POSITIVE);
        if (err.is_nan() || err > tol) && worst.is_none_or(|(_, e)| err > e || err.is_nan()) {
            worst = Some((i, err));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, err)) => Err(TestCaseError::fail(format!(
            "{what}: element {i}: got {} want {}, error {err:e} of its scale, tolerance {tol:e}",
            got[i], want[i]
        ))),
    }
}

/// Runs `check` on `cases` generated inputs for both tiles of every instruction set with
/// Winograd kernels here.
fn for_each_winograd<T: std::fmt::Debug>(
    cases: u32,
    strategy: impl Strategy<Value = T> + Clone,
    check: impl Fn(&Kernels, WinogradSize, &T) -> Result<(), TestCaseError>,
) {
    common::for_each_isa(|k| {
        if k.isa() == Isa::Scalar {
            return;
        }
        for size in SIZES {
            let wk = Kernels::winograd_everywhere(k.isa(), size).unwrap();
            let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
            if let Err(e) = runner.run(&strategy.clone(), |input| check(wk, size, &input)) {
                panic!("{} {size:?}: {e}", k.isa());
            }
        }
    });
}

const EDGES: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 9, 13, 17];
const CHANNELS: [usize; 8] = [1, 2, 3, 5, 16, 17, 32, 33];

fn conv_shapes() -> impl Strategy<Value = (Conv2dShape, u64)> + Clone {
    (
        1..=2usize,
        prop::sample::select(&EDGES[..]),
        prop::sample::select(&EDGES[..]),
        prop::sample::select(&CHANNELS[..]),
        prop::sample::select(&CHANNELS[..]),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c_in, c_out, seed)| (Conv2dShape { n, h, w, c_in, c_out }, seed))
}

// ANCHOR: forward_test
#[test]
fn winograd_forward_matches_scalar() {
    let scalar = Kernels::scalar();
    for_each_winograd(40, conv_shapes(), |k, size, &(s, seed)| {
        let (x, w, b) =
            (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
        let mut abs_conv = vec![0.0; s.output_len()];
        scalar.conv2d_forward(&s, &abs(&x), &abs(&w), &abs(&b), &mut abs_conv, false);
        let scale = scale(&abs_conv);
        for relu in [false, true] {
            // NaN sentinels: an output the kernel forgets to write fails the comparison.
            let (mut got, mut want) = (vec![f32::NAN; s.output_len()], vec![0.0; s.output_len()]);
            k.conv2d_forward(&s, &x, &w, &b, &mut got, relu);
            scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
            within(&format!("forward {s:?} relu {relu}"), &got, &want, &scale, tolerance(size, s.c_in))?;
        }
        Ok(())
    });
}
// ANCHOR_END: forward_test

#[test]
fn winograd_backward_input_matches_scalar() {
    let scalar = Kernels::scalar();
    for_each_winograd(40, conv_shapes(), |k, size, &(s, seed)| {
        let (g, w) = (rand_vec(s.output_len(), seed), rand_vec(s.weight_len(), seed ^ 1));
        let mut abs_conv = vec![0.0; s.input_len()];
        scalar.conv2d_backward_input(&s, &abs(&g), &abs(&w), &mut abs_conv);
        let (mut got, mut want) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
        k.conv2d_backward_input(&s, &g, &w, &mut got);
        scalar.conv2d_backward_input(&s, &g, &w, &mut want);
        within(&format!("backward_input {s:?}"), &got, &want, &scale(&abs_conv), tolerance(size, s.c_out))
    });
}

// ANCHOR: whole_cnn
/// The whole network's gradient on the Winograd path by finite differences: on 16x16 images conv2
/// (8x8, four tiles) and conv3 (4x4, one tile) take F(4x4) forward and backward-input, conv1 stays
/// direct.
#[test]
fn the_whole_cnn_backward_on_winograd_matches_finite_differences() {
    common::for_each_isa(|k| {
        if k.isa() == Isa::Scalar {
            return;
        }
        let k = Kernels::for_isa_with(k.isa(), ConvAlgorithm::Winograd).unwrap();
        assert_eq!(k.conv_algorithm(), ConvAlgorithm::Winograd);
        let mut net = CatDogCnn::new(16, 16, 17);
        let x: Vec<f32> = rand_vec(2 * 16 * 16 * 3, 18).iter().map(|v| v * 0.5 + 0.5).collect();
        let labels = [0.0, 1.0];
        net.forward_backward(k, &x, &labels);
        for (p, name) in CatDogCnn::PARAM_NAMES.iter().enumerate() {
            let (grad, values) = (net.params()[p].grad.as_slice().to_vec(), net.params()[p].value.as_slice().to_vec());
            let mut probe = net.clone();
            check_directions(&format!("winograd cnn {name} ({})", k.isa()), &grad, &values, 19 + p as u64, |v| {
                probe.params_mut()[p].value.as_mut_slice().copy_from_slice(v);
                let logits = Tensor::from_slice(&[2], probe.forward(k, &x));
                reference::bce_with_logits(&logits, &labels).0
            })
            .unwrap();
        }
    });
}
// ANCHOR_END: whole_cnn

/// The Winograd table is a choice of the convolutions only: conv1's 3 channels stay direct,
/// the scalar instruction set has no Winograd table, and the names parse.
#[test]
fn the_winograd_table_falls_back_and_refuses_clearly() {
    assert_eq!(Kernels::scalar().conv_algorithm(), ConvAlgorithm::Direct);
    let err = Kernels::for_isa_with(Isa::Scalar, ConvAlgorithm::Winograd).unwrap_err().to_string();
    assert!(err.contains("Winograd") && !err.contains('\n'), "{err}");
    assert_eq!("winograd".parse::<ConvAlgorithm>().unwrap(), ConvAlgorithm::Winograd);
    assert!("fft".parse::<ConvAlgorithm>().unwrap_err().to_string().contains("direct or winograd"));
    common::for_each_isa(|k| {
        if k.isa() == Isa::Scalar {
            return;
        }
        let w = Kernels::for_isa_with(k.isa(), ConvAlgorithm::Winograd).unwrap();
        // conv1 of a 9x9 image: with 3 input channels the Winograd table runs the direct kernel,
        // bit for bit.
        let s = Conv2dShape { n: 1, h: 9, w: 9, c_in: 3, c_out: 32 };
        let (x, wt, b) = (rand_vec(s.input_len(), 1), rand_vec(s.weight_len(), 2), rand_vec(s.c_out, 3));
        let (mut direct, mut chosen) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
        k.conv2d_forward(&s, &x, &wt, &b, &mut direct, true);
        w.conv2d_forward(&s, &x, &wt, &b, &mut chosen, true);
        assert_eq!(direct, chosen, "{}: conv1 left the direct kernel", k.isa());
    });
}

/// A checkpoint's run state records the convolutions, so that `--resume` keeps them.
#[test]
fn the_run_state_keeps_the_convolutions() {
    use simd_cnn::checkpoint::{load, save};
    use simd_cnn::train::{LrSchedule, Sgd};
    use simd_cnn::trainer::{Hyperparameters, TrainState};
    let dir = tempfile::tempdir().unwrap();
    for conv in [ConvAlgorithm::Winograd, ConvAlgorithm::Direct] {
        let path = dir.path().join(format!("{conv}.safetensors"));
        let hyper = Hyperparameters {
            batch_size: 4,
            augment: false,
            val_fraction: 0.2,
            epochs: 1,
            base_lr: 0.01,
            schedule: LrSchedule::Constant,
            limit: None,
            conv,
            precision: simd_cnn::kernels::Precision::Fp32,
        };
        save(&path, &CatDogCnn::new(16, 16, 1), &Sgd::new(0.01, 0.0), &TrainState::new(1, hyper)).unwrap();
        let (_, _, state) = load(&path, None).unwrap();
        assert_eq!(state.hyper.conv, conv);
    }
}

/// The report's Winograd records: conv2 and conv3 forward and backward-input and the training
/// step, counted at the direct convolution's FLOPs, with F(4x4)'s products a quarter of them.
#[test]
fn the_report_has_the_winograd_records() {
    use simd_cnn::bench::{report_ops, winograd_ops, winograd_product_flops};
    let names: Vec<String> = winograd_ops().into_iter().map(|op| op.name).collect();
    assert_eq!(
        names,
        [
            "conv2_forward_winograd",
            "conv2_backward_input_winograd",
            "conv3_forward_winograd",
            "conv3_backward_input_winograd",
            "train_step_catdog_winograd"
        ]
    );
    for op in winograd_ops() {
        let direct = report_ops().into_iter().find(|d| format!("{}_winograd", d.name) == op.name).unwrap();
        assert_eq!((op.kind, op.flops()), (direct.kind, direct.flops()), "{}", op.name);
    }
    let conv2 = Conv2dShape { n: 16, h: 64, w: 64, c_in: 32, c_out: 64 };
    assert_eq!(4 * winograd_product_flops(&conv2), conv2.flops());
}

// ANCHOR: filter_cache_test
/// Each thread keeps the filters it transformed (chapter 7 calls a convolution once per image).
/// Weights changed in place, as SGD changes them, must be transformed again: on every ISA and
/// tile, forward and backward-input, a result on this thread after the change equals, bit for
/// bit, the result a new thread (with nothing kept) computes from the changed weights.
#[test]
fn changed_weights_are_never_served_from_the_filter_cache() {
    let s = Conv2dShape { n: 1, h: 9, w: 11, c_in: 17, c_out: 20 };
    for isa in Isa::available() {
        for size in SIZES {
            let Ok(k) = Kernels::winograd_everywhere(isa, size) else { continue };
            let (x, gy, b) = (rand_vec(s.input_len(), 1), rand_vec(s.output_len(), 2), rand_vec(s.c_out, 3));
            let mut w = rand_vec(s.weight_len(), 4);
            let run = |w: &[f32]| {
                let (mut y, mut gx) = (vec![0.0; s.output_len()], vec![0.0; s.input_len()]);
                k.conv2d_forward(&s, &x, w, &b, &mut y, false);
                k.conv2d_backward_input(&s, &gy, w, &mut gx);
                (y, gx)
            };
            let before = run(&w);
            w[5] += 0.5; // in place: the same buffer, other values
            let after = run(&w);
            let fresh = std::thread::scope(|t| t.spawn(|| run(&w)).join().unwrap());
            assert!(after == fresh, "{isa} {size:?}: a stale transform was used");
            assert!(after.0 != before.0 && after.1 != before.1, "{isa} {size:?}: the change must show");
        }
    }
}
// ANCHOR_END: filter_cache_test
