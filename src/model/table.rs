//! A network written once, as a table of layers.
//!
//! The table is the whole topology. Everything else is derived from it: the shapes of every
//! step for an input size ([`Plan`]), the parameters and their He-normal initial values, their
//! PyTorch `state_dict` names and shapes, the text that describes a checkpoint, and the list of
//! layers the benchmarks time. Adding a layer is one new row.

use crate::kernels::{Conv2dShape, LinearShape, Pool2dShape};
use crate::nn::{Conv2d, Flatten, Linear, Param};
use crate::tensor::init::rng;

// ANCHOR: layer
/// One row of a network's table: a module of PyTorch's `nn.Sequential`, named as in its
/// `state_dict`. Input channels and features are not written: they are the previous row's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `nn.Conv2d(c_in, c_out, 3, padding=1)` on NHWC maps.
    Conv2d { name: &'static str, c_out: usize },
    /// `nn.ReLU()` on the previous row's output, in place.
    ReLU,
    /// `nn.MaxPool2d(2)`.
    MaxPool2d { name: &'static str },
    /// `nn.Flatten()`: each NHWC map becomes one row in PyTorch's (C, H, W) order.
    Flatten,
    /// `nn.Linear(in, out)` on rows.
    Linear { name: &'static str, out_features: usize },
}
// ANCHOR_END: layer

impl Layer {
    /// The name of a layer with parameters (`conv1`, `fc2`), the prefix of its parameters' names.
    pub const fn param_prefix(&self) -> Option<&'static str> {
        match *self {
            Layer::Conv2d { name, .. } | Layer::Linear { name, .. } => Some(name),
            _ => None,
        }
    }
}

// ANCHOR: plan
/// What one step of a pass computes, for one image: the batch size is filled in when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOp {
    Conv2d(Conv2dShape),
    MaxPool2d(Pool2dShape),
    Flatten(Flatten),
    Linear(LinearShape),
}

/// A row of the table with its shapes, and the ReLU that follows it folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The row's name (`""` for `Flatten`).
    pub name: &'static str,
    pub op: StepOp,
    /// A ReLU follows. A convolution applies it as it stores its output, a pool's backward pass
    /// applies the ReLU's backward before it; anything else runs the ReLU in place.
    pub relu: bool,
    /// Where the step's weight is in the network's parameters (its bias is next).
    pub param: Option<usize>,
}

/// A table made concrete for one input size: the steps of the forward pass, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    input: (usize, usize, usize),
    steps: Vec<Step>,
}
// ANCHOR_END: plan

/// What flows between two rows of a table, per image.
#[derive(Clone, Copy)]
enum Flow {
    /// An NHWC map `[h, w, c]`.
    Map(usize, usize, usize),
    /// A row of features.
    Row(usize),
}

