//! What is measured: every kernel call of the two networks at their training batch sizes, and
//! whole training steps, each with its FLOP count.

use crate::kernels::{Conv2dShape, Kernels, LinearShape, Pool2dShape};
use crate::model::{CATDOG, CATDOG_CHANNELS, CatDogCnn, Mlp, Plan, StepOp};
use crate::tensor::Tensor;
use crate::tensor::init::{Rng, rng, uniform};
use crate::train::Sgd;

/// Images per training step of the cat/dog network.
pub const CATDOG_BATCH: usize = 16;
/// Height and width of the cat/dog images.
pub const CATDOG_IMAGE: usize = 128;
/// Images per training step of the MNIST network.
pub const MNIST_BATCH: usize = 32;
/// The learning rate of the timed training steps (plain SGD, as in the reference runs).
const LEARNING_RATE: f32 = 0.01;

// ANCHOR: layers
/// One layer of a network with its shape at the benchmark batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The name used in op names: `conv2`, `pool1`, `fc1`, `mlp_fc3`.
    pub name: &'static str,
    pub shape: LayerShape,
    /// Whether training computes the gradient of the layer's input. The first layer of each
    /// network does not: nothing upstream of the image needs it.
    pub grad_input: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerShape {
    Conv2d(Conv2dShape),
    /// Every pool of the cat/dog network follows a convolution whose ReLU is fused into it, so
    /// the pool's backward pass also applies the ReLU's (`fuse_relu`).
    MaxPool2d {
        shape: Pool2dShape,
        fuse_relu: bool,
    },
    Linear(LinearShape),
}

/// The cat/dog network at batch 16 on 128x128 RGB images (NHWC), from its table:
///
/// ```text
/// conv1 3->32 @128x128, pool1 -> 64x64, conv2 32->64 @64x64, pool2 -> 32x32,
/// conv3 64->128 @32x32, pool3 -> 16x16, fc1 32768->128, fc2 128->1
/// ```
pub fn catdog_layers() -> Vec<Layer> {
    let plan = Plan::new(&CATDOG, CATDOG_IMAGE, CATDOG_IMAGE, CATDOG_CHANNELS);
    let steps = plan.steps();
    let mut layers = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let shape = match step.op.batch(CATDOG_BATCH) {
            StepOp::Conv2d(s) => LayerShape::Conv2d(s),
            // A pool after a ReLU'd layer applies the ReLU's backward pass too.
            StepOp::MaxPool2d(shape) => LayerShape::MaxPool2d { shape, fuse_relu: i > 0 && steps[i - 1].relu },
            StepOp::Linear(s) => LayerShape::Linear(s),
            StepOp::Flatten(_) => continue, // a permutation: nothing to time
        };
        layers.push(Layer { name: step.name, shape, grad_input: i > 0 });
    }
    layers
}

/// The MNIST network at batch 32: Linear 784->128, 128->64, 64->10 (ReLU between them).
pub fn mnist_layers() -> Vec<Layer> {
    let linear = |name, in_features, out_features, grad_input| Layer {
        name,
        shape: LayerShape::Linear(LinearShape { batch: MNIST_BATCH, in_features, out_features }),
        grad_input,
    };
    vec![linear("mlp_fc1", 784, 128, false), linear("mlp_fc2", 128, 64, true), linear("mlp_fc3", 64, 10, true)]
}
// ANCHOR_END: layers

// ANCHOR: flops
impl Layer {
    /// Multiply-add FLOPs of the forward pass (pools have none).
    pub fn forward_flops(&self) -> u64 {
        match self.shape {
            LayerShape::Conv2d(s) => s.flops(),
            LayerShape::Linear(s) => s.flops(),
            LayerShape::MaxPool2d { .. } => 0,
        }
    }

    /// Multiply-add FLOPs of forward plus backward: the weight gradient costs what the forward
    /// pass costs, and so does the input gradient when the layer computes it.
    pub fn training_flops(&self) -> u64 {
        let passes = if self.grad_input { 3 } else { 2 };
        passes * self.forward_flops()
    }
}

