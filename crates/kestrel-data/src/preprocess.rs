//! Turning images into normalised CHW float arrays.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Per-channel normalisation `(x / 255 − mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Channel means, on the [0, 1] scale.
    pub mean: [f32; 3],
    /// Channel standard deviations, on the [0, 1] scale.
    pub std: [f32; 3],
}

impl Normalize {
    /// The ImageNet statistics torchvision uses.
    pub const IMAGENET: Normalize = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// Checks that every mean is finite and every standard deviation finite and positive (the
    /// values divide by it); the message names the field and the channel.
    pub fn check(&self) -> Result<(), String> {
        for c in 0..3 {
            if !self.mean[c].is_finite() {
                return Err(format!(
                    "mean[{c}] is {}: expected a finite number",
                    self.mean[c]
                ));
            }
            if !(self.std[c].is_finite() && self.std[c] > 0.0) {
                return Err(format!(
                    "std[{c}] is {}: expected a finite number > 0",
                    self.std[c]
                ));
            }
        }
        Ok(())
    }
}

/// The most pixels of the intermediate image of a one-step [`push_chw`] resize (16 bytes each).
const MAX_INTERMEDIATE_PIXELS: u64 = 1 << 24;

/// Resizes `img` to `width × height` (bilinear) when it differs, and appends its normalised CHW
/// values to `out`.
///
/// The `image` crate filters columns first, into an `f32` RGBA image of the input's width and the
/// output's height: for a very wide input (a 1,000,000 × 1 image to 224 rows: 3.6 GB) the width is
/// resized first, then the height (rounding to bytes between the two steps). Every image whose
/// intermediate stays under 2^24 pixels (any up to 8192 wide at 2048 px) takes the one step.
pub fn push_chw(img: &RgbImage, width: u32, height: u32, norm: &Normalize, out: &mut Vec<f32>) {
    use image::imageops::{resize, FilterType::Triangle};
    let resized;
    let img = if img.dimensions() != (width, height) {
        resized = if u64::from(img.width()) * u64::from(height) > MAX_INTERMEDIATE_PIXELS {
            resize(
                &resize(img, width, img.height(), Triangle),
                width,
                height,
                Triangle,
            )
        } else {
            resize(img, width, height, Triangle)
        };
        &resized
    } else {
        img
    };
    let plane = (width * height) as usize;
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * norm.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| norm.mean[c] / norm.std[c]);
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            dst[c * plane + i] = px.0[c] as f32 * scale[c] - shift[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_statistics_are_checked() {
        assert_eq!(Normalize::IMAGENET.check(), Ok(()));
        let zero = Normalize {
            std: [0.2, 0.0, 0.2],
            ..Normalize::IMAGENET
        };
        assert_eq!(
            zero.check().unwrap_err(),
            "std[1] is 0: expected a finite number > 0"
        );
        let nan = Normalize {
            mean: [0.5, 0.5, f32::NAN],
            ..Normalize::IMAGENET
        };
        assert!(nan.check().unwrap_err().starts_with("mean[2] is NaN"));
    }

    #[test]
    fn very_wide_images_are_narrowed_first() {
        // 200,000 × 2 pixels to 224 × 224: one step would filter into 200,000 × 224 floats × 4.
        let wide = RgbImage::from_fn(200_000, 2, |x, _| image::Rgb([(x / 1000) as u8, 60, 90]));
        let mut out = Vec::new();
        let norm = Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        push_chw(&wide, 224, 224, &norm, &mut out);
        assert_eq!(out.len(), 3 * 224 * 224);
        // Columns follow the horizontal ramp (0 to 199 over the width); rows are all alike.
        let px = |c: usize, y: usize, x: usize| out[c * 224 * 224 + y * 224 + x] * 255.0;
        assert!((px(0, 0, 0) - 0.0).abs() <= 1.0 && (px(0, 0, 223) - 199.0).abs() <= 1.0);
        assert!((0..224).all(|y| px(0, y, 100) == px(0, 0, 100) && px(1, y, 7).round() == 60.0));
    }

    #[test]
    fn normalises_into_planes() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([255, 0, 51]));
        img.put_pixel(1, 0, image::Rgb([0, 255, 102]));
        let norm = Normalize {
            mean: [0.5, 0.5, 0.2],
            std: [0.5, 0.25, 0.1],
        };
        let mut out = vec![9.0];
        push_chw(&img, 2, 1, &norm, &mut out);
        let want = [9.0, 1.0, -1.0, -2.0, 2.0, 0.0, 2.0];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{out:?}");
        }
    }
}
