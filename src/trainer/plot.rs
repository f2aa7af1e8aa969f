//! Chapter 9: pictures of a training run.
//!
//! [`training_curves`] draws the per-epoch figures a checkpoint keeps ([`EpochMetrics`]) as an SVG
//! with two panels over the same epoch axis: the loss above, the accuracy below, training in blue
//! and validation in orange (colours that colour-blind readers tell apart too). Every epoch is
//! also a dot, so that a run of one epoch still shows something.

use super::state::EpochMetrics;
use crate::files::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Training figures: blue (Okabe and Ito's colour-blind safe palette).
const TRAIN: RGBColor = RGBColor(0, 114, 178);
/// Validation figures: orange.
const VALIDATION: RGBColor = RGBColor(230, 159, 0);
/// The picture's size in pixels: wide enough for a book page, readable when scaled down.
const SIZE: (u32, u32) = (800, 640);
const FONT: &str = "sans-serif";

/// What plotters reports when it cannot draw on an SVG.
type DrawError = DrawingAreaErrorKind<std::io::Error>;

/// A picture that could not be drawn or written, in one line.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: cannot draw the training curves: no epoch to draw", path.display())]
    Empty { path: PathBuf },
    #[error("{}: cannot draw the training curves: {source}", path.display())]
    Draw { path: PathBuf, source: DrawError },
    #[error("{}: cannot write the training curves: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// The y axis of a panel: its title, its label, its range and how its numbers read.
struct Axis<'a> {
    title: &'a str,
    desc: &'a str,
    range: Range<f64>,
    format: &'a dyn Fn(&f64) -> String,
}

/// One line of a panel: a name for the legend, a colour and the points `(epoch, value)`.
struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(i32, f64)>,
}

// ANCHOR: training_curves
/// Writes `path` (SVG), atomically: train and validation loss above, train and validation
/// accuracy below, one point per epoch of `history`. Missing figures (no validation set) and
/// values that are not numbers are left out.
pub fn training_curves(history: &[EpochMetrics], path: impl AsRef<Path>) -> Result<(), PlotError> {
    let path = path.as_ref();
    let error = |source| PlotError::Draw { path: path.into(), source };
    if history.is_empty() {
        return Err(PlotError::Empty { path: path.into() });
    }
    let series = |label, color, value: fn(&EpochMetrics) -> Option<f64>| Series {
        label,
        color,
        points: history.iter().filter_map(|m| Some((m.epoch as i32, value(m).filter(|v| v.is_finite())?))).collect(),
    };
    let loss =
        [series("train loss", TRAIN, |m| Some(m.train_loss)), series("validation loss", VALIDATION, |m| m.val_loss)];
    let accuracy = [
        series("train accuracy", TRAIN, |m| Some(m.train_accuracy)),
        series("validation accuracy", VALIDATION, |m| m.val_accuracy),
    ];
    let epochs = 0..history.iter().map(|m| m.epoch as i32).max().unwrap_or(1) + 1;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        let (top, bottom) = root.split_vertically(SIZE.1 / 2);
        let loss_max = loss.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.0, f64::max);
        let loss_axis = Axis {
            title: "Loss",
            desc: "mean loss",
            range: 0.0..nice_ceiling(loss_max),
            format: &|y| format!("{y:.2}"),
        };
        // Losses fall and accuracies rise: their legends go where the lines are not.
        panel(&top, epochs.clone(), loss_axis, SeriesLabelPosition::UpperRight, &loss).map_err(error)?;
        let acc_min = accuracy.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.5, f64::min);
        let acc_floor = (acc_min * 10.0).floor() / 10.0;
        let acc_axis = Axis {
            title: "Accuracy",
            desc: "accuracy",
            range: acc_floor..1.0,
            format: &|y| format!("{:.0} %", y * 100.0),
        };
        panel(&bottom, epochs, acc_axis, SeriesLabelPosition::LowerRight, &accuracy).map_err(error)?;
        root.present().map_err(error)?;
    }
    write_atomic(path, svg.as_bytes()).map_err(|source| PlotError::Write { path: path.into(), source })
}
// ANCHOR_END: training_curves

// ANCHOR: panel
/// One panel: axes with labels, a line with dots per series that has points, and a legend.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    epochs: Range<i32>,
    y: Axis,
    legend: SeriesLabelPosition,
    series: &[Series],
) -> Result<(), DrawError> {
    let mut chart = ChartBuilder::on(area)
        .caption(y.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(epochs, y.range)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y.desc)
        .y_label_formatter(y.format)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)).point_size(4))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
}
// ANCHOR_END: panel

/// The top of a y axis with room above `max`: the first of 1, 2, 2.5, 5 or 10 times a power of
/// ten that is at least `1.1 * max` (1 when there is nothing to show).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let target = max * 1.1;
    let magnitude = 10f64.powf(target.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&top| top >= target).unwrap_or(10.0 * magnitude)
}
