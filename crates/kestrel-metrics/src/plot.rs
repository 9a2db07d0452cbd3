//! ROC, precision–recall and confusion-matrix plots as PNG files.
//!
//! Text is drawn with a subset of DejaVu Sans embedded in the library
//! (`assets/`), registered with plotters' `ab_glyph` font backend, so the
//! plots need no system fonts, fontconfig or freetype. Each file is written
//! atomically: rendered in memory, written to a temporary file in the target
//! directory, flushed to disk, then renamed over the destination.

use crate::curve::BinaryCurve;
use crate::pr::PrCurve;
use crate::predictions::Predictions;
use crate::report::Report;
use crate::roc::RocCurve;
use crate::{MetricsError, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// The embedded font (printable ASCII plus a few symbols).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
/// Font family name the plots use.
const FAMILY: &str = "sans-serif";
/// Size of the ROC and PR images.
pub const CURVE_SIZE: (u32, u32) = (800, 640);
/// At most this many classes get a curve of their own.
const MAX_CURVES: usize = 10;
/// Curves are thinned to about this many points per axis.
const RESOLUTION: f64 = 1500.0;

/// Tableau-like colours for up to ten series.
pub(crate) const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the embedded font with plotters under [`FAMILY`], once per process; later calls
/// return the first call's outcome.
pub(crate) fn register_font() -> std::result::Result<(), String> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the embedded font could not be loaded".to_string())
    })
    .clone()
}

/// Writes `roc.png`, `pr.png` and `confusion.png` into `dir`, creating it if
/// needed. Binary input gets one curve; multiclass input one one-vs-rest
/// curve per class (the first ten classes). Where a curve is undefined (one
/// class only) the plot says so instead.
///
/// # Errors
/// [`MetricsError::Io`] when the directory or a file cannot be written,
/// [`MetricsError::Plot`] when drawing fails, or invalid predictions.
pub fn write_plots(p: &Predictions, report: &Report, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| MetricsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let curves = class_curves(p)?;
    let roc = dir.join("roc.png");
    write_png(&roc, CURVE_SIZE, |area| draw_roc(area, &curves))?;
    let pr = dir.join("pr.png");
    write_png(&pr, CURVE_SIZE, |area| draw_pr(area, &curves))?;
    write_confusion(
        &report.classes,
        &report.confusion,
        &dir.join("confusion.png"),
    )
}

/// Pixel size of the confusion-matrix image of `k` classes.
pub fn confusion_size(k: usize) -> (u32, u32) {
    let side = (40 * k.min(1000) as u32).clamp(440, 1400);
    (side + 260, side + 120)
}

/// Writes a confusion-matrix image (row per true class, column per
/// predicted class, cells shaded by their share of the row) to `path`, of
/// [`confusion_size`] pixels.
///
/// # Errors
/// [`MetricsError::Plot`] when `confusion` is not `classes.len()` square or
/// drawing fails, [`MetricsError::Io`] when writing fails.
pub fn write_confusion(classes: &[String], confusion: &[Vec<u64>], path: &Path) -> Result<()> {
    let k = classes.len();
    if confusion.len() != k || confusion.iter().any(|r| r.len() != k) {
        return Err(MetricsError::Plot {
            path: path.to_path_buf(),
            message: format!(
                "the confusion matrix must be {k} x {k}, one row and column per class"
            ),
        });
    }
    write_png(path, confusion_size(k), |area| {
        draw_confusion(area, classes, confusion)
    })
}

/// The curves of one class against the rest.
struct ClassCurve {
    name: String,
    roc: Option<RocCurve>,
    pr: Option<PrCurve>,
    roc_auc: Option<f64>,
    average_precision: Option<f64>,
    pr_auc: Option<f64>,
    prevalence: f64,
}

fn class_curves(p: &Predictions) -> Result<Vec<ClassCurve>> {
    let classes: Vec<usize> = if p.is_binary() {
        vec![1]
    } else {
        (0..p.n_classes().min(MAX_CURVES)).collect()
    };
    let mut out = Vec::new();
    for c in classes {
        let Some(scores) = p.column(c) else { continue };
        let truth = p.is_class(c);
        let curve = BinaryCurve::new(&truth, &scores, None)?;
        let roc = RocCurve::from_curve(&curve, true).ok();
        let pr = PrCurve::from_curve(&curve).ok();
        let roc_auc = roc
            .as_ref()
            .and_then(|r| crate::trapezoid::auc(&r.fpr, &r.tpr).ok());
        let (average_precision, pr_auc) = match &pr {
            Some(c) => (
                Some(step_area(c)),
                crate::trapezoid::auc(&c.recall, &c.precision).ok(),
            ),
            None => (None, None),
        };
        let name = if p.is_binary() {
            "class 1".to_string()
        } else {
            format!("class {}", p.classes()[c])
        };
        out.push(ClassCurve {
            name,
            roc,
            pr,
            roc_auc,
            average_precision,
            pr_auc,
            prevalence: curve.positives() / p.len() as f64,
        });
    }
    Ok(out)
}