/// Multiply-add FLOPs of one training step (forward and backward) over `layers`, counting a
/// multiply-add as two. Pooling, ReLU, the loss and the SGD update are left out: they do no
/// multiply-adds and together are well under 1 % of the arithmetic.
pub fn training_flops(layers: &[Layer]) -> u64 {
    layers.iter().map(Layer::training_flops).sum()
}

/// Multiply-add FLOPs of one forward pass over `layers`.
pub fn forward_flops(layers: &[Layer]) -> u64 {
    layers.iter().map(Layer::forward_flops).sum()
}
// ANCHOR_END: flops

/// A network whose whole training step can be timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The cat/dog CNN, 16 images of 128x128 per step.
    CatDog,
    /// The MNIST MLP, 32 images per step.
    Mnist,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::CatDog => "catdog",
            Model::Mnist => "mnist",
        }
    }

    pub fn layers(self) -> Vec<Layer> {
        match self {
            Model::CatDog => catdog_layers(),
            Model::Mnist => mnist_layers(),
        }
    }

    /// Images per training step.
    pub fn batch(self) -> usize {
        match self {
            Model::CatDog => CATDOG_BATCH,
            Model::Mnist => MNIST_BATCH,
        }
    }

    /// Parameters (weights and biases) of the network.
    pub fn parameters(self) -> usize {
        self.layers()
            .iter()
            .map(|layer| match layer.shape {
                LayerShape::Conv2d(s) => s.weight_len() + s.c_out,
                LayerShape::Linear(s) => s.weight_len() + s.out_features,
                LayerShape::MaxPool2d { .. } => 0,
            })
            .sum()
    }
}

// ANCHOR: op_kind
/// One timed call: a kernel of the [`Kernels`] table on one shape, or a whole training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Conv2dForward(Conv2dShape),
    /// Chapter 7: the same forward pass by im2col and a packed matrix product
    /// (`Kernels::conv2d_forward_im2col`).
    Conv2dForwardIm2col(Conv2dShape),
    Conv2dBackwardInput(Conv2dShape),
    /// Chapter 7: the same input gradient by a matrix product and col2im
    /// (`Kernels::conv2d_backward_input_im2col`).
    Conv2dBackwardInputIm2col(Conv2dShape),
    Conv2dBackwardWeight(Conv2dShape),
    /// Chapter 7: the same weight gradient by im2col and a matrix product
    /// (`Kernels::conv2d_backward_weight_im2col`).
    Conv2dBackwardWeightIm2col(Conv2dShape),
    MaxPool2dForward(Pool2dShape),
    MaxPool2dBackward {
        shape: Pool2dShape,
        fuse_relu: bool,
    },
    LinearForward(LinearShape),
    LinearBackwardInput(LinearShape),
    LinearBackwardWeight(LinearShape),
    /// Both gradients of a linear layer, weight then input, as training computes them.
    LinearBackward(LinearShape),
    /// Chapter 7: both gradients and the SGD update of the weight in one sweep
    /// (`Kernels::linear_backward_update`): [`OpKind::LinearBackward`] and an [`OpKind::Axpy`]
    /// over the weights, fused.
    LinearBackwardUpdate(LinearShape),
    /// Chapter 7: both gradients in one sweep over the weight, the weight gradient stored
    /// (`Kernels::linear_backward_sweep`, what a network with fusion on runs for SGD with
    /// momentum): [`OpKind::LinearBackward`]'s work.
    LinearBackwardSweep(LinearShape),
    /// In place on this many floats.
    ReluForward(usize),
    ReluBackward(usize),
    /// `y += alpha * x` (plain SGD) over this many parameters.
    Axpy(usize),
    /// SGD with momentum over this many parameters.
    SgdMomentumUpdate(usize),
    /// Forward, loss, backward and the SGD update of one batch.
    TrainStep(Model),
    /// The same step as chapter 6 leaves it: no convolution fused with its pool (chapter 7's
    /// yardstick, `train_step_catdog_ch6`).
    TrainStepCh6(Model),
}
// ANCHOR_END: op_kind

