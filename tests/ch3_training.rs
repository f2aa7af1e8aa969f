//! Chapter 3: the optimiser and training, on small synthetic problems whose answers are known.
mod common;

use common::{for_each_isa, rand_vec};
use simd_cnn::kernels::Kernels;
use simd_cnn::model::{CatDogCnn, Mlp};
use simd_cnn::nn::Param;
use simd_cnn::tensor::Tensor;
use simd_cnn::train::Sgd;

#[test]
fn plain_sgd_subtracts_lr_times_the_gradient() {
    for_each_isa(|k| {
        let mut p = Param::new(Tensor::from_vec(&[5], vec![1.0, -2.0, 3.0, 0.5, 0.0]));
        p.grad = Tensor::from_vec(&[5], vec![0.5, 0.5, -1.0, 2.0, 0.0]);
        let mut opt = Sgd::new(0.1, 0.0);
        opt.step(k, &mut [&mut p]);
        common::assert_close("sgd", p.value.as_slice(), &[0.95, -2.05, 3.1, 0.3, 0.0], 1e-7, 0.0);
    });
}

#[test]
fn momentum_follows_pytorch_recurrence() {
    // torch.optim.SGD(momentum=m): v1 = g1, v_t = m v_{t-1} + g_t, p -= lr v_t.
    for_each_isa(|k| {
        let (lr, m) = (0.1f32, 0.9f32);
        let grads = [[1.0f32, -1.0], [0.5, 0.5], [-2.0, 0.0]];
        let mut p = Param::new(Tensor::from_vec(&[2], vec![0.0, 0.0]));
        let mut opt = Sgd::new(lr, m);
        let (mut want, mut v) = ([0.0f32; 2], [0.0f32; 2]);
        for g in grads {
            p.grad = Tensor::from_vec(&[2], g.to_vec());
            opt.step(k, &mut [&mut p]);
            for i in 0..2 {
                v[i] = m * v[i] + g[i];
                want[i] -= lr * v[i];
            }
        }
        common::assert_close("momentum", p.value.as_slice(), &want, 1e-6, 1e-6);
        common::assert_close("velocity", opt.velocity()[0].as_slice(), &v, 1e-6, 1e-6);
    });
}

/// Images of 16x16 where dogs (label 1) are brighter on the left half and cats on the right.
fn left_right_images(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let noise = rand_vec(n * 16 * 16 * 3, seed);
    let mut x = vec![0.0; noise.len()];
    let labels: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    for (i, v) in x.iter_mut().enumerate() {
        let (image, col) = (i / (16 * 16 * 3), (i / 3) % 16);
        let bright = (col < 8) == (labels[image] == 1.0);
        *v = 0.5 + 0.25 * noise[i] + if bright { 0.2 } else { -0.2 };
    }
    (x, labels)
}

#[test]
fn the_cnn_learns_to_tell_left_from_right() {
    let k = Kernels::best().unwrap();
    let mut net = CatDogCnn::new(16, 16, 1);
    let mut opt = Sgd::new(0.01, 0.9);
    let (x, labels) = left_right_images(16, 2);
    let first = net.forward_backward(k, &x, &labels);
    for _ in 0..30 {
        net.forward_backward(k, &x, &labels);
        opt.step(k, &mut net.params_mut());
    }
    let (test_x, test_labels) = left_right_images(32, 3);
    let p = net.predict_proba(k, &test_x);
    let correct = p.iter().zip(&test_labels).filter(|&(&p, &t)| (p > 0.5) == (t == 1.0)).count();
    let last = net.forward_backward(k, &x, &labels);
    assert!(last.loss < first.loss * 0.5, "loss went from {} to {}", first.loss, last.loss);
    assert!(correct >= 30, "{correct} of 32 held-out images right");
}

#[test]
fn the_mlp_learns_a_separable_problem() {
    // Ten classes, each a fixed random prototype plus noise.
    let k = Kernels::best().unwrap();
    let prototypes: Vec<Vec<f32>> = (0..10).map(|c| rand_vec(784, 100 + c)).collect();
    let make = |n: usize, seed: u64| {
        let noise = rand_vec(n * 784, seed);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let x: Vec<f32> =
            (0..n * 784).map(|i| prototypes[labels[i / 784] as usize][i % 784] + 0.5 * noise[i]).collect();
        (x, labels)
    };
    let mut net = Mlp::new(3);
    let mut opt = Sgd::new(0.01, 0.0);
    let (x, labels) = make(320, 4);
    for epoch in 0..5 {
        for b in 0..10 {
            let stats = net.forward_backward(k, &x[b * 32 * 784..][..32 * 784], &labels[b * 32..][..32]);
            assert!(stats.loss.is_finite(), "epoch {epoch}: loss {}", stats.loss);
            opt.step(k, &mut net.params_mut());
        }
    }
    let (tx, tl) = make(100, 5);
    let correct = net.predict(k, &tx).iter().zip(&tl).filter(|(a, b)| a == b).count();
    assert!(correct >= 95, "{correct} of 100 right");
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let run = |seed: u64| {
        let k = Kernels::scalar();
        let mut net = CatDogCnn::new(16, 16, seed);
        let mut opt = Sgd::new(0.01, 0.9);
        let (x, labels) = left_right_images(4, 9);
        for _ in 0..3 {
            net.forward_backward(k, &x, &labels);
            opt.step(k, &mut net.params_mut());
        }
        net.params().iter().flat_map(|p| p.value.as_slice().to_vec()).collect::<Vec<f32>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}
