//! A heat map of positive magnitudes (e.g. gradient norms, layers × samples) on a log10 colour
//! scale, as a PNG file.
//!
//! Finite positive values are coloured on a viridis-like scale between the smallest and the
//! largest of them (log10). Values the scale cannot show get colours of their own, named in a
//! legend: NaN (magenta), +∞ (red), zero or negative (grey), and a missing cell (white).

use crate::plot::{plot_err, style, write_png, Area};
use crate::{MetricsError, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Colour of a NaN cell.
pub const NAN_COLOR: RGBColor = RGBColor(255, 0, 255);
/// Colour of a +∞ cell.
pub const INF_COLOR: RGBColor = RGBColor(230, 0, 0);
/// Colour of a zero (or negative) cell: log10 is undefined.
pub const ZERO_COLOR: RGBColor = RGBColor(170, 170, 170);
/// Colour of a missing cell.
pub const MISSING_COLOR: RGBColor = RGBColor(255, 255, 255);
/// Row labels longer than this are cut (from the left, keeping the specific end).
const MAX_LABEL: usize = 40;
/// Width of the area right of the cells (colour bar and legend).
const SIDE: i32 = 190;
/// Top margin (title) and bottom margin (x labels and description).
const TOP: i32 = 56;
const BOTTOM: i32 = 64;

/// Viridis sampled at 0, ¼, ½, ¾ and 1; linear in between.
const VIRIDIS: [(f64, f64, f64); 5] = [
    (68.0, 1.0, 84.0),
    (59.0, 82.0, 139.0),
    (33.0, 145.0, 140.0),
    (94.0, 201.0, 98.0),
    (253.0, 231.0, 37.0),
];

/// The colour of position `t` in `[0, 1]` on the scale.
pub fn scale_color(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let lerp = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// A heat map: `values[row][column]`, `None` where a cell is missing.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatMap {
    /// Caption drawn above the cells.
    pub title: String,
    /// One label per row, drawn left of it.
    pub rows: Vec<String>,
    /// One label per column; about ten of them are drawn under the cells.
    pub columns: Vec<String>,
    /// Description of the x axis.
    pub x_desc: String,
    /// What the colour shows (drawn over the colour bar).
    pub value_desc: String,
    /// `rows.len()` rows of `columns.len()` cells.
    pub values: Vec<Vec<Option<f64>>>,
}

/// Where the cells lie in the image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeatLayout {
    /// Image size.
    pub size: (u32, u32),
    /// Left edge of the cells.
    pub x0: i32,
    /// Top edge of the cells.
    pub y0: i32,
    /// Cell width.
    pub cell_w: f64,
    /// Cell height.
    pub cell_h: f64,
}

impl HeatLayout {
    /// The layout of a heat map with these row labels and this many columns.
    pub fn new(rows: &[String], columns: usize) -> HeatLayout {
        let n = rows.len().max(1);
        let longest = rows
            .iter()
            .map(|r| r.chars().count().min(MAX_LABEL))
            .max()
            .unwrap_or(0);
        let x0 = 20 + 8 * longest as i32;
        let row_h = if n <= 20 { 22.0 } else { 16.0 };
        let cells_h = (row_h * n as f64).max(240.0);
        let width = 1200u32;
        let cells_w = width as i32 - x0 - SIDE;
        let height = TOP as u32 + cells_h.round() as u32 + BOTTOM as u32;
        HeatLayout {
            size: (width, height),
            x0,
            y0: TOP,
            cell_w: cells_w as f64 / columns.max(1) as f64,
            cell_h: cells_h / n as f64,
        }
    }

    /// Pixel rectangle `[(left, top), (right, bottom)]` of a cell.
    pub fn cell(&self, row: usize, column: usize) -> [(i32, i32); 2] {
        let l = self.x0 + (column as f64 * self.cell_w).round() as i32;
        let r = self.x0 + ((column + 1) as f64 * self.cell_w).round() as i32;
        let t = self.y0 + (row as f64 * self.cell_h).round() as i32;
        let b = self.y0 + ((row + 1) as f64 * self.cell_h).round() as i32;
        [(l, t), (r.max(l + 1), b.max(t + 1))]
    }
}