impl OpKind {
    /// The work of one call, in FLOPs for the ops that multiply and add. Pooling counts its
    /// comparisons ([`Pool2dShape::flops`]) and the element-wise ops one per element: those
    /// are memory-bound, and their "GFLOP/s" are billions of elements per second.
    pub fn flops(&self) -> u64 {
        match *self {
            OpKind::Conv2dForward(s)
            | OpKind::Conv2dForwardIm2col(s)
            | OpKind::Conv2dBackwardInput(s)
            | OpKind::Conv2dBackwardInputIm2col(s)
            | OpKind::Conv2dBackwardWeight(s)
            | OpKind::Conv2dBackwardWeightIm2col(s) => s.flops(),
            OpKind::MaxPool2dForward(s) | OpKind::MaxPool2dBackward { shape: s, .. } => s.flops(),
            OpKind::LinearForward(s) | OpKind::LinearBackwardInput(s) | OpKind::LinearBackwardWeight(s) => s.flops(),
            OpKind::LinearBackward(s) | OpKind::LinearBackwardSweep(s) => 2 * s.flops(),
            OpKind::LinearBackwardUpdate(s) => 2 * s.flops() + s.weight_len() as u64,
            OpKind::ReluForward(len)
            | OpKind::ReluBackward(len)
            | OpKind::Axpy(len)
            | OpKind::SgdMomentumUpdate(len) => len as u64,
            OpKind::TrainStep(model) | OpKind::TrainStepCh6(model) => training_flops(&model.layers()),
        }
    }

    /// Images per call: the batch of a training step, `None` for a single kernel.
    pub fn images(&self) -> Option<usize> {
        match *self {
            OpKind::TrainStep(model) | OpKind::TrainStepCh6(model) => Some(model.batch()),
            _ => None,
        }
    }

    /// The [`Kernels`] method this op calls (`train_step` for a whole step).
    pub fn kernel_name(&self) -> &'static str {
        match self {
            OpKind::Conv2dForward(_) => "conv2d_forward",
            OpKind::Conv2dForwardIm2col(_) => "conv2d_forward_im2col",
            OpKind::Conv2dBackwardInput(_) => "conv2d_backward_input",
            OpKind::Conv2dBackwardInputIm2col(_) => "conv2d_backward_input_im2col",
            OpKind::Conv2dBackwardWeight(_) => "conv2d_backward_weight",
            OpKind::Conv2dBackwardWeightIm2col(_) => "conv2d_backward_weight_im2col",
            OpKind::MaxPool2dForward(_) => "max_pool2d_forward",
            OpKind::MaxPool2dBackward { .. } => "max_pool2d_backward",
            OpKind::LinearForward(_) => "linear_forward",
            OpKind::LinearBackwardInput(_) => "linear_backward_input",
            OpKind::LinearBackwardWeight(_) => "linear_backward_weight",
            OpKind::LinearBackward(_) => "linear_backward",
            OpKind::LinearBackwardUpdate(_) => "linear_backward_update",
            OpKind::LinearBackwardSweep(_) => "linear_backward_sweep",
            OpKind::ReluForward(_) => "relu_forward",
            OpKind::ReluBackward(_) => "relu_backward",
            OpKind::Axpy(_) => "axpy",
            OpKind::SgdMomentumUpdate(_) => "sgd_momentum_update",
            OpKind::TrainStep(_) | OpKind::TrainStepCh6(_) => "train_step",
        }
    }
}

/// A named op: what the report and the benchmarks time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// `<layer>_<direction>` (`conv2_backward_input`, `mlp_fc1_forward`), or
    /// `train_step_<model>`.
    pub name: String,
    /// The layer or model it runs on (`conv2`, `mlp_fc1`, `catdog`).
    pub layer: String,
    pub kind: OpKind,
}

impl Op {
    pub fn new(name: impl Into<String>, layer: impl Into<String>, kind: OpKind) -> Self {
        Op { name: name.into(), layer: layer.into(), kind }
    }

    pub fn flops(&self) -> u64 {
        self.kind.flops()
    }

    pub fn images(&self) -> Option<usize> {
        self.kind.images()
    }

    /// Buffers filled with seeded random values, ready to run the op again and again.
    pub fn workload(&self) -> Workload {
        Workload::new(self.kind)
    }
}

