//! A bar chart of one value per category on a `[0, 1]` axis (e.g. per-class IoU) as a PNG file.
//! Undefined values (`None`) get no bar and an `n/a` label.

use crate::plot::{plot_err, style, write_png, Area, COLORS};
use crate::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// A bar chart of values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Caption drawn above the bars.
    pub title: String,
    /// Description of the y axis.
    pub y_desc: String,
    /// One label per bar.
    pub labels: Vec<String>,
    /// One value per bar; `None` draws `n/a`. Values are clamped to `[0, 1]` for drawing.
    pub values: Vec<Option<f64>>,
}

/// Pixel size of a bar chart of `n` bars.
pub fn bar_chart_size(n: usize) -> (u32, u32) {
    let w = (160 + 60 * n.min(100) as u32).clamp(700, 1600);
    (w, 520)
}

/// Writes `chart` as a PNG of [`bar_chart_size`]`(labels.len())` to `path`.
///
/// # Errors
/// [`crate::MetricsError::Plot`] when labels and values differ in length or drawing fails;
/// [`crate::MetricsError::Io`] when writing fails.
pub fn write_bar_chart(chart: &BarChart, path: &Path) -> Result<()> {
    if chart.labels.len() != chart.values.len() {
        return Err(crate::MetricsError::Plot {
            path: path.to_path_buf(),
            message: format!(
                "{} labels but {} values; expected one value per bar",
                chart.labels.len(),
                chart.values.len()
            ),
        });
    }
    write_png(path, bar_chart_size(chart.labels.len()), |area| {
        draw(area, chart)
    })
}

fn draw(area: &Area<'_>, c: &BarChart) -> std::result::Result<(), String> {
    let n = c.labels.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, style(24.0))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..n as f64, 0.0f64..1.08)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(11)
        .y_desc(&c.y_desc)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .axis_desc_style(style(18.0))
        .label_style(style(14.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    let color = COLORS[0];
    let font = if n <= 16 { 14.0 } else { 11.0 };
    let above = Pos::new(HPos::Center, VPos::Bottom);
    let below = Pos::new(HPos::Center, VPos::Top);
    for (i, (label, v)) in c.labels.iter().zip(&c.values).enumerate() {
        let (l, r) = (i as f64 + 0.15, i as f64 + 0.85);
        let top = v.filter(|x| x.is_finite()).map(|x| x.clamp(0.0, 1.0));
        if let Some(t) = top {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(l, 0.0), (r, t)],
                    color.filled(),
                )))
                .map_err(plot_err)?;
        }
        let text = match v {
            Some(x) if x.is_finite() => format!("{x:.3}"),
            _ => "n/a".to_string(),
        };
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, top.unwrap_or(0.0)));
        area.draw(&Text::new(text, (x, y - 4), style(font).pos(above)))
            .map_err(plot_err)?;
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        let short: String = label.chars().take(14).collect();
        area.draw(&Text::new(short, (x, y + 8), style(font).pos(below)))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_the_size_and_rejects_mismatched_input() {
        let dir = tempfile::tempdir().unwrap();
        let chart = BarChart {
            title: "IoU".into(),
            y_desc: "IoU".into(),
            labels: vec!["background".into(), "circle".into(), "square".into()],
            values: vec![Some(0.9), None, Some(f64::NAN)],
        };
        let path = dir.path().join("b.png");
        write_bar_chart(&chart, &path).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), bar_chart_size(3));
        let bad = BarChart {
            values: vec![Some(0.5)],
            ..chart
        };
        assert!(write_bar_chart(&bad, &dir.path().join("x.png")).is_err());
    }

    #[test]
    fn sizes_grow_with_the_bars_within_bounds() {
        assert_eq!(bar_chart_size(3), (700, 520));
        assert_eq!(bar_chart_size(20), (1360, 520));
        assert_eq!(bar_chart_size(10_000), (1600, 520));
    }
}
