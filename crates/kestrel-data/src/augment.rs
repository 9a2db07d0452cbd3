//! Random augmentations of an image and, optionally, its mask, drawn alike for both.
//!
//! Every draw comes from [`sample_rng`]`(seed, epoch, index)`, so an item's augmentation is a pure
//! function of those three numbers, whatever order or thread processes it. Geometric operations
//! resample the image bilinearly and the mask by nearest neighbour (class values are never
//! blended); pixels a rotation brings in from outside are 0 in the image and [`IGNORE_LABEL`]
//! (255) in the mask, so masks only ever hold their own values or 255. Colour jitter touches the
//! image only.

use crate::error::DataError;
use crate::formats::seg::IGNORE_LABEL;
use crate::rng::Rng;
use image::{GrayImage, Luma, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// The generator for item `index` in epoch `epoch` of a run seeded with `seed`.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> Rng {
    Rng::stream(Rng::stream(seed, epoch).next_u64(), index)
}

/// A random crop of a random size and aspect ratio, resized to a fixed output size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizedCrop {
    /// Output (width, height).
    pub size: (u32, u32),
    /// Range of the crop's area as a fraction of the image's; torchvision's default (0.08, 1).
    pub scale: (f64, f64),
    /// Range of the crop's width / height; torchvision's default (3/4, 4/3).
    pub ratio: (f64, f64),
}

impl ResizedCrop {
    /// torchvision's default ranges, with output `size`.
    pub fn new(size: (u32, u32)) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

/// Ranges of the colour jitter: each factor is drawn from [max(0, 1 − v), 1 + v]; 0 turns it off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    /// Brightness: pixels are multiplied by the factor.
    pub brightness: f64,
    /// Contrast: pixels are blended with the image's mean gray level.
    pub contrast: f64,
    /// Saturation: pixels are blended with their own gray level.
    pub saturation: f64,
}

/// Which augmentations to apply, in this order: resized crop, horizontal flip, rotation, colour
/// jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// A random resized crop; `None` keeps the whole image.
    pub crop: Option<ResizedCrop>,
    /// Probability of a horizontal flip.
    pub hflip: f64,
    /// Largest rotation in degrees, drawn uniformly from [−d, d]; 0 turns it off.
    pub rotate_degrees: f64,
    /// Colour jitter ranges.
    pub jitter: ColorJitter,
}

impl Default for AugmentConfig {
    /// A horizontal flip half the time, nothing else.
    fn default() -> Self {
        Self {
            crop: None,
            hflip: 0.5,
            rotate_degrees: 0.0,
            jitter: ColorJitter::default(),
        }
    }
}