/// The log10 range of the finite positive values, never empty; `None` when there is none.
fn log_range(values: &[Vec<Option<f64>>]) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .iter()
        .flatten()
        .flatten()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        None
    } else if hi - lo < 1e-9 {
        Some((lo - 0.5, hi + 0.5))
    } else {
        Some((lo, hi))
    }
}

/// The colour of one cell given the log10 range of the map.
pub fn cell_color(v: Option<f64>, range: Option<(f64, f64)>) -> RGBColor {
    match v {
        None => MISSING_COLOR,
        Some(v) if v.is_nan() => NAN_COLOR,
        Some(v) if v == f64::INFINITY => INF_COLOR,
        Some(v) if v <= 0.0 => ZERO_COLOR,
        Some(v) => match range {
            Some((lo, hi)) => scale_color((v.log10() - lo) / (hi - lo)),
            None => ZERO_COLOR,
        },
    }
}

/// A row label cut to fit, keeping its end (the most specific part of a dotted path).
fn cut(label: &str) -> String {
    let n = label.chars().count();
    if n <= MAX_LABEL {
        label.to_string()
    } else {
        let tail: String = label.chars().skip(n - (MAX_LABEL - 2)).collect();
        format!("..{tail}")
    }
}

/// Writes `map` as a PNG of [`HeatLayout::new`]`(&map.rows, map.columns.len()).size`.
///
/// # Errors
/// [`MetricsError::Plot`] when `values` does not have one row of `columns.len()` cells per
/// row label or drawing fails; [`MetricsError::Io`] when writing fails.
pub fn write_heat_map(map: &HeatMap, path: &Path) -> Result<()> {
    let (r, c) = (map.rows.len(), map.columns.len());
    if map.values.len() != r || map.values.iter().any(|row| row.len() != c) {
        return Err(MetricsError::Plot {
            path: path.to_path_buf(),
            message: format!("the heat map values must be {r} rows of {c} cells"),
        });
    }
    let layout = HeatLayout::new(&map.rows, c);
    write_png(path, layout.size, |area| draw(area, map, &layout))
}

fn draw(area: &Area<'_>, map: &HeatMap, l: &HeatLayout) -> std::result::Result<(), String> {
    let (w, h) = (l.size.0 as i32, l.size.1 as i32);
    let title = Pos::new(HPos::Center, VPos::Top);
    area.draw(&Text::new(
        map.title.clone(),
        (w / 2, 14),
        style(22.0).pos(title),
    ))
    .map_err(plot_err)?;
    let range = log_range(&map.values);
    for (i, row) in map.values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            area.draw(&Rectangle::new(
                l.cell(i, j),
                cell_color(*v, range).filled(),
            ))
            .map_err(plot_err)?;
        }
    }
    let (cx1, cy1) = (w - SIDE, h - BOTTOM);
    area.draw(&Rectangle::new(
        [(l.x0, l.y0), (cx1, cy1)],
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(plot_err)?;
    // Row labels, shrunk when rows are thin.
    let font = if l.cell_h >= 18.0 { 14.0 } else { 12.0 };
    let right = Pos::new(HPos::Right, VPos::Center);
    for (i, name) in map.rows.iter().enumerate() {
        let y = l.y0 + ((i as f64 + 0.5) * l.cell_h).round() as i32;
        area.draw(&Text::new(cut(name), (l.x0 - 6, y), style(font).pos(right)))
            .map_err(plot_err)?;
    }
    // About ten column labels.
    let c = map.columns.len();
    let step = c.div_ceil(10).max(1);
    let top = Pos::new(HPos::Center, VPos::Top);
    for j in (0..c).step_by(step) {
        let x = l.x0 + ((j as f64 + 0.5) * l.cell_w).round() as i32;
        area.draw(&PathElement::new(vec![(x, cy1), (x, cy1 + 4)], BLACK))
            .map_err(plot_err)?;
        area.draw(&Text::new(
            map.columns[j].clone(),
            (x, cy1 + 7),
            style(12.0).pos(top),
        ))
        .map_err(plot_err)?;
    }
    area.draw(&Text::new(
        map.x_desc.clone(),
        ((l.x0 + cx1) / 2, cy1 + 34),
        style(16.0).pos(top),
    ))
    .map_err(plot_err)?;
    draw_legend(area, map, range, (cx1 + 30, l.y0), cy1)
}

/// Tick positions (log10) on the colour bar: whole decades when the range spans at least two,
/// else five even steps.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades: Vec<f64> = (lo.ceil() as i32..=hi.floor() as i32)
        .map(f64::from)
        .collect();
    if decades.len() >= 2 && decades.len() <= 12 {
        decades
    } else if decades.len() > 12 {
        let step = decades.len().div_ceil(8);
        decades.into_iter().step_by(step).collect()
    } else {
        (0..=4).map(|k| lo + (hi - lo) * k as f64 / 4.0).collect()
    }
}

