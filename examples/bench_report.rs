//! The performance tables and charts of chapters 4-6: every op of both networks with every
//! instruction set, as GFLOP/s, as a share of the machine's measured peak, and as a speed-up
//! over scalar code.
//!
//! ```text
//! cargo run --release --example bench_report -- --json-out report.json --svg-dir charts
//! cargo run --release --example bench_report -- --json-out conv.json --only conv2
//! ```
//!
//! It first measures the single-core peak of each instruction set (a loop that does nothing
//! but arithmetic on registers), then times each op on one thread: a warm-up, then the median
//! of several runs of at least 0.3 s each. It prints a markdown table, writes the JSON (and, if
//! asked, the markdown and one SVG bar chart per op: the staircase scalar, SSE, AVX2, AVX-512
//! with the peaks as reference lines). The machine is shared: measurements it disturbed are
//! flagged, in the table and in the JSON.
//!
//! From chapter 7 on it then measures the memory hierarchy (the read bandwidth of L1, L2, L3 and
//! memory on one thread and on all, and the memory mountain, about half a minute), places every
//! record on its roofline, adds both to the markdown and the JSON (`"memory"`, and `"bytes"`,
//! `"intensity"`, `"roof"`, `"roofline_fraction"` on each record) and, with `--svg-dir`, draws
//! `memory-mountain.svg` and `roofline.svg`.
//!
//! The whole run takes about 5 minutes on 2 cores; `--only TEXT` keeps the ops whose name
//! contains TEXT (`conv`, `backward`, `train_step`).
//!
//! From chapter 11 on, on a CPU with AVX-512 BF16, it also times the bf16 peak (`peak_bf16`)
//! and the bf16 table's convolutions and training step (`<op>_bf16`, each right after its fp32
//! op), and on every CPU a forward pass alone (`inference_catdog`, fp32, best instruction set).
//!
//! `--staircase` times chapter 4's staircase instead: the forward pass of each convolution with
//! the scalar kernel and with each of the four steps of the SSE kernel, against the scalar and
//! SSE peaks, with one chart per layer (`conv2_forward_staircase.svg`):
//!
//! ```text
//! cargo run --release --example bench_report -- --staircase --only conv2 --json-out stairs.json --svg-dir charts
//! ```

#[path = "common/cli.rs"]
mod cli;

// Chapter 7 adds the memory hierarchy and the roofline to the report.
#[cfg(feature = "ch7")]
#[path = "bench_report/chapter7.rs"]
mod memory;
#[cfg(not(feature = "ch7"))]
#[path = "bench_report/before_chapter7.rs"]
mod memory;

