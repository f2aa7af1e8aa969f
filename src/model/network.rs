//! The one forward pass and the one backward pass of every network built from a table, and the
//! executors that run their steps: [`Serial`] on the calling thread, and from chapter 8
//! `parallel::OnPool` on a pool of threads.

use super::table::{Layer, Plan, StepOp};
use super::{StepStats, ensure};
use crate::kernels::{Conv2dShape, Kernels, LinearShape, Pool2dShape};
use crate::nn::{Flatten, Param, loss};
use crate::tensor::AlignedVec;
use crate::train::Sgd;
use std::borrow::{Borrow, BorrowMut};

// ANCHOR: executor
/// Who runs the steps of a pass: every op a table can hold, forward and backward, plus the
/// update. The passes below say *what* is computed, in which order; an executor says *how*
/// (on one thread, or split over a pool of threads). Layouts are those of the kernels: NHWC
/// maps, HWIO convolution weights, `[out, in]` linear weights.
pub trait Executor {
    /// The kernel table the steps run on.
    fn kernels(&self) -> &Kernels;

    /// y = conv(x) + bias, then `max(y, 0)` if `relu`.
    fn conv2d_forward(&mut self, s: &Conv2dShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], relu: bool);

    /// From dL/dy (before the ReLU): dL/dW and dL/db into the parameters' `grad` and, if asked
    /// for, dL/dx. `layer` numbers the layers with parameters (0, 1, ...) for an executor that
    /// keeps scratch memory per layer.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &mut self,
        layer: usize,
        s: &Conv2dShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    );

    fn max_pool2d_forward(&mut self, s: &Pool2dShape, x: &[f32], y: &mut [f32]);

    /// dL/dy -> dL/dx; with `relu`, also the backward pass of the ReLU before the pool.
    fn max_pool2d_backward(&mut self, s: &Pool2dShape, x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32], relu: bool);

    fn flatten_forward(&mut self, f: &Flatten, x: &[f32], rows: &mut [f32]);

    fn flatten_backward(&mut self, f: &Flatten, grad_rows: &[f32], gx: &mut [f32]);

    /// y = x W^T + b.
    fn linear_forward(&mut self, s: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]);

    /// dL/dW and dL/db into the parameters' `grad` and, if asked for, dL/dx.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    );

    /// `max(x, 0)` in place.
    fn relu_forward(&mut self, x: &mut [f32]);

    /// `grad *= (y > 0)` in place, `y` being the ReLU's output.
    fn relu_backward(&mut self, y: &[f32], grad: &mut [f32]);

    /// One update of every parameter from its gradient.
    fn sgd_step(&mut self, opt: &mut Sgd, params: &mut [&mut Param]);

    /// Chapter 7: [`Executor::linear_backward`] and SGD's step on the weight, `lr` without
    /// momentum, in one sweep over the weight ([`Kernels::linear_backward_update`]): the
    /// weight is updated and its `grad` left as it was; the bias gets its gradient.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_update(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
        lr: f32,
    );

    /// Chapter 7: [`Executor::linear_backward`] in one sweep over the weight
    /// ([`Kernels::linear_backward_sweep`]), for an optimiser that needs the weight's `grad`:
    /// the same numbers, bit for bit. By default, the two passes of `linear_backward`.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_sweep(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        self.linear_backward(s, x, gy, weight, bias, gx);
    }

    /// Chapter 7: a convolution and the 2x2 max-pool after it, one image at a time, so that
    /// the convolution's output of the whole batch never exists: [`conv_pool_forward_image`]
    /// on every image. Writes the pooled map and the pool's winners.
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Its backward pass from the pooled map's gradient: [`conv_pool_backward_image`] on every
    /// image, the weight gradients summed in image order.
    #[allow(clippy::too_many_arguments)]
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
    );
}
// ANCHOR_END: executor