impl Plan {
    /// The steps of `table` on NHWC images of `h` x `w` x `c`.
    ///
    /// # Panics
    /// If the table does not fit together (a convolution after `Flatten`, a `Linear` on maps, a
    /// ReLU with nothing to act on, not one logit per image at the end), or if `h` or `w` is not
    /// a positive multiple of `2^pools`, so that every pool divides its map evenly.
    pub fn new(table: &[Layer], h: usize, w: usize, c: usize) -> Plan {
        let pools = table.iter().filter(|l| matches!(l, Layer::MaxPool2d { .. })).count() as u32;
        let side = 1usize << pools;
        assert!(
            h > 0 && w > 0 && h.is_multiple_of(side) && w.is_multiple_of(side),
            "image size {h}x{w}: both sides must be positive multiples of {side}"
        );
        assert!(c > 0, "an image needs at least one channel");
        let mut steps: Vec<Step> = Vec::with_capacity(table.len());
        let mut flow = Flow::Map(h, w, c);
        let mut params = 0;
        for (row, &layer) in table.iter().enumerate() {
            let (name, op, next) = match (layer, flow) {
                (Layer::ReLU, _) => {
                    let last = steps.last_mut().filter(|s| !s.relu);
                    last.unwrap_or_else(|| panic!("row {row}: a ReLU needs a layer before it, and only one")).relu =
                        true;
                    continue;
                }
                (Layer::Conv2d { name, c_out }, Flow::Map(h, w, c_in)) => {
                    assert!(c_out > 0, "{name}: no output channels");
                    (name, StepOp::Conv2d(Conv2dShape { n: 1, h, w, c_in, c_out }), Flow::Map(h, w, c_out))
                }
                (Layer::MaxPool2d { name }, Flow::Map(h, w, c)) => {
                    (name, StepOp::MaxPool2d(Pool2dShape { n: 1, h, w, c }), Flow::Map(h / 2, w / 2, c))
                }
                (Layer::Flatten, Flow::Map(h, w, c)) => {
                    ("", StepOp::Flatten(Flatten { h, w, c }), Flow::Row(h * w * c))
                }
                (Layer::Linear { name, out_features }, Flow::Row(in_features)) => {
                    assert!(out_features > 0, "{name}: no outputs");
                    let shape = LinearShape { batch: 1, in_features, out_features };
                    (name, StepOp::Linear(shape), Flow::Row(out_features))
                }
                (layer, Flow::Map(..)) => panic!("row {row}: {layer:?} needs rows: put a Flatten before it"),
                (layer, Flow::Row(_)) => panic!("row {row}: {layer:?} needs maps, but the rows were flattened"),
            };
            let param = layer.param_prefix().map(|_| params);
            params += if param.is_some() { 2 } else { 0 };
            steps.push(Step { name, op, relu: false, param });
            flow = next;
        }
        assert!(matches!(flow, Flow::Row(1)), "the last layer must give one logit per image");
        Plan { input: (h, w, c), steps }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The input's height, width and channels.
    pub fn input(&self) -> (usize, usize, usize) {
        self.input
    }

    /// Floats in one input image, `h * w * c`.
    pub fn input_len(&self) -> usize {
        let (h, w, c) = self.input;
        h * w * c
    }

    /// He-normal weights and zero biases drawn from `seed`, layer after layer in table order
    /// (as `nn::Conv2d::new` and `nn::Linear::new` draw them).
    pub fn init_params(&self, seed: u64) -> Vec<Param> {
        let mut rng = rng(seed);
        let mut params = Vec::new();
        for step in &self.steps {
            let (weight, bias) = match step.op {
                StepOp::Conv2d(s) => {
                    let Conv2d { weight, bias } = Conv2d::new(s.c_in, s.c_out, &mut rng);
                    (weight, bias)
                }
                StepOp::Linear(s) => {
                    let Linear { weight, bias } = Linear::new(s.in_features, s.out_features, &mut rng);
                    (weight, bias)
                }
                StepOp::MaxPool2d(_) | StepOp::Flatten(_) => continue,
            };
            params.extend([weight, bias]);
        }
        params
    }

    /// The parameters' shapes in memory: convolutions `[3, 3, c_in, c_out]` (HWIO), linear
    /// layers `[out, in]`, biases `[out]`.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.params_as(|s| vec![3, 3, s.c_in, s.c_out])
    }

    // ANCHOR: torch_shapes
    /// The parameters' shapes in PyTorch's `state_dict`: convolutions `[c_out, c_in, 3, 3]`.
    pub fn torch_shapes(&self) -> Vec<Vec<usize>> {
        self.params_as(|s| vec![s.c_out, s.c_in, 3, 3])
    }
    // ANCHOR_END: torch_shapes

    fn params_as(&self, conv_weight: impl Fn(&Conv2dShape) -> Vec<usize>) -> Vec<Vec<usize>> {
        let mut shapes = Vec::new();
        for step in &self.steps {
            match step.op {
                StepOp::Conv2d(s) => shapes.extend([conv_weight(&s), vec![s.c_out]]),
                StepOp::Linear(s) => shapes.extend([vec![s.out_features, s.in_features], vec![s.out_features]]),
                StepOp::MaxPool2d(_) | StepOp::Flatten(_) => {}
            }
        }
        shapes
    }

    /// PyTorch's names of the parameters: `conv1.weight`, `conv1.bias`, ...
    pub fn param_names(&self) -> Vec<String> {
        let with_params = self.steps.iter().filter(|s| s.param.is_some());
        with_params.flat_map(|s| [format!("{}.weight", s.name), format!("{}.bias", s.name)]).collect()
    }

    /// The layers in words, for a reader of the weights without this crate:
    /// `conv1 3->32 (3x3, padding 1), ReLU, pool1 (2x2 max), ..., fc2 128->1`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for step in &self.steps {
            parts.push(match step.op {
                StepOp::Conv2d(s) => format!("{} {}->{} (3x3, padding 1)", step.name, s.c_in, s.c_out),
                StepOp::MaxPool2d(_) => format!("{} (2x2 max)", step.name),
                StepOp::Flatten(_) => "flatten (C, H, W)".to_string(),
                StepOp::Linear(s) => format!("{} {}->{}", step.name, s.in_features, s.out_features),
            });
            if step.relu {
                parts.push("ReLU".to_string());
            }
        }
        parts.join(", ")
    }
}

impl StepOp {
    /// The op on a batch of `n` images.
    pub fn batch(&self, n: usize) -> StepOp {
        match *self {
            StepOp::Conv2d(s) => StepOp::Conv2d(Conv2dShape { n, ..s }),
            StepOp::MaxPool2d(s) => StepOp::MaxPool2d(Pool2dShape { n, ..s }),
            StepOp::Flatten(f) => StepOp::Flatten(f),
            StepOp::Linear(s) => StepOp::Linear(LinearShape { batch: n, ..s }),
        }
    }