// ANCHOR: report_ops
/// The ops of the report, in network order: for each layer its forward pass and its backward
/// pass (a convolution's two gradients apart, as they are separate kernels; a linear layer's
/// together), then one whole training step of each network.
pub fn report_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for layer in catdog_layers().into_iter().chain(mnist_layers()) {
        let op = |direction: &str, kind| Op::new(format!("{}_{direction}", layer.name), layer.name, kind);
        match layer.shape {
            LayerShape::Conv2d(s) => {
                ops.push(op("forward", OpKind::Conv2dForward(s)));
                // From chapter 7, the same pass by im2col and a matrix product, beside it.
                if Kernels::scalar().has_im2col() {
                    ops.push(op("forward_im2col", OpKind::Conv2dForwardIm2col(s)));
                }
                if layer.grad_input {
                    ops.push(op("backward_input", OpKind::Conv2dBackwardInput(s)));
                    if Kernels::scalar().has_im2col() {
                        ops.push(op("backward_input_im2col", OpKind::Conv2dBackwardInputIm2col(s)));
                    }
                }
                ops.push(op("backward_weight", OpKind::Conv2dBackwardWeight(s)));
                if Kernels::scalar().has_im2col() {
                    ops.push(op("backward_weight_im2col", OpKind::Conv2dBackwardWeightIm2col(s)));
                }
            }
            LayerShape::MaxPool2d { shape, fuse_relu } => {
                ops.push(op("forward", OpKind::MaxPool2dForward(shape)));
                ops.push(op("backward", OpKind::MaxPool2dBackward { shape, fuse_relu }));
            }
            LayerShape::Linear(s) => {
                ops.push(op("forward", OpKind::LinearForward(s)));
                let backward =
                    if layer.grad_input { OpKind::LinearBackward(s) } else { OpKind::LinearBackwardWeight(s) };
                ops.push(op("backward", backward));
                // From chapter 7, for a layer whose weights do not fit an L2 (fc1): the backward
                // pass in one sweep, and with the update fused, beside it.
                if layer.grad_input && s.weight_len() * 4 > 4 << 20 && Kernels::scalar().updates_in_backward() {
                    ops.push(op("backward_sweep", OpKind::LinearBackwardSweep(s)));
                    ops.push(op("backward_update", OpKind::LinearBackwardUpdate(s)));
                }
            }
        }
    }
    for model in [Model::CatDog, Model::Mnist] {
        ops.push(Op::new(format!("train_step_{}", model.name()), model.name(), OpKind::TrainStep(model)));
    }
    // From chapter 7, whose fused step is `train_step_catdog`, chapter 6's step beside it.
    if Kernels::scalar().keeps_pool_winners() {
        ops.push(Op::new("train_step_catdog_ch6".to_string(), "catdog", OpKind::TrainStepCh6(Model::CatDog)));
    }
    ops
}
// ANCHOR_END: report_ops

/// Every kernel call a training step of either network makes, one op per kernel and shape,
/// for the criterion benchmarks: the ReLUs the networks do not fuse (after `fc1`, `mlp_fc1`,
/// `mlp_fc2`), and the SGD update of all of each network's parameters at once.
pub fn kernel_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for layer in catdog_layers().into_iter().chain(mnist_layers()) {
        let mut push =
            |direction: &str, kind| ops.push(Op::new(format!("{}_{direction}", layer.name), layer.name, kind));
        match layer.shape {
            LayerShape::Conv2d(s) => {
                push("forward", OpKind::Conv2dForward(s));
                if layer.grad_input {
                    push("backward_input", OpKind::Conv2dBackwardInput(s));
                }
                push("backward_weight", OpKind::Conv2dBackwardWeight(s));
            }
            LayerShape::MaxPool2d { shape, fuse_relu } => {
                push("forward", OpKind::MaxPool2dForward(shape));
                push("backward", OpKind::MaxPool2dBackward { shape, fuse_relu });
            }
            LayerShape::Linear(s) => {
                push("forward", OpKind::LinearForward(s));
                if layer.grad_input {
                    push("backward_input", OpKind::LinearBackwardInput(s));
                }
                push("backward_weight", OpKind::LinearBackwardWeight(s));
                // Every hidden linear layer feeds a ReLU; the last one of each network feeds
                // the loss.
                if s.out_features > 10 {
                    push("relu_forward", OpKind::ReluForward(s.output_len()));
                    push("relu_backward", OpKind::ReluBackward(s.output_len()));
                }
            }
        }
    }
    for model in [Model::CatDog, Model::Mnist] {
        let (name, len) = (model.name(), model.parameters());
        ops.push(Op::new(format!("{name}_axpy"), name, OpKind::Axpy(len)));
        ops.push(Op::new(format!("{name}_sgd_momentum"), name, OpKind::SgdMomentumUpdate(len)));
    }
    ops
}