// ANCHOR: fused_image
thread_local! {
    /// The convolution's output (forward) or its gradient (backward) for one image, on each
    /// thread: the only place a fused convolution's full-size map ever lives. Sized by the
    /// largest map a thread has met, allocated once.
    static MAP: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One image (`conv.n == pool.n == 1`) through a convolution, its ReLU and the 2x2 max-pool
/// after it. The convolution's output goes to a scratch map of one image, which the pool reads
/// while it is still in the L2 cache; what the backward pass needs of it is one byte per
/// pooled value, `winners`.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_forward_image(
    k: &Kernels,
    conv: &Conv2dShape,
    pool: &Pool2dShape,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
    pooled: &mut [f32],
    winners: &mut [u8],
) {
    assert!(
        conv.n == 1 && pool.n == 1 && pool.input_len() == conv.output_len(),
        "one image, the pool after the convolution"
    );
    MAP.with_borrow_mut(|map| {
        map.resize(conv.output_len(), 0.0);
        k.conv2d_forward(conv, x, weight, bias, map, relu);
        k.max_pool2d_forward_winners(pool, map, pooled, winners, relu);
    })
}

/// The backward pass of [`conv_pool_forward_image`]: the pooled gradient expanded through the
/// winners into a scratch map (the pool's and the ReLU's backward passes at once), then the
/// convolution's weight gradient into `gw`, `gb` (overwritten) and, if asked for, its input
/// gradient into `gx`.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_backward_image(
    k: &Kernels,
    conv: &Conv2dShape,
    pool: &Pool2dShape,
    x: &[f32],
    winners: &[u8],
    g_pooled: &[f32],
    weight: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    gx: Option<&mut [f32]>,
) {
    assert!(
        conv.n == 1 && pool.n == 1 && pool.input_len() == conv.output_len(),
        "one image, the pool after the convolution"
    );
    MAP.with_borrow_mut(|g_map| {
        g_map.resize(conv.output_len(), 0.0);
        k.max_pool2d_backward_winners(pool, winners, g_pooled, g_map);
        k.conv2d_backward_weight(conv, x, g_map, gw, gb);
        if let Some(gx) = gx {
            k.conv2d_backward_input(conv, g_map, weight, gx);
        }
    })
}
// ANCHOR_END: fused_image

/// The lengths of a fused convolution and pool over a batch, checked before the batch is cut
/// into images (a short buffer would otherwise end the loop over images early, silently).
pub(crate) fn check_conv_pool(conv: &Conv2dShape, pool: &Pool2dShape, x: &[f32], pooled: &[f32], winners: &[u8]) {
    assert!(conv.n == pool.n && pool.input_len() == conv.output_len(), "the pool after the convolution");
    assert_eq!(x.len(), conv.input_len(), "fused convolution input");
    assert_eq!(pooled.len(), pool.output_len(), "fused pool output");
    assert_eq!(winners.len(), pool.output_len(), "fused pool winners");
}

// ANCHOR: serial
/// The executor of chapters 3 to 7: every step is one call of the kernel table, on the calling
/// thread.
#[derive(Clone, Copy, Debug)]
pub struct Serial<'k>(pub &'k Kernels);

