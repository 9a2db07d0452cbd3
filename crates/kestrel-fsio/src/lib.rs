//! kestrel-fsio: files are written whole or not at all.
//!
//! [`write_atomic`] writes to a temporary file in the destination's folder, syncs it to disk and
//! renames it over the destination, so a reader sees either the old file or the new one, never
//! half of one. It is the one place in the workspace that writes files this way; the crates that
//! save plans, manifests, checkpoints, plots and exports call it.
//!
//! No dependencies beyond `std`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writing a file failed: the destination and the underlying I/O error. Displays as
/// `<path>: <error>`.
#[derive(Debug)]
pub struct WriteError {
    /// The file that was being written (the destination, not the temporary file).
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename over
/// `path`, then fsync of the folder where the platform allows. The folder must exist. On failure
/// the temporary file is removed and `path` is left as it was.
///
/// # Errors
/// [`WriteError`] naming `path` when the temporary file cannot be created, written or synced, or
/// cannot be renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    // Unique per process and call, so concurrent writers of one file never share a temporary.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(WriteError {
            path: path.to_path_buf(),
            source,
        });
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/x");
        let e = write_atomic(&target, b"x").unwrap_err();
        assert_eq!(e.path, target);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), format!("{}: {}", target.display(), e.source));
        assert!(std::error::Error::source(&e).is_some());
    }

    /// Moved from kestrel-metrics' plot module, whose copy of `write_atomic` this crate replaces.
    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/x.bin"), b"x").is_err());
    }
}
