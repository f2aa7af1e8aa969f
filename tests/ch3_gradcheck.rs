//! Chapter 3: every backward pass against finite differences, on every instruction set.
//!
//! For a layer `y = f(x)` we take the scalar loss `L = sum(y * r)` with a fixed random `r`, so
//! that `dL/dy = r`, run the layer's backward pass with `grad_y = r`, and compare what it says
//! about `dL/dx` (and `dL/dW`, `dL/db`) with `(L(x + eps) - L(x - eps)) / 2 eps`.
mod common;

use common::{check_directions, check_grad, distinct_tensor, dot64, for_each_isa, numeric_grad, rand_tensor, rand_vec};
use simd_cnn::kernels::{Conv2dShape, Kernels, Pool2dShape};
use simd_cnn::model::{CatDogCnn, Mlp};
use simd_cnn::nn::{Conv2d, Flatten, Linear, MaxPool2d, ReLU, loss};
use simd_cnn::reference;
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::init::rng;

const EPS: f32 = 1e-2;
const ATOL: f64 = 1e-3;
const RTOL: f64 = 1e-3;

#[test]
fn linear_backward_matches_finite_differences() {
    for_each_isa(|k| {
        let (batch, d_in, d_out) = (3, 7, 5);
        let mut layer = Linear::new(d_in, d_out, &mut rng(1));
        layer.bias.value = rand_tensor(&[d_out], 2);
        let mut x = rand_vec(batch * d_in, 3);
        let r = rand_vec(batch * d_out, 4);
        let mut gx = vec![0.0; x.len()];
        layer.backward(k, batch, &x, &r, Some(&mut gx));

        let loss = |layer: &Linear, x: &[f32]| {
            let mut y = vec![0.0; batch * d_out];
            layer.forward(k, batch, x, &mut y);
            dot64(&y, &r)
        };
        let all = |n| (0..n).collect::<Vec<_>>();
        let idx = all(x.len());
        let num = numeric_grad(&mut x, &idx, EPS, |x| loss(&layer, x));
        check_grad("linear dL/dx", &gx, &idx, &num, ATOL, RTOL).unwrap();

        let mut w = layer.weight.value.as_slice().to_vec();
        let idx = all(w.len());
        let mut probe = layer.clone();
        let num = numeric_grad(&mut w, &idx, EPS, |w| {
            probe.weight.value.as_mut_slice().copy_from_slice(w);
            loss(&probe, &x)
        });
        check_grad("linear dL/dW", layer.weight.grad.as_slice(), &idx, &num, ATOL, RTOL).unwrap();

        let mut b = layer.bias.value.as_slice().to_vec();
        let idx = all(b.len());
        let num = numeric_grad(&mut b, &idx, EPS, |b| {
            probe.bias.value.as_mut_slice().copy_from_slice(b);
            loss(&probe, &x)
        });
        check_grad("linear dL/db", layer.bias.grad.as_slice(), &idx, &num, ATOL, RTOL).unwrap();
    });
}

// ANCHOR: conv_gradcheck
/// Runs the conv gradient check and returns the first mismatch, if any. `tamper` may corrupt
/// the analytic weight gradient, to show that the check notices.
fn conv_gradcheck(k: &Kernels, tamper: impl Fn(&mut [f32])) -> Result<(), String> {
    let shape = Conv2dShape { n: 2, h: 5, w: 4, c_in: 3, c_out: 4 };
    let mut layer = Conv2d::new(shape.c_in, shape.c_out, &mut rng(5));
    layer.bias.value = rand_tensor(&[shape.c_out], 6);
    let mut x = rand_vec(shape.input_len(), 7);
    let r = rand_vec(shape.output_len(), 8);
    let mut gx = vec![0.0; x.len()];
    layer.backward(k, &shape, &x, &r, Some(&mut gx));
    tamper(layer.weight.grad.as_mut_slice());

    let loss = |layer: &Conv2d, x: &[f32]| {
        let mut y = vec![0.0; shape.output_len()];
        layer.forward(k, &shape, x, &mut y, false);
        dot64(&y, &r)
    };
    let idx: Vec<usize> = (0..x.len()).collect();
    let num = numeric_grad(&mut x, &idx, EPS, |x| loss(&layer, x));
    check_grad("conv dL/dx", &gx, &idx, &num, ATOL, RTOL)?;

    let mut probe = layer.clone();
    let mut w = layer.weight.value.as_slice().to_vec();
    let idx: Vec<usize> = (0..w.len()).collect();
    let num = numeric_grad(&mut w, &idx, EPS, |w| {
        probe.weight.value.as_mut_slice().copy_from_slice(w);
        loss(&probe, &x)
    });
    check_grad("conv dL/dW", layer.weight.grad.as_slice(), &idx, &num, ATOL, RTOL)?;

    let mut b = layer.bias.value.as_slice().to_vec();
    let idx: Vec<usize> = (0..b.len()).collect();
    let num = numeric_grad(&mut b, &idx, EPS, |b| {
        probe.bias.value.as_mut_slice().copy_from_slice(b);
        loss(&probe, &x)
    });
    check_grad("conv dL/db", layer.bias.grad.as_slice(), &idx, &num, ATOL, RTOL)
}
// ANCHOR_END: conv_gradcheck

