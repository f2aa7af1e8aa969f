//! Chapter 7's part of the report: the memory hierarchy measured, every record placed on the
//! roofline, and two charts (`memory-mountain.svg`, `roofline.svg`).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use simd_cnn::bench::memory::{MOUNTAIN_STRIDES, Memory, measure_memory};
use simd_cnn::bench::roofline::{annotate, roofline_markdown};
use simd_cnn::bench::{Op, Report, TimingSettings, fmt_rate, isa_label};
use simd_cnn::kernels::forward_tile::{ask_forward_tile_rows, forward_tile};
use simd_cnn::kernels::{Isa, Kernels};
use std::fmt::Write;

/// Okabe and Ito's palette, as in the other charts of the book.
const LEVEL_COLORS: [RGBColor; 4] =
    [RGBColor(0, 114, 178), RGBColor(0, 158, 115), RGBColor(230, 159, 0), RGBColor(213, 94, 0)];

/// SVG charts to write, by file name.
pub type Charts = Vec<(&'static str, String)>;

/// The chapter's measurements and charts: measures the memory with the best kernels on one
/// thread and on every logical CPU, places each record of `report` on the roofline, and
/// returns the markdown to add and the charts to write, by file name.
pub fn memory_and_roofline(
    report: &mut Report,
    ops: &[Op],
    settings: &TimingSettings,
    mut progress: impl FnMut(&str),
) -> Result<(String, Charts), String> {
    let k = Kernels::best().map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let memory = measure_memory(k, threads, settings, &mut progress);
    annotate(report, ops, &memory);
    let markdown = roofline_markdown(report, &memory) + &fc1_tile(report);
    let charts =
        vec![("memory-mountain.svg", mountain_svg(&memory)?), ("roofline.svg", roofline_svg(report, &memory)?)];
    Ok((markdown, charts))
}

/// `--fc1-rows`: fc1's AVX-512 forward tile fixed instead of timed.
pub fn ask_fc1_rows(rows: Option<usize>) -> Result<(), String> {
    let Some(rows) = rows else { return Ok(()) };
    if let Err(e) = Isa::Avx512.check() {
        return Err(format!("--fc1-rows chooses the tile of fc1's AVX-512 forward pass, which cannot run here: {e}"));
    }
    ask_forward_tile_rows(rows).map_err(|e| e.to_string())
}

/// fc1's forward tile, if an AVX-512 pass chose one: the report's `"memory"` object gains
/// `"fc1_forward_tile": {"rows", "timings": [{"rows", "seconds"}]}`, and the markdown a line.
fn fc1_tile(report: &mut Report) -> String {
    let Some(tile) = forward_tile() else { return String::new() };
    let timings: Vec<_> =
        tile.timings.iter().map(|&(rows, seconds)| serde_json::json!({"rows": rows, "seconds": seconds})).collect();
    if let Some(serde_json::Value::Object(memory)) = report.memory.as_mut() {
        memory.insert("fc1_forward_tile".into(), serde_json::json!({"rows": tile.rows, "timings": timings}));
    }
    let mut md = format!("\nfc1's AVX-512 forward tile: {} rows", tile.rows);
    match tile.timings.as_slice() {
        [] => md.push_str(", as asked (`--fc1-rows`).\n"),
        timings => {
            md.push_str(", the fastest of its first call (");
            for (i, (rows, seconds)) in timings.iter().enumerate() {
                let _ = write!(md, "{}{rows} rows {:.2} ms", if i == 0 { "" } else { ", " }, seconds * 1e3);
            }
            md.push_str(").\n");
        }
    }
    md
}

// ANCHOR: mountain_svg
/// Read bandwidth against buffer size on log scales, one line per stride: the plateaus are
/// the levels, the drops the sizes of the caches (drawn as dotted verticals).
fn mountain_svg(memory: &Memory) -> Result<String, String> {
    let points = &memory.mountain;
    // The x axis is log2 of the size, so that its ticks fall on powers of two.
    let x_max = (points.iter().map(|p| p.bytes).max().unwrap_or(1 << 20) as f64).log2() + 0.5;
    let y_max = points.iter().map(|p| p.gbs).fold(1.0f64, f64::max) * 1.6;
    let y_min = points.iter().map(|p| p.gbs).fold(f64::INFINITY, f64::min).min(y_max) / 1.6;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let caption = format!("Read bandwidth, one core, {} loads", isa_label(memory.isa));
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(13.0..x_max, (y_min..y_max).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("buffer read again and again")
            .y_desc("GB/s")
            .x_labels(((x_max - 13.0) as usize).div_ceil(2) + 1)
            .x_label_formatter(&|x| binary_size(x.exp2() as usize))
            .y_label_formatter(&|y| fmt_rate(*y))
            .draw()
            .map_err(plot_error)?;
        for (i, stride) in MOUNTAIN_STRIDES.into_iter().enumerate() {
            let line: Vec<(f64, f64)> =
                points.iter().filter(|p| p.stride == stride).map(|p| ((p.bytes as f64).log2(), p.gbs)).collect();
            let color = LEVEL_COLORS[i % LEVEL_COLORS.len()];
            let label = if stride == 1 { "every vector".to_string() } else { format!("one vector in {stride}") };
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(plot_error)?;
        }
        let below = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
        for cache in &memory.caches {
            let x = (cache.bytes as f64).log2();
            let ends = [(x, y_min), (x, y_max)];
            chart.draw_series(DashedLineSeries::new(ends, 3, 4, BLACK.mix(0.5).into())).map_err(plot_error)?;
            let label = format!(" L{} {}", cache.level, binary_size(cache.bytes));
            chart.draw_series([Text::new(label, (x, y_max / 1.05), below.clone())]).map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
// ANCHOR_END: mountain_svg

// ANCHOR: roofline_svg
/// FLOPs per byte against GFLOP/s on log scales: a flat roof at the peak of the best
/// instruction set, a sloped one for each level's one-thread bandwidth, and every op of the
/// best instruction set as a dot, coloured by the level its buffers fit in.
fn roofline_svg(report: &Report, memory: &Memory) -> Result<String, String> {
    let best = report.records.iter().map(|r| r.isa).max().unwrap_or(Isa::Scalar);
    let peak = report.peaks.iter().find(|p| p.isa == best).map_or(1.0, |p| p.gflops);
    let dots: Vec<(&str, f64, f64, &str)> = report
        .records
        .iter()
        .filter(|r| r.isa == best)
        .filter_map(|r| Some((r.op.as_str(), r.roofline?.intensity, r.gflops, r.roofline?.roof)))
        .collect();
    let x_min = dots.iter().map(|d| d.1).fold(0.1f64, f64::min) / 2.0;
    let x_max = dots.iter().map(|d| d.1).fold(100.0f64, f64::max) * 3.0;
    let y_min = dots.iter().map(|d| d.2).fold(peak / 10.0, f64::min) / 2.0;
    let y_max = peak * 2.0;
    let level_color = |name: &str| match name {
        "l1" => LEVEL_COLORS[0],
        "l2" => LEVEL_COLORS[1],
        "l3" => LEVEL_COLORS[2],
        _ => LEVEL_COLORS[3],
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (860, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let caption = format!("The roofline of one core, {}", isa_label(best));
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("FLOPs per byte moved (at least)")
            .y_desc("GFLOP/s")
            .x_label_formatter(&|x| fmt_rate(*x))
            .y_label_formatter(&|y| fmt_rate(*y))
            .draw()
            .map_err(plot_error)?;
        let flat = [(x_min, peak), (x_max, peak)];
        chart
            .draw_series(LineSeries::new(flat, BLACK.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{} peak {} GFLOP/s", isa_label(best), fmt_rate(peak)))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        for level in &memory.levels {
            let color = level_color(level.name);
            let ridge = peak / level.gbs;
            let slope = [(x_min, x_min * level.gbs), (ridge.min(x_max), (ridge.min(x_max) * level.gbs).min(peak))];
            let name = if level.name == "dram" { "memory".to_string() } else { level.name.to_uppercase() };
            chart
                .draw_series(DashedLineSeries::new(slope, 8, 4, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("{name} {} GB/s", fmt_rate(level.gbs)))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        let beside = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for &(op, x, y, roof) in &dots {
            let color = level_color(roof);
            chart.draw_series([Circle::new((x, y), 4, color.filled())]).map_err(plot_error)?;
            chart.draw_series([Text::new(format!(" {op}"), (x, y), beside.clone())]).map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
// ANCHOR_END: roofline_svg

/// `48 KiB`, `1 MiB`, `32 MiB`: cache sizes as the CPU's makers give them.
fn binary_size(bytes: usize) -> String {
    match bytes {
        b if b < 1 << 20 => format!("{} KiB", fmt_rate(b as f64 / 1024.0)),
        b => format!("{} MiB", fmt_rate(b as f64 / f64::from(1 << 20))),
    }
}

fn plot_error(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}
