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
        ".{name}{TEMP_MARK}{}-{}",
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

/// What a temporary file's name holds between the destination's name and the writer's process
/// id and call number: `.<name>.tmp-<pid>-<n>`.
const TEMP_MARK: &str = ".tmp-";

/// The process id of the writer of `name`, if it is one of [`write_atomic`]'s temporary files.
fn temporary_writer(name: &str) -> Option<u32> {
    let (_, tail) = name.strip_prefix('.')?.rsplit_once(TEMP_MARK)?;
    let (pid, n) = tail.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(n))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether process `pid` may still be writing: it exists (Linux's `/proc`); where that cannot be
/// told, it is assumed to.
fn may_be_writing(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the temporary files that killed writers left in `dir` (a process killed between
/// creating its temporary file and renaming it cannot remove it), and returns how many there
/// were. A temporary file whose writer still runs (this process, or another one writing into the
/// same folder) is left alone. A missing folder has none.
///
/// # Errors
/// The folder cannot be listed, or a temporary file in it cannot be removed.
pub fn remove_stale_temporaries(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let stale = entry
            .file_name()
            .to_str()
            .and_then(temporary_writer)
            .is_some_and(|pid| !may_be_writing(pid));
        if stale && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
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

    #[test]
    fn stale_temporaries_are_recognised_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("last.ckpt");
        write_atomic(&p, b"kept").unwrap();
        // Writers that are gone: process ids beyond Linux's largest (2^22).
        for name in [
            ".last.ckpt.tmp-99999999-0",
            ".metrics.jsonl.tmp-88888888-41",
        ] {
            std::fs::write(dir.path().join(name), b"half").unwrap();
        }
        // A writer still running: this process.
        let mine = format!(".best.ckpt.tmp-{}-7", std::process::id());
        std::fs::write(dir.path().join(&mine), b"writing").unwrap();
        // Not temporaries: other dot files and look-alikes.
        for name in [".hidden", "x.tmp-1-2", ".a.tmp-1-", ".a.tmp-x-2"] {
            std::fs::write(dir.path().join(name), b"mine").unwrap();
        }
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![
            ".a.tmp-1-",
            ".a.tmp-x-2",
            ".hidden",
            "last.ckpt",
            "x.tmp-1-2",
        ];
        want.push(&mine);
        want.sort();
        assert_eq!(left, want);
        assert_eq!(
            remove_stale_temporaries(&dir.path().join("none")).unwrap(),
            0
        );
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
