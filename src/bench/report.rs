//! From timings to the tables and the JSON of the book: GFLOP/s, % of peak, speed-up.

use super::ops::{Model, Op, OpKind};
use super::timing::{Noise, Timing, TimingSettings, time_calls, time_fastest_call};
use crate::kernels::peak::peak_flops;
use crate::kernels::{Isa, IsaError, Kernels};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;

/// Iterations of one call of a peak loop: a millisecond or two on a current core.
const PEAK_ITERATIONS: u64 = 1 << 20;

/// The single-core peak of one instruction set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub isa: Isa,
    /// From the fastest call: a peak is what the core *can* do.
    pub gflops: f64,
    pub timing: Timing,
}

// ANCHOR: measure
/// Times the peak loop of `isa` (see [`crate::kernels::peak`]) on this thread: the fastest
/// call of each run, and the fastest run.
pub fn measure_peak(isa: Isa, settings: &TimingSettings) -> Result<Peak, IsaError> {
    let flops = peak_flops(isa, PEAK_ITERATIONS)?;
    let timing = time_fastest_call(settings, || {
        let _ = black_box(peak_flops(isa, PEAK_ITERATIONS));
    });
    Ok(Peak { isa, gflops: flops as f64 / timing.min_seconds * 1e-9, timing })
}

/// One op timed with one instruction set.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub op: String,
    pub isa: Isa,
    /// Work of one call ([`Op::flops`]).
    pub flops: u64,
    /// Images per call, for whole training steps.
    pub images: Option<usize>,
    pub timing: Timing,
}

/// Times `op` with the kernels of `isa` on this thread, on buffers allocated beforehand.
pub fn measure_op(op: &Op, isa: Isa, settings: &TimingSettings) -> Result<Measurement, IsaError> {
    let k = Kernels::for_isa(isa)?;
    let mut workload = op.workload();
    let timing = time_calls(settings, || workload.run(k));
    Ok(Measurement { op: op.name.clone(), isa, flops: op.flops(), images: op.images(), timing })
}
// ANCHOR_END: measure

/// What the report says about the machine it ran on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs the operating system offers (the report uses one).
    pub logical_cpus: usize,
    pub os: String,
    pub arch: String,
    /// `rustc --version`, or `unknown`.
    pub rustc: String,
    /// Instruction sets the CPU has, and those this build and `SIMD_CNN_MAX_ISA` let us run.
    pub cpu_isas: Vec<Isa>,
    pub available_isas: Vec<Isa>,
    /// Whether the program was built with debug assertions (a `cargo run` without
    /// `--release`): its figures are not the ones to publish.
    pub debug_assertions: bool,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
        let rustc = std::process::Command::new(rustc)
            .arg("--version")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        Machine {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".to_string()),
            logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            rustc,
            cpu_isas: Isa::ALL.into_iter().filter(|isa| isa.cpu_supports()).collect(),
            available_isas: Isa::available(),
            debug_assertions: cfg!(debug_assertions),
        }
    }

    fn to_json(&self) -> MachineJson<'_> {
        let names = |isas: &[Isa]| isas.iter().map(|isa| isa.name()).collect::<Vec<_>>();
        MachineJson {
            cpu_model: &self.cpu_model,
            logical_cpus: self.logical_cpus,
            threads_used: 1,
            os: &self.os,
            arch: &self.arch,
            rustc: &self.rustc,
            cpu_isas: names(&self.cpu_isas),
            available_isas: names(&self.available_isas),
            debug_assertions: self.debug_assertions,
        }
    }
}

/// The report's JSON, field by field (serde writes it).
#[derive(Serialize)]
struct ReportJson<'a> {
    machine: MachineJson<'a>,
    peaks: BTreeMap<&'static str, Option<f64>>,
    peak_reference: Option<&'static str>,
    peak_spread: BTreeMap<&'static str, f64>,
    /// Chapter 7: the bandwidth of each level of the memory hierarchy.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<&'a Value>,
    records: Vec<RecordJson<'a>>,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    cpu_model: &'a str,
    logical_cpus: usize,
    threads_used: usize,
    os: &'a str,
    arch: &'a str,
    rustc: &'a str,
    cpu_isas: Vec<&'static str>,
    available_isas: Vec<&'static str>,
    debug_assertions: bool,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    op: &'a str,
    isa: &'static str,
    flops: u64,
    gflops: f64,
    peak_fraction: Option<f64>,
    isa_peak_fraction: Option<f64>,
    speedup_vs_scalar: Option<f64>,
    seconds: f64,
    min_seconds: f64,
    max_seconds: f64,
    spread: f64,
    runs: usize,
    calls_per_run: u64,
    cpu_fraction: Option<f64>,
    other_load: Option<f64>,
    noise: Option<String>,
    images_per_second: Option<f64>,
    bytes: Option<u64>,
    intensity: Option<f64>,
    roof: Option<&'static str>,
    roof_gflops: Option<f64>,
    roofline_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activation_bytes: Option<u64>,
}

