//! Chapter 8: threads.
//!
//! The cat/dog network trained on a pool of threads. The network's forward and backward passes
//! are written once, in `model`, over an [`Executor`]; this module supplies [`OnPool`], the
//! executor that splits each step's work into parts that write disjoint outputs, each thread
//! running the single-threaded kernels of chapters 4-6 on its part:
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
use crate::model::{
    CatDogCnn, Executor, Serial, StepStats, check_conv_pool, conv_pool_backward_image, conv_pool_forward_image,
};
use crate::nn::{Flatten, Param};
use crate::tensor::AlignedVec;
use crate::train::Sgd;
use rayon::prelude::*;

/// Elements of a parameter updated by one task of the SGD step: fixed, so that the split of an
/// element-wise update does not depend on the number of threads (it could not change the
/// result anyway; a fixed size keeps the tasks of the 16 MB fc1 weight large).
const SGD_CHUNK: usize = 1 << 16;

/// Weights of the smallest fully connected layer shared among the threads: below it (fc2 has
/// 128 x 1), the work is too little to share and the calling thread does it.
const MIN_SHARED_WEIGHTS: usize = 1 << 12;

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
    /// Per-image weight and bias gradients of each convolution, before the ordered sum
    /// (indexed by the layer's place among the layers with parameters). The weight gradients
    /// start on a cache line, and so does each image's part when its length is a whole number
    /// of lines (every layer's here), so that the kernel sums into it in place.
    conv_grad_w: Vec<AlignedVec>,
    conv_grad_b: Vec<Vec<f32>>,
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
        Ok(DataParallel { pool, threads, conv_grad_w: Vec::new(), conv_grad_b: Vec::new(), columns: Vec::new() })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    // ANCHOR: forward
    /// This pool with the kernels `k`: an executor for the passes of any network
    /// ([`CatDogCnn::forward_with`], [`crate::model::Network::forward_backward_with`]).
    pub fn on<'a>(&'a mut self, k: &'a Kernels) -> OnPool<'a> {
        OnPool { par: self, k }
    }

    /// The network's forward pass on the pool: x `[n, h, w, 3]` -> logits `[n]`.
    pub fn forward<'a>(&mut self, net: &'a mut CatDogCnn, k: &Kernels, x: &[f32]) -> &'a [f32] {
        net.forward_with(&mut self.on(k), x)
    }

    /// Forward, loss and backward on the pool, as `CatDogCnn::forward_backward` does on one
    /// thread: leaves dL/dparam in every parameter's `grad`.
    pub fn forward_backward(&mut self, net: &mut CatDogCnn, k: &Kernels, x: &[f32], labels: &[f32]) -> StepStats {
        net.forward_backward_with(&mut self.on(k), x, labels)
    }
    // ANCHOR_END: forward

    /// One step of training on the pool, as `CatDogCnn::train_step_with` does on one thread:
    /// `check` sees the loss before anything changes.
    pub fn train_step<Err>(
        &mut self,
        net: &mut CatDogCnn,
        k: &Kernels,
        x: &[f32],
        labels: &[f32],
        opt: &mut Sgd,
        check: impl FnOnce(&StepStats) -> Result<(), Err>,
    ) -> Result<StepStats, Err> {
        net.train_step_with(&mut self.on(k), x, labels, opt, check)
    }

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

    /// Runs `f` on each thread's share of a linear layer's outputs: the layer of those rows,
    /// the columns of `gy` (`[batch, out]`) they need (gathered into `columns`, one block per
    /// share), and their rows of `per_output` (`[out, in]`, W or its gradient) and `bias`.
    fn by_outputs(
        &mut self,
        s: &LinearShape,
        gy: &[f32],
        per_output: &mut [f32],
        bias: &mut [f32],
        f: impl Fn(&LinearShape, &[f32], &mut [f32], &mut [f32]) + Sync,
    ) {
        let (batch, d, m) = (s.batch, s.in_features, s.out_features);
        let per = m.div_ceil(self.threads);
        self.columns.resize(batch * m, 0.0);
        for (part, block) in self.columns.chunks_mut(batch * per).enumerate() {
            let width = block.len() / batch;
            for (row, cols) in gy.chunks_exact(m).zip(block.chunks_exact_mut(width)) {
                cols.copy_from_slice(&row[part * per..][..width]);
            }
        }
        let columns = &self.columns;
        self.pool.install(|| {
            per_output
                .par_chunks_mut(per * d)
                .zip(bias.par_chunks_mut(per))
                .zip(columns.par_chunks(batch * per))
                .for_each(|((rows, b), gy)| {
                    f(&LinearShape { batch, in_features: d, out_features: b.len() }, gy, rows, b)
                })
        });
    }

    /// A linear layer's input gradient with the batch shared among the threads.
    fn input_gradient(&self, k: &Kernels, s: &LinearShape, gy: &[f32], w: &[f32], gx: &mut [f32]) {
        let (batch, d, m) = (s.batch, s.in_features, s.out_features);
        let rows = batch.div_ceil(self.threads).max(1);
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

    /// The pool, and the scratch for the per-image weight and bias gradients of convolution
    /// `layer`, sized for the batch of `s`.
    fn conv_grad_parts(&mut self, layer: usize, s: &Conv2dShape) -> (&rayon::ThreadPool, &mut [f32], &mut [f32]) {
        if self.conv_grad_w.len() <= layer {
            self.conv_grad_w.resize(layer + 1, AlignedVec::default());
            self.conv_grad_b.resize(layer + 1, Vec::new());
        }
        let (parts_w, parts_b) = (&mut self.conv_grad_w[layer], &mut self.conv_grad_b[layer]);
        if parts_w.len() != s.n * s.weight_len() {
            *parts_w = AlignedVec::zeros(s.n * s.weight_len());
        }
        parts_b.resize(s.n * s.c_out, 0.0);
        (&self.pool, parts_w, parts_b)
    }

    /// Images per part when `n` images are shared by the threads.
    fn images_per_part(&self, n: usize) -> usize {
        n.div_ceil(self.threads).max(1)
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
}

// ANCHOR: on_pool
/// A [`DataParallel`] pool with a kernel table: the executor that runs each step of a pass
/// split over the threads, as the table at the top of this module says.
pub struct OnPool<'a> {
    par: &'a mut DataParallel,
    k: &'a Kernels,
}
// ANCHOR_END: on_pool

