//! Chapter 8: threads.
//!
//! The cat/dog network trained on a pool of threads. Each layer's work is split into parts
//! that write disjoint outputs, and each thread runs the single-threaded kernels of chapters
//! 4-6 on its part:
//!
//! | work | split by | why |
//! | --- | --- | --- |
//! | convolutions, pools, flatten (forward, input gradients) | images | images are independent |
//! | fully connected layers, forward and weight gradient | outputs | each thread reads only its rows of W |
//! | fully connected layers, input gradient | images | W is read by every thread, but only twice |
//! | convolution weight gradients | images, then a sum in image order | a sum over images is a reduction |
//! | the SGD update | fixed chunks of each parameter | element-wise |
//!
//! No result depends on how the work is split: every output element is computed by the same
//! sequence of operations whatever the number of threads, and the one reduction, the sum of the
//! convolutions' per-image weight gradients, always adds the images in the same order. A run
//! with one thread and a run with sixteen give the same weights, bit for bit
//! (`tests/ch8_threads.rs` checks it).

use crate::kernels::{Conv2dShape, Kernels, LinearShape, Pool2dShape};
use crate::model::cnn::FUSE_RELU;
use crate::model::{CatDogCnn, StepStats};
use crate::nn::{Conv2d, Linear, Param, loss};
use crate::train::Sgd;
use rayon::prelude::*;

/// Elements of a parameter updated by one task of the SGD step: fixed, so that the split of an
/// element-wise update does not depend on the number of threads (it could not change the
/// result anyway; a fixed size keeps the tasks of the 16 MB fc1 weight large).
const SGD_CHUNK: usize = 1 << 16;

/// Why a pool of threads could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    #[error("the number of threads must be at least 1")]
    ZeroThreads,
    #[error("cannot start {threads} threads: {source}")]
    Pool {
        threads: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
}

// ANCHOR: data_parallel
/// A pool of threads and the scratch memory the parallel training step needs.
pub struct DataParallel {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Per-image weight and bias gradients of each convolution, before the ordered sum.
    conv_grad_w: [Vec<f32>; 3],
    conv_grad_b: [Vec<f32>; 3],
    /// Columns of a fully connected layer's output or output gradient, one block per thread.
    columns: Vec<f32>,
}
// ANCHOR_END: data_parallel

