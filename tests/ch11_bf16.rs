//! Chapter 11: the bf16 convolutions (AVX-512 BF16, `vdpbf16ps`) against the scalar fp32
//! kernels, on shapes chosen to break them (odd heights, widths and channel counts, so that
//! every pair dimension needs its zero partner; batches of one), with a tolerance derived from
//! bf16's 8-bit significand and the length of each sum. On a CPU without AVX-512 BF16 (or with
//! `SIMD_CNN_MAX_ISA` below avx512) the kernel tests have nothing to run, and the test of the
//! refusal checks that asking for bf16 is a clear one-line error instead.
mod common;

use common::rand_vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::{Conv2dShape, ConvAlgorithm, Isa, Kernels, Precision, cpu_has_bf16};

// ANCHOR: tolerance
/// bf16 keeps 8 significant bits: rounding to nearest changes a value by at most half a unit in
/// the last place, a relative `u = 2^-8`.
const BF16_UNIT_ROUNDOFF: f64 = 1.0 / 256.0;
/// fp32's, `2^-24`.
const FP32_UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;

/// How far a bf16 sum of `terms` products may be from the fp32 kernel's, in units of
/// `sum |a| |b|` of that output. Each product `a(1 + d1) * b(1 + d2)` of rounded operands is off
/// by at most `2u + u^2` of `|a b|` (the product of two 8-bit significands is exact in fp32);
/// each fp32 sum of `terms` values is off by at most `terms * 2^-24` of the same scale, and
/// there are two of them, the bf16 kernel's and the reference's.
fn bf16_tolerance(terms: usize) -> f64 {
    let u = BF16_UNIT_ROUNDOFF;
    2.0 * u + u * u + 2.0 * terms as f64 * FP32_UNIT_ROUNDOFF
}

/// The same sums with the operands rounded to bf16 *before* both kernels: only the two fp32
/// sums differ, so the rounding of the operands must be the same in both (nearest, ties to even).
fn fp32_tolerance(terms: usize) -> f64 {
    2.0 * terms as f64 * FP32_UNIT_ROUNDOFF
}
// ANCHOR_END: tolerance

// ANCHOR: round_bf16
/// `x` rounded to 8 significant bits, nearest and ties to even, by arithmetic rather than by the
/// bit trick the kernels use: scale `x` so that its 8 bits are the integer part, round that.
fn round_bf16(x: f32) -> f32 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let x = f64::from(x);
    let ulp = 2f64.powi(x.abs().log2().floor() as i32 - 7);
    ((x / ulp).round_ties_even() * ulp) as f32
}
// ANCHOR_END: round_bf16

fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| round_bf16(x)).collect()
}

/// `got` against `want` within `tol * scale` (plus the smallest normal, for outputs whose scale
/// is 0); a NaN anywhere fails. Returns the largest error in units of the scale.
fn within(what: &str, got: &[f32], want: &[f32], scale: &[f32], tol: f64) -> Result<f64, TestCaseError> {
    let mut worst = 0.0f64;
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let err = (f64::from(g) - f64::from(w)).abs();
        let bound = tol * f64::from(s) * (1.0 + 1e-3) + f64::from(f32::MIN_POSITIVE);
        if err.is_nan() || err > bound {
            return Err(TestCaseError::fail(format!(
                "{what}: element {i}: got {g} want {w}, error {err:e} > {tol:e} x scale {s:e}"
            )));
        }
        worst = worst.max(err / f64::from(s).max(f64::from(f32::MIN_POSITIVE)));
    }
    Ok(worst)
}

/// The bf16 table if this CPU can run it here, else `None`.
fn bf16_kernels() -> Option<&'static Kernels> {
    Kernels::for_isa_precision(Isa::Avx512, ConvAlgorithm::Direct, Precision::Bf16).ok()
}

fn run_cases<T: std::fmt::Debug>(
    cases: u32,
    strategy: impl Strategy<Value = T>,
    check: impl Fn(&Kernels, &T) -> Result<(), TestCaseError>,
) {
    let Some(k) = bf16_kernels() else { return };
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    if let Err(e) = runner.run(&strategy, |input| check(k, &input)) {
        panic!("bf16: {e}");
    }
}

