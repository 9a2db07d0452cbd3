//! Line charts of values over a shared x axis (e.g. training curves per epoch) as PNG files.
//!
//! Non-finite values are not drawn: a series breaks at them and the chart notes how many were
//! left out, so a NaN loss is visible as a gap rather than a silently interpolated line.

use crate::plot::{plot_err, style, write_png, Area, COLORS};
use crate::Result;
use plotters::prelude::*;
use std::path::Path;

/// Pixel size of every line chart.
pub const LINE_CHART_SIZE: (u32, u32) = (900, 520);
/// Series with at most this many points get a marker on each point.
const MARKER_LIMIT: usize = 40;

/// One named series of `(x, y)` points, in drawing order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// The points; non-finite `y` values break the line.
    pub points: Vec<(f64, f64)>,
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

/// Formats an axis value compactly: scientific for small magnitudes (learning rates).
pub fn axis_label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
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
    let x_fmt = |v: &f64| {
        if integer_x {
            format!("{v:.0}")
        } else {
            axis_label(*v)
        }
    };
    let y_fmt = |v: &f64| axis_label(*v);
    let x_ticks = if integer_x {
        ((x1 - x0).round() as usize + 1).clamp(2, 11)
    } else {
        11
    };
    chart
        .configure_mesh()
        .x_desc(&c.x_desc)
        .y_desc(&c.y_desc)
        .axis_desc_style(style(18.0))
        .label_style(style(14.0))
        .x_labels(x_ticks)
        .y_labels(8)
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
        let markers = s.points.len() <= MARKER_LIMIT;
        let mut elements: Vec<PathElement<(f64, f64)>> = Vec::new();
        for run in &runs {
            elements.push(PathElement::new(run.clone(), color.stroke_width(2)));
        }
        chart
            .draw_series(elements)
            .map_err(plot_err)?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
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

    #[test]
    fn axis_labels_switch_to_scientific_for_learning_rates() {
        assert_eq!(axis_label(3e-4), "3.0e-4");
        assert_eq!(axis_label(0.25), "0.250");
        assert_eq!(axis_label(12.0), "12.0");
        assert_eq!(axis_label(0.0), "0");
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
