//! Chapter 3: a network is its table. A network the crate has no code for, built from a table
//! alone, runs forward (checked against the NCHW reference ops), backward (checked by finite
//! differences) and, from chapter 8, on a pool of threads with the same result bit for bit as
//! on one thread. And the cat/dog table run through the general `Network` is `CatDogCnn`, bit
//! for bit.
mod common;

use common::{assert_close, check_directions, check_grad, for_each_isa, rand_vec};
use simd_cnn::kernels::Kernels;
use simd_cnn::model::{CATDOG, CatDogCnn, Layer, Network};
use simd_cnn::reference;
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::{hwio_to_oihw, nhwc_to_nchw};

// ANCHOR: four_convs
/// Four convolutions on 32x32 photos: one with a ReLU but no pool after it, one with a pool but
/// no ReLU, so that every way a ReLU meets its neighbours is run.
const FOUR_CONVS: [Layer; 14] = [
    Layer::Conv2d { name: "conv1", c_out: 8 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool1" }, // 16x16
    Layer::Conv2d { name: "conv2", c_out: 16 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool2" }, // 8x8
    Layer::Conv2d { name: "conv3", c_out: 16 },
    Layer::ReLU,
    Layer::Conv2d { name: "conv4", c_out: 32 },
    Layer::MaxPool2d { name: "pool3" }, // 4x4x32
    Layer::Flatten,
    Layer::Linear { name: "fc1", out_features: 24 },
    Layer::ReLU,
    Layer::Linear { name: "fc2", out_features: 1 },
];
// ANCHOR_END: four_convs

const SIDE: usize = 32;

/// `n` images of `SIDE` x `SIDE` in [0, 1] and alternating labels.
fn batch(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    sized_batch(n, SIDE, seed)
}

fn sized_batch(n: usize, side: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = rand_vec(n * side * side * 3, seed).iter().map(|v| 0.5 + 0.5 * v).collect();
    (x, (0..n).map(|i| (i % 2) as f32).collect())
}

/// The table's passes written with the NCHW reference ops, in f64 inside each op: an oracle
/// that shares nothing with the crate's plan but the table. Returns the logits and the
/// gradients of the parameters (in PyTorch's layout).
fn reference_passes(table: &[Layer], net: &Network, x: &[f32], labels: &[f32]) -> (Vec<f32>, Vec<Tensor>) {
    let n = labels.len();
    let params = net.params();
    let weight = |p: usize| {
        let w = &params[p].value;
        if w.shape().len() == 4 { hwio_to_oihw(w) } else { w.clone() }
    };
    // The input of every row, then the output of the last.
    let mut inputs = vec![nhwc_to_nchw(&Tensor::from_slice(&[n, SIDE, SIDE, 3], x))];
    let mut p = 0;
    for layer in table {
        let a = inputs.last().unwrap();
        let y = match layer {
            Layer::Conv2d { .. } => {
                p += 2;
                reference::conv2d_forward(a, &weight(p - 2), &params[p - 1].value)
            }
            Layer::ReLU => reference::relu_forward(a),
            Layer::MaxPool2d { .. } => reference::max_pool2d_forward(a),
            Layer::Flatten => a.clone().reshape(&[n, a.len() / n]),
            Layer::Linear { .. } => {
                p += 2;
                reference::linear_forward(a, &weight(p - 2), &params[p - 1].value)
            }
        };
        inputs.push(y);
    }
    let logits = inputs.pop().unwrap();
    let (_, mut g) = reference::bce_with_logits(&logits, labels);
    let mut grads = vec![Tensor::zeros(&[0]); p];
    for (layer, a) in table.iter().zip(&inputs).rev() {
        g = match layer {
            Layer::Conv2d { .. } | Layer::Linear { .. } => {
                p -= 2;
                let (gx, gw, gb) = match layer {
                    Layer::Conv2d { .. } => reference::conv2d_backward(a, &weight(p), &g),
                    _ => reference::linear_backward(a, &weight(p), &g),
                };
                (grads[p], grads[p + 1]) = (gw, gb);
                gx
            }
            Layer::ReLU => reference::relu_backward(a, &g),
            Layer::MaxPool2d { .. } => reference::max_pool2d_backward(a, &g),
            Layer::Flatten => g.reshape(a.shape()),
        };
    }
    (logits.as_slice().to_vec(), grads)
}

#[test]
fn a_table_alone_gives_the_passes_of_the_reference_ops() {
    for_each_isa(|k| {
        let mut net = Network::new(&FOUR_CONVS, SIDE, SIDE, 3, 5);
        let (x, labels) = batch(3, 6);
        let (logits, grads) = reference_passes(&FOUR_CONVS, &net, &x, &labels);
        let got = net.forward(k, &x).to_vec();
        assert!(got.iter().all(|&z| z != 0.0), "a logit is zero: the check would be weak");
        assert_close(&format!("{} logits", k.isa()), &got, &logits, 1e-5, 1e-4);
        net.forward_backward(k, &x, &labels);
        for ((name, p), want) in net.param_names().iter().zip(net.params()).zip(&grads) {
            let got = if want.shape().len() == 4 { hwio_to_oihw(&p.grad) } else { p.grad.clone() };
            assert!(want.as_slice().iter().any(|&g| g != 0.0), "{name}: the gradient is zero");
            assert_close(&format!("{} {name}", k.isa()), got.as_slice(), want.as_slice(), 1e-5, 1e-3);
        }
    });
}

#[test]
fn the_names_and_shapes_come_from_the_table() {
    let net = Network::new(&FOUR_CONVS, SIDE, SIDE, 3, 5);
    let names = net.param_names();
    assert_eq!(names.len(), 12);
    assert_eq!((names[6].as_str(), names[11].as_str()), ("conv4.weight", "fc2.bias"));
    let shapes: Vec<Vec<usize>> = net.params().iter().map(|p| p.value.shape().to_vec()).collect();
    assert_eq!(shapes, net.plan().param_shapes());
    assert_eq!(shapes[6], [3, 3, 16, 32]);
    assert_eq!(shapes[8], [24, 4 * 4 * 32]);
    assert_eq!(net.plan().torch_shapes()[6], [32, 16, 3, 3]);
}

#[test]
fn a_table_alone_gives_the_backward_pass_of_finite_differences() {
    for_each_isa(|k| {
        // 16x16 photos: fewer pixels, fewer ReLU and max-pool kinks for the finite differences
        // to cross (see `check_directions`).
        let mut net = Network::new(&FOUR_CONVS, 16, 16, 3, 5);
        let (x, labels) = sized_batch(2, 16, 7);
        net.forward_backward(k, &x, &labels);
        for (p, name) in net.param_names().iter().enumerate() {
            let (grad, values) = (net.params()[p].grad.as_slice().to_vec(), net.params()[p].value.as_slice().to_vec());
            assert!(grad.iter().any(|&g| g != 0.0), "{name}: the gradient is zero, the check would be empty");
            let mut probe = net.clone();
            check_directions(&format!("{name} ({})", k.isa()), &grad, &values, 30 + p as u64, |v| {
                probe.params_mut()[p].value.as_mut_slice().copy_from_slice(v);
                let logits = Tensor::from_slice(&[2], probe.forward(k, &x));
                reference::bce_with_logits(&logits, &labels).0
            })
            .unwrap();
        }
    });
}

/// The table's rows are all that `Network` knows: given the cat/dog table, it is `CatDogCnn`.
#[test]
fn the_cat_dog_table_in_a_network_is_the_cat_dog_cnn() {
    let k = Kernels::best().unwrap();
    let (x, labels) = {
        let x: Vec<f32> = rand_vec(2 * 16 * 16 * 3, 8).iter().map(|v| 0.5 + 0.5 * v).collect();
        (x, vec![1.0, 0.0])
    };
    let mut cnn = CatDogCnn::new(16, 16, 9);
    let mut net = Network::new(&CATDOG, 16, 16, 3, 9);
    assert_eq!(net.param_names(), CatDogCnn::PARAM_NAMES);
    assert_eq!(cnn.forward_backward(k, &x, &labels), net.forward_backward(k, &x, &labels));
    for ((name, a), b) in CatDogCnn::PARAM_NAMES.iter().zip(cnn.params()).zip(net.params()) {
        assert!(a.value.as_slice() == b.value.as_slice(), "{name}: other initial weights");
        assert!(a.grad.as_slice() == b.grad.as_slice(), "{name}: other gradients");
    }
}

/// The helper the gradient checks rely on must not let a NaN through.
#[test]
fn a_nan_gradient_fails_the_gradient_check() {
    let (indices, numeric) = ([0, 1], [1.0, 2.0]);
    assert!(check_grad("ok", &[1.0, 2.0], &indices, &numeric, 1e-6, 1e-6).is_ok());
    assert!(check_grad("nan", &[1.0, f32::NAN], &indices, &numeric, 1e-6, 1e-6).is_err());
    assert!(check_grad("nan", &[1.0, 2.0], &indices, &[1.0, f64::NAN], 1e-6, 1e-6).is_err());
}

#[cfg(feature = "ch8")]
mod threads {
    use super::*;
    use simd_cnn::model::Executor;
    use simd_cnn::parallel::DataParallel;
    use simd_cnn::train::Sgd;

    /// Weights after `steps` SGD steps with momentum on `threads` threads, or on the calling
    /// thread alone without a pool.
    fn train(threads: Option<usize>, steps: usize) -> Vec<Vec<f32>> {
        let k = Kernels::best().unwrap();
        let mut net = Network::new(&FOUR_CONVS, SIDE, SIDE, 3, 11);
        let mut opt = Sgd::new(0.01, 0.9);
        let mut pool = threads.map(|t| DataParallel::new(t).unwrap());
        for step in 0..steps {
            let (x, labels) = batch(5, 20 + step as u64);
            match pool.as_mut() {
                Some(pool) => {
                    let mut e = pool.on(k);
                    net.forward_backward_with(&mut e, &x, &labels);
                    e.sgd_step(&mut opt, &mut net.params_mut());
                }
                None => {
                    net.forward_backward(k, &x, &labels);
                    opt.step(k, &mut net.params_mut());
                }
            }
        }
        net.params().iter().map(|p| p.value.as_slice().to_vec()).collect()
    }

    #[test]
    fn a_step_on_the_pool_is_the_step_on_one_thread_bit_for_bit() {
        // The pool sums the convolutions' per-image weight gradients in image order; one
        // thread without the pool sums them inside the kernel. So the pool is compared with
        // itself over thread counts, and with the single thread up to that one sum.
        let one = train(Some(1), 3);
        for threads in [2, 3, 5] {
            assert!(train(Some(threads), 3) == one, "{threads} threads trained different weights than 1");
        }
        let serial = train(None, 3);
        for (i, (a, b)) in one.iter().zip(&serial).enumerate() {
            assert_close(&format!("parameter {i}"), a, b, 1e-5, 1e-3);
        }
    }

    #[test]
    fn the_forward_pass_on_the_pool_is_the_serial_one_bit_for_bit() {
        let k = Kernels::best().unwrap();
        let mut net = Network::new(&FOUR_CONVS, SIDE, SIDE, 3, 12);
        let (x, _) = batch(5, 13);
        let want = net.forward(k, &x).to_vec();
        let mut pool = DataParallel::new(3).unwrap();
        assert!(net.forward_with(&mut pool.on(k), &x) == want);
    }
}