impl Executor for OnPool<'_> {
    fn kernels(&self) -> &Kernels {
        self.k
    }

    // ANCHOR: conv_forward
    /// A convolution (with its fused ReLU) on parts of the batch.
    fn conv2d_forward(&mut self, s: &Conv2dShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], relu: bool) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let (per, k) = (self.par.images_per_part(s.n), self.k);
        self.par.pool.install(|| {
            x.par_chunks(per * x_image).zip(y.par_chunks_mut(per * y_image)).for_each(|(x, y)| {
                let part = Conv2dShape { n: x.len() / x_image, ..*s };
                k.conv2d_forward(&part, x, weight, bias, y, relu);
            })
        });
    }
    // ANCHOR_END: conv_forward

    // ANCHOR: conv_backward
    /// A convolution's gradients: the input gradient on parts of the batch; the weight gradient
    /// one image per task into scratch, then summed over the images in image order.
    fn conv2d_backward(
        &mut self,
        layer: usize,
        s: &Conv2dShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let (par, k) = (&mut *self.par, self.k);
        if let Some(gx) = gx {
            let per = par.images_per_part(s.n);
            let weight = weight.value.as_slice();
            par.pool.install(|| {
                gy.par_chunks(per * y_image).zip(gx.par_chunks_mut(per * x_image)).for_each(|(gy, gx)| {
                    k.conv2d_backward_input(&Conv2dShape { n: gy.len() / y_image, ..*s }, gy, weight, gx)
                })
            });
        }
        let one = Conv2dShape { n: 1, ..*s };
        let (w_len, b_len) = (s.weight_len(), s.c_out);
        let (pool, parts_w, parts_b) = par.conv_grad_parts(layer, s);
        pool.install(|| {
            x.par_chunks(x_image)
                .zip(gy.par_chunks(y_image))
                .zip(parts_w.par_chunks_mut(w_len))
                .zip(parts_b.par_chunks_mut(b_len))
                .for_each(|(((x, gy), gw), gb)| k.conv2d_backward_weight(&one, x, gy, gw, gb))
        });
        par.sum_images(&par.conv_grad_w[layer], s.n, weight.grad.as_mut_slice());
        par.sum_images(&par.conv_grad_b[layer], s.n, bias.grad.as_mut_slice());
    }
    // ANCHOR_END: conv_backward

    fn max_pool2d_forward(&mut self, s: &Pool2dShape, x: &[f32], y: &mut [f32]) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let (per, k) = (self.par.images_per_part(s.n), self.k);
        self.par.pool.install(|| {
            x.par_chunks(per * x_image)
                .zip(y.par_chunks_mut(per * y_image))
                .for_each(|(x, y)| k.max_pool2d_forward(&Pool2dShape { n: x.len() / x_image, ..*s }, x, y))
        });
    }

    fn max_pool2d_backward(&mut self, s: &Pool2dShape, x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32], relu: bool) {
        let (x_image, y_image) = (s.input_len() / s.n, s.output_len() / s.n);
        let (per, k) = (self.par.images_per_part(s.n), self.k);
        self.par.pool.install(|| {
            x.par_chunks(per * x_image)
                .zip(y.par_chunks(per * y_image))
                .zip(gy.par_chunks(per * y_image))
                .zip(gx.par_chunks_mut(per * x_image))
                .for_each(|(((x, y), gy), gx)| {
                    let part = Pool2dShape { n: x.len() / x_image, ..*s };
                    k.max_pool2d_backward(&part, x, y, gy, gx, relu)
                })
        });
    }

    fn flatten_forward(&mut self, f: &Flatten, x: &[f32], rows: &mut [f32]) {
        let features = f.features();
        self.par.pool.install(|| {
            x.par_chunks(features).zip(rows.par_chunks_mut(features)).for_each(|(x, row)| f.forward(x, row))
        });
    }

    fn flatten_backward(&mut self, f: &Flatten, grad_rows: &[f32], gx: &mut [f32]) {
        let features = f.features();
        self.par.pool.install(|| {
            grad_rows.par_chunks(features).zip(gx.par_chunks_mut(features)).for_each(|(g, gx)| f.backward(g, gx))
        });
    }

    // ANCHOR: linear_forward
    /// A fully connected layer with its outputs shared among the threads: each computes
    /// `y[:, range]` from its rows of W into a block of its own, then the blocks are interleaved
    /// into `y`. A small layer stays on the calling thread.
    fn linear_forward(&mut self, s: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
        if s.weight_len() < MIN_SHARED_WEIGHTS {
            return Serial(self.k).linear_forward(s, x, weight, bias, y);
        }
        let (batch, d, m) = (s.batch, s.in_features, s.out_features);
        let (par, k) = (&mut *self.par, self.k);
        let per = m.div_ceil(par.threads);
        par.columns.resize(batch * m, 0.0);
        par.pool.install(|| {
            weight.par_chunks(per * d).zip(bias.par_chunks(per)).zip(par.columns.par_chunks_mut(batch * per)).for_each(
                |((w, b), out)| {
                    k.linear_forward(&LinearShape { batch, in_features: d, out_features: b.len() }, x, w, b, out)
                },
            )
        });
        for (part, block) in par.columns.chunks(batch * per).enumerate() {
            let width = block.len() / batch;
            for (row, cols) in y.chunks_exact_mut(m).zip(block.chunks_exact(width)) {
                row[part * per..][..width].copy_from_slice(cols);
            }
        }
    }
    // ANCHOR_END: linear_forward

    /// A fully connected layer's gradients: the weight gradient with the outputs shared among
    /// the threads (each gathers the columns of `gy` it needs), the input gradient with the
    /// batch shared. A small layer stays on the calling thread.
    fn linear_backward(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        if s.weight_len() < MIN_SHARED_WEIGHTS {
            return Serial(self.k).linear_backward(s, x, gy, weight, bias, gx);
        }
        let k = self.k;
        let (gw, gb) = (weight.grad.as_mut_slice(), bias.grad.as_mut_slice());
        self.par.by_outputs(s, gy, gw, gb, |rows, gy, gw, gb| k.linear_backward_weight(rows, x, gy, gw, gb));
        if let Some(gx) = gx {
            self.par.input_gradient(k, s, gy, weight.value.as_slice(), gx);
        }
    }

    // ANCHOR: linear_backward_update
    /// Chapter 7's fused backward pass and update, shared: the input gradient first, with the
    /// batch shared and from the weights before the update, then the weight gradient and the
    /// update in one sweep, with the outputs (rows of W) shared. W is read twice and written
    /// once, where the separate passes read it three times and wrote it and its gradient.
    fn linear_backward_update(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
        lr: f32,
    ) {
        if s.weight_len() < MIN_SHARED_WEIGHTS {
            return Serial(self.k).linear_backward_update(s, x, gy, weight, bias, gx, lr);
        }
        if let Some(gx) = gx {
            self.par.input_gradient(self.k, s, gy, weight.value.as_slice(), gx);
        }
        let k = self.k;
        let (w, gb) = (weight.value.as_mut_slice(), bias.grad.as_mut_slice());
        self.par.by_outputs(s, gy, w, gb, |rows, gy, w, gb| k.linear_backward_update(rows, x, gy, w, gb, None, lr));
    }
    // ANCHOR_END: linear_backward_update

    /// The ReLU of fc1, 128 values per image: not worth sharing.
    fn relu_forward(&mut self, x: &mut [f32]) {
        self.k.relu_forward(x);
    }

    fn relu_backward(&mut self, y: &[f32], grad: &mut [f32]) {
        self.k.relu_backward(y, grad);
    }

    fn sgd_step(&mut self, opt: &mut Sgd, params: &mut [&mut Param]) {
        self.par.sgd_step(opt, self.k, params);
    }

    /// Chapter 7's fused convolution and pool: one image per task, each thread with its own
    /// scratch map.
    fn conv_pool_forward(
        &mut self,
        conv: &Conv2dShape,
        pool: &Pool2dShape,
        x: &[f32],
        weight: &[f32],
        bias: &[f32],
        relu: bool,
        pooled: &mut [f32],
        winners: &mut [u8],
    ) {
        check_conv_pool(conv, pool, x, pooled, winners);
        let (one_conv, one_pool) = (Conv2dShape { n: 1, ..*conv }, Pool2dShape { n: 1, ..*pool });
        let (x_image, p_image, k) = (one_conv.input_len(), one_pool.output_len(), self.k);
        self.par.pool.install(|| {
            x.par_chunks(x_image).zip(pooled.par_chunks_mut(p_image)).zip(winners.par_chunks_mut(p_image)).for_each(
                |((x, pooled), winners)| {
                    conv_pool_forward_image(k, &one_conv, &one_pool, x, weight, bias, relu, pooled, winners)
                },
            )
        });
    }

    // ANCHOR: conv_pool_backward
    /// Its backward pass: one image per task, the weight gradients into per-image scratch and
    /// then summed in image order, as for the unfused convolution.
    fn conv_pool_backward(
        &mut self,
        layer: usize,
        conv: &Conv2dShape,
        pool: &Pool2dShape,
        x: &[f32],
        winners: &[u8],
        g_pooled: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        check_conv_pool(conv, pool, x, g_pooled, winners);
        let (one_conv, one_pool) = (Conv2dShape { n: 1, ..*conv }, Pool2dShape { n: 1, ..*pool });
        let (x_image, p_image, k) = (one_conv.input_len(), one_pool.output_len(), self.k);
        let (pool, parts_w, parts_b) = self.par.conv_grad_parts(layer, conv);
        let w = weight.value.as_slice();
        let images = x
            .par_chunks(x_image)
            .zip(winners.par_chunks(p_image))
            .zip(g_pooled.par_chunks(p_image))
            .zip(parts_w.par_chunks_mut(conv.weight_len()))
            .zip(parts_b.par_chunks_mut(conv.c_out));
        pool.install(|| match gx {
            Some(gx) => images.zip(gx.par_chunks_mut(x_image)).for_each(|(((((x, win), gy), gw), gb), gx)| {
                conv_pool_backward_image(k, &one_conv, &one_pool, x, win, gy, w, gw, gb, Some(gx))
            }),
            None => images.for_each(|((((x, win), gy), gw), gb)| {
                conv_pool_backward_image(k, &one_conv, &one_pool, x, win, gy, w, gw, gb, None)
            }),
        });
        let par = &*self.par;
        par.sum_images(&par.conv_grad_w[layer], conv.n, weight.grad.as_mut_slice());
        par.sum_images(&par.conv_grad_b[layer], conv.n, bias.grad.as_mut_slice());
    }
    // ANCHOR_END: conv_pool_backward
}