/// Average precision from a PR curve (the step area).
fn step_area(c: &PrCurve) -> f64 {
    c.recall
        .windows(2)
        .zip(&c.precision)
        .map(|(r, p)| (r[0] - r[1]) * p)
        .sum()
}

/// Keeps a point when it moved visibly from the last kept one.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= 2 * RESOLUTION as usize {
        return points;
    }
    let step = 1.0 / RESOLUTION;
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(4 * RESOLUTION as usize);
    let last = points.len() - 1;
    for (i, &(x, y)) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(&(px, py)) => i == last || (x - px).abs() >= step || (y - py).abs() >= step,
        };
        if keep {
            out.push((x, y));
        }
    }
    out
}

/// A bitmap drawing area, the target of every plot.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type UnitChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A plotters error as its message, the error type of the drawing functions.
pub(crate) fn plot_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Black text of font size `size` in the embedded font.
pub(crate) fn style(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// A unit-square chart with axis descriptions and a caption.
fn unit_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> std::result::Result<UnitChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, style(26.0))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0f64..1.0, 0.0f64..1.02)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(style(20.0))
        .label_style(style(16.0))
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(plot_err)?;
    Ok(chart)
}

fn f4(v: Option<f64>) -> String {
    v.map_or_else(|| "undefined".to_string(), |x| format!("{x:.4}"))
}

fn draw_roc(area: &Area<'_>, curves: &[ClassCurve]) -> std::result::Result<(), String> {
    let title = if curves.len() == 1 {
        "ROC curve".to_string()
    } else {
        "ROC curves (one class vs rest)".to_string()
    };
    let mut chart = unit_chart(area, &title, "False positive rate", "True positive rate")?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            8,
            6,
            RGBColor(120, 120, 120).stroke_width(2),
        ))
        .map_err(plot_err)?
        .label("chance (AUC = 0.5)")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 24, y)],
                RGBColor(120, 120, 120).stroke_width(2),
            )
        });
    let mut undefined = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        match &c.roc {
            Some(r) => {
                let pts = thin(r.fpr.iter().copied().zip(r.tpr.iter().copied()).collect());
                chart
                    .draw_series(segments(pts, color))
                    .map_err(plot_err)?
                    .label(format!("{} (AUC = {})", c.name, f4(c.roc_auc)))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                    });
            }
            None => undefined.push(c.name.clone()),
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    note_undefined(area, &undefined, "ROC undefined (only one class present)")
}

fn draw_pr(area: &Area<'_>, curves: &[ClassCurve]) -> std::result::Result<(), String> {
    let title = if curves.len() == 1 {
        "Precision-recall curve".to_string()
    } else {
        "Precision-recall curves (one class vs rest)".to_string()
    };
    let mut chart = unit_chart(area, &title, "Recall", "Precision")?;
    let mut undefined = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let Some(pr) = &c.pr else {
            undefined.push(c.name.clone());
            continue;
        };
        // The step function that average precision integrates: precision
        // P_n held from R_{n-1} to R_n, walking recall upwards.
        let mut pts = Vec::with_capacity(2 * pr.recall.len());
        let n = pr.recall.len();
        let mut prev_r = 0.0;
        for i in (0..n - 1).rev() {
            pts.push((prev_r, pr.precision[i]));
            pts.push((pr.recall[i], pr.precision[i]));
            prev_r = pr.recall[i];
        }
        chart
            .draw_series(segments(thin(pts), color))
            .map_err(plot_err)?
            .label(format!(
                "{} (AP = {}, PR-AUC = {})",
                c.name,
                f4(c.average_precision),
                f4(c.pr_auc)
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
        if curves.len() == 1 {
            let base = c.prevalence;
            let grey = RGBColor(120, 120, 120);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, base), (1.0, base)],
                    8,
                    6,
                    grey.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(format!("chance (precision = prevalence = {base:.4})"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(2))
                });
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    note_undefined(area, &undefined, "PR undefined (no positive sample)")
}

/// A polyline as separate segments: plotters' joins of thick polylines leave
/// spikes at the right-angle corners of step curves.
fn segments(pts: Vec<(f64, f64)>, color: RGBColor) -> Vec<PathElement<(f64, f64)>> {
    pts.windows(2)
        .map(|w| PathElement::new(vec![w[0], w[1]], color.stroke_width(2)))
        .collect()
}

fn legend<'a, 'b: 'a>(
    chart: &mut UnitChart<'a, 'b>,
    pos: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(pos)
        .margin(12)
        .legend_area_size(34)
        .label_font(style(16.0))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(plot_err)
}

fn note_undefined(
    area: &Area<'_>,
    names: &[String],
    what: &str,
) -> std::result::Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let text = format!("{}: {what}", names.join(", "));
    area.draw(&Text::new(text, (110, 70), style(18.0).color(&RED)))
        .map_err(plot_err)
}

