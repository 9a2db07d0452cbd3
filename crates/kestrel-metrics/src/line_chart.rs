//! Line charts of values over a shared x axis (e.g. training curves per epoch) as PNG files.
//!
//! Non-finite values are not drawn: a series breaks at them and the chart notes how many were
//! left out, so a NaN loss is visible as a gap rather than a silently interpolated line.

use crate::plot::{plot_err, style, write_png, Area, COLORS};
use crate::Result;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// Pixel size of every line chart.
pub const LINE_CHART_SIZE: (u32, u32) = (900, 520);
/// Series with at most this many points get a marker on each point.
const MARKER_LIMIT: usize = 40;

/// Labels on the y axis.
const Y_TICKS: usize = 8;

/// One named series of `(x, y)` points, in drawing order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// The points; non-finite `y` values break the line.
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and pale, without markers: raw values under their smoothed curve.
    pub faint: bool,
}

/// A line chart: a title, axis descriptions and its series.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Caption drawn above the plot.
    pub title: String,
    /// Description of the x axis.
    pub x_desc: String,
    /// Description of the y axis.
    pub y_desc: String,
    /// The series, coloured in order.
    pub series: Vec<Series>,
}

/// Most digits after the point (or in a mantissa) a tick label gets.
const MAX_DIGITS: usize = 8;

/// The label formatter of an axis over `lo..hi` with `n` labels: scientific when the axis's
/// largest magnitude is below 1e-2 or from 1e4 (learning rates), fixed otherwise, with the fewest
/// digits that tell plotters' ticks apart (`0.7770`, `0.7775`, … on a narrow accuracy axis; at
/// least one decimal below 10).
pub fn tick_formatter(lo: f64, hi: f64, n: usize) -> impl Fn(&f64) -> String {
    let ticks = RangedCoordf64::from(lo..hi).key_points(n);
    let a = lo.abs().max(hi.abs());
    let scientific = a != 0.0 && !(1e-2..1e4).contains(&a);
    let label = move |v: f64, d: usize| {
        if v == 0.0 {
            "0".to_string()
        } else if scientific {
            format!("{v:.d$e}")
        } else {
            format!("{v:.d$}")
        }
    };
    let least = usize::from(scientific || a < 10.0);
    let digits = (least..=MAX_DIGITS)
        .find(|&d| {
            let labels: Vec<String> = ticks.iter().map(|&t| label(t, d)).collect();
            labels
                .iter()
                .enumerate()
                .all(|(i, l)| !labels[..i].contains(l))
        })
        .unwrap_or(MAX_DIGITS);
    move |v: &f64| label(*v, digits)
}

/// The `(min, max)` of the finite values, widened so that the range is never empty.
fn range(values: impl Iterator<Item = f64>, pad_share: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * pad_share;
    (lo - pad, hi + pad)
}

/// Runs of consecutive finite points of a series.
fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            runs.last_mut().expect("non-empty").push((x, y));
        } else if !runs.last().expect("non-empty").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Writes `chart` as a PNG of [`LINE_CHART_SIZE`] to `path`, atomically.
///
/// # Errors
/// [`crate::MetricsError::Io`] or [`crate::MetricsError::Plot`] when writing or drawing fails.
pub fn write_line_chart(chart: &LineChart, path: &Path) -> Result<()> {
    write_png(path, LINE_CHART_SIZE, |area| draw(area, chart))
}