// Chapter 11 races its hand-written AVX-512 tile against the compiler's.
#[cfg(feature = "ch11")]
#[path = "bench_report/chapter11.rs"]
mod metal;
#[cfg(not(feature = "ch11"))]
#[path = "bench_report/before_chapter11.rs"]
mod metal;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use simd_cnn::bench::staircase::{StaircaseOp, measure_staircase, staircase_ops};
use simd_cnn::bench::{
    BF16_SUFFIX, INFERENCE_CATDOG, Machine, MachineCpu, Measurement, Op, OpKind, Peak, Record, Report, TimingSettings,
    WINOGRAD_SUFFIX, filter_ops, fmt_percent, fmt_rate, isa_label, measure_op, measure_peak, measure_winograd_op,
    report_ops, winograd_markdown, winograd_ops,
};
use simd_cnn::bench::{
    bf16_markdown, bf16_ops, measure_bf16_inference, measure_bf16_op, measure_bf16_peak, measure_inference,
};
use simd_cnn::data::download::write_atomic;
use simd_cnn::kernels::Isa;
use simd_cnn::kernels::{ConvAlgorithm, Kernels, Precision};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Measure the kernels of every instruction set on one core and report GFLOP/s and % of peak.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Write the machine, the peaks and every measurement to this JSON file
    #[arg(long, value_name = "FILE")]
    json_out: PathBuf,
    /// Only the ops whose name contains TEXT (conv2, backward, train_step, ...)
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Write one SVG chart per op into this folder (created if missing)
    #[arg(long, value_name = "DIR")]
    svg_dir: Option<PathBuf>,
    /// Also write the markdown tables to this file
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Timed runs per measurement (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Least duration of one run, in seconds (a run repeats the op until it has lasted this long)
    #[arg(long, default_value_t = 0.3, value_parser = positive_seconds)]
    min_run_seconds: f64,
    /// Time chapter 4's staircase instead: each convolution's forward pass with the scalar
    /// kernel and the four steps of the SSE kernel (`--only` filters these names)
    #[arg(long)]
    staircase: bool,
    /// Chapter 7: fc1's AVX-512 forward pass with tiles of ROWS rows (12, 11, 8, 7 or 4) instead
    /// of the fastest of its first call
    #[arg(long, value_name = "ROWS")]
    fc1_rows: Option<usize>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 60.0 => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds between 0 and 60")),
    }
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> Result<(), String> {
    memory::ask_fc1_rows(args.fc1_rows)?;
    if args.staircase {
        return run_staircase(args);
    }
    let ops = filter_ops(report_ops(), args.only.as_deref());
    let winograd = filter_ops(winograd_ops(), args.only.as_deref());
    // Chapter 11: the bf16 table's ops, where this CPU can run it, and a forward pass alone.
    let bf16_available = match Kernels::for_isa_precision(Isa::Avx512, ConvAlgorithm::Direct, Precision::Bf16) {
        Ok(_) => true,
        Err(e) if Precision::Bf16.is_compiled() => {
            eprintln!("skipping bf16: {e}");
            false
        }
        Err(_) => false,
    };
    let bf16 = if bf16_available { filter_ops(bf16_ops(), args.only.as_deref()) } else { Vec::new() };
    let inference = args.only.as_deref().is_none_or(|only| INFERENCE_CATDOG.contains(only));
    if ops.is_empty() && winograd.is_empty() && bf16.is_empty() && !inference {
        let names: Vec<String> = report_ops().into_iter().map(|op| op.name).collect();
        return Err(format!(
            "no op name contains '{}'; the ops are: {}",
            args.only.as_deref().unwrap_or(""),
            names.join(", ")
        ));
    }
    prepare_outputs(args)?;

    let isas: Vec<Isa> = Isa::ALL
        .into_iter()
        .filter(|isa| match isa.check() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("skipping {isa}: {e}");
                false
            }
        })
        .collect();
    warn_if_busy();

    let settings = TimingSettings { min_run_seconds: args.min_run_seconds, runs: args.runs as usize };
    let bar = ProgressBar::new((isas.len() * (ops.len() + winograd.len() + 1)) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}").expect("the template is valid"),
    );
    let mut peaks: Vec<Peak> = Vec::new();
    for &isa in &isas {
        bar.set_message(format!("{isa} peak"));
        peaks.push(measure_peak(isa, &settings).map_err(|e| e.to_string())?);
        bar.inc(1);
    }
    let mut measurements: Vec<Measurement> = Vec::new();
    // Chapter 10: each Winograd record right after its direct op, so that the two share the
    // machine's conditions, for every instruction set that has Winograd kernels.
    // Chapter 11: the same for the bf16 records, with the bf16 table (AVX-512 only).
    let twin = |op: &Op| winograd.iter().find(|w| w.name == format!("{}{WINOGRAD_SUFFIX}", op.name));
    let twin_bf16 = |op: &Op| bf16.iter().find(|w| w.name == format!("{}{BF16_SUFFIX}", op.name));
    let alone = winograd.iter().filter(|w| !ops.iter().any(|op| twin(op) == Some(*w)));
    let alone_bf16 = bf16.iter().filter(|w| !ops.iter().any(|op| twin_bf16(op) == Some(*w)));
    let order = ops.iter().flat_map(|op| [Some(op), twin(op), twin_bf16(op)]).flatten().chain(alone).chain(alone_bf16);
    if !bf16.is_empty() {
        measurements.push(measure_bf16_peak(&settings).map_err(|e| e.to_string())?);
    }
    for op in order {
        if op.name.ends_with(BF16_SUFFIX) {
            bar.set_message(op.name.clone());
            measurements.push(measure_bf16_op(op, &settings).map_err(|e| e.to_string())?);
            continue;
        }
        let winograd_op = op.name.ends_with(WINOGRAD_SUFFIX);
        for &isa in isas.iter().filter(|&&isa| !winograd_op || isa != Isa::Scalar) {
            bar.set_message(format!("{} {isa}", op.name));
            let measured = match winograd_op {
                false => measure_op(op, isa, &settings).map_err(|e| e.to_string())?,
                true => measure_winograd_op(op, isa, &settings).map_err(|e| e.to_string())?,
            };
            measurements.push(measured);
            bar.inc(1);
        }
        // Chapter 11: the asm tile right after the compiler's, in the same conditions.
        if let Some(measured) = metal::asm_twin(op, &isas, &settings)? {
            measurements.push(measured);
        }
    }
    if inference {
        bar.set_message(INFERENCE_CATDOG);
        let best = Kernels::for_isa(*isas.last().unwrap_or(&Isa::Scalar)).map_err(|e| e.to_string())?;
        measurements.push(measure_inference(best, &settings));
        measurements.extend(metal::inference(&isas, &settings)?);
        if bf16_available {
            measurements.push(measure_bf16_inference(&settings).map_err(|e| e.to_string())?);
        }
    }
    let mut report = Report::new(Machine::detect(), peaks, measurements);
    let (memory_markdown, memory_charts) = memory::memory_and_roofline(&mut report, &ops, &settings, |what| {
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    let markdown = report.to_markdown()
        + &winograd_markdown(&report)
        + &bf16_markdown(&report)
        + &metal::markdown(&report)
        + &memory_markdown;
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())? + "\n";
    write_file(&args.json_out, json.as_bytes())?;
    if let Some(path) = &args.markdown {
        write_file(path, markdown.as_bytes())?;
    }
    if let Some(dir) = &args.svg_dir {
        for op in &ops {
            let svg = staircase_svg(&report, op)?;
            write_file(&dir.join(format!("{}.svg", op.name)), svg.as_bytes())?;
        }
        for (name, svg) in &memory_charts {
            write_file(&dir.join(name), svg.as_bytes())?;
        }
        eprintln!("wrote {} charts to {}", ops.len() + memory_charts.len(), dir.display());
    }
    let noise = report.disturbed();
    if !noise.is_empty() {
        eprintln!(
            "warning: the machine disturbed {} measurements (see the end of the table); compare ratios within this run, not absolute figures across runs",
            noise.len()
        );
    }
    Ok(())
}