/// Where a record sits on the roofline of chapter 7.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RooflinePoint {
    /// Bytes the op must move at least: each buffer it reads or writes, once.
    pub bytes: u64,
    /// FLOPs per byte.
    pub intensity: f64,
    /// The level whose bandwidth applies: the smallest that holds the op's buffers (`l1`,
    /// `l2`, `l3`, `dram`).
    pub roof: &'static str,
    /// What the roofline allows: the lesser of the ISA's peak and intensity x bandwidth.
    pub roof_gflops: f64,
    /// GFLOP/s over `roof_gflops`.
    pub roofline_fraction: f64,
    /// For a whole training step: the bytes of activations and gradients it keeps.
    pub activation_bytes: Option<u64>,
}

/// The CPU's name from `/proc/cpuinfo`: its `model name` (x86), with the family and model
/// numbers when they are there (a virtual machine often shows only "AMD EPYC"), else its
/// `Model` or `CPU part` line (ARM).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => Some(format!("{name} (family {family}, model {model})")),
        (Some(name), _, _) => Some(name),
        _ => field("Model").or_else(|| field("CPU part")),
    }
}

/// One row of the report: a measurement set against the peaks and against scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub op: String,
    pub isa: Isa,
    pub flops: u64,
    /// Median seconds per call.
    pub seconds: f64,
    pub gflops: f64,
    /// Share of the reference peak (AVX-512's, or the highest measured).
    pub peak_fraction: Option<f64>,
    /// Share of this instruction set's own peak.
    pub isa_peak_fraction: Option<f64>,
    /// Scalar seconds over these seconds, for the same op.
    pub speedup_vs_scalar: Option<f64>,
    pub images_per_second: Option<f64>,
    pub timing: Timing,
    /// Chapter 7: where it sits on the roofline, once the memory is measured.
    pub roofline: Option<RooflinePoint>,
}

/// Everything one run of the report measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub peaks: Vec<Peak>,
    pub records: Vec<Record>,
    /// Chapter 7: the memory hierarchy as measured, the report's `"memory"` object.
    pub memory: Option<Value>,
}

// ANCHOR: report_new
impl Report {
    /// Sets every measurement against the peaks and against the scalar time of the same op.
    pub fn new(machine: Machine, peaks: Vec<Peak>, measurements: Vec<Measurement>) -> Report {
        let peak_of = |isa: Isa| peaks.iter().find(|p| p.isa == isa).map(|p| p.gflops);
        let reference = peak_of(Isa::Avx512).or_else(|| peaks.iter().map(|p| p.gflops).reduce(f64::max));
        let records = measurements
            .iter()
            .map(|m| {
                let seconds = m.timing.seconds;
                let gflops = m.flops as f64 / seconds * 1e-9;
                let scalar = measurements.iter().find(|s| s.op == m.op && s.isa == Isa::Scalar);
                Record {
                    op: m.op.clone(),
                    isa: m.isa,
                    flops: m.flops,
                    seconds,
                    gflops,
                    peak_fraction: reference.map(|p| gflops / p),
                    isa_peak_fraction: peak_of(m.isa).map(|p| gflops / p),
                    speedup_vs_scalar: scalar.map(|s| s.timing.seconds / seconds),
                    images_per_second: m.images.map(|n| n as f64 / seconds),
                    timing: m.timing,
                    roofline: None,
                }
            })
            .collect();
        Report { machine, peaks, records, memory: None }
    }
    // ANCHOR_END: report_new

    /// The instruction set whose peak `peak_fraction` refers to.
    pub fn reference_isa(&self) -> Option<Isa> {
        let best = self.peaks.iter().max_by(|a, b| a.gflops.total_cmp(&b.gflops));
        self.peaks.iter().find(|p| p.isa == Isa::Avx512).or(best).map(|p| p.isa)
    }

