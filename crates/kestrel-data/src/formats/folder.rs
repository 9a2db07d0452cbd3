//! `folder:PATH`: the ImageFolder layout, `PATH/<class name>/<image>`.
//!
//! Class names are the sub-folders of `PATH` in sorted order (code-point order, as torchvision
//! sorts them) and class `i` is the `i`-th name. Images are the files under each class folder, in
//! nested folders too, whose extension is png, jpg, jpeg or bmp (any case); other files are
//! ignored, as are names starting with `.` (`.ipynb_checkpoints`, `._x.jpg`). Files are listed in
//! sorted order, so indices are deterministic. Labels come from the folder names: nothing is
//! decoded until [`Dataset::get`].

use crate::dataset::{Dataset, Item};
use crate::error::DataError;
use crate::image_io::load_rgb;
use crate::item_key::ItemKey;
use std::path::{Path, PathBuf};

/// File extensions read as images (compared in lower case).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Whether `path` has one of [`IMAGE_EXTENSIONS`].
pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Entries of `dir` that are not hidden, sorted by name, as (path, is_dir).
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<(PathBuf, bool)>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if hidden(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links, as torchvision does.
        let is_dir = path.is_dir();
        out.push((path, is_dir));
    }
    out.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
    Ok(out)
}

/// Appends the image files under `dir` (files first, then sub-folders, each sorted by name).
fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let entries = sorted_entries(dir)?;
    for (path, is_dir) in &entries {
        if !is_dir && is_image(path) {
            out.push(path.clone());
        }
    }
    for (path, is_dir) in entries {
        if is_dir {
            collect_images(&path, out)?;
        }
    }
    Ok(())
}

/// `path` relative to `root`, with `/` separators.
pub(crate) fn relative_key(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// An ImageFolder dataset.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
}

impl ImageFolder {
    /// Lists `root`: errors when it is not a folder, has no class folders, or a class folder
    /// holds no image.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        if !root.is_dir() {
            return Err(DataError::format(
                root,
                "expected a folder with one sub-folder of images per class (`PATH/<class>/<image>`)",
            ));
        }
        let class_dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter_map(|(p, is_dir)| is_dir.then_some(p))
            .collect();
        if class_dirs.is_empty() {
            return Err(DataError::format(
                root,
                "no class folders: expected `PATH/<class name>/<image>`",
            ));
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (c, dir) in class_dirs.iter().enumerate() {
            let before = files.len();
            collect_images(dir, &mut files)?;
            if files.len() == before {
                return Err(DataError::format(
                    dir,
                    format!(
                        "class folder holds no image: expected files ending in .{}",
                        IMAGE_EXTENSIONS.join(", .")
                    ),
                ));
            }
            labels.resize(files.len(), c);
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes,
            files,
            labels,
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image files, in index order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }
    fn labels(&self) -> Vec<usize> {
        self.labels.clone()
    }
    fn get(&self, index: usize) -> Result<Item, DataError> {
        let path = self.files.get(index).ok_or_else(|| {
            DataError::value(
                "index",
                format!("expected < {}, got {index}", self.files.len()),
            )
        })?;
        Ok(Item {
            image: load_rgb(path)?,
            mask: None,
            label: self.labels[index],
        })
    }
    fn item_keys(&self) -> Vec<ItemKey> {
        self.files
            .iter()
            .map(|p| ItemKey::Path(relative_key(&self.root, p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn png(path: &Path, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(4, 3, Rgb([v, v, v]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn lists_classes_and_files_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        png(&r.join("zebra/b.png"), 1);
        png(&r.join("zebra/a.png"), 2);
        png(&r.join("Ant/x.PNG"), 3);
        png(&r.join("Ant/deep/y.png"), 4);
        png(&r.join("bee/c.bmp"), 5);
        std::fs::write(r.join("bee/notes.txt"), "not an image").unwrap();
        png(&r.join(".ipynb_checkpoints/z.png"), 6);
        png(&r.join("bee/._c.png"), 7);
        std::fs::write(r.join("README"), "a file at the root").unwrap();
        let ds = ImageFolder::open(r).unwrap();
        // Upper case sorts before lower case, as in Python.
        assert_eq!(ds.class_names(), ["Ant", "bee", "zebra"]);
        let keys: Vec<String> = ds.item_keys().iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            [
                "`Ant/x.PNG`",
                "`Ant/deep/y.png`",
                "`bee/c.bmp`",
                "`zebra/a.png`",
                "`zebra/b.png`"
            ]
        );
        assert_eq!(ds.labels(), [0, 0, 1, 2, 2]);
        let item = ds.get(3).unwrap();
        assert_eq!((item.label, item.image.get_pixel(0, 0).0), (2, [2, 2, 2]));
        assert!(item.mask.is_none());
        assert!(ds.get(5).is_err());
    }

    #[test]
    fn layout_errors_name_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let e = ImageFolder::open(r).unwrap_err().to_string();
        assert!(e.contains("no class folders"), "{e}");
        let e = ImageFolder::open(&r.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing") && e.contains("expected a folder"),
            "{e}"
        );
        png(&r.join("cat/1.png"), 1);
        std::fs::create_dir_all(r.join("dog")).unwrap();
        std::fs::write(r.join("dog/readme.txt"), "x").unwrap();
        let e = ImageFolder::open(r).unwrap_err().to_string();
        assert!(e.contains("dog") && e.contains("no image"), "{e}");
    }

    #[test]
    fn unreadable_images_fail_at_get_and_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        png(&r.join("cat/1.png"), 1);
        std::fs::write(r.join("cat/2.jpg"), b"definitely not a jpeg").unwrap();
        let ds = ImageFolder::open(r).unwrap();
        assert_eq!(ds.len(), 2);
        assert!(ds.get(0).is_ok());
        let e = ds.get(1).unwrap_err().to_string();
        assert!(e.contains("2.jpg"), "{e}");
    }
}