impl DataParallel {
    /// A pool of `threads` threads (the calling thread waits while they work).
    pub fn new(threads: usize) -> Result<Self, ParallelError> {
        if threads == 0 {
            return Err(ParallelError::ZeroThreads);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("simd-cnn-{i}"))
            .build()
            .map_err(|source| ParallelError::Pool { threads, source })?;
        Ok(DataParallel {
            pool,
            threads,
            conv_grad_w: Default::default(),
            conv_grad_b: Default::default(),
            columns: Vec::new(),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    // ANCHOR: forward
    /// The network's forward pass on the pool: x `[n, h, w, 3]` -> logits `[n]`.
    pub fn forward<'a>(&mut self, net: &'a mut CatDogCnn, k: &Kernels, x: &[f32]) -> &'a [f32] {
        assert!(!x.is_empty() && x.len().is_multiple_of(net.image_len()), "x must be whole images");
        let s = net.shapes(x.len() / net.image_len());
        net.resize(&s);
        let n = s.conv[0].n;
        let b = &mut net.buf;
        self.conv_forward(k, &net.conv1, &s.conv[0], x, &mut b.r1);
        self.pool_forward(k, &s.pool[0], &b.r1, &mut b.p1);
        self.conv_forward(k, &net.conv2, &s.conv[1], &b.p1, &mut b.r2);
        self.pool_forward(k, &s.pool[1], &b.r2, &mut b.p2);
        self.conv_forward(k, &net.conv3, &s.conv[2], &b.p2, &mut b.r3);
        self.pool_forward(k, &s.pool[2], &b.r3, &mut b.p3);
        let features = s.flatten.features();
        self.pool.install(|| {
            b.p3.par_chunks(features)
                .zip(b.flat.par_chunks_mut(features))
                .for_each(|(x, row)| s.flatten.forward(x, row))
        });
        self.linear_forward(k, &net.fc1, n, &b.flat, &mut b.h1);
        k.relu_forward(&mut b.h1);
        // fc2 has 128 x 1 weights: too little work to share.
        net.fc2.forward(k, n, &b.h1, &mut b.logits);
        &net.buf.logits
    }
    // ANCHOR_END: forward

    // ANCHOR: forward_backward
    /// Forward, loss and backward on the pool, as `CatDogCnn::forward_backward` does on one
    /// thread: leaves dL/dparam in every parameter's `grad`.
    pub fn forward_backward(&mut self, net: &mut CatDogCnn, k: &Kernels, x: &[f32], labels: &[f32]) -> StepStats {
        self.forward(net, k, x);
        assert_eq!(net.buf.n, labels.len(), "one label per image");
        let s = net.shapes(labels.len());
        let n = s.conv[0].n;
        let b = &mut net.buf;
        let loss = loss::bce_with_logits(k, &b.logits, labels, &mut b.g_logits);
        let correct = b.logits.iter().zip(labels).filter(|&(&z, &t)| (z > 0.0) == (t > 0.5)).count();

        net.fc2.backward(k, n, &b.h1, &b.g_logits, Some(&mut b.g_h1));
        k.relu_backward(&b.h1, &mut b.g_h1);
        self.linear_backward(k, &mut net.fc1, n, &b.flat, &b.g_h1, &mut b.g_flat);
        let features = s.flatten.features();
        self.pool.install(|| {
            b.g_flat
                .par_chunks(features)
                .zip(b.g_p3.par_chunks_mut(features))
                .for_each(|(g, gx)| s.flatten.backward(g, gx))
        });
        self.pool_backward(k, &s.pool[2], &b.r3, &b.p3, &b.g_p3, &mut b.g_r3);
        self.conv_backward(k, &mut net.conv3, 2, &s.conv[2], &b.p2, &b.g_r3, Some(&mut b.g_p2));
        self.pool_backward(k, &s.pool[1], &b.r2, &b.p2, &b.g_p2, &mut b.g_r2);
        self.conv_backward(k, &mut net.conv2, 1, &s.conv[1], &b.p1, &b.g_r2, Some(&mut b.g_p1));
        self.pool_backward(k, &s.pool[0], &b.r1, &b.p1, &b.g_p1, &mut b.g_r1);
        self.conv_backward(k, &mut net.conv1, 0, &s.conv[0], x, &b.g_r1, None);
        StepStats { loss, correct }
    }
    // ANCHOR_END: forward_backward

    /// The probability of "dog" for each image, computed on the pool.
    pub fn predict_proba(&mut self, net: &mut CatDogCnn, k: &Kernels, x: &[f32]) -> Vec<f32> {
        let logits = self.forward(net, k, x);
        let mut p = vec![0.0; logits.len()];
        k.sigmoid_forward(logits, &mut p);
        p
    }

    // ANCHOR: sgd_step
    /// One SGD update of every parameter, each split into fixed chunks shared by the pool.
    pub fn sgd_step(&self, opt: &mut Sgd, k: &Kernels, params: &mut [&mut Param]) {
        let (lr, momentum) = (opt.lr, opt.momentum);
        if momentum == 0.0 {
            for p in params.iter_mut() {
                let Param { value, grad } = &mut **p;
                self.pool.install(|| {
                    value
                        .as_mut_slice()
                        .par_chunks_mut(SGD_CHUNK)
                        .zip(grad.as_slice().par_chunks(SGD_CHUNK))
                        .for_each(|(v, g)| k.axpy(-lr, g, v))
                });
            }
            return;
        }
        opt.ensure_velocity(params);
        for (p, vel) in params.iter_mut().zip(opt.velocity.iter_mut()) {
            let Param { value, grad } = &mut **p;
            self.pool.install(|| {
                value
                    .as_mut_slice()
                    .par_chunks_mut(SGD_CHUNK)
                    .zip(grad.as_slice().par_chunks(SGD_CHUNK))
                    .zip(vel.as_mut_slice().par_chunks_mut(SGD_CHUNK))
                    .for_each(|((v, g), m)| k.sgd_momentum_update(v, g, m, lr, momentum))
            });
        }
    }
    // ANCHOR_END: sgd_step

    /// Images per part when `n` images are shared by the threads.
    fn images_per_part(&self, n: usize) -> usize {
        n.div_ceil(self.threads).max(1)
    }

    // ANCHOR: conv_forward
    /// A convolution (with its fused ReLU) on parts of the batch.
    fn conv_forward(&self, k: &Kernels, layer: &Conv2d, s: &Conv2dShape, x: &[f32], y: &mut [f32]) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let per = self.images_per_part(s.n);
        self.pool.install(|| {
            x.par_chunks(per * x_image).zip(y.par_chunks_mut(per * y_image)).for_each(|(x, y)| {
                let part = Conv2dShape { n: x.len() / x_image, ..*s };
                layer.forward(k, &part, x, y, FUSE_RELU);
            })
        });
    }
    // ANCHOR_END: conv_forward

