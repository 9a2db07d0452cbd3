//! Writing files so that no reader ever sees half of one: [`kestrel_fsio::write_atomic`] with its
//! error as a [`DataError`].

use crate::error::DataError;
use std::path::Path;

/// Writes `bytes` to `path` atomically (see [`kestrel_fsio::write_atomic`]: a temporary file in
/// the same folder, fsync, rename, then fsync of the folder). The folder must exist.
///
/// # Errors
/// [`DataError::Io`] naming `path` when the file cannot be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    kestrel_fsio::write_atomic(path, bytes).map_err(DataError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_names_unwritable_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        let e = write_atomic(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}
