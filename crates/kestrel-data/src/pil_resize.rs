//! Bilinear resizing exactly as Pillow does it (`Image.resize(size, Image.BILINEAR)`, Pillow's
//! `libImaging/Resample.c`), so that images preprocessed here match torchvision's PIL pipeline
//! pixel for pixel.
//!
//! Pillow's bilinear filter is antialiased: a triangle `max(0, 1 − |x|)` whose support is
//! stretched by the downscale factor (1 when upscaling). For each output pixel `i` of an axis
//! scaled by `s = in / out`, the centre is `(i + 0.5)·s` in input coordinates, the taps run over
//! `[trunc(centre − support + 0.5), trunc(centre + support + 0.5))` clamped to the image, tap `x`
//! weighs `filter((x − centre + 0.5) / max(s, 1))`, and the weights are normalised to sum 1, then
//! turned into 22-bit fixed point (rounded half away from zero). Each output value is
//! `clamp((2^21 + Σ wₓ·pₓ) >> 22, 0, 255)`. The horizontal pass runs first and is rounded to
//! `u8` before the vertical pass; an axis whose size does not change is not resampled.

use crate::error::DataError;
use image::RgbImage;
use std::ops::Range;

/// Fixed-point precision of the weights (Pillow's `PRECISION_BITS`, 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// The taps of one output pixel: the first input index and the fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// Pillow's triangle (bilinear) filter.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// The taps of the output pixels `kept` of an axis resized from `input` to `output` pixels.
fn taps(input: usize, output: usize, kept: Range<usize>) -> Vec<Taps> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // The triangle's support is 1.
    let inv = 1.0 / filter_scale;
    kept.map(|i| {
        let centre = (i as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero, as `as` does.
        let first = ((centre - support + 0.5) as i64).max(0) as usize;
        let end = ((centre + support + 0.5) as i64).min(input as i64) as usize;
        let raw: Vec<f64> = (first..end.max(first))
            .map(|x| triangle((x as f64 - centre + 0.5) * inv))
            .collect();
        let total: f64 = raw.iter().sum();
        let one = f64::from(1u32 << PRECISION_BITS);
        let weights = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect();
        Taps { first, weights }
    })
    .collect()
}

/// The input indices a set of taps reads: from the lowest first tap to the highest last one.
fn span(taps: &[Taps]) -> Range<usize> {
    let start = taps.iter().map(|t| t.first).min().unwrap_or(0);
    let end = taps
        .iter()
        .map(|t| t.first + t.weights.len())
        .max()
        .unwrap_or(start);
    start..end.max(start)
}

