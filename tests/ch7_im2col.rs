//! Chapter 7: the convolution's forward pass, weight gradient and input gradient by im2col (or
//! col2im) and a matrix product, on every instruction set, against chapter 2's direct
//! convolution, on shapes chosen to cross every edge of their blocks: more than one block of K
//! (`9 * c_in > 128`, and for the input gradient `c_out > 128`) and of rows or pixels
//! (`h * w > 128` and `> 192`), tiles that rows or channels leave part empty.
mod common;

use common::{compare, for_each_isa, rand_vec, sum_atol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::{Conv2dShape, Kernels};

const WIDTHS: [usize; 8] = [1, 2, 3, 7, 13, 17, 33, 40];
const C_IN: [usize; 8] = [1, 3, 4, 5, 15, 16, 17, 33];
const C_OUT: [usize; 11] = [1, 3, 5, 8, 16, 17, 32, 33, 64, 65, 130];

fn shapes() -> impl Strategy<Value = (Conv2dShape, u64)> {
    (
        1..=2usize,
        1..=9usize,
        prop::sample::select(&WIDTHS[..]),
        prop::sample::select(&C_IN[..]),
        prop::sample::select(&C_OUT[..]),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c_in, c_out, seed)| (Conv2dShape { n, h, w, c_in, c_out }, seed))
}

/// Every table's im2col convolution is chapter 2's direct one, up to the order of the sums,
/// with and without the ReLU, and writes every output (the buffer starts as NaN).
#[test]
fn im2col_and_a_matrix_product_convolve_as_the_direct_kernel_does() {
    let scalar = Kernels::scalar();
    for_each_isa(|k| {
        assert!(k.has_im2col(), "{}: every table has the im2col pass from chapter 7 on", k.isa());
        let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
        let outcome = runner.run(&shapes(), |(s, seed)| {
            let (x, w, b) =
                (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
            for relu in [false, true] {
                let (mut got, mut want) = (vec![f32::NAN; s.output_len()], vec![0.0; s.output_len()]);
                prop_assert!(k.conv2d_forward_im2col(&s, &x, &w, &b, &mut got, relu).is_some());
                scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
                compare(&format!("im2col {s:?} relu {relu}"), &got, &want, sum_atol(9 * s.c_in), 1e-4)
                    .map_err(TestCaseError::fail)?;
            }
            Ok(())
        });
        if let Err(e) = outcome {
            panic!("{}: {e}", k.isa());
        }
    });
}

/// Every table's weight gradient by im2col, `A^T G` per image, is chapter 2's direct one up to
/// the order of the sums, and overwrites both gradients (they start as NaN).
#[test]
fn the_weight_gradient_by_im2col_is_the_direct_one() {
    let scalar = Kernels::scalar();
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
        let outcome = runner.run(&shapes(), |(s, seed)| {
            let (x, g) = (rand_vec(s.input_len(), seed), rand_vec(s.output_len(), seed ^ 1));
            let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; s.c_out]);
            let (mut want_w, mut want_b) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
            prop_assert!(k.conv2d_backward_weight_im2col(&s, &x, &g, &mut gw, &mut gb).is_some());
            scalar.conv2d_backward_weight(&s, &x, &g, &mut want_w, &mut want_b);
            // Sums over every pixel of the batch, in another order.
            let atol = sum_atol(s.n * s.h * s.w);
            compare(&format!("weight {s:?}"), &gw, &want_w, atol, 1e-4).map_err(TestCaseError::fail)?;
            compare(&format!("bias {s:?}"), &gb, &want_b, atol, 1e-4).map_err(TestCaseError::fail)
        });
        if let Err(e) = outcome {
            panic!("{}: {e}", k.isa());
        }
    });
}

/// Every table's input gradient by a matrix product and col2im, `col2im(G B^T)` per image, is
/// chapter 2's direct one up to the order of the sums, and overwrites every value (the buffer
/// starts as NaN).
#[test]
fn the_input_gradient_by_col2im_is_the_direct_one() {
    let scalar = Kernels::scalar();
    for_each_isa(|k| {
        let mut runner = TestRunner::new(Config { cases: 48, failure_persistence: None, ..Config::default() });
        let outcome = runner.run(&shapes(), |(s, seed)| {
            let (g, w) = (rand_vec(s.output_len(), seed), rand_vec(s.weight_len(), seed ^ 1));
            let (mut got, mut want) = (vec![f32::NAN; s.input_len()], vec![0.0; s.input_len()]);
            prop_assert!(k.conv2d_backward_input_im2col(&s, &g, &w, &mut got).is_some());
            scalar.conv2d_backward_input(&s, &g, &w, &mut want);
            // Each value sums 9 taps of c_out products, in another order.
            compare(&format!("input gradient {s:?}"), &got, &want, sum_atol(9 * s.c_out), 1e-4)
                .map_err(TestCaseError::fail)
        });
        if let Err(e) = outcome {
            panic!("{}: {e}", k.isa());
        }
    });
}

