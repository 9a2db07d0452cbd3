//! torchvision's ImageNet evaluation preprocessing on PIL images:
//!
//! ```python
//! Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])
//! ```
//!
//! - `Resize(256)`: the shorter side becomes 256 and the longer `int(256 · long / short)`
//!   (truncated), with Pillow's antialiased bilinear filter ([`crate::pil_resize`]); upscaling
//!   when the shorter side is below 256;
//! - `CenterCrop(224)`: the crop starts at `int(round((size − 224) / 2))` on each axis, Python's
//!   `round` rounding halves to even; a crop larger than the image pads with zeros first, as
//!   torchvision does;
//! - `ToTensor` + `Normalize`: `(v / 255 − mean) / std` per channel, in f32, CHW.
//!
//! Pixels match torchvision exactly for the same decoded image; JPEG decoders differ slightly
//! between Pillow and the `image` crate, so JPEG inputs may differ by a level or so.

use crate::error::DataError;
use crate::pil_resize::resize_bilinear_region;
use crate::preprocess::Normalize;
use image::RgbImage;

/// A torchvision-style evaluation transform: resize the shorter side, centre-crop, normalise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CenterCropEval {
    /// Target of the shorter side (`Resize(resize)`).
    pub resize: u32,
    /// Side of the square centre crop (`CenterCrop(crop)`).
    pub crop: u32,
    /// Normalisation after scaling to [0, 1].
    pub normalize: Normalize,
}

impl CenterCropEval {
    /// torchvision's ImageNet evaluation transform: 256, 224, ImageNet mean and std.
    pub const IMAGENET: CenterCropEval = CenterCropEval {
        resize: 256,
        crop: 224,
        normalize: Normalize::IMAGENET,
    };

    /// The cropped RGB image, before scaling and normalisation (`CenterCrop(Resize(img))`).
    /// Only the pixels the crop keeps are resampled, so a very elongated image (whose resize
    /// would be huge) costs what its crop costs.
    pub fn crop_image(&self, img: &RgbImage) -> Result<RgbImage, DataError> {
        let (w, h) = resized_size(img.width(), img.height(), self.resize)?;
        let kept =
            resize_bilinear_region(img, w, h, kept_span(w, self.crop), kept_span(h, self.crop))?;
        // Cropping what was kept gives the same pixels (and the same zero padding when the
        // crop is larger than the resized image, which is then kept whole).
        center_crop(&kept, self.crop, self.crop)
    }

    /// Appends the transformed image, `3 × crop × crop` values in CHW order, to `out`.
    pub fn push_chw(&self, img: &RgbImage, out: &mut Vec<f32>) -> Result<(), DataError> {
        let cropped = self.crop_image(img)?;
        push_normalized_chw(&cropped, &self.normalize, out);
        Ok(())
    }
}

/// The size torchvision's `Resize(shorter)` gives a `width × height` image: the shorter side
/// becomes `shorter`, the longer `int(shorter · long / short)`. A zero size is an error.
pub fn resized_size(width: u32, height: u32, shorter: u32) -> Result<(u32, u32), DataError> {
    if width == 0 || height == 0 {
        return Err(DataError::value(
            "image",
            format!("cannot resize an empty {width}×{height} image"),
        ));
    }
    if shorter == 0 {
        return Err(DataError::value(
            "resize",
            "expected a positive size, got 0",
        ));
    }
    let (short, long) = (width.min(height), width.max(height));
    // Python: int(shorter * long / short), a correctly rounded double division, truncated.
    let new_long = (f64::from(shorter) * f64::from(long) / f64::from(short)) as u64;
    let new_long = u32::try_from(new_long).map_err(|_| {
        DataError::value(
            "image",
            format!("a {width}×{height} image resized to {shorter} is too large"),
        )
    })?;
    Ok(if width <= height {
        (shorter, new_long)
    } else {
        (new_long, shorter)
    })
}

/// torchvision's crop start on an axis of `size` pixels for a crop of `crop`: `round((size −
/// crop) / 2)` with halves to even; negative (zero padding before the image) when the crop is
/// larger, `−((crop − size) / 2)` as torchvision pads.
pub fn crop_offset(size: u32, crop: u32) -> i64 {
    let (size, crop) = (i64::from(size), i64::from(crop));
    if crop > size {
        return -((crop - size) / 2);
    }
    let d = size - crop;
    // d / 2 is an integer or a half; a half rounds to the even neighbour.
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// The pixels of an axis of `size` that a centre crop of `crop` keeps (all of them when the crop
/// is larger; the whole axis, to be refused by [`center_crop`], when it is zero).
fn kept_span(size: u32, crop: u32) -> std::ops::Range<u32> {
    if crop == 0 || crop >= size {
        return 0..size;
    }
    let start = crop_offset(size, crop) as u32;
    start..start + crop
}

/// torchvision's `CenterCrop((height, width))`; pixels outside the image (a crop larger than
/// the image) are zero. A zero crop size is an error.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage, DataError> {
    if width == 0 || height == 0 {
        return Err(DataError::value(
            "crop",
            format!("expected a positive crop size, got {width}×{height}"),
        ));
    }
    let (x0, y0) = (
        crop_offset(img.width(), width),
        crop_offset(img.height(), height),
    );
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (x0 + i64::from(x), y0 + i64::from(y));
        if (0..iw).contains(&sx) && (0..ih).contains(&sy) {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    }))
}

