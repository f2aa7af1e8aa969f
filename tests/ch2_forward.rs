//! Chapter 2: every forward op of the scalar kernel table against the naive NCHW reference,
//! on awkward shapes, plus the instruction-set plumbing.
mod common;

use common::{assert_close, rand_tensor, rand_vec};
use simd_cnn::kernels::{Conv2dShape, Isa, IsaError, Kernels, LinearShape, Pool2dShape};
use simd_cnn::nn::{Flatten, loss};
use simd_cnn::reference;
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::{nchw_to_nhwc, nhwc_to_nchw, oihw_to_hwio};

// ANCHOR: conv2d_forward_test
/// (n, h, w, c_in, c_out): widths 1, 3, 15, 17, 33; 3 input channels; batch 1.
const CONV_SHAPES: [(usize, usize, usize, usize, usize); 6] =
    [(1, 1, 1, 1, 1), (1, 3, 3, 3, 5), (2, 5, 15, 3, 32), (1, 4, 17, 7, 9), (1, 2, 33, 16, 17), (2, 6, 6, 32, 64)];

#[test]
fn conv2d_forward_matches_the_reference() {
    let k = Kernels::scalar();
    for (i, &(n, h, w, c_in, c_out)) in CONV_SHAPES.iter().enumerate() {
        let x = rand_tensor(&[n, c_in, h, w], 10 + i as u64);
        let wt = rand_tensor(&[c_out, c_in, 3, 3], 20 + i as u64);
        let b = rand_tensor(&[c_out], 30 + i as u64);
        let want = reference::conv2d_forward(&x, &wt, &b);
        let shape = Conv2dShape { n, h, w, c_in, c_out };
        let mut got = Tensor::zeros(&[n, h, w, c_out]);
        let xh = nchw_to_nhwc(&x);
        let wh = oihw_to_hwio(&wt);
        k.conv2d_forward(&shape, xh.as_slice(), wh.as_slice(), b.as_slice(), got.as_mut_slice(), false);
        assert_close(&format!("conv {shape:?}"), nhwc_to_nchw(&got).as_slice(), want.as_slice(), 1e-5, 1e-5);

        k.conv2d_forward(&shape, xh.as_slice(), wh.as_slice(), b.as_slice(), got.as_mut_slice(), true);
        let want_relu = reference::relu_forward(&want);
        assert_close(&format!("conv+relu {shape:?}"), nhwc_to_nchw(&got).as_slice(), want_relu.as_slice(), 1e-5, 1e-5);
    }
}
// ANCHOR_END: conv2d_forward_test

// ANCHOR: single_one
#[test]
fn conv2d_of_a_single_one_is_the_kernel_turned_by_180_degrees() {
    // A 3x3 image that is 1 in the middle: every output pixel sees the middle input through
    // exactly one tap, so the output is the kernel, turned by 180 degrees (see below).
    let k = Kernels::scalar();
    let shape = Conv2dShape { n: 1, h: 3, w: 3, c_in: 1, c_out: 1 };
    let mut x = vec![0.0; 9];
    x[4] = 1.0;
    let weight: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut y = vec![0.0; 9];
    k.conv2d_forward(&shape, &x, &weight, &[0.0], &mut y, false);
    // Output (y, x) reads input (y + ky - 1, x + kx - 1); the 1 sits at (1, 1), so it is read
    // through tap (2 - y, 2 - x): the kernel rotated by 180 degrees.
    let rotated: Vec<f32> = weight.iter().rev().copied().collect();
    assert_eq!(y, rotated);
}
// ANCHOR_END: single_one

#[test]
fn max_pool2d_forward_matches_the_reference_on_odd_sizes() {
    let k = Kernels::scalar();
    for (i, &(n, h, w, c)) in [(1, 2, 2, 1), (1, 3, 5, 3), (2, 4, 17, 5), (1, 7, 33, 32)].iter().enumerate() {
        let x = rand_tensor(&[n, c, h, w], 40 + i as u64);
        let want = reference::max_pool2d_forward(&x);
        let shape = Pool2dShape { n, h, w, c };
        let mut got = Tensor::zeros(&[n, h / 2, w / 2, c]);
        k.max_pool2d_forward(&shape, nchw_to_nhwc(&x).as_slice(), got.as_mut_slice());
        assert_eq!(nhwc_to_nchw(&got), want, "{shape:?}");
    }
}

#[test]
fn linear_forward_matches_the_reference() {
    let k = Kernels::scalar();
    for (i, &(batch, d_in, d_out)) in [(1, 1, 1), (3, 17, 5), (32, 784, 128), (16, 33, 1)].iter().enumerate() {
        let x = rand_tensor(&[batch, d_in], 50 + i as u64);
        let w = rand_tensor(&[d_out, d_in], 60 + i as u64);
        let b = rand_tensor(&[d_out], 70 + i as u64);
        let want = reference::linear_forward(&x, &w, &b);
        let mut got = vec![0.0; batch * d_out];
        let shape = LinearShape { batch, in_features: d_in, out_features: d_out };
        k.linear_forward(&shape, x.as_slice(), w.as_slice(), b.as_slice(), &mut got);
        assert_close(&format!("linear {shape:?}"), &got, want.as_slice(), 1e-5, 1e-5);
    }
}

