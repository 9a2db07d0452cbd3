//! Reading image files, with errors that name the file.

use crate::error::DataError;
use image::RgbImage;
use std::path::Path;

/// Decodes `path` (png, jpg, bmp) into RGB; grayscale and alpha are converted.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::Image {
        path: path.to_path_buf(),
        reason: format!("not a decodable png, jpg or bmp image ({e})"),
    })?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.png");
        // A PNG signature followed by garbage.
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage").unwrap();
        let e = load_rgb(&bad).unwrap_err().to_string();
        assert!(e.contains("broken.png"), "{e}");
        let e = load_rgb(&dir.path().join("missing.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png"), "{e}");
    }

    #[test]
    fn gray_images_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        image::GrayImage::from_pixel(3, 2, image::Luma([77]))
            .save(&p)
            .unwrap();
        let img = load_rgb(&p).unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(1, 1).0, [77, 77, 77]);
    }
}