/// The ops whose name contains `only` (all of them when it is `None`).
pub fn filter_ops(ops: Vec<Op>, only: Option<&str>) -> Vec<Op> {
    match only {
        Some(text) => ops.into_iter().filter(|op| op.name.contains(text)).collect(),
        None => ops,
    }
}

/// The inputs and outputs of one op, allocated once and filled with seeded random values,
/// then reused by every call: timing a call times the kernel, not the allocator.
#[derive(Debug)]
pub struct Workload(State);

// One value per measurement, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    Conv2dForward {
        s: Conv2dShape,
        im2col: bool,
        input: Tensor,
        weight: Tensor,
        bias: Tensor,
        output: Tensor,
    },
    Conv2dBackwardInput {
        s: Conv2dShape,
        im2col: bool,
        grad_output: Tensor,
        weight: Tensor,
        grad_input: Tensor,
    },
    Conv2dBackwardWeight {
        s: Conv2dShape,
        im2col: bool,
        input: Tensor,
        grad_output: Tensor,
        grad_weight: Tensor,
        grad_bias: Tensor,
    },
    MaxPool2dForward {
        s: Pool2dShape,
        input: Tensor,
        output: Tensor,
    },
    MaxPool2dBackward {
        s: Pool2dShape,
        fuse_relu: bool,
        input: Tensor,
        output: Tensor,
        grad_output: Tensor,
        grad_input: Tensor,
    },
    /// Any of the four linear ops (`kind` says which); every buffer a layer needs.
    Linear {
        kind: OpKind,
        s: LinearShape,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        y: Tensor,
        grad_y: Tensor,
        grad_x: Tensor,
        grad_weight: Tensor,
        grad_bias: Tensor,
    },
    ReluForward {
        x: Tensor,
    },
    ReluBackward {
        y: Tensor,
        grad: Tensor,
    },
    Axpy {
        grad: Tensor,
        param: Tensor,
    },
    SgdMomentumUpdate {
        grad: Tensor,
        param: Tensor,
        velocity: Tensor,
    },
    CatDog {
        model: Box<CatDogCnn>,
        sgd: Sgd,
        images: Tensor,
        labels: Vec<f32>,
    },
    Mnist {
        model: Box<Mlp>,
        sgd: Sgd,
        images: Tensor,
        labels: Vec<u8>,
    },
}

/// Seeded values in [-1, 1).
fn random(len: usize, rng: &mut Rng) -> Tensor {
    uniform(&[len], -1.0, 1.0, rng)
}

fn zeros(len: usize) -> Tensor {
    Tensor::zeros(&[len])
}

