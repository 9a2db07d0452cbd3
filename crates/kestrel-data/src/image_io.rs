//! Reading image files, with errors that name the file.

use crate::error::DataError;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// The most pixels kestrel decodes from one image file (8192 × 8192): a small compressed file can
/// declare a huge image, and it is refused from its header, before anything is allocated.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// The most bytes a decoder may allocate (the decoded pixels included): a 16-bit RGB image of
/// [`MAX_IMAGE_PIXELS`] fits.
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// The most pixels a PNG file may declare per byte of file: deflate packs at most 1032 bytes into
/// one, and a 1-bit image holds 8 pixels a byte.
const PNG_PIXELS_PER_FILE_BYTE: u64 = 8 * 1032;

/// Refuses a `width × height` image over [`MAX_IMAGE_PIXELS`], or, for a PNG (`png_bytes`: the
/// file's size), more pixels than its compressed data can hold, naming the file and the limit.
fn check_pixels(
    path: &Path,
    width: u32,
    height: u32,
    png_bytes: Option<usize>,
) -> Result<(), DataError> {
    let pixels = u64::from(width) * u64::from(height);
    let bad = |reason: String| {
        Err(DataError::Image {
            path: path.to_path_buf(),
            reason,
        })
    };
    if pixels > MAX_IMAGE_PIXELS {
        return bad(format!(
            "a {width}×{height} image ({pixels} pixels) is larger than kestrel decodes (at \
             most {MAX_IMAGE_PIXELS} pixels, e.g. 8192×8192): downscale it first"
        ));
    }
    if let Some(len) = png_bytes {
        let most = (len as u64).saturating_mul(PNG_PIXELS_PER_FILE_BYTE);
        if pixels > most {
            return bad(format!(
                "a PNG of {len} bytes declares {width}×{height} pixels, more than its data can \
                 hold (at most {most}: deflate packs at most 1032 bytes into one, 8 pixels a \
                 byte): a corrupt or forged header"
            ));
        }
    }
    Ok(())
}

/// Decodes `path` (png, jpg, bmp) into RGB; grayscale and alpha are converted. Images over
/// [`MAX_IMAGE_PIXELS`] are refused from their header.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let not_an_image =
        |e: image::ImageError| bad(format!("not a decodable png, jpg or bmp image ({e})"));
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    reader.limits(limits);
    let png = (reader.format() == Some(image::ImageFormat::Png)).then_some(bytes.len());
    let decoder = reader.into_decoder().map_err(not_an_image)?;
    let (width, height) = decoder.dimensions();
    check_pixels(path, width, height, png)?;
    let img = DynamicImage::from_decoder(decoder).map_err(not_an_image)?;
    Ok(img.to_rgb8())
}

/// Width and height of an image file, from its header only.
pub fn image_dimensions(path: &Path) -> Result<(u32, u32), DataError> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .into_dimensions()
        .map_err(|e| bad(format!("not a readable png, jpg or bmp image ({e})")))
}

/// Reads a segmentation mask: a PNG with one 8-bit channel, either grayscale or palette-indexed
/// (palette indices are read as they are, as Pascal VOC stores its classes). Anything else (RGB,
/// 16-bit, alpha, not a PNG) is an error naming the file and what it holds.
pub fn load_mask(path: &Path) -> Result<GrayImage, DataError> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| bad(format!("expected a PNG mask ({e})")))?;
    let header = reader.info();
    check_pixels(path, header.width, header.height, Some(bytes.len()))?;
    let (color, depth) = reader.output_color_type();
    let single = matches!(color, png::ColorType::Grayscale | png::ColorType::Indexed);
    if !single || depth != png::BitDepth::Eight {
        return Err(bad(format!(
            "a mask must be a single-channel 8-bit PNG (grayscale or palette), got {color:?} with {} bits per sample",
            depth as u8
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("image too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("corrupt PNG mask ({e})")))?;
    let (w, h) = (info.width, info.height);
    let mut out = Vec::with_capacity(w as usize * h as usize);
    for row in buf.chunks(info.line_size).take(h as usize) {
        out.extend_from_slice(&row[..w as usize]);
    }
    GrayImage::from_raw(w, h, out).ok_or_else(|| bad("truncated PNG mask".into()))
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
    fn huge_images_are_refused_from_their_header() {
        // A PNG header declaring 100000 × 100000 pixels (10^10): a few hundred bytes of file.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bomb.png");
        let mut file = Vec::new();
        let mut enc = png::Encoder::new(&mut file, 100_000, 100_000);
        enc.set_color(png::ColorType::Grayscale);
        // The header and the start of the image data (zlib-compressed zero rows): the decoder
        // needs to see data before it reports the size.
        let mut writer = enc.write_header().unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &vec![0u8; 1 << 20]).unwrap();
        writer
            .write_chunk(png::chunk::IDAT, &z.finish().unwrap())
            .unwrap();
        drop(writer);
        std::fs::write(&p, &file).unwrap();
        for e in [load_rgb(&p).unwrap_err(), load_mask(&p).unwrap_err()] {
            let e = e.to_string();
            assert!(
                e.contains("bomb.png") && e.contains("100000×100000") && e.contains("67108864"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_png_cannot_declare_more_pixels_than_its_data_can_hold() {
        // 8000 × 8000 (under MAX_IMAGE_PIXELS) from a file of under 1 KB: at most ~8 M pixels.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.png");
        let mut file = Vec::new();
        let mut enc = png::Encoder::new(&mut file, 8000, 8000);
        enc.set_color(png::ColorType::Grayscale);
        let mut writer = enc.write_header().unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &[0u8; 8001]).unwrap();
        writer
            .write_chunk(png::chunk::IDAT, &z.finish().unwrap())
            .unwrap();
        drop(writer);
        assert!(file.len() < 1024, "{}", file.len());
        std::fs::write(&p, &file).unwrap();
        for e in [load_rgb(&p).unwrap_err(), load_mask(&p).unwrap_err()] {
            let e = e.to_string();
            assert!(
                e.contains("small.png") && e.contains("8000×8000") && e.contains("1032"),
                "{e}"
            );
        }
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

    #[test]
    fn masks_must_be_single_channel_8_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        let mut m = GrayImage::new(3, 2);
        m.put_pixel(2, 1, image::Luma([255]));
        m.put_pixel(0, 1, image::Luma([7]));
        m.save(&p).unwrap();
        let back = load_mask(&p).unwrap();
        assert_eq!(back, m);
        assert_eq!(image_dimensions(&p).unwrap(), (3, 2));

        let rgb = dir.path().join("rgb.png");
        RgbImage::new(3, 2).save(&rgb).unwrap();
        let e = load_mask(&rgb).unwrap_err().to_string();
        assert!(
            e.contains("rgb.png") && e.contains("single-channel 8-bit"),
            "{e}"
        );

        let wide = dir.path().join("sixteen.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::new(2, 2)
            .save(&wide)
            .unwrap();
        let e = load_mask(&wide).unwrap_err().to_string();
        assert!(e.contains("sixteen.png") && e.contains("16 bits"), "{e}");
    }

    #[test]
    fn palette_masks_give_their_indices() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pal.png");
        let file = std::fs::File::create(&p).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 2, 2);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        let mut palette = vec![0u8; 256 * 3];
        palette[3..6].copy_from_slice(&[200, 10, 10]);
        enc.set_palette(palette);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 1, 255, 1]).unwrap();
        w.finish().unwrap();
        let m = load_mask(&p).unwrap();
        assert_eq!(m.into_raw(), vec![0, 1, 255, 1]);
    }
}