#[test]
fn conv2d_backward_matches_finite_differences() {
    for_each_isa(|k| conv_gradcheck(k, |_| {}).unwrap());
}

// ANCHOR: catches_a_wrong_gradient
#[test]
fn the_gradient_check_catches_a_wrong_gradient() {
    // The same check with the weight gradient of one tap off by 2 %, and with two taps swapped
    // (the classic mistake of flipping the kernel): both must be caught.
    let k = Kernels::scalar();
    let scaled = conv_gradcheck(k, |g| g[13] *= 1.02);
    assert!(scaled.is_err_and(|e| e.contains("conv dL/dW")), "a 2% error went unnoticed");
    let swapped = conv_gradcheck(k, |g| g.swap(0, 8 * 12));
    assert!(swapped.is_err(), "swapped taps went unnoticed");
}
// ANCHOR_END: catches_a_wrong_gradient

// ANCHOR: max_pool2d_gradcheck
#[test]
fn max_pool2d_backward_matches_finite_differences() {
    for_each_isa(|k| {
        for fuse_relu in [false, true] {
            // Odd height and width: the last row and column belong to no window.
            let shape = Pool2dShape { n: 2, h: 5, w: 7, c: 3 };
            // Distinct values 0.01 apart, half of them negative, so no window ties and no value
            // sits within EPS of zero (the ReLU's kink).
            let mut x = distinct_tensor(&[shape.input_len()], 0.01, 9).as_slice().to_vec();
            let r = rand_vec(shape.output_len(), 10);
            let forward = |x: &[f32]| {
                let mut input = x.to_vec();
                if fuse_relu {
                    ReLU.forward(k, &mut input);
                }
                let mut y = vec![0.0; shape.output_len()];
                MaxPool2d.forward(k, &shape, &input, &mut y);
                (input, y)
            };
            let (input, y) = forward(&x);
            let mut gx = vec![0.0; x.len()];
            MaxPool2d.backward(k, &shape, &input, &y, &r, &mut gx, fuse_relu);
            let idx: Vec<usize> = (0..x.len()).collect();
            let num = numeric_grad(&mut x, &idx, 1e-3, |x| dot64(&forward(x).1, &r));
            check_grad(&format!("max-pool dL/dx (fuse_relu {fuse_relu})"), &gx, &idx, &num, ATOL, RTOL).unwrap();
        }
    });
}
// ANCHOR_END: max_pool2d_gradcheck

#[test]
fn relu_backward_matches_finite_differences() {
    for_each_isa(|k| {
        let mut x = distinct_tensor(&[37], 0.01, 11).as_slice().to_vec();
        let r = rand_vec(37, 12);
        let mut y = x.clone();
        ReLU.forward(k, &mut y);
        let mut g = r.clone();
        ReLU.backward(k, &y, &mut g);
        let idx: Vec<usize> = (0..x.len()).collect();
        let num = numeric_grad(&mut x, &idx, 1e-3, |x| {
            let mut y = x.to_vec();
            ReLU.forward(k, &mut y);
            dot64(&y, &r)
        });
        check_grad("relu dL/dx", &g, &idx, &num, ATOL, RTOL).unwrap();
    });
}

#[test]
fn flatten_backward_matches_finite_differences() {
    let f = Flatten { h: 2, w: 3, c: 4 };
    let mut x = rand_vec(2 * f.features(), 13);
    let r = rand_vec(x.len(), 14);
    let mut g = vec![0.0; x.len()];
    f.backward(&r, &mut g);
    let idx: Vec<usize> = (0..x.len()).collect();
    let num = numeric_grad(&mut x, &idx, EPS, |x| {
        let mut rows = vec![0.0; x.len()];
        f.forward(x, &mut rows);
        dot64(&rows, &r)
    });
    check_grad("flatten dL/dx", &g, &idx, &num, ATOL, RTOL).unwrap();
}