impl Workload {
    fn new(kind: OpKind) -> Self {
        let rng = &mut rng(0);
        Workload(match kind {
            OpKind::Conv2dForward(s) | OpKind::Conv2dForwardIm2col(s) => State::Conv2dForward {
                s,
                im2col: matches!(kind, OpKind::Conv2dForwardIm2col(_)),
                input: random(s.input_len(), rng),
                weight: random(s.weight_len(), rng),
                bias: random(s.c_out, rng),
                output: zeros(s.output_len()),
            },
            OpKind::Conv2dBackwardInput(s) | OpKind::Conv2dBackwardInputIm2col(s) => State::Conv2dBackwardInput {
                s,
                im2col: matches!(kind, OpKind::Conv2dBackwardInputIm2col(_)),
                grad_output: random(s.output_len(), rng),
                weight: random(s.weight_len(), rng),
                grad_input: zeros(s.input_len()),
            },
            OpKind::Conv2dBackwardWeight(s) | OpKind::Conv2dBackwardWeightIm2col(s) => State::Conv2dBackwardWeight {
                s,
                im2col: matches!(kind, OpKind::Conv2dBackwardWeightIm2col(_)),
                input: random(s.input_len(), rng),
                grad_output: random(s.output_len(), rng),
                grad_weight: zeros(s.weight_len()),
                grad_bias: zeros(s.c_out),
            },
            OpKind::MaxPool2dForward(s) => {
                State::MaxPool2dForward { s, input: random(s.input_len(), rng), output: zeros(s.output_len()) }
            }
            OpKind::MaxPool2dBackward { shape: s, fuse_relu } => {
                // The backward pass reads the forward pass's input and output.
                let input = random(s.input_len(), rng);
                let mut output = zeros(s.output_len());
                Kernels::scalar().max_pool2d_forward(&s, input.as_slice(), output.as_mut_slice());
                let (grad_output, grad_input) = (random(s.output_len(), rng), zeros(s.input_len()));
                State::MaxPool2dBackward { s, fuse_relu, input, output, grad_output, grad_input }
            }
            OpKind::LinearForward(s)
            | OpKind::LinearBackwardInput(s)
            | OpKind::LinearBackwardWeight(s)
            | OpKind::LinearBackward(s)
            | OpKind::LinearBackwardSweep(s)
            | OpKind::LinearBackwardUpdate(s) => State::Linear {
                kind,
                s,
                x: random(s.input_len(), rng),
                weight: random(s.weight_len(), rng),
                bias: random(s.out_features, rng),
                y: zeros(s.output_len()),
                grad_y: random(s.output_len(), rng),
                grad_x: zeros(s.input_len()),
                grad_weight: zeros(s.weight_len()),
                grad_bias: zeros(s.out_features),
            },
            OpKind::ReluForward(len) => State::ReluForward { x: random(len, rng) },
            OpKind::ReluBackward(len) => State::ReluBackward { y: random(len, rng), grad: random(len, rng) },
            OpKind::Axpy(len) => State::Axpy { grad: random(len, rng), param: random(len, rng) },
            OpKind::SgdMomentumUpdate(len) => {
                State::SgdMomentumUpdate { grad: random(len, rng), param: random(len, rng), velocity: zeros(len) }
            }
            OpKind::TrainStep(Model::CatDog) | OpKind::TrainStepCh6(Model::CatDog) => {
                let n = CATDOG_BATCH;
                let images = uniform(&[n, CATDOG_IMAGE, CATDOG_IMAGE, 3], 0.0, 1.0, rng);
                let labels = (0..n).map(|i| (i % 2) as f32).collect();
                let mut model = Box::new(CatDogCnn::new(CATDOG_IMAGE, CATDOG_IMAGE, 0));
                model.set_fusion(matches!(kind, OpKind::TrainStep(_)));
                State::CatDog { model, sgd: Sgd::new(LEARNING_RATE, 0.0), images, labels }
            }
            OpKind::TrainStep(Model::Mnist) | OpKind::TrainStepCh6(Model::Mnist) => {
                let n = MNIST_BATCH;
                let images = uniform(&[n, 784], 0.0, 1.0, rng);
                let labels = (0..n).map(|i| (i % 10) as u8).collect();
                State::Mnist { model: Box::new(Mlp::new(0)), sgd: Sgd::new(LEARNING_RATE, 0.0), images, labels }
            }
        })
    }