// ANCHOR: run_staircase
/// `--staircase`: the scalar and SSE peaks, then every bar of the staircase, in one sitting.
fn run_staircase(args: &Args) -> Result<(), String> {
    let only = args.only.as_deref();
    let ops: Vec<StaircaseOp> =
        staircase_ops().into_iter().filter(|op| only.is_none_or(|text| op.name.contains(text))).collect();
    if ops.is_empty() {
        let names: Vec<String> = staircase_ops().into_iter().map(|op| op.name).collect();
        return Err(format!("no staircase op name contains '{}'; they are: {}", only.unwrap_or(""), names.join(", ")));
    }
    prepare_outputs(args)?;
    Isa::Sse.check().map_err(|e| format!("the staircase is made of SSE kernels: {e}"))?;
    warn_if_busy();

    let settings = TimingSettings { min_run_seconds: args.min_run_seconds, runs: args.runs as usize };
    let bar = ProgressBar::new((2 + ops.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}").expect("the template is valid"),
    );
    let mut peaks: Vec<Peak> = Vec::new();
    for isa in [Isa::Scalar, Isa::Sse] {
        bar.set_message(format!("{isa} peak"));
        peaks.push(measure_peak(isa, &settings).map_err(|e| e.to_string())?);
        bar.inc(1);
    }
    bar.set_length(2 + (1 + settings.runs as u64) * ops.len() as u64);
    let measurements = measure_staircase(&ops, &settings, |what| {
        bar.set_message(what.to_string());
        bar.inc(1);
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();

    let mut report = Report::new(Machine::detect(), peaks, measurements);
    // Each step is a speed-up over the scalar kernel of its layer, whose record has another name.
    let scalar: Vec<(String, f64)> = ops
        .iter()
        .zip(&report.records)
        .filter(|(op, _)| op.step.is_none())
        .map(|(op, r)| (op.layer.to_string(), r.seconds))
        .collect();
    for (op, record) in ops.iter().zip(report.records.iter_mut()) {
        if let Some((_, seconds)) = scalar.iter().find(|(layer, _)| layer == op.layer) {
            record.speedup_vs_scalar = Some(seconds / record.seconds);
        }
    }
    let markdown = report.to_markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())? + "\n";
    write_file(&args.json_out, json.as_bytes())?;
    if let Some(path) = &args.markdown {
        write_file(path, markdown.as_bytes())?;
    }
    if let Some(dir) = &args.svg_dir {
        let mut layers: Vec<&str> = ops.iter().map(|op| op.layer).collect();
        layers.dedup();
        for layer in &layers {
            let svg = steps_svg(&report, &ops, layer)?;
            write_file(&dir.join(format!("{layer}_forward_staircase.svg")), svg.as_bytes())?;
        }
        eprintln!("wrote {} charts to {}", layers.len(), dir.display());
    }
    if !report.disturbed().is_empty() {
        eprintln!(
            "warning: the machine disturbed some measurements (see the end of the table); compare ratios within this run"
        );
    }
    Ok(())
}
// ANCHOR_END: run_staircase

/// Fails early, before minutes of measuring, if the folder of `path` does not exist.
/// Before minutes of measuring: every output can be written, and a debug build says so.
fn prepare_outputs(args: &Args) -> Result<(), String> {
    check_output_folder(&args.json_out)?;
    if let Some(path) = &args.markdown {
        check_output_folder(path)?;
    }
    if let Some(dir) = &args.svg_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: built without --release; the figures will not mean much");
    }
    Ok(())
}