impl Executor for Serial<'_> {
    fn kernels(&self) -> &Kernels {
        self.0
    }

    fn conv2d_forward(&mut self, s: &Conv2dShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32], relu: bool) {
        self.0.conv2d_forward(s, x, weight, bias, y, relu);
    }

    fn conv2d_backward(
        &mut self,
        _layer: usize,
        s: &Conv2dShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        self.0.conv2d_backward_weight(s, x, gy, weight.grad.as_mut_slice(), bias.grad.as_mut_slice());
        if let Some(gx) = gx {
            self.0.conv2d_backward_input(s, gy, weight.value.as_slice(), gx);
        }
    }
    // ANCHOR_END: serial

    fn max_pool2d_forward(&mut self, s: &Pool2dShape, x: &[f32], y: &mut [f32]) {
        self.0.max_pool2d_forward(s, x, y);
    }

    fn max_pool2d_backward(&mut self, s: &Pool2dShape, x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32], relu: bool) {
        self.0.max_pool2d_backward(s, x, y, gy, gx, relu);
    }

    fn flatten_forward(&mut self, f: &Flatten, x: &[f32], rows: &mut [f32]) {
        f.forward(x, rows);
    }

    fn flatten_backward(&mut self, f: &Flatten, grad_rows: &[f32], gx: &mut [f32]) {
        f.backward(grad_rows, gx);
    }

    fn linear_forward(&mut self, s: &LinearShape, x: &[f32], weight: &[f32], bias: &[f32], y: &mut [f32]) {
        self.0.linear_forward(s, x, weight, bias, y);
    }

    fn linear_backward(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        self.0.linear_backward_weight(s, x, gy, weight.grad.as_mut_slice(), bias.grad.as_mut_slice());
        if let Some(gx) = gx {
            self.0.linear_backward_input(s, gy, weight.value.as_slice(), gx);
        }
    }

    fn relu_forward(&mut self, x: &mut [f32]) {
        self.0.relu_forward(x);
    }

    fn relu_backward(&mut self, y: &[f32], grad: &mut [f32]) {
        self.0.relu_backward(y, grad);
    }

    fn sgd_step(&mut self, opt: &mut Sgd, params: &mut [&mut Param]) {
        opt.step(self.0, params);
    }

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
        let (w, gb) = (weight.value.as_mut_slice(), bias.grad.as_mut_slice());
        self.0.linear_backward_update(s, x, gy, w, gb, gx, lr);
    }

    fn linear_backward_sweep(
        &mut self,
        s: &LinearShape,
        x: &[f32],
        gy: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        gx: Option<&mut [f32]>,
    ) {
        let (w, gw, gb) = (weight.value.as_slice(), weight.grad.as_mut_slice(), bias.grad.as_mut_slice());
        self.0.linear_backward_sweep(s, x, gy, w, gw, gb, gx);
    }

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
        let (x_image, p_image) = (one_conv.input_len(), one_pool.output_len());
        for ((x, pooled), winners) in x.chunks(x_image).zip(pooled.chunks_mut(p_image)).zip(winners.chunks_mut(p_image))
        {
            conv_pool_forward_image(self.0, &one_conv, &one_pool, x, weight, bias, relu, pooled, winners);
        }
    }

    // ANCHOR: serial_conv_pool_backward
    /// Image by image; the first image's weight gradient goes straight into the parameters',
    /// every later one into scratch and is added, in image order: the same sums, in the same
    /// order, as the pool of threads does them (chapter 8), so the two agree bit for bit.
    fn conv_pool_backward(
        &mut self,
        _layer: usize,
        conv: &Conv2dShape,
        pool: &Pool2dShape,
        x: &[f32],
        winners: &[u8],
        g_pooled: &[f32],
        weight: &mut Param,
        bias: &mut Param,
        mut gx: Option<&mut [f32]>,
    ) {
        check_conv_pool(conv, pool, x, g_pooled, winners);
        let (one_conv, one_pool) = (Conv2dShape { n: 1, ..*conv }, Pool2dShape { n: 1, ..*pool });
        let (x_image, p_image) = (one_conv.input_len(), one_pool.output_len());
        // On a cache line, as the layer's own gradient is, so that the kernel sums into it.
        let (mut gw, mut gb) = (AlignedVec::zeros(conv.weight_len()), vec![0.0; conv.c_out]);
        for i in 0..conv.n {
            let (x, winners, gy) =
                (&x[i * x_image..][..x_image], &winners[i * p_image..][..p_image], &g_pooled[i * p_image..][..p_image]);
            let gx = gx.as_deref_mut().map(|gx| &mut gx[i * x_image..][..x_image]);
            let w = weight.value.as_slice();
            if i == 0 {
                let (gw, gb) = (weight.grad.as_mut_slice(), bias.grad.as_mut_slice());
                conv_pool_backward_image(self.0, &one_conv, &one_pool, x, winners, gy, w, gw, gb, gx);
                continue;
            }
            conv_pool_backward_image(self.0, &one_conv, &one_pool, x, winners, gy, w, &mut gw, &mut gb, gx);
            for (sum, g) in weight.grad.as_mut_slice().iter_mut().zip(gw.iter()) {
                *sum += g;
            }
            for (sum, g) in bias.grad.as_mut_slice().iter_mut().zip(&gb) {
                *sum += g;
            }
        }
    }
    // ANCHOR_END: serial_conv_pool_backward
}

