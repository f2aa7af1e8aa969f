//! Chapter 11: the int8 records of the report. `peak_int8` is the loop of `vpdpbusd` (its
//! "GFLOP/s" are integer operations, a multiply and an add per product); `inference_catdog_int8`
//! is the forward pass of the quantised cat/dog network on a batch of 16, counted with the fp32
//! forward pass's FLOPs so that its rate and its images per second stand beside
//! `inference_catdog` (direct fp32) and `inference_catdog_winograd` (Winograd's fp32).

use super::bf16::INFERENCE_CATDOG;
use super::ops::{CATDOG_BATCH, CATDOG_IMAGE, catdog_layers, forward_flops};
use super::report::{Measurement, Report, fmt_rate};
use super::timing::{TimingSettings, time_calls, time_fastest_call};
use crate::kernels::int8::{Int8Error, Int8Kernels};
use crate::kernels::{ConvAlgorithm, ConvAlgorithmError, Isa, Kernels};
use crate::model::{CatDogCnn, Int8Network};
use crate::tensor::init::{rng, uniform};
use std::fmt::Write;
use std::hint::black_box;

/// The name of the int8 peak record.
pub const INT8_PEAK: &str = "peak_int8";

/// The suffix of the int8 records.
pub const INT8_SUFFIX: &str = "_int8";

/// The name of the fp32 forward pass on Winograd's convolutions.
pub const INFERENCE_CATDOG_WINOGRAD: &str = "inference_catdog_winograd";

const PEAK_ITERATIONS: u64 = 1 << 20;

/// The VNNI table, or why it cannot run here.
fn vnni() -> Result<&'static Int8Kernels, Int8Error> {
    Int8Kernels::for_isa(Isa::Avx512)
}

/// The peak loop of `vpdpbusd` (12 chains, 128 operations per instruction).
pub fn measure_int8_peak(settings: &TimingSettings) -> Result<Measurement, Int8Error> {
    let k = vnni()?;
    let (ops, _) = k.peak(PEAK_ITERATIONS, 1, 1).expect("the VNNI table has a peak loop");
    let timing = time_fastest_call(settings, || {
        black_box(k.peak(PEAK_ITERATIONS, black_box(1), black_box(1)));
    });
    Ok(Measurement { op: INT8_PEAK.to_string(), isa: Isa::Avx512, flops: ops, images: None, timing })
}

// ANCHOR: measure_int8_inference
/// The quantised cat/dog network's forward pass on 16 images, on VNNI. Its weights are the
/// fp32 network's initial ones and its scales are calibrated on other random images: the time
/// of the integer kernels does not depend on the values.
pub fn measure_int8_inference(settings: &TimingSettings) -> Result<Measurement, Int8Error> {
    let k8 = vnni()?;
    let k = Kernels::for_isa(Isa::Avx512).map_err(Int8Error::Avx512)?;
    let mut model = CatDogCnn::new(CATDOG_IMAGE, CATDOG_IMAGE, 0);
    let shape = [CATDOG_BATCH, CATDOG_IMAGE, CATDOG_IMAGE, 3];
    let mut int8 = Int8Network::from_model(&mut model, k, uniform(&shape, 0.0, 1.0, &mut rng(2)).as_slice())?;
    let images = uniform(&shape, 0.0, 1.0, &mut rng(1));
    let timing = time_calls(settings, || {
        black_box(int8.forward(k8, images.as_slice()));
    });
    let op = format!("{INFERENCE_CATDOG}{INT8_SUFFIX}");
    let flops = forward_flops(&catdog_layers());
    Ok(Measurement { op, isa: Isa::Avx512, flops, images: Some(CATDOG_BATCH), timing })
}
// ANCHOR_END: measure_int8_inference

/// [`super::measure_inference`] on Winograd's convolutions of `isa`, as
/// `inference_catdog_winograd`: the fastest fp32 forward pass.
pub fn measure_winograd_inference(isa: Isa, settings: &TimingSettings) -> Result<Measurement, ConvAlgorithmError> {
    let k = Kernels::for_isa_with(isa, ConvAlgorithm::Winograd)?;
    let measured = super::measure_inference(k, settings);
    Ok(Measurement { op: INFERENCE_CATDOG_WINOGRAD.to_string(), ..measured })
}

// ANCHOR: int8_markdown
/// The int8 records of `report` beside the fp32 forward passes of the same run: images per
/// second and the speed-up over direct and Winograd fp32; the int8 peak over the FMA peak.
pub fn int8_markdown(report: &Report) -> String {
    let find = |name: &str| report.records.iter().find(|r| r.op == name);
    let mut md = String::new();
    if let (Some(p), Some(fma)) = (find(INT8_PEAK), report.peaks.iter().find(|p| p.isa == Isa::Avx512)) {
        let _ = write!(
            md,
            "\nint8 peak (`vpdpbusd`): {} G operations/s, {:.2}x the AVX-512 FMA peak ({} GFLOP/s)\n",
            fmt_rate(p.gflops),
            p.gflops / fma.gflops,
            fmt_rate(fma.gflops)
        );
    }
    let passes = [
        INFERENCE_CATDOG.to_string(),
        INFERENCE_CATDOG_WINOGRAD.to_string(),
        format!("{INFERENCE_CATDOG}{INT8_SUFFIX}"),
    ];
    let direct = find(INFERENCE_CATDOG);
    let rows: Vec<_> = passes.iter().filter_map(|name| find(name)).collect();
    if rows.len() > 1 {
        md.push_str("\n| forward pass, batch 16 | isa | images/s | effective GFLOP/s | vs direct fp32 |\n");
        md.push_str("| --- | --- | ---: | ---: | ---: |\n");
        for r in rows {
            let vs = direct.map_or("–".to_string(), |d| format!("{:.2}x", d.seconds / r.seconds));
            let ips = r.images_per_second.unwrap_or_default();
            let _ = writeln!(md, "| {} | {} | {} | {} | {vs} |", r.op, r.isa, fmt_rate(ips), fmt_rate(r.gflops));
        }
    }
    md
}
// ANCHOR_END: int8_markdown