const EDGES: [usize; 9] = [1, 2, 3, 5, 6, 7, 12, 13, 17];
const CHANNELS: [usize; 9] = [1, 2, 3, 5, 16, 17, 31, 32, 33];

fn conv_shapes() -> impl Strategy<Value = (Conv2dShape, u64)> {
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
/// Forward: each output sums `9 * c_in` products. Against the fp32 kernel with the bf16
/// tolerance, and against the fp32 kernel on pre-rounded operands with the fp32 one.
#[test]
fn bf16_forward_matches_fp32_within_the_derived_tolerance() {
    let scalar = Kernels::scalar();
    run_cases(60, conv_shapes(), |k, &(s, seed)| {
        let (x, w, b) =
            (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
        let terms = 9 * s.c_in;
        // The scale of each output: |bias| + sum |x| |w| over what it reads.
        let mut scale = vec![0.0; s.output_len()];
        scalar.conv2d_forward(&s, &abs(&x), &abs(&w), &abs(&b), &mut scale, false);
        for relu in [false, true] {
            // NaN sentinels: an output the kernel forgets to write fails the comparison.
            let (mut got, mut want) = (vec![f32::NAN; s.output_len()], vec![0.0; s.output_len()]);
            k.conv2d_forward(&s, &x, &w, &b, &mut got, relu);
            scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
            within(&format!("forward {s:?} relu {relu}"), &got, &want, &scale, bf16_tolerance(terms))?;
            scalar.conv2d_forward(&s, &rounded(&x), &rounded(&w), &b, &mut want, relu);
            within(&format!("forward on rounded {s:?} relu {relu}"), &got, &want, &scale, fp32_tolerance(terms))?;
        }
        Ok(())
    });
}
// ANCHOR_END: forward_test

/// Backward-input: each input gradient sums `9 * c_out` products, pairs of output channels.
#[test]
fn bf16_backward_input_matches_fp32_within_the_derived_tolerance() {
    let scalar = Kernels::scalar();
    run_cases(60, conv_shapes(), |k, &(s, seed)| {
        let (g, w) = (rand_vec(s.output_len(), seed), rand_vec(s.weight_len(), seed ^ 1));
        let terms = 9 * s.c_out;
        let mut scale = vec![0.0; s.input_len()];
        scalar.conv2d_backward_input(&s, &abs(&g), &abs(&w), &mut scale);
        let (mut got, mut want) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
        k.conv2d_backward_input(&s, &g, &w, &mut got);
        scalar.conv2d_backward_input(&s, &g, &w, &mut want);
        within(&format!("backward_input {s:?}"), &got, &want, &scale, bf16_tolerance(terms))?;
        scalar.conv2d_backward_input(&s, &rounded(&g), &rounded(&w), &mut want);
        within(&format!("backward_input on rounded {s:?}"), &got, &want, &scale, fp32_tolerance(terms))?;
        Ok(())
    });
}

// ANCHOR: weight_test
/// Weight gradient: each tap sums `n * h * w` products, pairs of neighbouring pixels; the bias
/// gradient stays fp32 and must match to fp32's rounding.
#[test]
fn bf16_weight_gradient_matches_fp32_within_the_derived_tolerance() {
    let scalar = Kernels::scalar();
    run_cases(60, conv_shapes(), |k, &(s, seed)| {
        let (x, g) = (rand_vec(s.input_len(), seed), rand_vec(s.output_len(), seed ^ 1));
        let terms = s.n * s.h * s.w;
        let (mut scale, mut scale_b) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
        scalar.conv2d_backward_weight(&s, &abs(&x), &abs(&g), &mut scale, &mut scale_b);
        let (mut got, mut got_b) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; s.c_out]);
        let (mut want, mut want_b) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
        k.conv2d_backward_weight(&s, &x, &g, &mut got, &mut got_b);
        scalar.conv2d_backward_weight(&s, &x, &g, &mut want, &mut want_b);
        within(&format!("backward_weight {s:?}"), &got, &want, &scale, bf16_tolerance(terms))?;
        within(&format!("bias gradient {s:?}"), &got_b, &want_b, &scale_b, fp32_tolerance(terms))?;
        scalar.conv2d_backward_weight(&s, &rounded(&x), &rounded(&g), &mut want, &mut want_b);
        within(&format!("backward_weight on rounded {s:?}"), &got, &want, &scale, fp32_tolerance(terms))?;
        Ok(())
    });
}
// ANCHOR_END: weight_test