/// A plan and the buffers of its passes: each step's output and the gradient of the loss with
/// respect to it, allocated for a batch size and reused by every step after.
#[derive(Clone, Debug)]
pub(crate) struct Graph {
    plan: Plan,
    /// Images of the last forward pass.
    n: usize,
    out: Vec<AlignedVec>,
    grad: Vec<AlignedVec>,
    /// Chapter 7: for a pool fused with the convolution before it, one byte per pooled value
    /// naming the input that won (empty for every other step).
    winners: Vec<Vec<u8>>,
    /// Fuse each convolution with the pool after it where the kernels can (chapter 7); off,
    /// the passes are chapter 6's.
    fuse: bool,
    /// Whether the last forward pass fused step `i` with the pool after it.
    fused: Vec<bool>,
}

/// The weight and the bias of the step whose weight is `params[i]`.
fn weight_and_bias<P: BorrowMut<Param>>(params: &mut [P], i: usize) -> (&mut Param, &mut Param) {
    let [weight, bias] = &mut params[i..i + 2] else { unreachable!("a slice of two") };
    (weight.borrow_mut(), bias.borrow_mut())
}

impl Graph {
    pub(crate) fn new(plan: Plan) -> Graph {
        let steps = plan.steps().len();
        Graph {
            plan,
            n: 0,
            out: vec![AlignedVec::default(); steps],
            grad: vec![AlignedVec::default(); steps],
            winners: vec![Vec::new(); steps],
            fuse: true,
            fused: vec![false; steps],
        }
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    pub(crate) fn set_fusion(&mut self, fuse: bool) {
        self.fuse = fuse;
    }

    pub(crate) fn fusion(&self) -> bool {
        self.fuse
    }

    /// The output of step `i` in the last forward pass (`[n, ...]`); empty for a convolution
    /// that pass fused with its pool.
    pub(crate) fn output(&self, i: usize) -> &[f32] {
        &self.out[i]
    }

    // ANCHOR: fusible
    /// Chapter 7: which steps a pass with kernels `k` fuses with the pool after them: every
    /// convolution followed by a 2x2 max-pool (with no ReLU of its own), when fusion is on and
    /// the kernels keep the pool's winners (from `ch7` on).
    fn fusible(&self, k: &Kernels, fuse: bool) -> Vec<bool> {
        let steps = self.plan.steps();
        let on = fuse && self.fuse && k.keeps_pool_winners();
        (0..steps.len())
            .map(|i| match (steps[i].op, steps.get(i + 1)) {
                (StepOp::Conv2d(_), Some(next)) => on && matches!(next.op, StepOp::MaxPool2d(_)) && !next.relu,
                _ => false,
            })
            .collect()
    }
    // ANCHOR_END: fusible

    fn resize(&mut self, n: usize, fused: Vec<bool>) {
        self.n = n;
        for (i, step) in self.plan.steps().iter().enumerate() {
            // A fused convolution's output and its gradient exist for one image at a time only.
            let len = if fused[i] { 0 } else { n * step.op.output_len() };
            ensure(&mut self.out[i], len);
            ensure(&mut self.grad[i], len);
            let pooled_after_fused = i > 0 && fused[i - 1];
            self.winners[i].resize(if pooled_after_fused { len } else { 0 }, 0);
        }
        self.fused = fused;
    }

    /// Bytes of the buffers the last pass kept: every output and gradient, and the winners.
    pub(crate) fn kept_bytes(&self) -> usize {
        let floats: usize = self.out.iter().chain(&self.grad).map(|b| b.len()).sum();
        4 * floats + self.winners.iter().map(Vec::len).sum::<usize>()
    }

    // ANCHOR: forward
    /// x `[n, h, w, c]` (NHWC) -> logits `[n]`: the steps in order, each reading the output of
    /// the one before. With `fuse`, a convolution and the pool after it run as one step
    /// (chapter 7) where [`Graph::fusible`] says so.
    pub(crate) fn forward<E: Executor, P: Borrow<Param>>(
        &mut self,
        e: &mut E,
        params: &[P],
        x: &[f32],
        fuse: bool,
    ) -> &[f32] {
        let (h, w, c) = self.plan.input();
        let image = self.plan.input_len();
        assert!(!x.is_empty() && x.len().is_multiple_of(image), "x must be [n, {h}, {w}, {c}]");
        let n = x.len() / image;
        let fused = self.fusible(e.kernels(), fuse);
        self.resize(n, fused);
        let steps = self.plan.steps();
        for (i, step) in steps.iter().enumerate() {
            if i > 0 && self.fused[i - 1] {
                continue; // the pool ran with the convolution before it
            }
            let (before, after) = self.out.split_at_mut(i);
            let (x, y) = (if i == 0 { x } else { &before[i - 1] }, &mut after[0][..]);
            let param = |j: usize| params[j].borrow().value.as_slice();
            match step.op.batch(n) {
                StepOp::Conv2d(s) if self.fused[i] => {
                    let j = step.param.expect("a convolution has parameters");
                    let StepOp::MaxPool2d(pool) = steps[i + 1].op.batch(n) else { unreachable!("fusible") };
                    let (pooled, winners) = (&mut after[1][..], &mut self.winners[i + 1][..]);
                    e.conv_pool_forward(&s, &pool, x, param(j), param(j + 1), step.relu, pooled, winners);
                    continue;
                }
                StepOp::Conv2d(s) => {
                    let j = step.param.expect("a convolution has parameters");
                    e.conv2d_forward(&s, x, param(j), param(j + 1), y, step.relu);
                    continue; // the convolution applied the ReLU
                }
                StepOp::MaxPool2d(s) => e.max_pool2d_forward(&s, x, y),
                StepOp::Flatten(f) => e.flatten_forward(&f, x, y),
                StepOp::Linear(s) => {
                    let j = step.param.expect("a linear layer has parameters");
                    e.linear_forward(&s, x, param(j), param(j + 1), y);
                }
            }
            if step.relu {
                e.relu_forward(y);
            }
        }
        self.out.last().expect("a plan has steps")
    }
    // ANCHOR_END: forward

    // ANCHOR: backward
    /// Forward, loss (binary cross-entropy on the logits, `labels` 0 or 1) and backward: leaves
    /// dL/dparam in every parameter's `grad`. The steps in reverse order, each turning the
    /// gradient of its output into those of its parameters and of its input.
    pub(crate) fn forward_backward<E: Executor, P: BorrowMut<Param>>(
        &mut self,
        e: &mut E,
        params: &mut [P],
        x: &[f32],
        labels: &[f32],
    ) -> StepStats {
        let stats = self.forward_loss(e, params, x, labels);
        self.backward(e, params, x, None);
        stats
    }

    /// The forward pass and the loss; leaves the gradient of the logits for the backward pass.
    fn forward_loss<E: Executor, P: Borrow<Param>>(
        &mut self,
        e: &mut E,
        params: &[P],
        x: &[f32],
        labels: &[f32],
    ) -> StepStats {
        self.forward(e, params, x, true);
        assert_eq!(self.n, labels.len(), "one label per image");
        let (logits, g_logits) = (self.out.last().expect("steps"), self.grad.last_mut().expect("steps"));
        let loss = loss::bce_with_logits(e.kernels(), logits, labels, g_logits);
        let correct = logits.iter().zip(labels).filter(|&(&z, &t)| (z > 0.0) == (t > 0.5)).count();
        StepStats { loss, correct }
    }

    /// The steps in reverse order. With `update_lr`, each linear layer also takes SGD's step
    /// on its weight in the same sweep ([`Executor::linear_backward_update`]); without, and
    /// with fusion on, it stores its gradients from one sweep
    /// ([`Executor::linear_backward_sweep`]). Returns the indices of the weights updated.
    fn backward<E: Executor, P: BorrowMut<Param>>(
        &mut self,
        e: &mut E,
        params: &mut [P],
        x: &[f32],
        update_lr: Option<f32>,
    ) -> Vec<usize> {
        let (n, steps) = (self.n, self.plan.steps());
        // With fusion on, a linear layer's two gradients come from one sweep over its weight.
        let sweep = self.fuse && e.kernels().updates_in_backward();
        let mut updated = Vec::new();
        for (i, step) in steps.iter().enumerate().rev() {
            if i > 0 && self.fused[i - 1] {
                continue; // the convolution before runs this pool's backward pass
            }
            let (before, after) = self.grad.split_at_mut(i);
            let (gy, gx) = (&mut after[0][..], before.last_mut().map(|g| &mut g[..]));
            let (x, y) = (if i == 0 { x } else { &self.out[i - 1][..] }, &self.out[i][..]);
            // The ReLU after this step, unless the pool after it applied its backward pass.
            let pool_next = matches!(steps.get(i + 1).map(|s| s.op), Some(StepOp::MaxPool2d(_)));
            if step.relu && !pool_next {
                e.relu_backward(y, gy);
            }
            match step.op.batch(n) {
                StepOp::Conv2d(s) if self.fused[i] => {
                    let j = step.param.expect("a convolution has parameters");
                    let StepOp::MaxPool2d(pool) = steps[i + 1].op.batch(n) else { unreachable!("fusible") };
                    let (weight, bias) = weight_and_bias(params, j);
                    let (g_pooled, winners) = (&after[1][..], &self.winners[i + 1][..]);
                    e.conv_pool_backward(j / 2, &s, &pool, x, winners, g_pooled, weight, bias, gx);
                }
                StepOp::Conv2d(s) => {
                    let j = step.param.expect("a convolution has parameters");
                    let (weight, bias) = weight_and_bias(params, j);
                    e.conv2d_backward(j / 2, &s, x, gy, weight, bias, gx);
                }
                StepOp::MaxPool2d(s) => {
                    let relu_before = i > 0 && steps[i - 1].relu;
                    if let Some(gx) = gx {
                        e.max_pool2d_backward(&s, x, y, gy, gx, relu_before);
                    }
                }
                StepOp::Flatten(f) => {
                    if let Some(gx) = gx {
                        e.flatten_backward(&f, gy, gx);
                    }
                }
                StepOp::Linear(s) => {
                    let j = step.param.expect("a linear layer has parameters");
                    let (weight, bias) = weight_and_bias(params, j);
                    match update_lr {
                        Some(lr) => {
                            e.linear_backward_update(&s, x, gy, weight, bias, gx, lr);
                            updated.push(j);
                        }
                        None if sweep => e.linear_backward_sweep(&s, x, gy, weight, bias, gx),
                        None => e.linear_backward(&s, x, gy, weight, bias, gx),
                    }
                }
            }
        }
        updated
    }
    // ANCHOR_END: backward

    // ANCHOR: train_step
    /// One step of training with `opt`: forward, loss, `check` on the loss (an error stops
    /// the step before any weight changes), backward, update. From chapter 7, when fusion is
    /// on and `opt` has no momentum, each linear layer updates its weight in the sweep that
    /// computes its gradients (fc1's 16.8 MB are read and written once instead of being read
    /// three times and written twice), and the optimiser updates the other parameters; the
    /// weights come out bit for bit as from the separate passes, but those linear weights'
    /// `grad` is not filled.
    pub(crate) fn train_step<E: Executor, P: BorrowMut<Param>, Err>(
        &mut self,
        e: &mut E,
        params: &mut [P],
        x: &[f32],
        labels: &[f32],
        opt: &mut Sgd,
        check: impl FnOnce(&StepStats) -> Result<(), Err>,
    ) -> Result<StepStats, Err> {
        let stats = self.forward_loss(e, params, x, labels);
        check(&stats)?;
        let fuse = self.fuse && opt.momentum == 0.0 && e.kernels().updates_in_backward();
        let updated = self.backward(e, params, x, fuse.then_some(opt.lr));
        let mut rest: Vec<&mut Param> =
            params.iter_mut().enumerate().filter(|(i, _)| !updated.contains(i)).map(|(_, p)| p.borrow_mut()).collect();
        e.sgd_step(opt, &mut rest);
        Ok(stats)
    }
    // ANCHOR_END: train_step
}

/// The result of a step whose check cannot fail.
pub(crate) fn unchecked(step: Result<StepStats, std::convert::Infallible>) -> StepStats {
    match step {
        Ok(stats) => stats,
        Err(never) => match never {},
    }
}

// ANCHOR: network
/// Any network written as a table: its parameters in table order and the buffers of its
/// passes. [`super::CatDogCnn`] is the table of the book with its layers named as fields.
#[derive(Clone, Debug)]
pub struct Network {
    params: Vec<Param>,
    graph: Graph,
}
// ANCHOR_END: network

impl Network {
    /// The network of `table` for NHWC images of `h` x `w` x `c`, with He-normal weights drawn
    /// from `seed`. Panics as [`Plan::new`] does.
    pub fn new(table: &[Layer], h: usize, w: usize, c: usize, seed: u64) -> Network {
        let plan = Plan::new(table, h, w, c);
        Network { params: plan.init_params(seed), graph: Graph::new(plan) }
    }

