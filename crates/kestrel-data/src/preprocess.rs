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
}

/// Resizes `img` to `width × height` (bilinear) when it differs, and appends its normalised CHW
/// values to `out`.
pub fn push_chw(img: &RgbImage, width: u32, height: u32, norm: &Normalize, out: &mut Vec<f32>) {
    let resized;
    let img = if img.dimensions() != (width, height) {
        resized =
            image::imageops::resize(img, width, height, image::imageops::FilterType::Triangle);
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
