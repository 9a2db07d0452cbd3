//! `idx:PATH`: MNIST-style IDX files, as MNIST, Fashion-MNIST and KMNIST ship them.
//!
//! `PATH` holds `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`, and optionally the test
//! pair `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`; each may be gzipped (`.gz`), and
//! the `.idx3-ubyte` spelling some archives unpack to is accepted too. Items `0..n_train` are the
//! training files' images, the test files' images follow; [`Dataset::official_test`] returns the
//! latter so that splits keep them as the test set.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte (0x08: unsigned bytes), the
//! number of dimensions, one `u32` per dimension — then the values. Images are grayscale, lifted
//! to RGB with three equal channels. Classes are named `"0"`, `"1"`, … up to the largest training
//! label.

use crate::dataset::{Dataset, Item};
use crate::error::DataError;
use image::RgbImage;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One decoded IDX file: its dimensions and values.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// Size of each dimension.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// The most a gzip file inflates to per byte of its own. Deflate's densest code is a 258-byte
/// match in 2 bits (a 1-bit length and a 1-bit distance code), 1032 bytes per input byte; block
/// headers, the gzip header and its trailer only add input bytes, so a gzip file of `M` bytes
/// decodes to at most `GZIP_MAX_RATIO * M` bytes.
pub const GZIP_MAX_RATIO: u64 = 1032;

/// What an IDX header says: the dimensions, the header's length and the file's whole length.
struct IdxHeader {
    dims: Vec<usize>,
    header_len: usize,
    total: usize,
}