/// The colour bar (log10 ticks) and the special colours.
fn draw_legend(
    area: &Area<'_>,
    map: &HeatMap,
    range: Option<(f64, f64)>,
    (x0, top): (i32, i32),
    bottom_limit: i32,
) -> std::result::Result<(), String> {
    let x1 = x0 + 24;
    let left = Pos::new(HPos::Left, VPos::Center);
    area.draw(&Text::new(
        map.value_desc.clone(),
        (x0 - 20, top - 14),
        style(13.0).pos(left),
    ))
    .map_err(plot_err)?;
    let bar_h = ((bottom_limit - top) - 110).clamp(60, 400);
    let bottom = top + bar_h;
    if let Some((lo, hi)) = range {
        for y in top..bottom {
            let t = (bottom - y) as f64 / bar_h as f64;
            area.draw(&Rectangle::new(
                [(x0, y), (x1, y + 1)],
                scale_color(t).filled(),
            ))
            .map_err(plot_err)?;
        }
        area.draw(&Rectangle::new(
            [(x0, top), (x1, bottom)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
        for e in ticks(lo, hi) {
            let t = (e - lo) / (hi - lo);
            let y = bottom - (bar_h as f64 * t).round() as i32;
            let v = 10f64.powf(e);
            area.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], BLACK))
                .map_err(plot_err)?;
            area.draw(&Text::new(
                if e.fract() == 0.0 {
                    format!("1e{}", e as i32)
                } else {
                    format!("{v:.1e}")
                },
                (x1 + 8, y),
                style(13.0).pos(left),
            ))
            .map_err(plot_err)?;
        }
    } else {
        area.draw(&Text::new(
            "no finite positive value",
            (x0 - 20, top + 10),
            style(13.0).pos(left),
        ))
        .map_err(plot_err)?;
    }
    let specials = [
        (NAN_COLOR, "NaN"),
        (INF_COLOR, "+inf"),
        (ZERO_COLOR, "0"),
        (MISSING_COLOR, "missing"),
    ];
    for (i, (color, name)) in specials.iter().enumerate() {
        let y = bottom + 18 + 20 * i as i32;
        area.draw(&Rectangle::new(
            [(x0, y), (x0 + 14, y + 14)],
            color.filled(),
        ))
        .map_err(plot_err)?;
        area.draw(&Rectangle::new(
            [(x0, y), (x0 + 14, y + 14)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(*name, (x0 + 20, y + 7), style(13.0).pos(left)))
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(buf: &[u8], width: u32, (x, y): (i32, i32)) -> RGBColor {
        let i = 3 * (y as usize * width as usize + x as usize);
        RGBColor(buf[i], buf[i + 1], buf[i + 2])
    }

    #[test]
    fn scale_ends_are_viridis_ends() {
        assert_eq!(scale_color(0.0), RGBColor(68, 1, 84));
        assert_eq!(scale_color(1.0), RGBColor(253, 231, 37));
        assert_eq!(scale_color(0.5), RGBColor(33, 145, 140));
        assert_eq!(scale_color(f64::NAN), scale_color(0.0));
    }

    #[test]
    fn special_colours_are_not_on_the_scale() {
        for special in [NAN_COLOR, INF_COLOR, ZERO_COLOR, MISSING_COLOR] {
            for k in 0..=1000 {
                let c = scale_color(k as f64 / 1000.0);
                let d = (c.0 as i32 - special.0 as i32).abs()
                    + (c.1 as i32 - special.1 as i32).abs()
                    + (c.2 as i32 - special.2 as i32).abs();
                assert!(d > 60, "{special:?} is close to the scale at {k}");
            }
        }
    }

    #[test]
    fn cells_get_their_colours_in_the_written_png() {
        let values = vec![
            vec![Some(1e-3), Some(f64::NAN), Some(1.0)],
            vec![Some(f64::INFINITY), Some(0.0), None],
            vec![Some(1e-1), Some(-2.0), Some(f64::NEG_INFINITY)],
        ];
        let map = HeatMap {
            title: "gradient norms".into(),
            rows: vec!["a.weight".into(), "b.weight".into(), "x".repeat(90)],
            columns: vec!["1".into(), "2".into(), "3".into()],
            x_desc: "step".into(),
            value_desc: "L2 norm (log10)".into(),
            values: values.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.png");
        write_heat_map(&map, &path).unwrap();
        let layout = HeatLayout::new(&map.rows, 3);
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), layout.size);
        let centre = |r: usize, c: usize| {
            let [(l, t), (rr, b)] = layout.cell(r, c);
            ((l + rr) / 2, (t + b) / 2)
        };
        let w = info.width;
        // Finite positives span 1e-3 .. 1: 1e-3 is the bottom of the scale, 1 the top,
        // 1e-1 two thirds of the way up (log10).
        assert_eq!(pixel(&buf, w, centre(0, 0)), scale_color(0.0));
        assert_eq!(pixel(&buf, w, centre(0, 2)), scale_color(1.0));
        assert_eq!(pixel(&buf, w, centre(2, 0)), scale_color(2.0 / 3.0));
        assert_eq!(pixel(&buf, w, centre(0, 1)), NAN_COLOR);
        assert_eq!(pixel(&buf, w, centre(1, 0)), INF_COLOR);
        assert_eq!(pixel(&buf, w, centre(1, 1)), ZERO_COLOR);
        assert_eq!(pixel(&buf, w, centre(2, 1)), ZERO_COLOR);
        assert_eq!(pixel(&buf, w, centre(1, 2)), MISSING_COLOR);
        // -inf is "zero or negative", not +inf.
        assert_eq!(pixel(&buf, w, centre(2, 2)), ZERO_COLOR);
    }

    #[test]
    fn all_special_or_empty_maps_draw_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        for (i, values) in [
            vec![vec![Some(f64::NAN), Some(0.0)]],
            vec![vec![Some(5.0), Some(5.0)]],
        ]
        .into_iter()
        .enumerate()
        {
            let map = HeatMap {
                title: "t".into(),
                rows: vec!["r".into()],
                columns: vec!["a".into(), "b".into()],
                x_desc: "x".into(),
                value_desc: "v".into(),
                values,
            };
            write_heat_map(&map, &dir.path().join(format!("{i}.png"))).unwrap();
        }
        let empty = HeatMap {
            title: "t".into(),
            rows: vec![],
            columns: vec![],
            x_desc: "x".into(),
            value_desc: "v".into(),
            values: vec![],
        };
        write_heat_map(&empty, &dir.path().join("e.png")).unwrap();
        let bad = HeatMap {
            values: vec![vec![Some(1.0)]],
            ..empty
        };
        assert!(write_heat_map(&bad, &dir.path().join("b.png")).is_err());
    }

    #[test]
    fn colour_bar_ticks_are_decades_when_the_range_spans_them() {
        assert_eq!(ticks(-3.5, 0.2), vec![-3.0, -2.0, -1.0, 0.0]);
        assert_eq!(ticks(-0.5, 0.5), vec![-0.5, -0.25, 0.0, 0.25, 0.5]);
        assert_eq!(ticks(-40.0, 0.0).len(), 7);
    }

    #[test]
    fn long_labels_keep_their_end() {
        let long = format!("{}.conv.weight", "features".repeat(8));
        let c = cut(&long);
        assert_eq!(c.chars().count(), MAX_LABEL);
        assert!(c.starts_with("..") && c.ends_with(".conv.weight"));
        assert_eq!(cut("fc.bias"), "fc.bias");
    }
}
