//! Chapter 7: the roofline. Each op's arithmetic intensity (FLOPs per byte it must move), the
//! level of the memory hierarchy its buffers live in, and the speed the two together allow:
//!
//! ```text
//! roof = min(peak of the ISA, intensity x bandwidth of the level)
//! ```
//!
//! An op whose roof is the bandwidth line waits for data; one whose roof is the peak waits for
//! the FMA pipes. `roofline_fraction` is how close the measured speed comes to its roof.

use super::memory::Memory;
use super::ops::{CATDOG_IMAGE, LayerShape, Model, Op, OpKind};
use super::report::{Report, RooflinePoint, fmt_percent, fmt_rate, isa_label};
use crate::kernels::Conv2dShape;
use crate::model::{CATDOG, CATDOG_CHANNELS, Plan, StepOp};
use std::fmt::Write as _;

// ANCHOR: min_floats
/// Floats an op reads or writes at least: each buffer its kernel touches, once (a buffer it
/// reads and writes, such as the parameters of an update, twice). `None` for an op this
/// chapter does not know.
pub fn min_floats(kind: &OpKind) -> Option<u64> {
    let floats = match *kind {
        OpKind::Conv2dForward(s) => s.input_len() + s.weight_len() + s.c_out + s.output_len(),
        // The direct pass's bytes and im2col's matrix.
        OpKind::Conv2dForwardIm2col(s) => return min_floats(&OpKind::Conv2dForward(s)).map(|f| f + im2col_floats(&s)),
        OpKind::Conv2dBackwardInput(s) => s.output_len() + s.weight_len() + s.input_len(),
        // The direct pass's bytes and col2im's matrix.
        OpKind::Conv2dBackwardInputIm2col(s) => {
            return min_floats(&OpKind::Conv2dBackwardInput(s)).map(|f| f + im2col_floats(&s));
        }
        OpKind::Conv2dBackwardWeight(s) => s.input_len() + s.output_len() + s.weight_len() + s.c_out,
        OpKind::Conv2dBackwardWeightIm2col(s) => {
            return min_floats(&OpKind::Conv2dBackwardWeight(s)).map(|f| f + im2col_floats(&s));
        }
        OpKind::MaxPool2dForward(s) => s.input_len() + s.output_len(),
        // Input, output and output gradient read, input gradient written.
        OpKind::MaxPool2dBackward { shape: s, .. } => 2 * s.input_len() + 2 * s.output_len(),
        OpKind::LinearForward(s) => s.input_len() + s.weight_len() + s.out_features + s.output_len(),
        OpKind::LinearBackwardInput(s) => s.output_len() + s.weight_len() + s.input_len(),
        OpKind::LinearBackwardWeight(s) => s.input_len() + s.output_len() + s.weight_len() + s.out_features,
        // Both gradients: x, grad_y and W read, grad_W, grad_b and grad_x written; fused with
        // the update, the same count with W written back instead of grad_W.
        OpKind::LinearBackward(s) | OpKind::LinearBackwardSweep(s) | OpKind::LinearBackwardUpdate(s) => {
            2 * s.input_len() + s.output_len() + 2 * s.weight_len() + s.out_features
        }
        OpKind::ReluForward(len) => 2 * len,
        OpKind::ReluBackward(len) => 3 * len,
        OpKind::Axpy(len) => 3 * len,
        OpKind::SgdMomentumUpdate(len) => 5 * len,
        OpKind::TrainStep(model) | OpKind::TrainStepCh6(model) => {
            return step_kernels(model).iter().map(min_floats).sum();
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(floats as u64)
}
// ANCHOR_END: min_floats

/// im2col's matrix of `s`, written once and read once: nine taps of every pixel's channels.
fn im2col_floats(s: &Conv2dShape) -> u64 {
    2 * 9 * s.input_len() as u64
}

/// Bytes an op moves at least: [`min_floats`] of 4 bytes.
pub fn min_bytes(kind: &OpKind) -> Option<u64> {
    min_floats(kind).map(|f| 4 * f)
}

/// The kernel calls of one training step of `model`, as chapter 6 leaves it: each layer's
/// forward and backward passes, the ReLUs the layers do not fuse, and the SGD update. (The
/// loss and its gradient, a few floats per image, are left out.)
pub fn step_kernels(model: Model) -> Vec<OpKind> {
    let mut calls = Vec::new();
    for layer in model.layers() {
        match layer.shape {
            LayerShape::Conv2d(s) => {
                calls.push(OpKind::Conv2dForward(s));
                if layer.grad_input {
                    calls.push(OpKind::Conv2dBackwardInput(s));
                }
                calls.push(OpKind::Conv2dBackwardWeight(s));
            }
            LayerShape::MaxPool2d { shape, fuse_relu } => {
                calls.push(OpKind::MaxPool2dForward(shape));
                calls.push(OpKind::MaxPool2dBackward { shape, fuse_relu });
            }
            LayerShape::Linear(s) => {
                calls.push(OpKind::LinearForward(s));
                calls.push(if layer.grad_input { OpKind::LinearBackward(s) } else { OpKind::LinearBackwardWeight(s) });
                if s.out_features > 10 {
                    calls.push(OpKind::ReluForward(s.output_len()));
                    calls.push(OpKind::ReluBackward(s.output_len()));
                }
            }
        }
    }
    calls.push(OpKind::Axpy(model.parameters()));
    calls
}

// ANCHOR: activation_bytes
/// The activations and gradients one training step of `model` keeps: for the cat/dog network,
/// the output of every step of its table and the gradient of the loss with respect to it, as
/// the network allocates them for a batch (chapter 3, *What the buffers cost*), with each
/// convolution fused with its pool when `fused` (chapter 7). `None` for the MLP, whose buffers
/// are laid out otherwise.
pub fn activation_bytes(model: Model, fused: bool) -> Option<u64> {
    match model {
        Model::CatDog => {
            let plan = Plan::new(&CATDOG, CATDOG_IMAGE, CATDOG_IMAGE, CATDOG_CHANNELS);
            Some(kept_bytes(&plan, model.batch(), fused))
        }
        Model::Mnist => None,
    }
}

/// The bytes a network of `plan` keeps after a step on `n` images: an output and its gradient
/// for every step, 4 bytes a float; fused, none for a convolution followed by a pool, and one
/// byte per pooled value for the pool's winners instead. (The fused convolution's map of one
/// image, the scratch each thread reuses, is not counted: it does not grow with the batch.)
pub fn kept_bytes(plan: &Plan, n: usize, fused: bool) -> u64 {
    let steps = plan.steps();
    let pool_after = |i: usize| matches!(steps.get(i + 1), Some(s) if matches!(s.op, StepOp::MaxPool2d(_)) && !s.relu);
    let mut bytes = 0;
    for (i, step) in steps.iter().enumerate() {
        let floats = n * step.op.output_len();
        let conv = matches!(step.op, StepOp::Conv2d(_));
        if fused && conv && pool_after(i) {
            continue;
        }
        bytes += 2 * 4 * floats;
        if fused && i > 0 && matches!(steps[i - 1].op, StepOp::Conv2d(_)) && pool_after(i - 1) {
            bytes += floats;
        }
    }
    bytes as u64
}
// ANCHOR_END: activation_bytes

// ANCHOR: roof_level
/// The smallest level of the hierarchy that holds `bytes` (a cache holds what fits in it),
/// with its one-thread bandwidth: `("dram", ..)` when no cache does.
pub fn roof_level(bytes: u64, memory: &Memory) -> Option<(&'static str, f64)> {
    let fits = |name: &str| memory.cache_bytes(name).is_some_and(|size| bytes <= size as u64);
    let name = ["l1", "l2", "l3"].into_iter().find(|name| fits(name) && memory.level(name).is_some()).unwrap_or("dram");
    memory.level(name).map(|level| (level.name, level.gbs))
}

/// Where an op of `flops` and `bytes`, measured at `gflops`, sits under the roofs of `peak`
/// (GFLOP/s) and of the level its bytes fit in.
pub fn place(flops: u64, bytes: u64, gflops: f64, peak: f64, memory: &Memory) -> Option<RooflinePoint> {
    let (roof, gbs) = roof_level(bytes, memory)?;
    let intensity = flops as f64 / bytes as f64;
    let roof_gflops = peak.min(intensity * gbs);
    Some(RooflinePoint {
        bytes,
        intensity,
        roof,
        roof_gflops,
        roofline_fraction: gflops / roof_gflops,
        activation_bytes: None,
    })
}
// ANCHOR_END: roof_level

/// Fills in the roofline of every record of `report` whose op is in `ops`, against the peak
/// of the record's own instruction set, and stores the memory measurement in the report.
pub fn annotate(report: &mut Report, ops: &[Op], memory: &Memory) {
    let peaks: Vec<_> = report.peaks.iter().map(|p| (p.isa, p.gflops)).collect();
    for record in &mut report.records {
        let Some(op) = ops.iter().find(|op| op.name == record.op) else { continue };
        let Some(&(_, peak)) = peaks.iter().find(|(isa, _)| *isa == record.isa) else { continue };
        let Some(bytes) = min_bytes(&op.kind) else { continue };
        record.roofline = place(record.flops, bytes, record.gflops, peak, memory).map(|point| RooflinePoint {
            activation_bytes: match op.kind {
                OpKind::TrainStep(model) => activation_bytes(model, true),
                OpKind::TrainStepCh6(model) => activation_bytes(model, false),
                _ => None,
            },
            ..point
        });
    }
    report.memory = Some(memory.to_json());
}

/// Whether the roof of a point is the bandwidth line rather than the peak.
pub fn memory_bound(point: &RooflinePoint, peak: f64) -> bool {
    point.roof_gflops < peak
}

/// Markdown: the bandwidth of each level, then each record of the best instruction set with
/// its bytes, intensity, roof and the share of the roof it reaches.
pub fn roofline_markdown(report: &Report, memory: &Memory) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n| level | buffer per thread | read GB/s, 1 thread | read GB/s, all threads ({}) |\n| --- | ---: | ---: | ---: |",
        memory.threads
    );
    for level in &memory.levels {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            level.name.to_uppercase().replace("DRAM", "memory"),
            fmt_bytes(level.bytes as u64),
            fmt_rate(level.gbs),
            fmt_rate(level.gbs_all_threads)
        );
    }
    let best = report.records.iter().map(|r| r.isa).max();
    let peak = best.and_then(|isa| report.peaks.iter().find(|p| p.isa == isa)).map_or(f64::NAN, |p| p.gflops);
    let label = best.map_or("best", isa_label);
    let _ = writeln!(
        md,
        "\n| op ({label}) | bytes at least | FLOPs per byte | roof | bound by | GFLOP/s | % of roof |\n\
         | --- | ---: | ---: | --- | --- | ---: | ---: |"
    );
    for r in report.records.iter().filter(|r| Some(r.isa) == best) {
        let Some(p) = r.roofline else { continue };
        let bound = if memory_bound(&p, peak) {
            format!("{} bandwidth", p.roof.to_uppercase())
        } else {
            "the FMA pipes".to_string()
        };
        let bound = bound.replace("DRAM", "memory");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {bound} | {} | {} |",
            r.op,
            fmt_bytes(p.bytes),
            fmt_rate(p.intensity),
            fmt_rate(p.roof_gflops),
            fmt_rate(r.gflops),
            fmt_percent(Some(p.roofline_fraction)),
        );
    }
    md
}

/// `48 KiB`, `16.8 MB`: binary units below a megabyte, decimal above (as the text speaks of
/// fc1's "16.8 MB").
pub fn fmt_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 20 => format!("{} KiB", fmt_rate(b as f64 / 1024.0)),
        b => format!("{} MB", fmt_rate(b as f64 * 1e-6)),
    }
}
