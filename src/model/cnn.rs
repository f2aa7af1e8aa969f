use super::StepStats;
use super::network::{Executor, Graph, Serial, unchecked};
use super::table::{Layer, NAME_ROOM, Plan, StepOp, as_names, spell_param_names};
use crate::kernels::Kernels;
use crate::nn::{Conv2d, Linear, Param};
use crate::train::Sgd;

// ANCHOR: table
/// The cat/dog network of the book, the table every other description of it is derived from.
/// For RGB images of `h` x `w` pixels (both multiples of 8), NHWC:
///
/// ```text
/// conv1 3->32, ReLU, max-pool 2   [n, h,   w,   3]  -> [n, h/2, w/2, 32]
/// conv2 32->64, ReLU, max-pool 2                    -> [n, h/4, w/4, 64]
/// conv3 64->128, ReLU, max-pool 2                   -> [n, h/8, w/8, 128]
/// flatten (PyTorch's C, H, W order)                 -> [n, 128 * h/8 * w/8]   (32768 at 128x128)
/// fc1 + ReLU                                        -> [n, 128]
/// fc2                                               -> [n, 1], the logit of "dog"
/// ```
pub const CATDOG: [Layer; 13] = [
    Layer::Conv2d { name: "conv1", c_out: 32 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool1" },
    Layer::Conv2d { name: "conv2", c_out: 64 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool2" },
    Layer::Conv2d { name: "conv3", c_out: 128 },
    Layer::ReLU,
    Layer::MaxPool2d { name: "pool3" },
    Layer::Flatten,
    Layer::Linear { name: "fc1", out_features: 128 },
    Layer::ReLU,
    Layer::Linear { name: "fc2", out_features: 1 },
];

/// Channels of an input image (RGB).
pub const CATDOG_CHANNELS: usize = 3;
// ANCHOR_END: table

/// The parameter names of [`CATDOG`], spelled by the compiler.
const SPELLED_NAMES: [[u8; NAME_ROOM]; 10] = spell_param_names(&CATDOG);

/// The network of [`CATDOG`]: its layers with parameters as named fields, the plan of its
/// passes and their buffers.
#[derive(Clone, Debug)]
pub struct CatDogCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    graph: Graph,
}

impl CatDogCnn {
    /// PyTorch `state_dict` names of the parameters, in the order of [`CatDogCnn::params_mut`].
    pub const PARAM_NAMES: [&'static str; 10] = as_names(&SPELLED_NAMES);

    /// The parameters in table order, beside the graph that runs them.
    fn parts(&mut self) -> ([&mut Param; 10], &mut Graph) {
        let CatDogCnn { conv1, conv2, conv3, fc1, fc2, graph } = self;
        let params = [
            &mut conv1.weight,
            &mut conv1.bias,
            &mut conv2.weight,
            &mut conv2.bias,
            &mut conv3.weight,
            &mut conv3.bias,
            &mut fc1.weight,
            &mut fc1.bias,
            &mut fc2.weight,
            &mut fc2.bias,
        ];
        (params, graph)
    }

    /// A network for `h` x `w` images with He-normal weights drawn from `seed`.
    ///
    /// # Panics
    /// If `h` or `w` is not a positive multiple of 8 (three 2x2 pools must divide evenly).
    pub fn new(h: usize, w: usize, seed: u64) -> Self {
        let plan = Plan::new(&CATDOG, h, w, CATDOG_CHANNELS);
        let mut params = plan.init_params(seed).into_iter();
        let mut next = || params.next().expect("the plan has the table's parameters");
        let mut conv = || Conv2d { weight: next(), bias: next() };
        let (conv1, conv2, conv3) = (conv(), conv(), conv());
        let mut linear = || Linear { weight: next(), bias: next() };
        let (fc1, fc2) = (linear(), linear());
        CatDogCnn { conv1, conv2, conv3, fc1, fc2, graph: Graph::new(plan) }
    }

    /// The steps of the network for its image size.
    pub fn plan(&self) -> &Plan {
        self.graph.plan()
    }

    /// Input height and width.
    pub fn image_size(&self) -> (usize, usize) {
        let (h, w, _) = self.plan().input();
        (h, w)
    }

    /// Floats in one input image, `h * w * 3`.
    pub fn image_len(&self) -> usize {
        self.plan().input_len()
    }

    /// x `[n, h, w, 3]` (NHWC, values in [0, 1]) -> logits `[n]`, on one thread.
    pub fn forward(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        self.forward_with(&mut Serial(k), x)
    }

    /// [`CatDogCnn::forward`] on executor `e`.
    pub fn forward_with(&mut self, e: &mut impl Executor, x: &[f32]) -> &[f32] {
        let (params, graph) = self.parts();
        graph.forward(e, &params, x, true)
    }

    /// [`CatDogCnn::forward`] that keeps the output of every step, fused or not, for
    /// [`CatDogCnn::conv_outputs`] and [`CatDogCnn::outputs`]. The same logits.
    pub fn forward_keeping_outputs(&mut self, k: &Kernels, x: &[f32]) -> &[f32] {
        let (params, graph) = self.parts();
        graph.forward(&mut Serial(k), &params, x, false)
    }

    /// Chapter 7: run each convolution and the pool after it as one step, one image at a time,
    /// keeping only the pooled map and one byte per pooled value (on by default; it changes no
    /// result, only the memory a pass keeps). Off, the passes are chapter 6's.
    pub fn set_fusion(&mut self, fuse: bool) {
        self.graph.set_fusion(fuse);
    }

    pub fn fusion(&self) -> bool {
        self.graph.fusion()
    }

    /// Bytes of the activations, gradients and pool winners the last pass kept.
    pub fn kept_bytes(&self) -> usize {
        self.graph.kept_bytes()
    }

    /// Forward, loss and backward for one batch (`labels`: 0 cat, 1 dog), on one thread: leaves
    /// dL/dparam in every parameter's `grad`.
    pub fn forward_backward(&mut self, k: &Kernels, x: &[f32], labels: &[f32]) -> StepStats {
        self.forward_backward_with(&mut Serial(k), x, labels)
    }

    /// [`CatDogCnn::forward_backward`] on executor `e`.
    pub fn forward_backward_with(&mut self, e: &mut impl Executor, x: &[f32], labels: &[f32]) -> StepStats {
        let (mut params, graph) = self.parts();
        graph.forward_backward(e, &mut params, x, labels)
    }

    /// One step of training on one thread: [`CatDogCnn::forward_backward`] and `opt`'s
    /// update, with fc1's and fc2's updates fused into their backward passes from chapter 7
    /// on ([`CatDogCnn::train_step_with`]).
    pub fn train_step(&mut self, k: &Kernels, x: &[f32], labels: &[f32], opt: &mut Sgd) -> StepStats {
        unchecked(self.train_step_with(&mut Serial(k), x, labels, opt, |_| Ok(())))
    }

    /// One step of training on executor `e`, with `check` on the loss before anything changes
    /// (its error stops the step). With fusion on and no momentum, fc1 and fc2 take their SGD
    /// steps in the sweeps that compute their gradients, and their weights' `grad` is not
    /// filled; the weights come out bit for bit as from [`CatDogCnn::forward_backward_with`]
    /// and the update.
    pub fn train_step_with<Err>(
        &mut self,
        e: &mut impl Executor,
        x: &[f32],
        labels: &[f32],
        opt: &mut Sgd,
        check: impl FnOnce(&StepStats) -> Result<(), Err>,
    ) -> Result<StepStats, Err> {
        let (mut params, graph) = self.parts();
        graph.train_step(e, &mut params, x, labels, opt, check)
    }

    /// The probability that each image shows a dog.
    pub fn predict_proba(&mut self, k: &Kernels, x: &[f32]) -> Vec<f32> {
        let logits = self.forward(k, x).to_vec();
        let mut p = vec![0.0; logits.len()];
        k.sigmoid_forward(&logits, &mut p);
        p
    }

    /// The output of each convolution (after its ReLU) in the last forward pass:
    /// `[n, h, w, 32]`, `[n, h/2, w/2, 64]`, `[n, h/4, w/4, 128]`. Empty after a pass that fused
    /// the convolutions with their pools: run [`CatDogCnn::forward_keeping_outputs`].
    pub fn conv_outputs(&self) -> [&[f32]; 3] {
        let steps = self.plan().steps();
        let mut convs = (0..steps.len()).filter(|&i| matches!(steps[i].op, StepOp::Conv2d(_)));
        let mut next = || self.graph.output(convs.next().expect("three convolutions"));
        [next(), next(), next()]
    }

    /// The output of every step of the plan in the last forward pass (after its ReLU, if one
    /// follows); a fused convolution's is empty, as in [`CatDogCnn::conv_outputs`].
    pub fn outputs(&self) -> Vec<&[f32]> {
        (0..self.plan().steps().len()).map(|i| self.graph.output(i)).collect()
    }

    pub fn params(&self) -> [&Param; 10] {
        [
            &self.conv1.weight,
            &self.conv1.bias,
            &self.conv2.weight,
            &self.conv2.bias,
            &self.conv3.weight,
            &self.conv3.bias,
            &self.fc1.weight,
            &self.fc1.bias,
            &self.fc2.weight,
            &self.fc2.bias,
        ]
    }

    pub fn params_mut(&mut self) -> [&mut Param; 10] {
        self.parts().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The named fields are the table's parameters, in its order and with its shapes.
    #[test]
    fn the_fields_are_the_tables_parameters() {
        for (h, w) in [(8, 8), (16, 24)] {
            let net = CatDogCnn::new(h, w, 1);
            let shapes: Vec<Vec<usize>> = net.params().iter().map(|p| p.value.shape().to_vec()).collect();
            assert_eq!(shapes, net.plan().param_shapes());
            assert_eq!(CatDogCnn::PARAM_NAMES.to_vec(), net.plan().param_names());
        }
    }
}