/// One fixed-point sum to a `u8`, as Pillow's `clip8`.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples along x: `src` is `width × rows` RGB (row-major, 3 bytes a pixel); the output has
/// one column per tap list.
fn horizontal(src: &[u8], width: usize, rows: usize, taps: &[Taps]) -> Vec<u8> {
    let out_width = taps.len();
    let mut out = vec![0u8; out_width * rows * 3];
    for y in 0..rows {
        let row = &src[y * width * 3..(y + 1) * width * 3];
        for (x, t) in taps.iter().enumerate() {
            for c in 0..3 {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (k, &w) in t.weights.iter().enumerate() {
                    acc += i64::from(row[(t.first + k) * 3 + c]) * i64::from(w);
                }
                out[(y * out_width + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Resamples along y: `src` holds `width`-pixel RGB rows of the input from row `first_row` on;
/// the output has one row per tap list.
fn vertical(src: &[u8], width: usize, taps: &[Taps], first_row: usize) -> Vec<u8> {
    let stride = width * 3;
    let mut out = vec![0u8; stride * taps.len()];
    for (y, t) in taps.iter().enumerate() {
        let top = t.first - first_row;
        for i in 0..stride {
            let mut acc: i64 = 1 << (PRECISION_BITS - 1);
            for (k, &w) in t.weights.iter().enumerate() {
                acc += i64::from(src[(top + k) * stride + i]) * i64::from(w);
            }
            out[y * stride + i] = clip8(acc);
        }
    }
    out
}

/// Resizes `img` to `width × height` with Pillow's antialiased bilinear filter (see the module
/// documentation). A zero size, of the image or of the target, is an error.
pub fn resize_bilinear(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage, DataError> {
    resize_bilinear_region(img, width, height, 0..width, 0..height)
}

/// The columns `cols` and rows `rows` of [`resize_bilinear`]`(img, width, height)`, computed
/// alone: the same pixels, at the cost of the region (and the input rows it reads) only, so that
/// a centre crop of a huge resize costs what the crop costs. An empty region or one outside
/// `width × height` is an error.
pub fn resize_bilinear_region(
    img: &RgbImage,
    width: u32,
    height: u32,
    cols: Range<u32>,
    rows: Range<u32>,
) -> Result<RgbImage, DataError> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(DataError::value(
            "image",
            format!("cannot resize an empty {w}×{h} image"),
        ));
    }
    if width == 0 || height == 0 {
        return Err(DataError::value(
            "size",
            format!("expected a positive target size, got {width}×{height}"),
        ));
    }
    if cols.is_empty() || rows.is_empty() || cols.end > width || rows.end > height {
        return Err(DataError::value(
            "region",
            format!(
                "expected a non-empty region of the {width}×{height} output, got columns \
                 {cols:?} and rows {rows:?}"
            ),
        ));
    }
    let (w, h, ow, oh) = (w as usize, h as usize, width as usize, height as usize);
    let (cols, rows) = (
        cols.start as usize..cols.end as usize,
        rows.start as usize..rows.end as usize,
    );
    // The input rows the kept output rows read: the vertical taps' span, or the rows themselves
    // when the height does not change.
    let vtaps = (oh != h).then(|| taps(h, oh, rows.clone()));
    let src_rows = vtaps.as_deref().map_or(rows.clone(), span);
    let src = &img.as_raw()[src_rows.start * w * 3..src_rows.end * w * 3];
    let buf = if ow != w {
        horizontal(src, w, src_rows.len(), &taps(w, ow, cols.clone()))
    } else {
        src.chunks_exact(w * 3)
            .flat_map(|row| &row[cols.start * 3..cols.end * 3])
            .copied()
            .collect()
    };
    let buf = match vtaps {
        Some(t) => vertical(&buf, cols.len(), &t, src_rows.start),
        None => buf,
    };
    Ok(
        RgbImage::from_raw(cols.len() as u32, rows.len() as u32, buf)
            .expect("the buffer has one RGB pixel per kept column and row"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(values: &[u8], width: u32) -> RgbImage {
        let raw = values.iter().flat_map(|&v| [v, v, v]).collect();
        RgbImage::from_raw(width, values.len() as u32 / width, raw).unwrap()
    }

    fn channel(img: &RgbImage, c: usize) -> Vec<u8> {
        img.pixels().map(|p| p.0[c]).collect()
    }

    /// Reference values from Pillow 13.0: `Image.fromarray(a, "L").resize((w, h),
    /// Image.BILINEAR)`.
    #[test]
    fn matches_pillow_on_small_images() {
        let row = [0u8, 40, 200, 255, 13, 90, 7];
        for (w, want) in [
            (3u32, vec![60u8, 163, 44]),
            (2, vec![106, 87]),
            (10, vec![0, 22, 80, 192, 236, 170, 17, 71, 53, 7]),
        ] {
            let got = resize_bilinear(&gray(&row, 7), w, 1).unwrap();
            for c in 0..3 {
                assert_eq!(channel(&got, c), want, "7 → {w}");
            }
        }
        // 3×3 → 2×5: both passes, with rounding to u8 between them.
        let grid = gray(&[0, 255, 0, 255, 0, 255, 10, 20, 30], 3);
        let got = resize_bilinear(&grid, 2, 5).unwrap();
        let want = [96u8, 96, 121, 121, 159, 159, 72, 79, 14, 26];
        assert_eq!(channel(&got, 1), want);
    }

    #[test]
    fn channels_are_independent_and_constants_stay_constant() {
        let mut img = RgbImage::new(9, 4);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([if x % 2 == 0 { 200 } else { 0 }, 77, 0]);
        }
        let got = resize_bilinear(&img, 4, 7).unwrap();
        assert!(got.pixels().all(|p| p.0[1] == 77 && p.0[2] == 0));
        // Downscaling averages the stripes (antialiasing) instead of sampling them.
        assert!(
            got.pixels().all(|p| (60..=140).contains(&p.0[0])),
            "{got:?}"
        );
        // Same size: untouched.
        assert_eq!(resize_bilinear(&img, 9, 4).unwrap(), img);
    }

    #[test]
    fn regions_equal_the_same_pixels_of_the_whole_resize() {
        let img = RgbImage::from_fn(13, 9, |x, y| {
            image::Rgb([
                (x * 19 + y * 7) as u8,
                (x * y * 5) as u8,
                ((x ^ y) * 20) as u8,
            ])
        });
        for (ow, oh) in [(5, 4), (30, 20), (13, 4), (6, 9), (13, 9)] {
            let whole = resize_bilinear(&img, ow, oh).unwrap();
            for (cols, rows) in [(0..ow, 0..oh), (1..ow - 1, 2..oh), (ow - 1..ow, 0..1)] {
                let part =
                    resize_bilinear_region(&img, ow, oh, cols.clone(), rows.clone()).unwrap();
                let want = image::imageops::crop_imm(
                    &whole,
                    cols.start,
                    rows.start,
                    cols.len() as u32,
                    rows.len() as u32,
                )
                .to_image();
                assert_eq!(part, want, "{ow}×{oh} {cols:?} {rows:?}");
            }
        }
        let e = resize_bilinear_region(&img, 5, 4, 0..6, 0..4).unwrap_err();
        assert!(e.to_string().contains("region"), "{e}");
        assert!(resize_bilinear_region(&img, 5, 4, 2..2, 0..4).is_err());
    }

    #[test]
    fn zero_sizes_are_errors() {
        let img = RgbImage::new(3, 3);
        let e = resize_bilinear(&img, 0, 3).unwrap_err().to_string();
        assert!(e.contains("size") && e.contains("0×3"), "{e}");
        let e = resize_bilinear(&RgbImage::new(0, 2), 3, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