/// Appends `(v / 255 − mean) / std` per channel in CHW order, computed in f32 in the order
/// torchvision's `ToTensor` and `Normalize` compute it.
pub fn push_normalized_chw(img: &RgbImage, norm: &Normalize, out: &mut Vec<f32>) {
    let plane = img.width() as usize * img.height() as usize;
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            dst[c * plane + i] = (f32::from(px.0[c]) / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_sizes_follow_torchvision() {
        // torchvision.transforms.functional._compute_resized_output_size((h, w), [256]).
        assert_eq!(resized_size(300, 200, 256).unwrap(), (384, 256));
        assert_eq!(resized_size(180, 260, 256).unwrap(), (256, 369));
        assert_eq!(resized_size(566, 390, 256).unwrap(), (371, 256));
        assert_eq!(resized_size(640, 480, 256).unwrap(), (341, 256));
        assert_eq!(resized_size(500, 500, 256).unwrap(), (256, 256));
        assert_eq!(resized_size(1, 1000, 256).unwrap(), (256, 256000));
        assert!(resized_size(0, 5, 256).is_err());
        assert!(resized_size(5, 5, 0).is_err());
        assert!(resized_size(1, u32::MAX, 256).is_err());
    }

    #[test]
    fn crop_offsets_round_halves_to_even_as_python() {
        // int(round((size - 224) / 2.0)) in Python 3.
        for (size, want) in [
            (224, 0),
            (225, 0),
            (226, 1),
            (227, 2),
            (229, 2),
            (231, 4),
            (256, 16),
            (369, 72),
            (371, 74),
        ] {
            assert_eq!(crop_offset(size, 224), want, "size {size}");
        }
        // Larger crops pad (crop − size) // 2 before the image.
        assert_eq!(crop_offset(200, 224), -12);
        assert_eq!(crop_offset(201, 224), -11);
    }

    #[test]
    fn center_crop_takes_the_middle_and_pads_with_zeros() {
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let c = center_crop(&img, 3, 2).unwrap();
        // round(1.0) = 1 on both axes.
        assert_eq!(c.get_pixel(0, 0).0, [1, 1, 9]);
        assert_eq!(c.get_pixel(2, 1).0, [3, 2, 9]);
        let c = center_crop(&img, 7, 4).unwrap();
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 3).0, [0, 3, 9]);
        assert_eq!(c.get_pixel(6, 0).0, [0, 0, 0]);
        assert!(center_crop(&img, 0, 2).is_err());
    }

    #[test]
    fn crops_resample_only_what_they_keep() {
        // The same pixels as resizing everything, then cropping.
        let img = RgbImage::from_fn(301, 257, |x, y| {
            image::Rgb([(x * 3 + y) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        for t in [
            CenterCropEval::IMAGENET,
            CenterCropEval {
                resize: 200,
                crop: 230,
                ..CenterCropEval::IMAGENET
            },
        ] {
            let (w, h) = resized_size(img.width(), img.height(), t.resize).unwrap();
            let whole = crate::pil_resize::resize_bilinear(&img, w, h).unwrap();
            assert_eq!(
                t.crop_image(&img).unwrap(),
                center_crop(&whole, t.crop, t.crop).unwrap()
            );
        }
        // A 1 × 1,000,000 image resizes to 256 × 256,000,000 (196 GB of RGB); the crop alone
        // is computed (the CLI's hostile-file tests run this under a 1 GiB address-space limit).
        let thin = RgbImage::from_fn(1, 1_000_000, |_, y| image::Rgb([(y % 251) as u8, 7, 9]));
        let crop = CenterCropEval::IMAGENET.crop_image(&thin).unwrap();
        assert_eq!(crop.dimensions(), (224, 224));
        assert!(crop.pixels().all(|p| p.0[1] == 7 && p.0[2] == 9));
    }

    #[test]
    fn normalises_like_to_tensor_then_normalize() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 128]));
        let mut out = vec![];
        CenterCropEval {
            resize: 1,
            crop: 1,
            normalize: Normalize::IMAGENET,
        }
        .push_chw(&img, &mut out)
        .unwrap();
        let want = [
            (1.0 - 0.485) / 0.229,
            (0.0 - 0.456) / 0.224,
            (128.0 / 255.0 - 0.406) / 0.225,
        ];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }
}