/// The tolerance is not so loose that it passes anything: on a layer of the cat/dog network's
/// size, the bf16 results are not the fp32 ones (the operands were rounded), their largest
/// error uses a fair share of the bound, and the bound is far below the outputs' scale.
#[test]
fn bf16_rounding_shows_and_stays_inside_the_bound() {
    let Some(k) = bf16_kernels() else { return };
    let scalar = Kernels::scalar();
    let s = Conv2dShape { n: 1, h: 16, w: 16, c_in: 64, c_out: 128 };
    let (x, w, b) = (rand_vec(s.input_len(), 7), rand_vec(s.weight_len(), 8), rand_vec(s.c_out, 9));
    let mut scale = vec![0.0; s.output_len()];
    scalar.conv2d_forward(&s, &abs(&x), &abs(&w), &abs(&b), &mut scale, false);
    let (mut got, mut want) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
    k.conv2d_forward(&s, &x, &w, &b, &mut got, false);
    scalar.conv2d_forward(&s, &x, &w, &b, &mut want, false);
    let tol = bf16_tolerance(9 * s.c_in);
    let worst = within("conv3-sized forward", &got, &want, &scale, tol).unwrap();
    assert!(got != want, "bf16 gave the fp32 result bit for bit: were the operands rounded?");
    // Random signs make the rounding errors cancel: the worst output over 32768 sits well
    // inside the worst case, but not orders of magnitude inside it.
    assert!(worst > tol / 100.0 && worst < tol, "worst error {worst:e} of the scale, bound {tol:e}");
}

/// The bf16 table takes the bf16 convolutions and nothing else; it refuses, in one line, every
/// combination it cannot run; the names parse.
#[test]
fn the_bf16_table_exists_only_where_it_can_run() {
    assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::Bf16);
    assert!("fp16".parse::<Precision>().unwrap_err().to_string().contains("fp32 or bf16"));
    assert_eq!(Kernels::scalar().precision(), Precision::Fp32);
    let refusal = |isa, conv| Kernels::for_isa_precision(isa, conv, Precision::Bf16).unwrap_err().to_string();
    for isa in [Isa::Scalar, Isa::Sse, Isa::Avx2] {
        if isa.is_available() {
            let err = refusal(isa, ConvAlgorithm::Direct);
            assert!(err.contains("bf16") && !err.contains('\n'), "{err}");
        }
    }
    match bf16_kernels() {
        Some(k) => {
            assert!(cpu_has_bf16() && Isa::Avx512.is_available());
            assert_eq!(
                (k.isa(), k.precision(), k.conv_algorithm()),
                (Isa::Avx512, Precision::Bf16, ConvAlgorithm::Direct)
            );
            let err = refusal(Isa::Avx512, ConvAlgorithm::Winograd);
            assert!(err.contains("--conv direct") && !err.contains('\n'), "{err}");
            // Pooling is the fp32 table's, bit for bit.
            let fp32 = Kernels::for_isa(Isa::Avx512).unwrap();
            let s = simd_cnn::kernels::Pool2dShape { n: 1, h: 6, w: 6, c: 17 };
            let x = rand_vec(6 * 6 * 17, 3);
            let (mut a, mut b) = (vec![0.0; 3 * 3 * 17], vec![0.0; 3 * 3 * 17]);
            k.max_pool2d_forward(&s, &x, &mut a);
            fp32.max_pool2d_forward(&s, &x, &mut b);
            assert_eq!(a, b);
        }
        None => {
            // Not compiled, no AVX-512 BF16 on this CPU, or avx512 above SIMD_CNN_MAX_ISA.
            let err = refusal(Isa::Avx512, ConvAlgorithm::Direct);
            assert!(!err.is_empty() && !err.contains('\n'), "{err}");
        }
    }
}