fn draw(area: &Area<'_>, c: &LineChart) -> std::result::Result<(), String> {
    let all = || c.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(all().map(|p| p.0), 0.02);
    let (y0, y1) = range(all().filter(|p| p.0.is_finite()).map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, style(24.0))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    let integer_x = all().all(|p| p.0.fract() == 0.0);
    let x_ticks = if integer_x {
        ((x1 - x0).round() as usize + 1).clamp(2, 11)
    } else {
        11
    };
    let x_label = tick_formatter(x0, x1, x_ticks);
    let x_fmt = |v: &f64| {
        if integer_x {
            format!("{v:.0}")
        } else {
            x_label(v)
        }
    };
    let y_fmt = tick_formatter(y0, y1, Y_TICKS);
    chart
        .configure_mesh()
        .x_desc(&c.x_desc)
        .y_desc(&c.y_desc)
        .axis_desc_style(style(18.0))
        .label_style(style(14.0))
        .x_labels(x_ticks)
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    let mut omitted = 0usize;
    for (i, s) in c.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        omitted += s
            .points
            .iter()
            .filter(|p| !(p.0.is_finite() && p.1.is_finite()))
            .count();
        let runs = finite_runs(&s.points);
        let markers = s.points.len() <= MARKER_LIMIT && !s.faint;
        let line = if s.faint {
            color.mix(0.35).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        let mut elements: Vec<PathElement<(f64, f64)>> = Vec::new();
        for run in &runs {
            elements.push(PathElement::new(run.clone(), line));
        }
        chart
            .draw_series(elements)
            .map_err(plot_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        if markers {
            chart
                .draw_series(
                    runs.iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 3, color.filled())),
                )
                .map_err(plot_err)?;
        }
    }
    if !c.series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(10)
            .legend_area_size(30)
            .label_font(style(14.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(plot_err)?;
    }
    let note = if c.series.iter().all(|s| s.points.is_empty()) {
        Some("no data".to_string())
    } else if omitted > 0 {
        Some(format!("{omitted} non-finite value(s) not drawn"))
    } else {
        None
    };
    if let Some(text) = note {
        area.draw(&Text::new(text, (110, 60), style(16.0).color(&RED)))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_non_finite_points() {
        let pts = [
            (1.0, 1.0),
            (2.0, f64::NAN),
            (3.0, 2.0),
            (4.0, 3.0),
            (5.0, f64::INFINITY),
        ];
        assert_eq!(
            finite_runs(&pts),
            vec![vec![(1.0, 1.0)], vec![(3.0, 2.0), (4.0, 3.0)]]
        );
        assert!(finite_runs(&[(1.0, f64::NAN)]).is_empty());
    }

    #[test]
    fn ranges_ignore_non_finite_values_and_are_never_empty() {
        assert_eq!(range([1.0, f64::NAN, 3.0].into_iter(), 0.0), (1.0, 3.0));
        assert_eq!(range([f64::NAN].into_iter(), 0.0), (0.0, 1.0));
        let (lo, hi) = range([2.0, 2.0].into_iter(), 0.0);
        assert!(lo < 2.0 && hi > 2.0);
        assert_eq!(range([0.0].into_iter(), 0.0), (-1.0, 1.0));
    }

    /// The labels an axis over `lo..hi` shows.
    fn labels(lo: f64, hi: f64) -> Vec<String> {
        let f = tick_formatter(lo, hi, Y_TICKS);
        RangedCoordf64::from(lo..hi)
            .key_points(Y_TICKS)
            .iter()
            .map(&f)
            .collect()
    }

    #[test]
    fn tick_labels_take_the_digits_that_tell_them_apart() {
        // A validation accuracy that moved in the fourth digit (0.777 … 0.778 read 0.777,
        // 0.777, 0.777, 0.778 with three decimals).
        let narrow = labels(0.7769, 0.7781);
        assert!(narrow.len() >= 4, "{narrow:?}");
        assert!(narrow.contains(&"0.7770".to_string()), "{narrow:?}");
        for (i, l) in narrow.iter().enumerate() {
            assert!(!narrow[..i].contains(l), "{narrow:?}");
        }
        assert_eq!(labels(0.0, 2.0)[..3], ["0", "0.5", "1.0"]);
        assert_eq!(labels(0.0, 200.0)[..2], ["0", "50"]);
        // Learning rates: scientific.
        let lr = labels(0.0, 5e-3);
        assert_eq!(lr[..3], ["0", "1.0e-3", "2.0e-3"]);
    }

    #[test]
    fn writes_a_png_of_the_chart_size_even_with_nan_and_one_point() {
        let dir = tempfile::tempdir().unwrap();
        for (i, points) in [
            vec![(1.0, 0.5)],
            vec![(1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0)],
            vec![],
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("c{i}.png"));
            let chart = LineChart {
                title: "loss".into(),
                x_desc: "epoch".into(),
                y_desc: "loss".into(),
                series: vec![Series {
                    name: "classify".into(),
                    points,
                    faint: i == 1,
                }],
            };
            write_line_chart(&chart, &path).unwrap();
            let decoder =
                png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
            let info = decoder.read_info().unwrap();
            assert_eq!(
                (info.info().width, info.info().height),
                LINE_CHART_SIZE,
                "{i}"
            );
        }
    }
}