/// The header `4 + 4 * want_dims` bytes long: parses the start of `bytes` (which may hold more).
fn parse_header(bytes: &[u8], want_dims: usize, path: &Path) -> Result<IdxHeader, DataError> {
    let bad = |reason: String| DataError::format(path, reason);
    if bytes.len() < 4 {
        return Err(bad(format!(
            "truncated: expected at least a 4-byte IDX header, got {} bytes",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: expected an IDX file starting with 0000",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "value type 0x{:02x}: expected 0x08 (unsigned bytes)",
            bytes[2]
        )));
    }
    let ndims = bytes[3] as usize;
    if ndims != want_dims {
        return Err(bad(format!(
            "{ndims} dimensions: expected {want_dims} ({})",
            if want_dims == 3 {
                "images: count, rows, columns"
            } else {
                "labels: count"
            }
        )));
    }
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(bad(format!(
            "truncated: expected at least {header_len} header bytes, got {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_add(header_len))
        .ok_or_else(|| bad(format!("dimensions {dims:?} are too large")))?;
    Ok(IdxHeader {
        dims,
        header_len,
        total,
    })
}

/// The error for `got` bytes where the header of `path` declares `total`.
fn length_error(path: &Path, h: &IdxHeader, got: usize, unpacked: &str) -> DataError {
    DataError::format(
        path,
        format!(
            "{}: expected {} bytes{unpacked} for dimensions {:?}, got {got}",
            if got < h.total {
                "truncated"
            } else {
                "trailing data"
            },
            h.total,
            h.dims
        ),
    )
}

/// Parses the bytes of an IDX file of unsigned bytes with `want_dims` dimensions; `path` names it
/// in errors.
pub fn parse_idx(bytes: &[u8], want_dims: usize, path: &Path) -> Result<IdxArray, DataError> {
    let h = parse_header(bytes, want_dims, path)?;
    if bytes.len() != h.total {
        return Err(length_error(path, &h, bytes.len(), ""));
    }
    Ok(IdxArray {
        data: bytes[h.header_len..].to_vec(),
        dims: h.dims,
    })
}

/// Decodes the bytes `raw` of the IDX file `path`: gzipped when `gzipped`, else as
/// [`parse_idx`]. A gzipped file is inflated only as far as its header says: the header is read
/// first, a declared size beyond [`GZIP_MAX_RATIO`] times the file's size is refused before
/// anything is inflated, and at most the declared size (plus one byte, to tell trailing data)
/// is ever inflated.
pub fn decode_idx(
    raw: &[u8],
    gzipped: bool,
    want_dims: usize,
    path: &Path,
) -> Result<IdxArray, DataError> {
    if !gzipped {
        return parse_idx(raw, want_dims, path);
    }
    let gzip_error =
        |e: std::io::Error| DataError::format(path, format!("not a complete gzip file ({e})"));
    let mut decoder = flate2::read::GzDecoder::new(raw);
    let mut head = Vec::new();
    (&mut decoder)
        .take(4)
        .read_to_end(&mut head)
        .map_err(gzip_error)?;
    if let [0, 0, 0x08, n] = head[..] {
        // Only the dimensions this header announces; a wrong count is refused below.
        (&mut decoder)
            .take(4 * u64::from(n).min(want_dims as u64))
            .read_to_end(&mut head)
            .map_err(gzip_error)?;
    }
    let h = parse_header(&head, want_dims, path)?;
    let limit = GZIP_MAX_RATIO.saturating_mul(raw.len() as u64);
    if h.total as u64 > limit {
        return Err(DataError::format(
            path,
            format!(
                "the header declares dimensions {:?}, {} bytes unpacked, more than a gzip file \
                 of {} bytes can hold: at most {limit} bytes (deflate's maximum ratio is \
                 {GZIP_MAX_RATIO}:1)",
                h.dims,
                h.total,
                raw.len()
            ),
        ));
    }
    let body = h.total - h.header_len;
    let mut data = Vec::new();
    decoder
        .take(body as u64 + 1)
        .read_to_end(&mut data)
        .map_err(gzip_error)?;
    if data.len() != body {
        return Err(length_error(
            path,
            &h,
            h.header_len + data.len(),
            " unpacked",
        ));
    }
    Ok(IdxArray { dims: h.dims, data })
}

/// Reads and decodes the IDX file `path`, gzipped when its name ends in `.gz` (see
/// [`decode_idx`]).
fn read_idx(path: &Path, want_dims: usize) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let gzipped = path.extension().is_some_and(|e| e == "gz");
    decode_idx(&raw, gzipped, want_dims, path)
}

/// The file of `prefix` (`train` or `t10k`) and `kind` (`images-idx3` or `labels-idx1`) in `dir`,
/// if one of its accepted spellings exists.
fn find_file(dir: &Path, prefix: &str, kind: &str) -> Result<Option<PathBuf>, DataError> {
    let (what, dims) = kind.split_once('-').unwrap_or((kind, ""));
    let mut found = Vec::new();
    for sep in ['-', '.'] {
        for gz in ["", ".gz"] {
            let p = dir.join(format!("{prefix}-{what}{sep}{dims}-ubyte{gz}"));
            if p.is_file() {
                found.push(p);
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(DataError::format(
            &found[1],
            format!(
                "both {} and this file exist: expected one of them",
                found[0].display()
            ),
        )),
    }
}

/// One images/labels pair.
struct Part {
    images: IdxArray,
    labels: Vec<u8>,
    labels_path: PathBuf,
}

fn read_part(images_path: &Path, labels_path: &Path) -> Result<Part, DataError> {
    let images = read_idx(images_path, 3)?;
    let labels = read_idx(labels_path, 1)?.data;
    if images.dims[0] != labels.len() {
        return Err(DataError::format(
            labels_path,
            format!(
                "{} labels but {} holds {} images: expected one label per image",
                labels.len(),
                images_path.display(),
                images.dims[0]
            ),
        ));
    }
    if images.dims[1] == 0 || images.dims[2] == 0 {
        return Err(DataError::format(
            images_path,
            format!(
                "images of {}x{} pixels: expected at least 1x1",
                images.dims[2], images.dims[1]
            ),
        ));
    }
    Ok(Part {
        images,
        labels,
        labels_path: labels_path.to_path_buf(),
    })
}

/// An IDX dataset held in memory.
#[derive(Clone, Debug)]
pub struct IdxDataset {
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    n_train: usize,
    classes: usize,
}

impl IdxDataset {
    /// Reads and checks the files in `dir`.
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        if !dir.is_dir() {
            return Err(DataError::format(
                dir,
                "expected a folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]",
            ));
        }
        let missing = |prefix: &str, kind: &str| {
            DataError::format(
                dir,
                format!("no {prefix}-{kind}-ubyte or {prefix}-{kind}-ubyte.gz: expected the MNIST file layout"),
            )
        };
        let need = |prefix: &str, kind: &str| -> Result<PathBuf, DataError> {
            find_file(dir, prefix, kind)?.ok_or_else(|| missing(prefix, kind))
        };
        let train = read_part(
            &need("train", "images-idx3")?,
            &need("train", "labels-idx1")?,
        )?;
        let test_images = find_file(dir, "t10k", "images-idx3")?;
        let test_labels = find_file(dir, "t10k", "labels-idx1")?;
        let test = match (test_images, test_labels) {
            (Some(i), Some(l)) => Some(read_part(&i, &l)?),
            (None, None) => None,
            (Some(_), None) => return Err(missing("t10k", "labels-idx1")),
            (None, Some(_)) => return Err(missing("t10k", "images-idx3")),
        };
        let (rows, cols) = (train.images.dims[1], train.images.dims[2]);
        let classes = train.labels.iter().max().map_or(1, |&m| m as usize + 1);
        let n_train = train.labels.len();
        let mut pixels = train.images.data;
        let mut labels = train.labels;
        if let Some(test) = test {
            if (test.images.dims[1], test.images.dims[2]) != (rows, cols) {
                return Err(DataError::format(
                    dir,
                    format!(
                        "test images are {}x{} but training images are {cols}x{rows}: expected the same size",
                        test.images.dims[2], test.images.dims[1]
                    ),
                ));
            }
            if let Some((i, &l)) = test
                .labels
                .iter()
                .enumerate()
                .find(|(_, &l)| l as usize >= classes)
            {
                return Err(DataError::format(
                    &test.labels_path,
                    format!(
                        "label {l} of item {i}: expected a class seen in training, 0..={}",
                        classes - 1
                    ),
                ));
            }
            pixels.extend_from_slice(&test.images.data);
            labels.extend_from_slice(&test.labels);
        }
        Ok(Self {
            rows,
            cols,
            pixels,
            labels,
            n_train,
            classes,
        })
    }

    /// Number of items from the training files (they come first).
    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// Image size as (width, height).
    pub fn image_size(&self) -> (u32, u32) {
        (self.cols as u32, self.rows as u32)
    }
}

impl Dataset for IdxDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn class_names(&self) -> Vec<String> {
        (0..self.classes).map(|c| c.to_string()).collect()
    }
    fn labels(&self) -> Vec<usize> {
        self.labels.iter().map(|&l| l as usize).collect()
    }
    fn get(&self, index: usize) -> Result<Item, DataError> {
        if index >= self.labels.len() {
            return Err(DataError::value(
                "index",
                format!("expected < {}, got {index}", self.labels.len()),
            ));
        }
        let plane = self.rows * self.cols;
        let gray = &self.pixels[index * plane..(index + 1) * plane];
        let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
        let image = RgbImage::from_raw(self.cols as u32, self.rows as u32, rgb)
            .ok_or_else(|| DataError::value("index", "image buffer of the wrong size"))?;
        Ok(Item {
            image,
            mask: None,
            label: self.labels[index] as usize,
        })
    }
    fn official_test(&self) -> Option<Vec<usize>> {
        (self.labels.len() > self.n_train).then(|| (self.n_train..self.labels.len()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// An IDX file written byte by byte from the format's definition.
    fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Three 2x3 training images labelled 2, 0, 1; two test images labelled 1, 1.
    fn write_set(dir: &Path, gzip: bool) {
        let train: Vec<u8> = (0..18).collect();
        let test: Vec<u8> = (100..112).collect();
        let files = [
            ("train-images-idx3-ubyte", idx_bytes(&[3, 2, 3], &train)),
            ("train-labels-idx1-ubyte", idx_bytes(&[3], &[2, 0, 1])),
            ("t10k-images-idx3-ubyte", idx_bytes(&[2, 2, 3], &test)),
            ("t10k-labels-idx1-ubyte", idx_bytes(&[2], &[1, 1])),
        ];
        for (name, bytes) in files {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn reads_raw_and_gzipped_files_alike() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_set(dir.path(), gzip);
            let ds = IdxDataset::open(dir.path()).unwrap();
            assert_eq!(ds.len(), 5);
            assert_eq!(ds.n_train(), 3);
            assert_eq!(ds.image_size(), (3, 2));
            assert_eq!(ds.labels(), [2, 0, 1, 1, 1]);
            assert_eq!(ds.class_names(), ["0", "1", "2"]);
            assert_eq!(ds.official_test(), Some(vec![3, 4]));
            // Image 1 holds bytes 6..12, row-major: pixel (x=2, y=1) is 6 + 1*3 + 2.
            let item = ds.get(1).unwrap();
            assert_eq!(item.image.get_pixel(2, 1).0, [11, 11, 11]);
            assert_eq!(item.label, 0);
            let item = ds.get(4).unwrap();
            assert_eq!(item.image.get_pixel(0, 0).0, [106, 106, 106]);
            assert!(ds.get(5).is_err());
        }
    }

    #[test]
    fn test_files_are_optional_but_come_in_pairs() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let e = IdxDataset::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("t10k-labels-idx1-ubyte"), "{e}");
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
        let ds = IdxDataset::open(dir.path()).unwrap();
        assert_eq!((ds.len(), ds.official_test()), (3, None));
    }

    #[test]
    fn header_and_length_errors_name_the_file_and_sizes() {
        let p = Path::new("x-idx3-ubyte");
        let good = idx_bytes(&[2, 2, 2], &[0; 8]);
        assert_eq!(parse_idx(&good, 3, p).unwrap().dims, [2, 2, 2]);

        let e = parse_idx(&good[..good.len() - 3], 3, p)
            .unwrap_err()
            .to_string();
        // 4 + 3*4 header bytes + 8 values = 24 expected; 21 present.
        assert!(
            e.contains("x-idx3-ubyte") && e.contains("expected 24 bytes") && e.contains("got 21"),
            "{e}"
        );
        let mut long = good.clone();
        long.push(0);
        assert!(parse_idx(&long, 3, p)
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        let mut magic = good.clone();
        magic[1] = 8;
        assert!(parse_idx(&magic, 3, p)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut kind = good.clone();
        kind[2] = 0x0D; // float
        assert!(parse_idx(&kind, 3, p)
            .unwrap_err()
            .to_string()
            .contains("0x0d"));
        let e = parse_idx(&good, 1, p).unwrap_err().to_string();
        assert!(e.contains("3 dimensions: expected 1"), "{e}");
        assert!(parse_idx(&[0, 0], 1, p).is_err());
    }

    #[test]
    fn a_gzip_header_declaring_more_than_the_file_can_hold_is_refused_before_inflating() {
        let p = Path::new("bomb-idx3-ubyte.gz");
        // 10^9 images of 28x28 declared; the file holds the header only (a few dozen bytes).
        let bomb = gz(&idx_bytes(&[1_000_000_000, 28, 28], &[]));
        let e = decode_idx(&bomb, true, 3, p).unwrap_err().to_string();
        let limit = GZIP_MAX_RATIO * bomb.len() as u64;
        assert!(
            e.contains("bomb-idx3-ubyte.gz")
                && e.contains("784000000016 bytes unpacked")
                && e.contains(&format!("at most {limit} bytes"))
                && e.contains("1032:1"),
            "{e}"
        );
        // The same header uncompressed: its declared size is checked against the file's.
        let raw = idx_bytes(&[1_000_000_000, 28, 28], &[]);
        let e = decode_idx(&raw, false, 3, Path::new("bomb-idx3-ubyte"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bomb-idx3-ubyte:") && e.contains("expected 784000000016 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_gzip_stream_is_inflated_no_further_than_its_header_declares() {
        let p = Path::new("l-idx1-ubyte.gz");
        // Three labels declared (8 + 3 bytes), a megabyte of zeros after them.
        let long = gz(&idx_bytes(&[3], &vec![0; 1 << 20]));
        let e = decode_idx(&long, true, 1, p).unwrap_err().to_string();
        // One byte past the declared 11 is all that was inflated.
        assert!(
            e.contains("l-idx1-ubyte.gz")
                && e.contains("trailing data: expected 11 bytes unpacked")
                && e.contains("got 12"),
            "{e}"
        );
        let short = gz(&idx_bytes(&[3], &[1, 2]));
        let e = decode_idx(&short, true, 1, p).unwrap_err().to_string();
        assert!(
            e.contains("truncated: expected 11 bytes unpacked") && e.contains("got 10"),
            "{e}"
        );
        let exact = decode_idx(&gz(&idx_bytes(&[3], &[1, 2, 0])), true, 1, p).unwrap();
        assert_eq!((exact.dims, exact.data), (vec![3], vec![1, 2, 0]));
        // A corrupt CRC in the trailer is still noticed: the stream is read to its end.
        let mut bad_crc = gz(&idx_bytes(&[3], &[1, 2, 0]));
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        let e = decode_idx(&bad_crc, true, 1, p).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
    }

    #[test]
    fn dataset_level_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_set(d, false);
        // One label too few.
        std::fs::write(d.join("train-labels-idx1-ubyte"), idx_bytes(&[2], &[0, 1])).unwrap();
        let e = IdxDataset::open(d).unwrap_err().to_string();
        assert!(e.contains("2 labels") && e.contains("3 images"), "{e}");
        // A test class never seen in training.
        std::fs::write(
            d.join("train-labels-idx1-ubyte"),
            idx_bytes(&[3], &[0, 1, 1]),
        )
        .unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[0, 7])).unwrap();
        let e = IdxDataset::open(d).unwrap_err().to_string();
        assert!(
            e.contains("t10k-labels") && e.contains("label 7 of item 1"),
            "{e}"
        );
        // A truncated gzip stream.
        let bytes = gz(&idx_bytes(&[3], &[0, 1, 1]));
        std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
        std::fs::write(
            d.join("train-labels-idx1-ubyte.gz"),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();
        let e = IdxDataset::open(d).unwrap_err().to_string();
        assert!(
            e.contains("train-labels-idx1-ubyte.gz") && e.contains("gzip"),
            "{e}"
        );
        // Nothing there.
        let empty = tempfile::tempdir().unwrap();
        let e = IdxDataset::open(empty.path()).unwrap_err().to_string();
        assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    }
}
