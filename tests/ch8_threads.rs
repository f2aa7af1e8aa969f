//! Chapter 8: training on a pool of threads gives the same result, bit for bit, whatever the
//! number of threads, and the same result as one thread without the pool up to the order of
//! one sum.
mod common;

use common::{assert_close, rand_vec};
use simd_cnn::kernels::Kernels;
use simd_cnn::model::CatDogCnn;
use simd_cnn::parallel::{DataParallel, ParallelError};
use simd_cnn::train::Sgd;

/// `n` images of `side` x `side` in [0, 1] and alternating labels.
fn batch(n: usize, side: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = rand_vec(n * side * side * 3, seed).iter().map(|v| 0.5 + 0.5 * v).collect();
    (x, (0..n).map(|i| (i % 2) as f32).collect())
}

/// Weights after `steps` SGD steps with momentum on `threads` threads.
fn train(threads: usize, side: usize, n: usize, steps: usize) -> Vec<Vec<f32>> {
    let k = Kernels::best().unwrap();
    let mut par = DataParallel::new(threads).unwrap();
    let mut net = CatDogCnn::new(side, side, 3);
    let mut opt = Sgd::new(0.01, 0.9);
    for step in 0..steps {
        let (x, labels) = batch(n, side, 10 + step as u64);
        par.forward_backward(&mut net, k, &x, &labels);
        par.sgd_step(&mut opt, k, &mut net.params_mut());
    }
    net.params().iter().map(|p| p.value.as_slice().to_vec()).collect()
}

#[test]
fn the_number_of_threads_does_not_change_a_single_bit() {
    // 5 images: 2 threads split them 3 + 2, 3 threads 2 + 2 + 1, 5 threads one each.
    let one = train(1, 32, 5, 3);
    for threads in [2, 3, 5] {
        assert!(train(threads, 32, 5, 3) == one, "{threads} threads trained different weights than 1");
    }
}

#[test]
fn the_pool_agrees_with_the_single_threaded_model() {
    let k = Kernels::best().unwrap();
    let (x, labels) = batch(4, 32, 7);
    let mut reference = CatDogCnn::new(32, 32, 1);
    let mut net = reference.clone();
    let want = reference.forward_backward(k, &x, &labels);
    let mut par = DataParallel::new(2).unwrap();
    let got = par.forward_backward(&mut net, k, &x, &labels);
    // The forward pass on the pool does exactly the same arithmetic as on one thread.
    assert_eq!(par.forward(&mut net, k, &x), reference.forward(k, &x));
    assert_eq!(got, want);
    // The weight gradients of the convolutions add the images in another order.
    for (name, (a, b)) in CatDogCnn::PARAM_NAMES.iter().zip(net.params().iter().zip(reference.params())) {
        assert_close(name, a.grad.as_slice(), b.grad.as_slice(), 1e-6, 1e-4);
    }
}

#[test]
fn predictions_on_the_pool_match_the_model() {
    let k = Kernels::best().unwrap();
    let (x, _) = batch(3, 16, 9);
    let mut net = CatDogCnn::new(16, 16, 2);
    let mut par = DataParallel::new(2).unwrap();
    assert_eq!(par.predict_proba(&mut net.clone(), k, &x), net.predict_proba(k, &x));
}

#[test]
fn zero_threads_is_an_error() {
    assert!(matches!(DataParallel::new(0), Err(ParallelError::ZeroThreads)));
}

/// Chapter 7's fused convolutions on the pool: the same weights as the unfused passes, bit for
/// bit, on any number of threads (both sum the convolutions' weight gradients image by image,
/// in image order), and on one thread without the pool too, since the fused step sums them the
/// same way there.
#[test]
fn fused_and_unfused_steps_on_the_pool_train_the_same_weights() {
    let k = Kernels::best().unwrap();
    let run = |fuse: bool, threads: Option<usize>| {
        let mut net = CatDogCnn::new(24, 24, 4);
        net.set_fusion(fuse);
        let mut opt = Sgd::new(0.01, 0.9);
        let mut par = threads.map(|t| DataParallel::new(t).unwrap());
        for step in 0..3 {
            let (x, labels) = batch(5, 24, 30 + step);
            match par.as_mut() {
                Some(par) => {
                    par.forward_backward(&mut net, k, &x, &labels);
                    par.sgd_step(&mut opt, k, &mut net.params_mut());
                }
                None => {
                    net.forward_backward(k, &x, &labels);
                    opt.step(k, &mut net.params_mut());
                }
            }
        }
        net.params().iter().map(|p| p.value.as_slice().to_vec()).collect::<Vec<_>>()
    };
    let want = run(false, Some(2));
    assert!(run(true, Some(2)) == want, "fused on 2 threads");
    assert!(run(true, Some(3)) == want, "fused on 3 threads");
    assert!(run(true, None) == want, "fused on one thread");
}

/// Chapter 7's linear updates fused into the backward pass, on the pool: the same weights as on
/// one thread and as the separate passes, bit for bit, on any number of threads (fc1 of a
/// 32-pixel image has 2048 x 128 weights, enough to be shared).
#[test]
fn fused_updates_on_the_pool_train_the_same_weights() {
    let k = Kernels::best().unwrap();
    let run = |threads: Option<usize>, fused_update: bool| {
        let mut net = CatDogCnn::new(32, 32, 5);
        let mut opt = Sgd::new(0.01, 0.0);
        let mut par = threads.map(|t| DataParallel::new(t).unwrap());
        for step in 0..3 {
            let (x, labels) = batch(5, 32, 40 + step);
            match (par.as_mut(), fused_update) {
                (Some(par), true) => {
                    par.train_step(&mut net, k, &x, &labels, &mut opt, |_| Ok::<(), ()>(())).unwrap();
                }
                (Some(par), false) => {
                    par.forward_backward(&mut net, k, &x, &labels);
                    par.sgd_step(&mut opt, k, &mut net.params_mut());
                }
                (None, _) => {
                    net.train_step(k, &x, &labels, &mut opt);
                }
            }
        }
        net.params().iter().map(|p| p.value.as_slice().to_vec()).collect::<Vec<_>>()
    };
    let want = run(Some(2), false);
    for threads in [1, 2, 3] {
        assert!(run(Some(threads), true) == want, "fused updates on {threads} threads");
    }
    assert!(run(None, true) == want, "fused updates on one thread without the pool");
}