    /// Floats of the op's output for one image.
    pub fn output_len(&self) -> usize {
        match self.batch(1) {
            StepOp::Conv2d(s) => s.output_len(),
            StepOp::MaxPool2d(s) => s.output_len(),
            StepOp::Flatten(f) => f.features(),
            StepOp::Linear(s) => s.output_len(),
        }
    }
}

// ANCHOR: const_names
/// Room for one parameter name spelled at compile time.
pub const NAME_ROOM: usize = 32;

/// The `N` parameter names of `table` (`conv1.weight`, `conv1.bias`, ...) spelled at compile
/// time, each padded with zero bytes, so that a network's names can be a constant
/// (see [`as_names`]). Fails to compile if the table does not have `N` parameters.
pub const fn spell_param_names<const N: usize>(table: &[Layer]) -> [[u8; NAME_ROOM]; N] {
    let mut names = [[0; NAME_ROOM]; N];
    let (mut row, mut p) = (0, 0);
    while row < table.len() {
        if let Some(layer) = table[row].param_prefix() {
            assert!(p + 2 <= N, "the table has more parameters than the names asked for");
            names[p] = join(layer, "weight");
            names[p + 1] = join(layer, "bias");
            p += 2;
        }
        row += 1;
    }
    assert!(p == N, "the table has fewer parameters than the names asked for");
    names
}

/// `layer.param`, padded with zero bytes.
const fn join(layer: &str, param: &str) -> [u8; NAME_ROOM] {
    let (a, b) = (layer.as_bytes(), param.as_bytes());
    assert!(a.len() + 1 + b.len() <= NAME_ROOM, "a parameter name is longer than NAME_ROOM");
    let mut out = [0; NAME_ROOM];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    out[a.len()] = b'.';
    let mut j = 0;
    while j < b.len() {
        out[a.len() + 1 + j] = b[j];
        j += 1;
    }
    out
}

/// The names spelled by [`spell_param_names`], as strings.
pub const fn as_names<const N: usize>(spelled: &'static [[u8; NAME_ROOM]; N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        let mut len = 0;
        while len < NAME_ROOM && spelled[i][len] != 0 {
            len += 1;
        }
        names[i] = match std::str::from_utf8(spelled[i].split_at(len).0) {
            Ok(name) => name,
            Err(_) => panic!("a layer name is not UTF-8"),
        };
        i += 1;
    }
    names
}
// ANCHOR_END: const_names

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: [Layer; 5] = [
        Layer::Conv2d { name: "c", c_out: 4 },
        Layer::ReLU,
        Layer::MaxPool2d { name: "p" },
        Layer::Flatten,
        Layer::Linear { name: "out", out_features: 1 },
    ];

    #[test]
    fn names_spelled_at_compile_time_are_the_plans() {
        const SPELLED: [[u8; NAME_ROOM]; 4] = spell_param_names(&TINY);
        const NAMES: [&str; 4] = as_names(&SPELLED);
        assert_eq!(NAMES.to_vec(), Plan::new(&TINY, 4, 6, 3).param_names());
        assert_eq!(NAMES, ["c.weight", "c.bias", "out.weight", "out.bias"]);
    }

    #[test]
    fn shapes_follow_the_rows() {
        let plan = Plan::new(&TINY, 4, 6, 3);
        assert_eq!(plan.param_shapes(), [vec![3, 3, 3, 4], vec![4], vec![1, 2 * 3 * 4], vec![1]]);
        assert_eq!(plan.torch_shapes()[0], [4, 3, 3, 3]);
        assert!(plan.steps()[0].relu && !plan.steps()[1].relu);
        assert_eq!(plan.steps().iter().map(|s| s.param).collect::<Vec<_>>(), [Some(0), None, None, Some(2)]);
        assert_eq!(plan.describe(), "c 3->4 (3x3, padding 1), ReLU, p (2x2 max), flatten (C, H, W), out 24->1");
    }

    #[test]
    #[should_panic(expected = "multiples of 2")]
    fn an_odd_side_before_a_pool_is_refused() {
        Plan::new(&TINY, 5, 6, 3);
    }

    #[test]
    #[should_panic(expected = "put a Flatten before it")]
    fn a_linear_layer_on_maps_is_refused() {
        Plan::new(&[Layer::Linear { name: "fc", out_features: 1 }], 2, 2, 1);
    }

    #[test]
    #[should_panic(expected = "only one")]
    fn two_relus_in_a_row_are_refused() {
        Plan::new(&[Layer::Conv2d { name: "c", c_out: 1 }, Layer::ReLU, Layer::ReLU], 2, 2, 1);
    }
}