/// Before minutes of measuring: the file can be written (its folder exists and takes files, and
/// it is not itself a folder).
fn check_output_folder(path: &Path) -> Result<(), String> {
    simd_cnn::files::check_writable(path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_atomic(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Samples the machine for half a second and says so if other programs are using it.
fn warn_if_busy() {
    let Some(before) = MachineCpu::read() else { return };
    std::thread::sleep(Duration::from_millis(500));
    let Some(busy) = MachineCpu::read().and_then(|after| after.busy_cores_since(&before)) else { return };
    if busy > 0.2 {
        eprintln!(
            "warning: other programs are keeping {busy:.1} of {} CPUs busy; figures will be low and noisy",
            before.cpus
        );
    }
}

// ANCHOR: staircase_svg
/// One bar per instruction set for `op` on a logarithmic axis, so that each step of the
/// staircase is a ratio, and a dashed line at each instruction set's peak.
fn staircase_svg(report: &Report, op: &Op) -> Result<String, String> {
    let records: Vec<&Record> = report.records.iter().filter(|r| r.op == op.name).collect();
    let values = records.iter().map(|r| r.gflops).chain(report.peaks.iter().map(|p| p.gflops));
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y_min, y_max) = (lo / 2.0, hi * 1.6);
    let unit = match op.kind {
        OpKind::MaxPool2dForward(_) | OpKind::MaxPool2dBackward { .. } => "billion comparisons per second",
        _ => "GFLOP/s",
    };
    let n = records.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption(op, &records), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            // `0..n` makes n + 1 segments: one per bar, and one on the right for the labels of
            // the peak lines.
            .build_cartesian_2d((0..n).into_segmented(), (y_min..y_max).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_max_light_lines(0)
            .y_labels(8)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => records.get(*i).map_or(String::new(), |r| isa_label(r.isa).to_string()),
                _ => String::new(),
            })
            .y_desc(unit)
            .y_label_formatter(&|y| fmt_rate(*y))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(records.iter().enumerate().map(|(i, r)| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), y_min), (SegmentValue::Exact(i + 1), r.gflops)],
                    isa_color(r.isa).filled(),
                );
                bar.set_margin(0, 0, 14, 14);
                bar
            }))
            .map_err(plot_error)?;
        let above = TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(records.iter().enumerate().map(|(i, r)| {
                Text::new(fmt_rate(r.gflops), (SegmentValue::CenterOf(i), r.gflops * 1.03), above.clone())
            }))
            .map_err(plot_error)?;
        let beside = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for peak in &report.peaks {
            let ends = [(SegmentValue::Exact(0), peak.gflops), (SegmentValue::Exact(n), peak.gflops)];
            chart.draw_series(DashedLineSeries::new(ends, 6, 4, isa_color(peak.isa).into())).map_err(plot_error)?;
            let label = format!(" {} peak {}", isa_label(peak.isa), fmt_rate(peak.gflops));
            chart
                .draw_series([Text::new(label, (SegmentValue::Exact(n), peak.gflops), beside.clone())])
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
// ANCHOR_END: staircase_svg

/// One bar per step of `layer`'s staircase on a linear axis from zero, each labelled with its
/// GFLOP/s and its share of the SSE peak, and the SSE peak as a dashed line (its label in the
/// extra segment on the right, as in the other charts).
fn steps_svg(report: &Report, ops: &[StaircaseOp], layer: &str) -> Result<String, String> {
    let bars: Vec<(&StaircaseOp, &Record)> =
        ops.iter().zip(&report.records).filter(|(op, _)| op.layer == layer).collect();
    let sse_peak = report.peaks.iter().find(|p| p.isa == Isa::Sse).map(|p| p.gflops);
    let top = bars.iter().map(|(_, r)| r.gflops).chain(sse_peak).fold(0.0f64, f64::max) * 1.15;
    let n = bars.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{layer} forward, one core: the SSE staircase"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((0..n).into_segmented(), 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_max_light_lines(0)
            .y_labels(8)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |(op, _)| op.label()),
                _ => String::new(),
            })
            .y_desc("GFLOP/s")
            .y_label_formatter(&|y| if *y == 0.0 { "0".to_string() } else { fmt_rate(*y) })
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), r.gflops)],
                    isa_color(r.isa).filled(),
                );
                bar.set_margin(0, 0, 14, 14);
                bar
            }))
            .map_err(plot_error)?;
        let above = TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
                let share = sse_peak.map(|p| format!(" ({})", fmt_percent(Some(r.gflops / p)))).unwrap_or_default();
                let label = format!("{}{share}", fmt_rate(r.gflops));
                Text::new(label, (SegmentValue::CenterOf(i), r.gflops + top * 0.01), above.clone())
            }))
            .map_err(plot_error)?;
        if let Some(peak) = sse_peak {
            let ends = [(SegmentValue::Exact(0), peak), (SegmentValue::Exact(n), peak)];
            chart.draw_series(DashedLineSeries::new(ends, 6, 4, isa_color(Isa::Sse).into())).map_err(plot_error)?;
            let beside = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            let label = format!(" SSE peak {}", fmt_rate(peak));
            chart.draw_series([Text::new(label, (SegmentValue::Exact(n), peak), beside)]).map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The op, and for a training step the best images per second.
fn caption(op: &Op, records: &[&Record]) -> String {
    let best = records.iter().filter_map(|r| Some((r.images_per_second?, r.isa))).max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((images, isa)) => format!("{}: one core, {} images/s with {}", op.name, fmt_rate(images), isa_label(isa)),
        None => format!("{}: one core", op.name),
    }
}

fn isa_color(isa: Isa) -> RGBColor {
    match isa {
        Isa::Scalar => RGBColor(140, 140, 140),
        Isa::Sse => RGBColor(86, 180, 233),
        Isa::Avx2 => RGBColor(0, 158, 115),
        Isa::Avx512 => RGBColor(213, 94, 0),
    }
}

fn plot_error(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}