    // ANCHOR: workload_run
    /// One call of the op with the kernels of `k`.
    pub fn run(&mut self, k: &Kernels) {
        match &mut self.0 {
            State::Conv2dForward { s, im2col, input, weight, bias, output } => {
                // Every convolution of the network has its ReLU fused.
                let (input, weight, bias, output) =
                    (input.as_slice(), weight.as_slice(), bias.as_slice(), output.as_mut_slice());
                if *im2col {
                    k.conv2d_forward_im2col(s, input, weight, bias, output, true)
                        .expect("report_ops lists the im2col pass only where every table has it");
                } else {
                    k.conv2d_forward(s, input, weight, bias, output, true)
                }
            }
            State::Conv2dBackwardInput { s, im2col, grad_output, weight, grad_input } => {
                let (grad_output, weight, grad_input) =
                    (grad_output.as_slice(), weight.as_slice(), grad_input.as_mut_slice());
                if *im2col {
                    k.conv2d_backward_input_im2col(s, grad_output, weight, grad_input)
                        .expect("report_ops lists the im2col pass only where every table has it");
                } else {
                    k.conv2d_backward_input(s, grad_output, weight, grad_input)
                }
            }
            State::Conv2dBackwardWeight { s, im2col, input, grad_output, grad_weight, grad_bias } => {
                let (input, grad_output) = (input.as_slice(), grad_output.as_slice());
                let (grad_weight, grad_bias) = (grad_weight.as_mut_slice(), grad_bias.as_mut_slice());
                if *im2col {
                    k.conv2d_backward_weight_im2col(s, input, grad_output, grad_weight, grad_bias)
                        .expect("report_ops lists the im2col pass only where every table has it");
                } else {
                    k.conv2d_backward_weight(s, input, grad_output, grad_weight, grad_bias)
                }
            }
            State::MaxPool2dForward { s, input, output } => {
                k.max_pool2d_forward(s, input.as_slice(), output.as_mut_slice())
            }
            State::MaxPool2dBackward { s, fuse_relu, input, output, grad_output, grad_input } => k.max_pool2d_backward(
                s,
                input.as_slice(),
                output.as_slice(),
                grad_output.as_slice(),
                grad_input.as_mut_slice(),
                *fuse_relu,
            ),
            State::Linear { kind, s, x, weight, bias, y, grad_y, grad_x, grad_weight, grad_bias } => {
                if let OpKind::LinearForward(_) = kind {
                    k.linear_forward(s, x.as_slice(), weight.as_slice(), bias.as_slice(), y.as_mut_slice());
                }
                // `LinearBackward` is both gradients, weight first, as training computes them.
                if let OpKind::LinearBackwardWeight(_) | OpKind::LinearBackward(_) = kind {
                    let (x, grad_y) = (x.as_slice(), grad_y.as_slice());
                    k.linear_backward_weight(s, x, grad_y, grad_weight.as_mut_slice(), grad_bias.as_mut_slice());
                }
                if let OpKind::LinearBackwardInput(_) | OpKind::LinearBackward(_) = kind {
                    k.linear_backward_input(s, grad_y.as_slice(), weight.as_slice(), grad_x.as_mut_slice());
                }
                if let OpKind::LinearBackwardSweep(_) = kind {
                    let (x, grad_y, grad_x) = (x.as_slice(), grad_y.as_slice(), Some(grad_x.as_mut_slice()));
                    let (gw, gb) = (grad_weight.as_mut_slice(), grad_bias.as_mut_slice());
                    k.linear_backward_sweep(s, x, grad_y, weight.as_slice(), gw, gb, grad_x);
                }
                // The weights drift by the same step at every call; the kernel does not branch
                // on them.
                if let OpKind::LinearBackwardUpdate(_) = kind {
                    let (x, grad_y, grad_x) = (x.as_slice(), grad_y.as_slice(), Some(grad_x.as_mut_slice()));
                    let (weight, grad_bias) = (weight.as_mut_slice(), grad_bias.as_mut_slice());
                    k.linear_backward_update(s, x, grad_y, weight, grad_bias, grad_x, LEARNING_RATE);
                }
            }
            // Repeated calls keep doing the same work: the kernels do not branch on values.
            State::ReluForward { x } => k.relu_forward(x.as_mut_slice()),
            State::ReluBackward { y, grad } => k.relu_backward(y.as_slice(), grad.as_mut_slice()),
            State::Axpy { grad, param } => k.axpy(-LEARNING_RATE, grad.as_slice(), param.as_mut_slice()),
            State::SgdMomentumUpdate { grad, param, velocity } => k.sgd_momentum_update(
                param.as_mut_slice(),
                grad.as_slice(),
                velocity.as_mut_slice(),
                LEARNING_RATE,
                0.9,
            ),
            State::CatDog { model, sgd, images, labels } => {
                model.train_step(k, images.as_slice(), labels, sgd);
            }
            State::Mnist { model, sgd, images, labels } => {
                model.forward_backward(k, images.as_slice(), labels);
                sgd.step(k, &mut model.params_mut());
            }
        }
    }
    // ANCHOR_END: workload_run
}