/// A checkpoint's run state records the precision, so that `--resume` keeps it; a record of
/// an earlier version, without one, reads as fp32.
#[test]
fn the_run_state_keeps_the_precision() {
    use simd_cnn::checkpoint::{load, save};
    use simd_cnn::model::CatDogCnn;
    use simd_cnn::train::{LrSchedule, Sgd};
    use simd_cnn::trainer::{Hyperparameters, TrainState};
    let dir = tempfile::tempdir().unwrap();
    for precision in [Precision::Bf16, Precision::Fp32] {
        let path = dir.path().join(format!("{precision}.safetensors"));
        let hyper = Hyperparameters {
            batch_size: 4,
            augment: false,
            val_fraction: 0.2,
            epochs: 1,
            base_lr: 0.01,
            schedule: LrSchedule::Constant,
            limit: None,
            conv: ConvAlgorithm::Direct,
            precision,
        };
        save(&path, &CatDogCnn::new(16, 16, 1), &Sgd::new(0.01, 0.0), &TrainState::new(1, hyper)).unwrap();
        let (_, _, state) = load(&path, None).unwrap();
        assert_eq!(state.hyper.precision, precision);
    }
}

// ANCHOR: whole_cnn
/// The whole network's gradient with the bf16 table against the fp32 table's. This is a sanity
/// check, not a tolerance: through a whole network no bound follows from the format alone. A
/// max-pool routes each gradient to the largest of four values, and rounding may change which
/// one that is; a fused ReLU drops the gradient where a sum is not positive, and rounding moves
/// sums near zero across it; a bias gradient is a sum over every pixel whose terms cancel, so
/// its rounding error is large against its value. Each of those is a discrete or amplified
/// change that no per-value bound covers. What must hold is that every parameter's gradient
/// points the same way: a cosine similarity above 0.95 (a sign error, a lost term or a pair in
/// the wrong half of its lane brings it far lower), and is not the fp32 gradient bit for bit
/// (the operands were rounded). The per-pass tests above carry the derived tolerance.
#[test]
fn the_whole_cnn_gradient_in_bf16_points_where_fp32_does() {
    use simd_cnn::model::CatDogCnn;
    let Some(bf16) = bf16_kernels() else { return };
    let fp32 = Kernels::for_isa(Isa::Avx512).unwrap();
    let net = CatDogCnn::new(16, 16, 17);
    let x: Vec<f32> = rand_vec(4 * 16 * 16 * 3, 18).iter().map(|v| v * 0.5 + 0.5).collect();
    let labels = [0.0, 1.0, 1.0, 0.0];
    let (mut a, mut b) = (net.clone(), net);
    a.forward_backward(fp32, &x, &labels);
    b.forward_backward(bf16, &x, &labels);
    let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>();
    for (p, name) in CatDogCnn::PARAM_NAMES.iter().enumerate() {
        let (ga, gb) = (a.params()[p].grad.as_slice(), b.params()[p].grad.as_slice());
        let cosine = dot(ga, gb) / (dot(ga, ga) * dot(gb, gb)).sqrt();
        assert!(cosine > 0.95, "{name}: cosine similarity {cosine}");
        assert!(ga != gb, "{name}: bf16 gave the fp32 gradient bit for bit");
    }
}
// ANCHOR_END: whole_cnn

/// The packed copies are kept per thread from one call to the next: a call after a larger one,
/// whose copies filled more of the buffers, gives the same bits as the first call did.
#[test]
fn bf16_results_do_not_depend_on_earlier_calls() {
    let Some(k) = bf16_kernels() else { return };
    let (small, large) =
        (Conv2dShape { n: 1, h: 5, w: 7, c_in: 3, c_out: 17 }, Conv2dShape { n: 2, h: 9, w: 13, c_in: 33, c_out: 40 });
    let run = |s: &Conv2dShape, seed: u64| {
        let (x, w, b, g) = (
            rand_vec(s.input_len(), seed),
            rand_vec(s.weight_len(), seed ^ 1),
            rand_vec(s.c_out, seed ^ 2),
            rand_vec(s.output_len(), seed ^ 3),
        );
        let mut y = vec![0.0; s.output_len()];
        let mut gx = vec![0.0; s.input_len()];
        let (mut gw, mut gb) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
        k.conv2d_forward(s, &x, &w, &b, &mut y, true);
        k.conv2d_backward_input(s, &g, &w, &mut gx);
        k.conv2d_backward_weight(s, &x, &g, &mut gw, &mut gb);
        [y, gx, gw, gb]
    };
    let first = run(&small, 5);
    run(&large, 6);
    assert!(run(&small, 5) == first, "a bf16 result changed after a larger call");
}