#[test]
fn loss_gradients_match_finite_differences() {
    for_each_isa(|k| {
        let mut z = rand_vec(6, 15).iter().map(|v| v * 4.0).collect::<Vec<_>>();
        let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let mut g = vec![0.0; 6];
        loss::bce_with_logits(k, &z, &labels, &mut g);
        let idx: Vec<usize> = (0..6).collect();
        let num = numeric_grad(&mut z, &idx, 1e-2, |z| {
            let mut scratch = vec![0.0; 6];
            loss::bce_with_logits(k, z, &labels, &mut scratch) as f64
        });
        check_grad("bce dL/dz", &g, &idx, &num, 1e-4, 1e-2).unwrap();

        let mut z = rand_vec(3 * 10, 16).iter().map(|v| v * 3.0).collect::<Vec<_>>();
        let labels = [7u8, 0, 7];
        let (mut p, mut g) = (vec![0.0; 30], vec![0.0; 30]);
        loss::softmax_cross_entropy(k, 10, &z, &labels, &mut p, &mut g);
        let idx: Vec<usize> = (0..30).collect();
        let num = numeric_grad(&mut z, &idx, 1e-2, |z| {
            let (mut p, mut g) = (vec![0.0; 30], vec![0.0; 30]);
            loss::softmax_cross_entropy(k, 10, z, &labels, &mut p, &mut g) as f64
        });
        check_grad("softmax CE dL/dz", &g, &idx, &num, 1e-4, 1e-2).unwrap();
    });
}

// ANCHOR: whole_cnn
#[test]
fn the_whole_cnn_backward_matches_finite_differences() {
    for_each_isa(|k| {
        // 16x16 images: after three pools a 2x2x128 map, fc1 512 -> 128.
        let mut net = CatDogCnn::new(16, 16, 17);
        let x: Vec<f32> = rand_vec(2 * 16 * 16 * 3, 18).iter().map(|v| v * 0.5 + 0.5).collect();
        let labels = [0.0, 1.0];
        net.forward_backward(k, &x, &labels);
        for (p, name) in CatDogCnn::PARAM_NAMES.iter().enumerate() {
            let (grad, values) = (net.params()[p].grad.as_slice().to_vec(), net.params()[p].value.as_slice().to_vec());
            let mut probe = net.clone();
            check_directions(&format!("cnn {name} ({})", k.isa()), &grad, &values, 19 + p as u64, |v| {
                probe.params_mut()[p].value.as_mut_slice().copy_from_slice(v);
                let logits = Tensor::from_slice(&[2], probe.forward(k, &x));
                reference::bce_with_logits(&logits, &labels).0
            })
            .unwrap();
        }
    });
}
// ANCHOR_END: whole_cnn

// ANCHOR: catches_a_miswired_gradient
#[test]
fn the_network_check_catches_a_miswired_gradient() {
    // The gradient of conv2's weight with its output channels in reverse order: what a
    // transposed layout in the backward pass would produce.
    let k = Kernels::scalar();
    let mut net = CatDogCnn::new(16, 16, 17);
    let x: Vec<f32> = rand_vec(2 * 16 * 16 * 3, 18).iter().map(|v| v * 0.5 + 0.5).collect();
    let labels = [0.0, 1.0];
    net.forward_backward(k, &x, &labels);
    let c_out = 64;
    let grad: Vec<f32> = net
        .conv2
        .weight
        .grad
        .as_slice()
        .chunks(c_out)
        .flat_map(|row| row.iter().rev().copied().collect::<Vec<_>>())
        .collect();
    let values = net.conv2.weight.value.as_slice().to_vec();
    let mut probe = net.clone();
    let result = check_directions("cnn conv2.weight", &grad, &values, 21, |v| {
        probe.conv2.weight.value.as_mut_slice().copy_from_slice(v);
        let logits = Tensor::from_slice(&[2], probe.forward(k, &x));
        reference::bce_with_logits(&logits, &labels).0
    });
    assert!(result.is_err(), "a miswired gradient passed the whole-network check");
}
// ANCHOR_END: catches_a_miswired_gradient