    /// The measurements (peaks included) the machine may have disturbed, named
    /// `<op> / <isa>` or `<isa> peak`, with the reason.
    ///
    /// A peak is the fastest single call of a few milliseconds, which a preemption cannot slow
    /// down (the call it hits is simply not the fastest), so only the spread of the runs'
    /// fastest calls counts against it.
    pub fn disturbed(&self) -> Vec<(String, Noise)> {
        let peaks = self.peaks.iter().map(|p| (format!("{} peak", p.isa), Noise::judge(None, None, p.timing.spread())));
        let records = self.records.iter().map(|r| (format!("{} / {}", r.op, r.isa), r.timing.noise()));
        peaks.chain(records).filter_map(|(what, noise)| Some((what, noise?))).collect()
    }

    /// The markdown paragraph on disturbed measurements: one line each when there are a few,
    /// else one line per kind of disturbance with the worst case.
    fn noise_markdown(&self) -> String {
        let disturbed = self.disturbed();
        if disturbed.is_empty() {
            return String::new();
        }
        let mut md = format!(
            "\n⚠ The machine disturbed {} of {} measurements; their figures may be low, and ratios \
             between them less reliable:\n\n",
            disturbed.len(),
            self.peaks.len() + self.records.len()
        );
        if disturbed.len() <= 10 {
            for (what, noise) in &disturbed {
                let _ = writeln!(md, "- {what}: {noise}");
            }
            return md;
        }
        // The count and the worst case of each kind of disturbance.
        let mut kinds: Vec<(Noise, usize)> = Vec::new();
        for &(_, noise) in &disturbed {
            match kinds.iter_mut().find(|(worst, _)| worst.kind() == noise.kind()) {
                Some((worst, count)) => {
                    *count += 1;
                    if noise.amount() > worst.amount() {
                        *worst = noise;
                    }
                }
                None => kinds.push((noise, 1)),
            }
        }
        for (worst, count) in kinds {
            let plural = if count == 1 { "" } else { "s" };
            let _ = writeln!(md, "- {count} measurement{plural}, the worst: {worst}");
        }
        md.push_str("\nEach one is marked ⚠ in the table; the JSON says what disturbed it.\n");
        md
    }

    // ANCHOR: to_json
    /// `{"machine": {..}, "peaks": {"scalar": GFLOP/s, ..}, "records": [{"op", "isa", ..}]}`;
    /// an instruction set that was not measured has a `null` peak.
    pub fn to_json(&self) -> Value {
        let json = ReportJson {
            machine: self.machine.to_json(),
            peaks: Isa::ALL
                .iter()
                .map(|&isa| (isa.name(), self.peaks.iter().find(|p| p.isa == isa).map(|p| p.gflops)))
                .collect(),
            peak_reference: self.reference_isa().map(Isa::name),
            peak_spread: self.peaks.iter().map(|p| (p.isa.name(), p.timing.spread())).collect(),
            memory: self.memory.as_ref(),
            records: self
                .records
                .iter()
                .map(|r| RecordJson {
                    op: &r.op,
                    isa: r.isa.name(),
                    flops: r.flops,
                    gflops: r.gflops,
                    peak_fraction: r.peak_fraction,
                    isa_peak_fraction: r.isa_peak_fraction,
                    speedup_vs_scalar: r.speedup_vs_scalar,
                    seconds: r.seconds,
                    min_seconds: r.timing.min_seconds,
                    max_seconds: r.timing.max_seconds,
                    spread: r.timing.spread(),
                    runs: r.timing.runs,
                    calls_per_run: r.timing.calls_per_run,
                    cpu_fraction: r.timing.cpu_fraction,
                    other_load: r.timing.other_load,
                    noise: r.timing.noise().map(|n| n.to_string()),
                    images_per_second: r.images_per_second,
                    bytes: r.roofline.map(|p| p.bytes),
                    intensity: r.roofline.map(|p| p.intensity),
                    roof: r.roofline.map(|p| p.roof),
                    roof_gflops: r.roofline.map(|p| p.roof_gflops),
                    roofline_fraction: r.roofline.map(|p| p.roofline_fraction),
                    activation_bytes: r.roofline.and_then(|p| p.activation_bytes),
                })
                .collect(),
        };
        serde_json::to_value(json).unwrap_or(Value::Null)
    }
    // ANCHOR_END: to_json