    pub fn plan(&self) -> &Plan {
        self.graph.plan()
    }

    /// PyTorch's names of [`Network::params`].
    pub fn param_names(&self) -> Vec<String> {
        self.plan().param_names()
    }

    pub fn params(&self) -> Vec<&Param> {
        self.params.iter().collect()
    }

    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.params.iter_mut().collect()
    }

    /// x `[n, h, w, c]` -> logits `[n]`, on one thread.
    pub fn forward(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        self.forward_with(&mut Serial(k), x)
    }

    /// Forward, loss and backward on one thread: leaves dL/dparam in every parameter's `grad`.
    pub fn forward_backward(&mut self, k: &Kernels, x: &[f32], labels: &[f32]) -> StepStats {
        self.forward_backward_with(&mut Serial(k), x, labels)
    }

    /// One step of training on one thread: [`Network::forward_backward`] and `opt`'s update,
    /// with the linear layers' updates fused into their backward passes from chapter 7 on
    /// ([`Network::train_step_with`]).
    pub fn train_step(&mut self, k: &Kernels, x: &[f32], labels: &[f32], opt: &mut Sgd) -> StepStats {
        unchecked(self.train_step_with(&mut Serial(k), x, labels, opt, |_| Ok(())))
    }

    /// One step of training on executor `e`, with `check` on the loss before anything changes
    /// (its error stops the step). With fusion on and no momentum, each linear layer takes its
    /// SGD step in the sweep that computes its gradients, and its weight's `grad` is not
    /// filled; the weights come out as from [`Network::forward_backward_with`] and the update.
    pub fn train_step_with<Err>(
        &mut self,
        e: &mut impl Executor,
        x: &[f32],
        labels: &[f32],
        opt: &mut Sgd,
        check: impl FnOnce(&StepStats) -> Result<(), Err>,
    ) -> Result<StepStats, Err> {
        self.graph.train_step(e, &mut self.params, x, labels, opt, check)
    }