    fn pool_forward(&self, k: &Kernels, s: &Pool2dShape, x: &[f32], y: &mut [f32]) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let per = self.images_per_part(s.n);
        self.pool.install(|| {
            x.par_chunks(per * x_image)
                .zip(y.par_chunks_mut(per * y_image))
                .for_each(|(x, y)| k.max_pool2d_forward(&Pool2dShape { n: x.len() / x_image, ..*s }, x, y))
        });
    }

    fn pool_backward(&self, k: &Kernels, s: &Pool2dShape, x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32]) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let per = self.images_per_part(s.n);
        self.pool.install(|| {
            x.par_chunks(per * x_image)
                .zip(y.par_chunks(per * y_image))
                .zip(gy.par_chunks(per * y_image))
                .zip(gx.par_chunks_mut(per * x_image))
                .for_each(|(((x, y), gy), gx)| {
                    let part = Pool2dShape { n: x.len() / x_image, ..*s };
                    k.max_pool2d_backward(&part, x, y, gy, gx, FUSE_RELU)
                })
        });
    }

    // ANCHOR: conv_backward
    /// A convolution's gradients: the input gradient on parts of the batch; the weight gradient
    /// one image per task into scratch, then summed over the images in image order.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward(
        &mut self,
        k: &Kernels,
        layer: &mut Conv2d,
        index: usize,
        s: &Conv2dShape,
        x: &[f32],
        gy: &[f32],
        gx: Option<&mut [f32]>,
    ) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        if let Some(gx) = gx {
            let per = self.images_per_part(s.n);
            let weight = layer.weight.value.as_slice();
            self.pool.install(|| {
                gy.par_chunks(per * y_image).zip(gx.par_chunks_mut(per * x_image)).for_each(|(gy, gx)| {
                    k.conv2d_backward_input(&Conv2dShape { n: gy.len() / y_image, ..*s }, gy, weight, gx)
                })
            });
        }
        let one = Conv2dShape { n: 1, ..*s };
        let (w_len, b_len) = (s.weight_len(), s.c_out);
        let (parts_w, parts_b) = (&mut self.conv_grad_w[index], &mut self.conv_grad_b[index]);
        parts_w.resize(s.n * w_len, 0.0);
        parts_b.resize(s.n * b_len, 0.0);
        self.pool.install(|| {
            x.par_chunks(x_image)
                .zip(gy.par_chunks(y_image))
                .zip(parts_w.par_chunks_mut(w_len))
                .zip(parts_b.par_chunks_mut(b_len))
                .for_each(|(((x, gy), gw), gb)| k.conv2d_backward_weight(&one, x, gy, gw, gb))
        });
        self.sum_images(&self.conv_grad_w[index], s.n, layer.weight.grad.as_mut_slice());
        self.sum_images(&self.conv_grad_b[index], s.n, layer.bias.grad.as_mut_slice());
    }

    /// `out = parts[0] + parts[1] + ... + parts[n-1]`, always in that order, with the elements
    /// shared among the threads.
    fn sum_images(&self, parts: &[f32], n: usize, out: &mut [f32]) {
        let len = out.len();
        assert_eq!(parts.len(), n * len);
        let chunk = len.div_ceil(self.threads).max(1);
        self.pool.install(|| {
            out.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
                let (start, width) = (c * chunk, out.len());
                out.copy_from_slice(&parts[start..][..width]);
                for image in 1..n {
                    for (o, &p) in out.iter_mut().zip(&parts[image * len + start..][..width]) {
                        *o += p;
                    }
                }
            })
        });
    }
    // ANCHOR_END: conv_backward

    // ANCHOR: linear_forward
    /// A fully connected layer with its outputs shared among the threads: each computes
    /// `y[:, range]` from its rows of W into a block of its own, then the blocks are interleaved
    /// into `y`.
    fn linear_forward(&mut self, k: &Kernels, layer: &Linear, batch: usize, x: &[f32], y: &mut [f32]) {
        let (d, m) = (layer.in_features(), layer.out_features());
        let per = m.div_ceil(self.threads);
        self.columns.resize(batch * m, 0.0);
        let (weight, bias) = (layer.weight.value.as_slice(), layer.bias.value.as_slice());
        self.pool.install(|| {
            weight.par_chunks(per * d).zip(bias.par_chunks(per)).zip(self.columns.par_chunks_mut(batch * per)).for_each(
                |((w, b), out)| {
                    k.linear_forward(&LinearShape { batch, in_features: d, out_features: b.len() }, x, w, b, out)
                },
            )
        });
        for (part, block) in self.columns.chunks(batch * per).enumerate() {
            let width = block.len() / batch;
            for (row, cols) in y.chunks_exact_mut(m).zip(block.chunks_exact(width)) {
                row[part * per..][..width].copy_from_slice(cols);
            }
        }
    }
    // ANCHOR_END: linear_forward

    /// A fully connected layer's gradients: the weight gradient with the outputs shared among
    /// the threads (each gathers the columns of `gy` it needs), the input gradient with the
    /// batch shared.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &mut self,
        k: &Kernels,
        layer: &mut Linear,
        batch: usize,
        x: &[f32],
        gy: &[f32],
        gx: &mut [f32],
    ) {
        let (d, m) = (layer.in_features(), layer.out_features());
        let per = m.div_ceil(self.threads);
        self.columns.resize(batch * m, 0.0);
        for (part, block) in self.columns.chunks_mut(batch * per).enumerate() {
            let width = block.len() / batch;
            for (row, cols) in gy.chunks_exact(m).zip(block.chunks_exact_mut(width)) {
                cols.copy_from_slice(&row[part * per..][..width]);
            }
        }
        let Linear { weight, bias } = layer;
        self.pool.install(|| {
            weight
                .grad
                .as_mut_slice()
                .par_chunks_mut(per * d)
                .zip(bias.grad.as_mut_slice().par_chunks_mut(per))
                .zip(self.columns.par_chunks(batch * per))
                .for_each(|((gw, gb), gy)| {
                    k.linear_backward_weight(
                        &LinearShape { batch, in_features: d, out_features: gb.len() },
                        x,
                        gy,
                        gw,
                        gb,
                    )
                })
        });
        let rows = batch.div_ceil(self.threads).max(1);
        let w = weight.value.as_slice();
        self.pool.install(|| {
            gy.par_chunks(rows * m).zip(gx.par_chunks_mut(rows * d)).for_each(|(gy, gx)| {
                k.linear_backward_input(
                    &LinearShape { batch: gy.len() / m, in_features: d, out_features: m },
                    gy,
                    w,
                    gx,
                )
            })
        });
    }
}
