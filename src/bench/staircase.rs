//! Chapter 4's staircase: the SSE forward convolution in four steps, from a loop of raw
//! intrinsics to the crate's register-tiled kernel (`kernels::x86::sse::staircase` holds
//! them), each one callable here and timed by `bench_report --staircase`.
//!
//! The staircase is timed differently from the rest of the report, for a machine shared with
//! other work: the bars are interleaved, and a run counts the seconds the thread was on a CPU
//! ([`measure_staircase`]).

use super::ops::{LayerShape, catdog_layers};
use super::report::Measurement;
use super::timing::{MachineCpu, Timing, TimingSettings, min_median_max, thread_cpu_seconds};
use crate::kernels::{Conv2dShape, Isa, IsaError, Kernels};
use crate::tensor::Tensor;
use crate::tensor::init::{rng, uniform};
use std::fmt;
use std::time::Instant;

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

    /// Whether the step computes `shape`: at least one output channel, and for steps 1 to 3
    /// whole vectors of them.
    pub fn supports(self, shape: &Conv2dShape) -> bool {
        shape.c_out > 0 && (self == Step::SplitBorders || shape.c_out.is_multiple_of(4))
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
    #[error(
        "{step} cannot compute {c_out} output channels: steps 1 to 3 take a positive multiple of 4, step 4 any positive number"
    )]
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
    sse::conv2d_forward(step.number(), shape, input, weight, bias, output, fuse_relu)?;
    Ok(())
}

/// The steps themselves, where they exist: SSE kernels, so on x86-64 only.
#[cfg(target_arch = "x86_64")]
use crate::kernels::x86::sse::staircase as sse;

/// Elsewhere, the same call refuses as any SSE kernel would: the CPU has no SSE.
#[cfg(not(target_arch = "x86_64"))]
mod sse {
    use crate::kernels::{Conv2dShape, Isa, IsaError};

    pub(crate) fn conv2d_forward(
        _: usize,
        _: &Conv2dShape,
        _: &[f32],
        _: &[f32],
        _: &[f32],
        _: &mut [f32],
        _: bool,
    ) -> Result<(), IsaError> {
        Isa::Sse.check()
    }
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

/// The buffers of one layer, shared by its five bars.
struct Buffers {
    shape: Conv2dShape,
    input: Tensor,
    weight: Tensor,
    bias: Tensor,
    output: Tensor,
}

impl Buffers {
    fn new(shape: Conv2dShape) -> Self {
        let r = &mut rng(0);
        let input = uniform(&[shape.input_len()], -1.0, 1.0, r);
        let weight = uniform(&[shape.weight_len()], -1.0, 1.0, r);
        let bias = uniform(&[shape.c_out], -1.0, 1.0, r);
        Buffers { shape, input, weight, bias, output: Tensor::zeros(&[shape.output_len()]) }
    }

    /// One call of `step` (the scalar kernel for `None`), with the ReLU fused as in the network.
    fn run(&mut self, step: Option<Step>) -> Result<(), StepError> {
        let Buffers { shape, input, weight, bias, output } = self;
        let (x, w, b, y) = (input.as_slice(), weight.as_slice(), bias.as_slice(), output.as_mut_slice());
        match step {
            None => Kernels::scalar().conv2d_forward(shape, x, w, b, y, true),
            Some(step) => conv2d_forward(step, shape, x, w, b, y, true)?,
        }
        Ok(())
    }
}

// ANCHOR: measure_staircase
/// Times every bar of `ops` on this thread, in `settings.runs` rounds that each run every bar
/// once (so that a slow spell of the machine falls on all of them alike), on seeded random
/// buffers allocated beforehand. A run lasts `settings.min_run_seconds` and counts the seconds
/// the thread spent on a CPU, from `/proc/thread-self/schedstat`: time spent waiting while other
/// programs had the core is left out, which on a shared machine is most of the noise. (Where
/// the system does not report it, wall-clock seconds.) The result is the median run of each
/// bar, with `cpu_fraction` left empty since waiting does not lengthen these seconds.
pub fn measure_staircase(
    ops: &[StaircaseOp],
    settings: &TimingSettings,
    mut progress: impl FnMut(&str),
) -> Result<Vec<Measurement>, StepError> {
    // One set of buffers per layer, and for each bar the index of its layer's.
    let mut layers: Vec<(&str, Buffers)> = Vec::new();
    let mut slot = Vec::with_capacity(ops.len());
    for op in ops {
        let i = layers.iter().position(|(layer, _)| *layer == op.layer).unwrap_or_else(|| {
            layers.push((op.layer, Buffers::new(op.shape)));
            layers.len() - 1
        });
        slot.push(i);
    }
    let clock = || thread_cpu_seconds().unwrap_or_else(wall_seconds);
    // Warm-up: every bar for one run's length, which also says how many calls make a run.
    let mut calls = Vec::with_capacity(ops.len());
    for op in ops {
        progress(&format!("{} warm-up", op.name));
        let i = slot[calls.len()];
        let (start, mut n) = (clock(), 0u64);
        while n == 0 || clock() - start < settings.min_run_seconds {
            layers[i].1.run(op.step)?;
            n += 1;
        }
        let per_call = (clock() - start) / n as f64;
        calls.push(((settings.min_run_seconds / per_call.max(1e-9)).ceil() as u64).max(1));
    }
    let machine_before = MachineCpu::read();
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    for round in 0..settings.runs.max(1) {
        for (k, op) in ops.iter().enumerate() {
            progress(&format!("round {} of {}: {}", round + 1, settings.runs.max(1), op.name));
            let i = slot[k];
            let start = clock();
            for _ in 0..calls[k] {
                layers[i].1.run(op.step)?;
            }
            seconds[k].push((clock() - start) / calls[k] as f64);
        }
    }
    let other_load = match (machine_before, MachineCpu::read()) {
        (Some(before), Some(after)) => after.busy_cores_since(&before).map(|busy| (busy - 1.0).max(0.0)),
        _ => None,
    };
    let measurements = ops
        .iter()
        .zip(&mut seconds)
        .zip(&calls)
        .map(|((op, runs), &calls_per_run)| {
            let (min_seconds, median, max_seconds) = min_median_max(runs);
            let timing = Timing {
                seconds: median,
                min_seconds,
                max_seconds,
                calls_per_run,
                runs: runs.len(),
                cpu_fraction: None,
                other_load,
            };
            Measurement { op: op.name.clone(), isa: op.isa(), flops: op.shape.flops(), images: None, timing }
        })
        .collect();
    Ok(measurements)
}
// ANCHOR_END: measure_staircase

/// Seconds since the first call, for systems that do not report a thread's CPU time.
fn wall_seconds() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}