#[test]
fn the_whole_mlp_backward_matches_finite_differences() {
    for_each_isa(|k| {
        let mut net = Mlp::new(20);
        let x = rand_vec(3 * 784, 21);
        let labels = [4u8, 1, 9];
        net.forward_backward(k, &x, &labels);
        for (p, name) in Mlp::PARAM_NAMES.iter().enumerate() {
            let (grad, values) = (net.params()[p].grad.as_slice().to_vec(), net.params()[p].value.as_slice().to_vec());
            let mut probe = net.clone();
            check_directions(&format!("mlp {name} ({})", k.isa()), &grad, &values, 22 + p as u64, |v| {
                probe.params_mut()[p].value.as_mut_slice().copy_from_slice(v);
                let logits = Tensor::from_slice(&[3, 10], probe.forward(k, &x));
                reference::softmax_cross_entropy(&logits, &labels.map(|l| l as usize)).0
            })
            .unwrap();
        }
    });
}

/// The layers' backward passes (NHWC, on every instruction set) against the reference
/// oracle's (NCHW, f64 sums), which transcribe the formulas chapter 3 derives.
#[test]
fn layer_gradients_agree_with_the_reference() {
    use simd_cnn::tensor::layout::{hwio_to_oihw, nchw_to_nhwc, nhwc_to_nchw};
    for_each_isa(|k| {
        let s = Conv2dShape { n: 2, h: 6, w: 7, c_in: 5, c_out: 9 };
        let mut conv = Conv2d::new(s.c_in, s.c_out, &mut rng(30));
        let x = rand_tensor(&[s.n, s.c_in, s.h, s.w], 31);
        let gy = rand_tensor(&[s.n, s.c_out, s.h, s.w], 32);
        let (xh, gyh) = (nchw_to_nhwc(&x), nchw_to_nhwc(&gy));
        let mut gx = Tensor::zeros(&[s.n, s.h, s.w, s.c_in]);
        conv.backward(k, &s, xh.as_slice(), gyh.as_slice(), Some(gx.as_mut_slice()));
        let (want_gx, want_gw, want_gb) = reference::conv2d_backward(&x, &hwio_to_oihw(&conv.weight.value), &gy);
        common::assert_close("conv dL/dx", nhwc_to_nchw(&gx).as_slice(), want_gx.as_slice(), 1e-5, 1e-4);
        common::assert_close("conv dL/dW", hwio_to_oihw(&conv.weight.grad).as_slice(), want_gw.as_slice(), 1e-5, 1e-4);
        common::assert_close("conv dL/db", conv.bias.grad.as_slice(), want_gb.as_slice(), 1e-5, 1e-4);

        let mut lin = Linear::new(23, 6, &mut rng(33));
        let (x, gy) = (rand_tensor(&[4, 23], 34), rand_tensor(&[4, 6], 35));
        let mut gx = vec![0.0; 4 * 23];
        lin.backward(k, 4, x.as_slice(), gy.as_slice(), Some(&mut gx));
        let (want_gx, want_gw, want_gb) = reference::linear_backward(&x, &lin.weight.value, &gy);
        common::assert_close("linear dL/dx", &gx, want_gx.as_slice(), 1e-5, 1e-4);
        common::assert_close("linear dL/dW", lin.weight.grad.as_slice(), want_gw.as_slice(), 1e-5, 1e-4);
        common::assert_close("linear dL/db", lin.bias.grad.as_slice(), want_gb.as_slice(), 1e-5, 1e-4);

        let p = Pool2dShape { n: 2, h: 5, w: 7, c: 3 };
        let x = distinct_tensor(&[p.n, p.c, p.h, p.w], 0.01, 36);
        let gy = rand_tensor(&[p.n, p.c, p.h / 2, p.w / 2], 37);
        let xh = nchw_to_nhwc(&x);
        let mut y = vec![0.0; p.output_len()];
        MaxPool2d.forward(k, &p, xh.as_slice(), &mut y);
        let mut gx = vec![0.0; p.input_len()];
        MaxPool2d.backward(k, &p, xh.as_slice(), &y, nchw_to_nhwc(&gy).as_slice(), &mut gx, false);
        let gx = nhwc_to_nchw(&Tensor::from_vec(&[p.n, p.h, p.w, p.c], gx));
        assert_eq!(gx, reference::max_pool2d_backward(&x, &gy), "max-pool dL/dx");

        let x = distinct_tensor(&[40], 0.01, 38);
        let gy = rand_tensor(&[40], 39);
        let mut y = x.as_slice().to_vec();
        ReLU.forward(k, &mut y);
        let mut g = gy.as_slice().to_vec();
        ReLU.backward(k, &y, &mut g);
        assert_eq!(g, reference::relu_backward(&x, &gy).as_slice(), "relu dL/dx");
    });
}