/// The channels of the cat/dog network's three convolutions on one small image, where the
/// blocks are full-size: conv3's K = 576 is four blocks of 128 and one of 64, and its 16 x 17 =
/// 272 rows one block of 192 and a part.
#[test]
fn im2col_convolves_the_networks_layers() {
    let scalar = Kernels::scalar();
    for (c_in, c_out, side) in [(3, 32, 24), (32, 64, 16), (64, 128, 16)] {
        let s = Conv2dShape { n: 1, h: side, w: side + 1, c_in, c_out };
        let (x, w, b) = (rand_vec(s.input_len(), 7), rand_vec(s.weight_len(), 8), rand_vec(c_out, 9));
        let mut want = vec![0.0; s.output_len()];
        scalar.conv2d_forward(&s, &x, &w, &b, &mut want, true);
        let g = rand_vec(s.output_len(), 10);
        let (mut want_w, mut want_b) = (vec![0.0; s.weight_len()], vec![0.0; c_out]);
        scalar.conv2d_backward_weight(&s, &x, &g, &mut want_w, &mut want_b);
        let mut want_x = vec![0.0; s.input_len()];
        scalar.conv2d_backward_input(&s, &g, &w, &mut want_x);
        for_each_isa(|k| {
            let mut got = vec![f32::NAN; s.output_len()];
            assert!(k.conv2d_forward_im2col(&s, &x, &w, &b, &mut got, true).is_some());
            if let Err(e) = compare(&format!("{} im2col {s:?}", k.isa()), &got, &want, sum_atol(9 * c_in), 1e-4) {
                panic!("{e}");
            }
            let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; c_out]);
            assert!(k.conv2d_backward_weight_im2col(&s, &x, &g, &mut gw, &mut gb).is_some());
            let atol = sum_atol(s.h * s.w);
            for (what, got, want) in [("weight", &gw, &want_w), ("bias", &gb, &want_b)] {
                if let Err(e) = compare(&format!("{} im2col {what} {s:?}", k.isa()), got, want, atol, 1e-4) {
                    panic!("{e}");
                }
            }
            let mut gx = vec![f32::NAN; s.input_len()];
            assert!(k.conv2d_backward_input_im2col(&s, &g, &w, &mut gx).is_some());
            if let Err(e) = compare(&format!("{} col2im {s:?}", k.isa()), &gx, &want_x, sum_atol(9 * c_out), 1e-4) {
                panic!("{e}");
            }
        });
    }
}

/// Shapes with nothing in them (no pixels, no input or no output channels) are not errors: every
/// table's im2col passes write what chapter 2's direct kernels write (with no input channel,
/// every output is its bias; with no pixel, the gradients are zero; with no output channel,
/// the input gradient is zero), and do not panic.
#[test]
fn empty_shapes_give_what_the_direct_kernels_give() {
    let scalar = Kernels::scalar();
    let shapes = [(1, 2, 3, 0, 5), (1, 2, 3, 4, 0), (2, 0, 3, 4, 5), (1, 3, 0, 4, 5), (0, 2, 3, 4, 5)];
    for (n, h, w, c_in, c_out) in shapes {
        let s = Conv2dShape { n, h, w, c_in, c_out };
        let (x, wt, b, g) =
            (rand_vec(s.input_len(), 1), rand_vec(s.weight_len(), 2), rand_vec(c_out, 3), rand_vec(s.output_len(), 4));
        let mut want = vec![0.0; s.output_len()];
        scalar.conv2d_forward(&s, &x, &wt, &b, &mut want, false);
        let (mut want_w, mut want_b) = (vec![0.0; s.weight_len()], vec![0.0; c_out]);
        scalar.conv2d_backward_weight(&s, &x, &g, &mut want_w, &mut want_b);
        let mut want_x = vec![0.0; s.input_len()];
        scalar.conv2d_backward_input(&s, &g, &wt, &mut want_x);
        for_each_isa(|k| {
            let mut got = vec![f32::NAN; s.output_len()];
            assert!(k.conv2d_forward_im2col(&s, &x, &wt, &b, &mut got, false).is_some());
            assert_eq!(got, want, "{} forward {s:?}", k.isa());
            let (mut gw, mut gb) = (vec![f32::NAN; s.weight_len()], vec![f32::NAN; c_out]);
            assert!(k.conv2d_backward_weight_im2col(&s, &x, &g, &mut gw, &mut gb).is_some());
            assert_eq!((&gw, &gb), (&want_w, &want_b), "{} weight gradient {s:?}", k.isa());
            let mut gx = vec![f32::NAN; s.input_len()];
            assert!(k.conv2d_backward_input_im2col(&s, &g, &wt, &mut gx).is_some());
            assert_eq!(gx, want_x, "{} input gradient {s:?}", k.isa());
        });
    }
}