    // ANCHOR: to_markdown
    /// The peaks, a table of every record, a table of the whole training steps, and a list of
    /// the measurements the machine may have disturbed.
    pub fn to_markdown(&self) -> String {
        let m = &self.machine;
        let mut md = String::new();
        let _ = writeln!(md, "Measured on {} ({} logical CPUs, one used), {}.\n", m.cpu_model, m.logical_cpus, m.rustc);
        if m.debug_assertions {
            md.push_str("**Built with debug assertions: rerun with `--release` for meaningful figures.**\n\n");
        }
        md.push_str("| ISA | peak GFLOP/s (1 core) |\n| --- | ---: |\n");
        for p in &self.peaks {
            let _ = writeln!(md, "| {} | {} |", isa_label(p.isa), fmt_rate(p.gflops));
        }
        let reference = self.reference_isa().map_or("reference", isa_label);
        let _ = writeln!(
            md,
            "\n| op | ISA | GFLOP/s | % of {reference} peak | % of ISA peak | vs scalar | per call | spread |"
        );
        md.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for r in &self.records {
            let flag = if r.timing.noise().is_some() { " ⚠" } else { "" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {}{flag} |",
                r.op,
                isa_label(r.isa),
                fmt_rate(r.gflops),
                fmt_percent(r.peak_fraction),
                fmt_percent(r.isa_peak_fraction),
                r.speedup_vs_scalar.map_or("–".to_string(), |s| format!("{s:.2}x")),
                fmt_seconds(r.seconds),
                fmt_percent(Some(r.timing.spread())),
            );
        }
        if self.records.iter().any(|r| r.op.starts_with("pool")) {
            md.push_str(
                "\nPooling rows count comparisons (3 per output) instead of FLOPs; pooling does no \
                 arithmetic and is bound by memory.\n",
            );
        }
        if self.records.iter().any(|r| r.isa == Isa::Scalar && r.isa_peak_fraction.is_some_and(|f| f > 1.0)) {
            md.push_str(
                "\nScalar rows above 100 % of the scalar peak (one float per instruction) are loops \
                 the compiler vectorised by itself, with the SSE2 instructions every x86-64 CPU has.\n",
            );
        }
        let steps: Vec<&Record> = self.records.iter().filter(|r| r.images_per_second.is_some()).collect();
        if !steps.is_empty() {
            md.push_str("\n| training step | ISA | images/s | per step | GFLOP/s | % of ");
            let _ = writeln!(md, "{reference} peak |\n| --- | --- | ---: | ---: | ---: | ---: |");
            for r in steps {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.op,
                    isa_label(r.isa),
                    fmt_rate(r.images_per_second.unwrap_or_default()),
                    fmt_seconds(r.seconds),
                    fmt_rate(r.gflops),
                    fmt_percent(r.peak_fraction),
                );
            }
            for model in [Model::CatDog, Model::Mnist] {
                let per_image = OpKind::TrainStep(model).flops() as f64 / model.batch() as f64;
                let _ = write!(md, "\nOne {} training image: {:.4} MFLOP.", model.name(), per_image * 1e-6);
            }
            md.push('\n');
        }
        md.push_str(&self.noise_markdown());
        md
    }
    // ANCHOR_END: to_markdown
}

/// `AVX-512`, `AVX2`, `SSE`, `scalar`: names as the text of the book spells them.
pub fn isa_label(isa: Isa) -> &'static str {
    match isa {
        Isa::Scalar => "scalar",
        Isa::Sse => "SSE",
        Isa::Avx2 => "AVX2",
        Isa::Avx512 => "AVX-512",
    }
}

/// Three significant figures, without exponent: `263`, `41.2`, `3.07`, `0.0512`.
pub fn fmt_rate(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_string();
    }
    let decimals = match x.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        a if a >= 0.1 => 3,
        _ => 4,
    };
    format!("{x:.decimals$}")
}

/// A duration with three significant figures in the unit that suits it: `1.28 s`, `175 ms`,
/// `2.04 µs`, `850 ns`.
pub fn fmt_seconds(seconds: f64) -> String {
    let (value, unit) = match seconds {
        s if s >= 1.0 => (s, "s"),
        s if s >= 1e-3 => (s * 1e3, "ms"),
        s if s >= 1e-6 => (s * 1e6, "µs"),
        s => (s * 1e9, "ns"),
    };
    format!("{} {unit}", fmt_rate(value))
}

/// `12.3 %`, or `–` when there is nothing to compare with.
pub fn fmt_percent(fraction: Option<f64>) -> String {
    fraction.filter(|f| f.is_finite()).map_or("–".to_string(), |f| format!("{:.1} %", 100.0 * f))
}