#[test]
fn activations_match_the_reference() {
    let k = Kernels::scalar();
    let x = Tensor::from_fn(&[7, 10], |i| (i as f32 - 35.0) * 0.7);
    let mut y = x.as_slice().to_vec();
    k.relu_forward(&mut y);
    assert_eq!(y, reference::relu_forward(&x).as_slice());

    let mut s = vec![0.0; x.len()];
    k.sigmoid_forward(x.as_slice(), &mut s);
    assert_close("sigmoid", &s, reference::sigmoid(&x).as_slice(), 1e-7, 1e-6);

    let mut p = vec![0.0; x.len()];
    k.softmax_forward(10, x.as_slice(), &mut p);
    assert_close("softmax", &p, reference::softmax(&x).as_slice(), 1e-7, 1e-5);
    for row in p.chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}

#[test]
fn sigmoid_and_softmax_do_not_overflow() {
    let k = Kernels::scalar();
    let x = [-1000.0f32, -100.0, 0.0, 100.0, 1000.0];
    let mut s = [0.0; 5];
    k.sigmoid_forward(&x, &mut s);
    assert!(s.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{s:?}");
    assert_eq!([s[0], s[2], s[3], s[4]], [0.0, 0.5, 1.0, 1.0]);
    assert!(s[1] < 1e-40);
    let mut p = [0.0; 5];
    k.softmax_forward(5, &x, &mut p);
    assert!(p.iter().all(|v| v.is_finite()));
    assert_eq!(p[4], 1.0);
}

#[test]
fn losses_match_the_reference() {
    let k = Kernels::scalar();
    let z = Tensor::from_vec(&[6], vec![-30.0, -2.0, -0.1, 0.0, 0.7, 25.0]);
    let labels = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let mut grad = vec![0.0; 6];
    let got = loss::bce_with_logits(k, z.as_slice(), &labels, &mut grad);
    let (want, want_grad) = reference::bce_with_logits(&z, &labels);
    assert!((got as f64 - want).abs() < 1e-5 * want.abs().max(1.0), "bce {got} vs {want}");
    assert_close("bce grad", &grad, want_grad.as_slice(), 1e-7, 1e-5);

    let logits = rand_tensor(&[4, 10], 80);
    let labels = [3u8, 0, 9, 3];
    let (mut probs, mut grad) = (vec![0.0; 40], vec![0.0; 40]);
    let got = loss::softmax_cross_entropy(k, 10, logits.as_slice(), &labels, &mut probs, &mut grad);
    let (want, want_grad) = reference::softmax_cross_entropy(&logits, &labels.map(|l| l as usize));
    assert!((got as f64 - want).abs() < 1e-5, "softmax CE {got} vs {want}");
    assert_close("softmax CE grad", &grad, want_grad.as_slice(), 1e-7, 1e-5);
}

#[test]
fn softmax_cross_entropy_is_exact_when_the_label_is_hopeless() {
    // The label's probability is exp(-1000): zero in f32 and in f64. The loss is still 1000.
    let k = Kernels::scalar();
    let mut logits = vec![0.0f32; 10];
    logits[0] = 1000.0;
    let (mut probs, mut grad) = (vec![0.0; 10], vec![0.0; 10]);
    let loss = loss::softmax_cross_entropy(k, 10, &logits, &[1], &mut probs, &mut grad);
    assert_eq!(loss, 1000.0);
    assert_eq!(grad[1], -1.0);
    assert_eq!(grad[0], 1.0);
}

#[test]
fn flatten_uses_pytorch_channel_major_order() {
    let x = Tensor::from_fn(&[2, 3, 4, 5], |i| i as f32); // NCHW, as PyTorch would hold it
    let nhwc = nchw_to_nhwc(&x);
    let f = Flatten { h: 4, w: 5, c: 3 }; // nhwc is [2, 4, 5, 3]
    let mut rows = vec![0.0; x.len()];
    f.forward(nhwc.as_slice(), &mut rows);
    assert_eq!(rows, x.as_slice(), "flattening NHWC must give PyTorch's flatten of NCHW");
    let mut back = vec![0.0; x.len()];
    f.backward(&rows, &mut back);
    assert_eq!(back, nhwc.as_slice());
}

#[test]
fn isa_names_parse_and_bad_names_say_what_is_expected() {
    for isa in Isa::ALL {
        assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
    }
    let err = "avx1024".parse::<Isa>().unwrap_err();
    assert_eq!(err, IsaError::UnknownName { name: "avx1024".into() });
    assert!(err.to_string().contains("expected scalar, sse, avx2 or avx512"));
}

#[test]
fn the_scalar_table_always_exists_and_best_is_available() {
    assert_eq!(Kernels::for_isa(Isa::Scalar).unwrap().isa(), Isa::Scalar);
    let best = Isa::best().unwrap();
    assert!(best.is_available());
    assert_eq!(Kernels::for_isa(best).unwrap().isa(), best);
    assert!(Isa::available().contains(&Isa::Scalar));
}

#[test]
fn an_unavailable_isa_is_an_error_not_a_crash() {
    for isa in Isa::ALL {
        match (isa.is_available(), Kernels::for_isa(isa)) {
            (true, Ok(k)) => assert_eq!(k.isa(), isa),
            (false, Err(e)) => assert!(!e.to_string().is_empty()),
            (avail, res) => panic!("{isa}: available {avail} but for_isa gave {:?}", res.map(|k| k.isa())),
        }
    }
}

#[test]
#[should_panic(expected = "conv2d weight: expected 27 elements, got 26")]
fn kernels_reject_slices_of_the_wrong_length() {
    let shape = Conv2dShape { n: 1, h: 2, w: 2, c_in: 3, c_out: 1 };
    let mut out = vec![0.0; 4];
    Kernels::scalar().conv2d_forward(&shape, &rand_vec(12, 1), &rand_vec(26, 2), &[0.0], &mut out, false);
}
