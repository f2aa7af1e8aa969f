//! Chapter 4's staircase: the SSE forward convolution in four steps, from a loop of raw
//! intrinsics to the crate's register-tiled kernel (`kernels::x86::sse::staircase` holds
//! them), each one callable here and timed by `bench_report --staircase`.

use super::ops::{LayerShape, catdog_layers};
use super::report::Measurement;
use super::timing::{TimingSettings, time_calls};
use crate::kernels::{Conv2dShape, Isa, IsaError, Kernels};
use crate::tensor::init::{rng, uniform};
use std::fmt;

/// One step of the staircase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Chapter 2's loop with its innermost loop in `_mm_*` intrinsics: the output row of a
    /// pixel goes through memory for every input value.
    RawIntrinsics,
    /// The outputs of one pixel, two vectors at a time, in registers for the whole sum.
    PixelInRegisters,
    /// A tile of 5 pixels by 2 vectors, with a border test on every pixel of every tile.
    Tile,
    /// The crate's SSE kernel: the same tile, borders in tiles of their own.
    SplitBorders,
}

impl Step {
    /// In the order of the book.
    pub const ALL: [Step; 4] = [Step::RawIntrinsics, Step::PixelInRegisters, Step::Tile, Step::SplitBorders];

    /// 1 to 4.
    pub fn number(self) -> usize {
        match self {
            Step::RawIntrinsics => 1,
            Step::PixelInRegisters => 2,
            Step::Tile => 3,
            Step::SplitBorders => 4,
        }
    }

    /// What the step changes, in a few words (the labels of the chart).
    pub fn label(self) -> &'static str {
        match self {
            Step::RawIntrinsics => "intrinsics",
            Step::PixelInRegisters => "1 pixel",
            Step::Tile => "5x2 tile",
            Step::SplitBorders => "split borders",
        }
    }

    /// Whether the step computes `shape`: steps 1 to 3 need whole vectors of output channels.
    pub fn supports(self, shape: &Conv2dShape) -> bool {
        self == Step::SplitBorders || shape.c_out.is_multiple_of(4)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} ({})", self.number(), self.label())
    }
}

/// Why a step cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Isa(#[from] IsaError),
    #[error("{step} needs a multiple of 4 output channels, not {c_out}")]
    Channels { step: Step, c_out: usize },
}

/// `output = conv3x3(input, weight) + bias` (and a ReLU with `fuse_relu`) with the kernel of
/// `step`, as [`Kernels::conv2d_forward`] computes it. Like every kernel it panics when a
/// slice's length does not match `shape`; it returns an error when SSE cannot run here (or
/// `SIMD_CNN_MAX_ISA` is below it) or when the step does not handle the shape.
pub fn conv2d_forward(
    step: Step,
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    output: &mut [f32],
    fuse_relu: bool,
) -> Result<(), StepError> {
    if !step.supports(shape) {
        return Err(StepError::Channels { step, c_out: shape.c_out });
    }
    #[cfg(target_arch = "x86_64")]
    crate::kernels::x86::sse::staircase::conv2d_forward(step.number(), shape, input, weight, bias, output, fuse_relu)?;
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (input, weight, bias, output, fuse_relu);
        Isa::Sse.check()?;
    }
    Ok(())
}

/// One bar of the staircase: a convolution layer's forward pass with the scalar kernel
/// (`step: None`) or with one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaircaseOp {
    /// `conv2_forward` for the scalar kernel, `conv2_forward_sse_step1` .. `_step4`.
    pub name: String,
    /// `conv1`, `conv2`, `conv3`.
    pub layer: &'static str,
    pub shape: Conv2dShape,
    pub step: Option<Step>,
}

impl StaircaseOp {
    pub fn isa(&self) -> Isa {
        if self.step.is_some() { Isa::Sse } else { Isa::Scalar }
    }

    /// `scalar`, or `step 1` .. `step 4` and what it changes: the label of its bar.
    pub fn label(&self) -> String {
        self.step.map_or("scalar".to_string(), |s| format!("{}: {}", s.number(), s.label()))
    }
}

/// The forward pass of each convolution of the cat/dog network at its training batch: first
/// the scalar kernel, then the four steps.
pub fn staircase_ops() -> Vec<StaircaseOp> {
    let mut ops = Vec::new();
    for layer in catdog_layers() {
        let LayerShape::Conv2d(shape) = layer.shape else { continue };
        let name = format!("{}_forward", layer.name);
        ops.push(StaircaseOp { name: name.clone(), layer: layer.name, shape, step: None });
        for step in Step::ALL {
            let name = format!("{name}_sse_step{}", step.number());
            ops.push(StaircaseOp { name, layer: layer.name, shape, step: Some(step) });
        }
    }
    ops
}

/// Times one bar on this thread, on seeded random buffers allocated beforehand, with the ReLU
/// fused as in the network.
pub fn measure_step(op: &StaircaseOp, settings: &TimingSettings) -> Result<Measurement, StepError> {
    let s = op.shape;
    let r = &mut rng(0);
    let (input, weight, bias) = (
        uniform(&[s.input_len()], -1.0, 1.0, r),
        uniform(&[s.weight_len()], -1.0, 1.0, r),
        uniform(&[s.c_out], -1.0, 1.0, r),
    );
    let (input, weight, bias) = (input.as_slice(), weight.as_slice(), bias.as_slice());
    let mut output = vec![0.0f32; s.output_len()];
    let timing = match op.step {
        None => {
            let k = Kernels::scalar();
            time_calls(settings, || k.conv2d_forward(&s, input, weight, bias, &mut output, true))
        }
        Some(step) => {
            // One call outside the timing says whether the step can run at all.
            conv2d_forward(step, &s, input, weight, bias, &mut output, true)?;
            time_calls(settings, || {
                let _ = conv2d_forward(step, &s, input, weight, bias, &mut output, true);
            })
        }
    };
    Ok(Measurement { op: op.name.clone(), isa: op.isa(), flops: s.flops(), images: None, timing })
}
