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
}
// ANCHOR_END: executor

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
}

/// The weight and the bias of the step whose weight is `params[i]`.
fn weight_and_bias<P: BorrowMut<Param>>(params: &mut [P], i: usize) -> (&mut Param, &mut Param) {
    let [weight, bias] = &mut params[i..i + 2] else { unreachable!("a slice of two") };
    (weight.borrow_mut(), bias.borrow_mut())
}

impl Graph {
    pub(crate) fn new(plan: Plan) -> Graph {
        let steps = plan.steps().len();
        Graph { plan, n: 0, out: vec![AlignedVec::default(); steps], grad: vec![AlignedVec::default(); steps] }
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The output of step `i` in the last forward pass (`[n, ...]`).
    pub(crate) fn output(&self, i: usize) -> &[f32] {
        &self.out[i]
    }

    fn resize(&mut self, n: usize) {
        self.n = n;
        for ((step, out), grad) in self.plan.steps().iter().zip(&mut self.out).zip(&mut self.grad) {
            ensure(out, n * step.op.output_len());
            ensure(grad, n * step.op.output_len());
        }
    }

    // ANCHOR: forward
    /// x `[n, h, w, c]` (NHWC) -> logits `[n]`: the steps in order, each reading the output of
    /// the one before.
    pub(crate) fn forward<E: Executor, P: Borrow<Param>>(&mut self, e: &mut E, params: &[P], x: &[f32]) -> &[f32] {
        let (h, w, c) = self.plan.input();
        let image = self.plan.input_len();
        assert!(!x.is_empty() && x.len().is_multiple_of(image), "x must be [n, {h}, {w}, {c}]");
        let n = x.len() / image;
        self.resize(n);
        for (i, step) in self.plan.steps().iter().enumerate() {
            let (before, after) = self.out.split_at_mut(i);
            let (x, y) = (if i == 0 { x } else { &before[i - 1] }, &mut after[0][..]);
            let param = |j: usize| params[j].borrow().value.as_slice();
            match step.op.batch(n) {
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
        self.forward(e, params, x);
        assert_eq!(self.n, labels.len(), "one label per image");
        let (n, steps) = (self.n, self.plan.steps());
        let (logits, g_logits) = (self.out.last().expect("steps"), self.grad.last_mut().expect("steps"));
        let loss = loss::bce_with_logits(e.kernels(), logits, labels, g_logits);
        let correct = logits.iter().zip(labels).filter(|&(&z, &t)| (z > 0.0) == (t > 0.5)).count();

        for (i, step) in steps.iter().enumerate().rev() {
            let (before, after) = self.grad.split_at_mut(i);
            let (gy, gx) = (&mut after[0][..], before.last_mut().map(|g| &mut g[..]));
            let (x, y) = (if i == 0 { x } else { &self.out[i - 1][..] }, &self.out[i][..]);
            // The ReLU after this step, unless the pool after it applied its backward pass.
            let pool_next = matches!(steps.get(i + 1).map(|s| s.op), Some(StepOp::MaxPool2d(_)));
            if step.relu && !pool_next {
                e.relu_backward(y, gy);
            }
            match step.op.batch(n) {
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
                    e.linear_backward(&s, x, gy, weight, bias, gx);
                }
            }
        }
        StepStats { loss, correct }
    }
    // ANCHOR_END: backward
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

    /// [`Network::forward`] on executor `e`.
    pub fn forward_with(&mut self, e: &mut impl Executor, x: &[f32]) -> &[f32] {
        self.graph.forward(e, &self.params, x)
    }

    /// [`Network::forward_backward`] on executor `e`.
    pub fn forward_backward_with(&mut self, e: &mut impl Executor, x: &[f32], labels: &[f32]) -> StepStats {
        self.graph.forward_backward(e, &mut self.params, x, labels)
    }

    /// The output of each step of the last forward pass, in table order (a ReLU's in its step's).
    pub fn outputs(&self) -> Vec<&[f32]> {
        (0..self.plan().steps().len()).map(|i| self.graph.output(i)).collect()
    }
}