/// Blue colour scale from white (0) to dark blue (1).
fn heat(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

fn draw_confusion(
    area: &Area<'_>,
    classes: &[String],
    confusion: &[Vec<u64>],
) -> std::result::Result<(), String> {
    let k = classes.len();
    let (w, _) = area.dim_in_pixel();
    let (main, side) = area.split_horizontally(w - 150);
    let mut chart = ChartBuilder::on(&main)
        .caption("Confusion matrix", style(26.0))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0f64..k as f64, 0.0f64..k as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("Predicted label")
        .y_desc("True label")
        .axis_desc_style(style(20.0))
        .draw()
        .map_err(plot_err)?;
    let font = if k <= 12 { 16.0 } else { 12.0 };
    for (t, row) in confusion.iter().enumerate() {
        let support: u64 = row.iter().sum();
        for (p, &count) in row.iter().enumerate() {
            let share = if support > 0 {
                count as f64 / support as f64
            } else {
                0.0
            };
            // Row 0 at the top, as scikit-learn draws it.
            let y0 = (k - 1 - t) as f64;
            let (x0, x1, y1) = (p as f64, p as f64 + 1.0, y0 + 1.0);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    heat(share).filled(),
                )))
                .map_err(plot_err)?;
            let color = if share > 0.5 { WHITE } else { BLACK };
            let (cx, cy) = chart.backend_coord(&(x0 + 0.5, y0 + 0.5));
            let text = count.to_string();
            main.draw(&Text::new(
                text,
                (cx, cy),
                style(font)
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))
            .map_err(plot_err)?;
        }
    }
    // Class names on the axes, centred on their cells.
    let centre = Pos::new(HPos::Center, VPos::Top);
    let right = Pos::new(HPos::Right, VPos::Center);
    for (i, name) in classes.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        main.draw(&Text::new(short(name), (x, y + 8), style(font).pos(centre)))
            .map_err(plot_err)?;
        let (x, y) = chart.backend_coord(&(0.0, (k - 1 - i) as f64 + 0.5));
        main.draw(&Text::new(short(name), (x - 8, y), style(font).pos(right)))
            .map_err(plot_err)?;
    }
    // Colour bar: the legend of the cell colours.
    let (_, h) = side.dim_in_pixel();
    let (top, bottom) = (70i32, h as i32 - 110);
    let (x0, x1) = (20i32, 50i32);
    for y in top..bottom {
        let v = (bottom - y) as f64 / (bottom - top) as f64;
        side.draw(&Rectangle::new([(x0, y), (x1, y + 1)], heat(v).filled()))
            .map_err(plot_err)?;
    }
    side.draw(&Rectangle::new(
        [(x0, top), (x1, bottom)],
        BLACK.stroke_width(1),
    ))
    .map_err(plot_err)?;
    let left = Pos::new(HPos::Left, VPos::Center);
    for (v, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
        let y = bottom - ((bottom - top) as f64 * v).round() as i32;
        side.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], BLACK))
            .map_err(plot_err)?;
        side.draw(&Text::new(label, (x1 + 9, y), style(15.0).pos(left)))
            .map_err(plot_err)?;
    }
    side.draw(&Text::new("share of", (8, bottom + 22), style(15.0)))
        .map_err(plot_err)?;
    side.draw(&Text::new("true class", (8, bottom + 40), style(15.0)))
        .map_err(plot_err)?;
    Ok(())
}

/// Long class names are cut so that they fit under their column.
fn short(name: &str) -> String {
    if name.chars().count() <= 12 {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(11).collect();
        s.push('.');
        s
    }
}

/// Renders with `draw` into an RGB buffer and writes it as a PNG, atomically.
pub(crate) fn write_png(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> std::result::Result<(), String>,
) -> Result<()> {
    let plot_error = |message: String| MetricsError::Plot {
        path: path.to_path_buf(),
        message,
    };
    register_font().map_err(plot_error)?;
    let mut buf = vec![0u8; (w as usize) * (h as usize) * 3];
    {
        let backend = BitMapBackend::with_buffer(&mut buf, (w, h));
        let area = backend.into_drawing_area();
        area.fill(&WHITE).map_err(|e| plot_error(e.to_string()))?;
        draw(&area).map_err(plot_error)?;
        area.present().map_err(|e| plot_error(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| plot_error(e.to_string()))?;
        writer
            .write_image_data(&buf)
            .map_err(|e| plot_error(e.to_string()))?;
    }
    kestrel_fsio::write_atomic(path, &png_bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_ends_and_shape() {
        let pts: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64 / 99_999.0, 0.5)).collect();
        let t = thin(pts);
        assert!(t.len() < 2000);
        assert_eq!(t[0], (0.0, 0.5));
        assert_eq!(*t.last().unwrap(), (1.0, 0.5));
        let few = vec![(0.0, 0.0), (1.0, 1.0)];
        assert_eq!(thin(few.clone()), few);
    }

    #[test]
    fn colour_scale_ends() {
        assert_eq!(heat(0.0), RGBColor(247, 251, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
    }
}