    /// [`Network::forward`] on executor `e`.
    pub fn forward_with(&mut self, e: &mut impl Executor, x: &[f32]) -> &[f32] {
        self.graph.forward(e, &self.params, x, true)
    }

    /// [`Network::forward`] that keeps every step's output for [`Network::outputs`].
    pub fn forward_keeping_outputs(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        self.graph.forward(&mut Serial(k), &self.params, x, false)
    }

    /// Chapter 7: fuse each convolution with the pool after it (on by default where the
    /// kernels can; see [`super::CatDogCnn::set_fusion`]).
    pub fn set_fusion(&mut self, fuse: bool) {
        self.graph.set_fusion(fuse);
    }

    /// Bytes of the activations, gradients and pool winners the last pass kept.
    pub fn kept_bytes(&self) -> usize {
        self.graph.kept_bytes()
    }

    /// [`Network::forward_backward`] on executor `e`.
    pub fn forward_backward_with(&mut self, e: &mut impl Executor, x: &[f32], labels: &[f32]) -> StepStats {
        self.graph.forward_backward(e, &mut self.params, x, labels)
    }

    /// The output of each step of the last forward pass, in table order (a ReLU's in its
    /// step's); a convolution fused with its pool has none: see [`Network::forward_keeping_outputs`].
    pub fn outputs(&self) -> Vec<&[f32]> {
        (0..self.plan().steps().len()).map(|i| self.graph.output(i)).collect()
    }
}