impl AugmentConfig {
    /// Checks every range.
    pub fn validate(&self) -> Result<(), DataError> {
        if let Some(c) = &self.crop {
            if c.size.0 == 0 || c.size.1 == 0 {
                return Err(DataError::value(
                    "crop.size",
                    format!("expected a positive width and height, got {:?}", c.size),
                ));
            }
            if !(c.scale.0 > 0.0 && c.scale.0 <= c.scale.1 && c.scale.1 <= 1.0) {
                return Err(DataError::value(
                    "crop.scale",
                    format!("expected 0 < min <= max <= 1, got {:?}", c.scale),
                ));
            }
            if !(c.ratio.0 > 0.0 && c.ratio.0 <= c.ratio.1 && c.ratio.1.is_finite()) {
                return Err(DataError::value(
                    "crop.ratio",
                    format!("expected 0 < min <= max, got {:?}", c.ratio),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.hflip) {
            return Err(DataError::value(
                "hflip",
                format!("expected a probability in [0, 1], got {}", self.hflip),
            ));
        }
        if !(0.0..=180.0).contains(&self.rotate_degrees) {
            return Err(DataError::value(
                "rotate_degrees",
                format!("expected 0..=180 degrees, got {}", self.rotate_degrees),
            ));
        }
        let j = &self.jitter;
        for (name, v) in [
            ("jitter.brightness", j.brightness),
            ("jitter.contrast", j.contrast),
            ("jitter.saturation", j.saturation),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::value(
                    name,
                    format!("expected a number >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// A crop box in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width (> 0).
    pub w: u32,
    /// Height (> 0).
    pub h: u32,
}

/// Draws a crop box as torchvision's RandomResizedCrop does: up to ten tries of an area fraction
/// uniform in `scale` and an aspect ratio log-uniform in `ratio`, keeping the first box that fits,
/// placed uniformly; failing that, the largest centred box whose ratio is within `ratio`.
pub fn crop_params(
    rng: &mut Rng,
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> Rect {
    let (wf, hf) = (width as f64, height as f64);
    let area = wf * hf;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round();
        let h = (target / aspect).sqrt().round();
        if w > 0.0 && h > 0.0 && w <= wf && h <= hf {
            let (w, h) = (w as u32, h as u32);
            let y = rng.below((height - h + 1) as usize) as u32;
            let x = rng.below((width - w + 1) as usize) as u32;
            return Rect { x, y, w, h };
        }
    }
    let in_ratio = wf / hf;
    let (w, h) = if in_ratio < ratio.0 {
        (width, ((wf / ratio.0).round() as u32).clamp(1, height))
    } else if in_ratio > ratio.1 {
        (((hf * ratio.1).round() as u32).clamp(1, width), height)
    } else {
        (width, height)
    };
    Rect {
        x: (width - w) / 2,
        y: (height - h) / 2,
        w,
        h,
    }
}

/// Bilinear sample of `img` at continuous pixel coordinates (pixel centres at integers), edges
/// clamped to the box [x0, x1] × [y0, y1].
fn bilinear_clamped(img: &RgbImage, x: f64, y: f64, bx: (u32, u32), by: (u32, u32)) -> Rgb<u8> {
    let x = x.clamp(bx.0 as f64, bx.1 as f64);
    let y = y.clamp(by.0 as f64, by.1 as f64);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(bx.1), (y0 + 1).min(by.1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let p = |xx, yy| img.get_pixel(xx, yy).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    Rgb(std::array::from_fn(|k| {
        let top = a[k] as f64 * (1.0 - fx) + b[k] as f64 * fx;
        let bottom = c[k] as f64 * (1.0 - fx) + d[k] as f64 * fx;
        (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
    }))
}

/// Crops `rect` and resizes it to `size` (width, height): bilinear for the image (sample points
/// at pixel centres, edges clamped to the box), nearest neighbour for the mask.
pub fn resized_crop(
    image: &RgbImage,
    mask: Option<&GrayImage>,
    rect: Rect,
    size: (u32, u32),
) -> (RgbImage, Option<GrayImage>) {
    let (ow, oh) = size;
    let sx = rect.w as f64 / ow as f64;
    let sy = rect.h as f64 / oh as f64;
    let bx = (rect.x, rect.x + rect.w - 1);
    let by = (rect.y, rect.y + rect.h - 1);
    let out = RgbImage::from_fn(ow, oh, |ox, oy| {
        let x = rect.x as f64 + (ox as f64 + 0.5) * sx - 0.5;
        let y = rect.y as f64 + (oy as f64 + 0.5) * sy - 0.5;
        bilinear_clamped(image, x, y, bx, by)
    });
    let out_mask = mask.map(|m| {
        GrayImage::from_fn(ow, oh, |ox, oy| {
            let x = rect.x + (((ox as f64 + 0.5) * sx).floor() as u32).min(rect.w - 1);
            let y = rect.y + (((oy as f64 + 0.5) * sy).floor() as u32).min(rect.h - 1);
            *m.get_pixel(x, y)
        })
    });
    (out, out_mask)
}

/// Mirrors left to right.
pub fn hflip(image: &RgbImage, mask: Option<&GrayImage>) -> (RgbImage, Option<GrayImage>) {
    (
        image::imageops::flip_horizontal(image),
        mask.map(image::imageops::flip_horizontal),
    )
}

/// Rotates by `degrees` (counter-clockwise as seen, for positive angles) about the image centre,
/// keeping the size. Pixels from outside the source are 0 in the image (blended bilinearly at the
/// border) and [`IGNORE_LABEL`] in the mask.
pub fn rotate(
    image: &RgbImage,
    mask: Option<&GrayImage>,
    degrees: f64,
) -> (RgbImage, Option<GrayImage>) {
    let (w, h) = image.dimensions();
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    // Output pixel → source position. With y pointing down, a counter-clockwise turn by θ maps
    // (dx, dy) to (dx cos θ + dy sin θ, −dx sin θ + dy cos θ); this is its inverse.
    let source = |x: u32, y: u32| {
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos)
    };
    let inside = |x: i64, y: i64| x >= 0 && y >= 0 && x < w as i64 && y < h as i64;
    let out = RgbImage::from_fn(w, h, |x, y| {
        let (sx, sy) = source(x, y);
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let mut acc = [0.0f64; 3];
        for (ix, iy, wgt) in [
            (x0, y0, (1.0 - fx) * (1.0 - fy)),
            (x0 + 1.0, y0, fx * (1.0 - fy)),
            (x0, y0 + 1.0, (1.0 - fx) * fy),
            (x0 + 1.0, y0 + 1.0, fx * fy),
        ] {
            let (ix, iy) = (ix as i64, iy as i64);
            if wgt > 0.0 && inside(ix, iy) {
                let p = image.get_pixel(ix as u32, iy as u32).0;
                for k in 0..3 {
                    acc[k] += wgt * p[k] as f64;
                }
            }
        }
        Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
    });
    let out_mask = mask.map(|m| {
        GrayImage::from_fn(w, h, |x, y| {
            let (sx, sy) = source(x, y);
            let (ix, iy) = (sx.round() as i64, sy.round() as i64);
            if inside(ix, iy) {
                *m.get_pixel(ix as u32, iy as u32)
            } else {
                Luma([IGNORE_LABEL])
            }
        })
    });
    (out, out_mask)
}

/// Drawn colour-jitter factors and the order to apply them in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterFactors {
    /// Brightness factor (1 = unchanged).
    pub brightness: f64,
    /// Contrast factor (1 = unchanged).
    pub contrast: f64,
    /// Saturation factor (1 = unchanged).
    pub saturation: f64,
    /// Order of application: a permutation of 0 = brightness, 1 = contrast, 2 = saturation.
    pub order: [usize; 3],
}

impl JitterFactors {
    /// Draws the factors from the ranges of `j` and a random order.
    pub fn draw(rng: &mut Rng, j: &ColorJitter) -> Self {
        let mut factor = |v: f64| {
            if v > 0.0 {
                rng.uniform((1.0 - v).max(0.0), 1.0 + v)
            } else {
                1.0
            }
        };
        let brightness = factor(j.brightness);
        let contrast = factor(j.contrast);
        let saturation = factor(j.saturation);
        let mut order = [0, 1, 2];
        rng.shuffle(&mut order);
        Self {
            brightness,
            contrast,
            saturation,
            order,
        }
    }
}

fn gray(p: [f64; 3]) -> f64 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Applies colour jitter: brightness scales the pixels, contrast blends them with the image's
/// mean gray level, saturation blends each with its own gray level (ITU-R 601 luma); values are
/// clamped to [0, 255] after each step and rounded at the end.
pub fn color_jitter(image: &RgbImage, f: &JitterFactors) -> RgbImage {
    let mut px: Vec<[f64; 3]> = image.pixels().map(|p| p.0.map(|v| v as f64)).collect();
    let clamp = |v: f64| v.clamp(0.0, 255.0);
    for step in f.order {
        match step {
            0 => {
                for p in &mut px {
                    *p = p.map(|v| clamp(v * f.brightness));
                }
            }
            1 => {
                let mean = px.iter().map(|&p| gray(p)).sum::<f64>() / px.len().max(1) as f64;
                for p in &mut px {
                    *p = p.map(|v| clamp(f.contrast * v + (1.0 - f.contrast) * mean));
                }
            }
            _ => {
                for p in &mut px {
                    let g = gray(*p);
                    *p = p.map(|v| clamp(f.saturation * v + (1.0 - f.saturation) * g));
                }
            }
        }
    }
    let (w, h) = image.dimensions();
    let raw: Vec<u8> = px.iter().flat_map(|p| p.map(|v| v.round() as u8)).collect();
    RgbImage::from_raw(w, h, raw).unwrap_or_else(|| image.clone())
}

/// Augments item `index` of epoch `epoch`: draws every parameter from
/// [`sample_rng`]`(seed, epoch, index)` and applies the same geometry to the image and the mask.
/// A mask of another size than the image is an error.
pub fn augment(
    config: &AugmentConfig,
    image: &RgbImage,
    mask: Option<&GrayImage>,
    seed: u64,
    epoch: u64,
    index: u64,
) -> Result<(RgbImage, Option<GrayImage>), DataError> {
    config.validate()?;
    if let Some(m) = mask {
        if m.dimensions() != image.dimensions() {
            return Err(DataError::value(
                "mask",
                format!(
                    "mask is {}x{} but the image is {}x{}: expected the same size",
                    m.width(),
                    m.height(),
                    image.width(),
                    image.height()
                ),
            ));
        }
    }
    if image.width() == 0 || image.height() == 0 {
        return Err(DataError::value("image", "expected a non-empty image"));
    }
    let mut rng = sample_rng(seed, epoch, index);
    let (mut img, mut m) = (image.clone(), mask.cloned());
    if let Some(c) = &config.crop {
        let rect = crop_params(&mut rng, img.width(), img.height(), c.scale, c.ratio);
        (img, m) = resized_crop(&img, m.as_ref(), rect, c.size);
    }
    if config.hflip > 0.0 && rng.next_f64() < config.hflip {
        (img, m) = hflip(&img, m.as_ref());
    }
    if config.rotate_degrees > 0.0 {
        let angle = rng.uniform(-config.rotate_degrees, config.rotate_degrees);
        (img, m) = rotate(&img, m.as_ref(), angle);
    }
    let j = &config.jitter;
    if j.brightness > 0.0 || j.contrast > 0.0 || j.saturation > 0.0 {
        let f = JitterFactors::draw(&mut rng, j);
        img = color_jitter(&img, &f);
    }
    Ok((img, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PALETTE: [[u8; 3]; 4] = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]];

    /// A 64x48 mask of 16x16 blocks with classes 0..4, and an image whose colour encodes the
    /// class of each pixel.
    fn scene() -> (RgbImage, GrayImage) {
        let mask = GrayImage::from_fn(64, 48, |x, y| Luma([((x / 16 + 3 * (y / 16)) % 4) as u8]));
        let image = RgbImage::from_fn(64, 48, |x, y| {
            Rgb(PALETTE[mask.get_pixel(x, y).0[0] as usize])
        });
        (image, mask)
    }

    fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
    }

    /// Checks pixels whose mask is the same, and not IGNORE_LABEL, over a (2r+1)² window: the
    /// image there must show that class's colour. Returns how many pixels were checked.
    fn check_interior(image: &RgbImage, mask: &GrayImage, r: i64) -> usize {
        let (w, h) = (mask.width() as i64, mask.height() as i64);
        let mut checked = 0;
        for y in r..h - r {
            for x in r..w - r {
                let v = mask.get_pixel(x as u32, y as u32).0[0];
                if v == IGNORE_LABEL {
                    continue;
                }
                let uniform = (-r..=r).all(|dy| {
                    (-r..=r).all(|dx| mask.get_pixel((x + dx) as u32, (y + dy) as u32).0[0] == v)
                });
                if uniform {
                    let p = image.get_pixel(x as u32, y as u32).0;
                    assert!(
                        close(p, PALETTE[v as usize], 2),
                        "({x}, {y}): mask {v}, image {p:?}"
                    );
                    checked += 1;
                }
            }
        }
        checked
    }

    #[test]
    fn crop_boxes_respect_scale_ratio_and_bounds() {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let r = crop_params(&mut rng, 64, 48, (0.08, 1.0), (0.75, 4.0 / 3.0));
            assert!(
                r.x + r.w <= 64 && r.y + r.h <= 48 && r.w > 0 && r.h > 0,
                "{r:?}"
            );
            let frac = (r.w * r.h) as f64 / (64.0 * 48.0);
            // Rounding the sides moves area and ratio slightly.
            assert!((0.06..=1.0).contains(&frac), "{r:?} {frac}");
            let ratio = r.w as f64 / r.h as f64;
            assert!((0.6..=1.5).contains(&ratio), "{r:?} {ratio}");
        }
        // No box of ratio 3/4..4/3 with area >= 90% fits in 200x10: the centred fallback.
        let r = crop_params(&mut rng, 200, 10, (0.9, 1.0), (0.75, 4.0 / 3.0));
        assert_eq!(
            r,
            Rect {
                x: 93,
                y: 0,
                w: 13,
                h: 10
            }
        );
        let r = crop_params(&mut rng, 10, 200, (0.9, 1.0), (0.75, 4.0 / 3.0));
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 93,
                w: 10,
                h: 13
            }
        );
    }

    #[test]
    fn a_crop_at_its_own_size_is_an_exact_copy() {
        let (image, mask) = scene();
        let rect = Rect {
            x: 5,
            y: 9,
            w: 30,
            h: 20,
        };
        let (i, m) = resized_crop(&image, Some(&mask), rect, (30, 20));
        let m = m.unwrap();
        for y in 0..20 {
            for x in 0..30 {
                assert_eq!(i.get_pixel(x, y), image.get_pixel(x + 5, y + 9));
                assert_eq!(m.get_pixel(x, y), mask.get_pixel(x + 5, y + 9));
            }
        }
        // Doubling: each source pixel becomes a 2x2 block in the mask, whose centre pixels'
        // colours match in the image.
        let (i, m) = resized_crop(&image, Some(&mask), rect, (60, 40));
        let m = m.unwrap();
        assert_eq!(m.get_pixel(21, 13), mask.get_pixel(5 + 10, 9 + 6));
        assert!(check_interior(&i, &m, 1) > 1500);
    }

    #[test]
    fn flips_and_quarter_turns_follow_their_definitions() {
        let (image, mask) = scene();
        let (i, m) = hflip(&image, Some(&mask));
        let m = m.unwrap();
        for (x, y) in [(0, 0), (17, 3), (63, 47)] {
            assert_eq!(i.get_pixel(x, y), image.get_pixel(63 - x, y));
            assert_eq!(m.get_pixel(x, y), mask.get_pixel(63 - x, y));
        }
        // A square image turned 90° counter-clockwise: out(x, y) = in(W − 1 − y, x).
        let sq_mask = GrayImage::from_fn(32, 32, |x, y| Luma([((x / 8 + 2 * (y / 8)) % 4) as u8]));
        let sq = RgbImage::from_fn(32, 32, |x, y| {
            Rgb(PALETTE[sq_mask.get_pixel(x, y).0[0] as usize])
        });
        let (i, m) = rotate(&sq, Some(&sq_mask), 90.0);
        let m = m.unwrap();
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(
                    m.get_pixel(x, y),
                    sq_mask.get_pixel(31 - y, x),
                    "({x}, {y})"
                );
                assert_eq!(i.get_pixel(x, y), sq.get_pixel(31 - y, x), "({x}, {y})");
            }
        }
    }

    #[test]
    fn small_rotations_fill_with_zero_and_ignore() {
        let (image, mask) = scene();
        let (i, m) = rotate(&image, Some(&mask), 12.0);
        let m = m.unwrap();
        // Corners come from outside the source.
        assert_eq!(m.get_pixel(0, 0).0[0], IGNORE_LABEL);
        assert_eq!(i.get_pixel(0, 0).0, [0, 0, 0]);
        // The centre stays put.
        assert_eq!(m.get_pixel(32, 24), mask.get_pixel(32, 24));
        assert!(check_interior(&i, &m, 2) > 1000);
    }

    #[test]
    fn jitter_matches_hand_values() {
        let img = RgbImage::from_raw(2, 1, vec![100, 50, 0, 0, 50, 100]).unwrap();
        let only = |b, c, s, order| JitterFactors {
            brightness: b,
            contrast: c,
            saturation: s,
            order,
        };
        let out = color_jitter(&img, &only(1.5, 1.0, 1.0, [0, 1, 2]));
        assert_eq!(out.into_raw(), [150, 75, 0, 0, 75, 150]);
        // Grays: 0.299·100 + 0.587·50 = 59.25 and 0.587·50 + 0.114·100 = 40.75; mean 50.
        let out = color_jitter(&img, &only(1.0, 0.5, 1.0, [0, 1, 2]));
        assert_eq!(out.into_raw(), [75, 50, 25, 25, 50, 75]);
        let out = color_jitter(&img, &only(1.0, 1.0, 0.0, [2, 1, 0]));
        assert_eq!(out.into_raw(), [59, 59, 59, 41, 41, 41]);
        // Brightness clamps at 255.
        let out = color_jitter(&img, &only(3.0, 1.0, 1.0, [1, 0, 2]));
        assert_eq!(out.into_raw(), [255, 150, 0, 0, 150, 255]);
    }

    fn full() -> AugmentConfig {
        AugmentConfig {
            crop: Some(ResizedCrop {
                scale: (0.25, 1.0),
                ..ResizedCrop::new((48, 40))
            }),
            hflip: 0.5,
            rotate_degrees: 15.0,
            jitter: ColorJitter::default(),
        }
    }

    #[test]
    fn masks_stay_aligned_and_keep_their_values() {
        let (image, mask) = scene();
        let cfg = full();
        let mut checked = 0;
        for index in 0..12 {
            let (i, m) = augment(&cfg, &image, Some(&mask), 7, 2, index).unwrap();
            let m = m.unwrap();
            assert_eq!((i.dimensions(), m.dimensions()), ((48, 40), (48, 40)));
            assert!(m.pixels().all(|p| p.0[0] < 4 || p.0[0] == IGNORE_LABEL));
            checked += check_interior(&i, &m, 3);
        }
        assert!(checked > 3000, "only {checked} pixels checked");
    }

    #[test]
    fn the_same_seed_epoch_and_index_give_the_same_result() {
        let (image, mask) = scene();
        let mut cfg = full();
        cfg.jitter = ColorJitter {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
        };
        let a = augment(&cfg, &image, Some(&mask), 1, 0, 5).unwrap();
        assert_eq!(a, augment(&cfg, &image, Some(&mask), 1, 0, 5).unwrap());
        assert_ne!(a, augment(&cfg, &image, Some(&mask), 1, 1, 5).unwrap());
        assert_ne!(a, augment(&cfg, &image, Some(&mask), 1, 0, 6).unwrap());
        assert_ne!(a, augment(&cfg, &image, Some(&mask), 2, 0, 5).unwrap());
        // Jitter leaves the mask alone: same geometry with and without it.
        let (_, plain) = augment(&full(), &image, Some(&mask), 1, 0, 5).unwrap();
        assert_eq!(a.1, plain);
    }

    #[test]
    fn bad_options_and_sizes_are_named() {
        let (image, _) = scene();
        let mut cfg = full();
        cfg.hflip = 1.5;
        let e = augment(&cfg, &image, None, 0, 0, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hflip"), "{e}");
        let e = augment(&full(), &image, Some(&GrayImage::new(3, 3)), 0, 0, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3x3") && e.contains("64x48"), "{e}");
        let mut cfg = full();
        cfg.crop.as_mut().unwrap().scale = (0.0, 1.0);
        assert!(cfg.validate().is_err());
    }
}
