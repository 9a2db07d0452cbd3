//! How much a weights file may decode to. Tensors are copied out of the file into `f32` / `i64`
//! values, and the formats let several tensors point at the same bytes (safetensors offsets that
//! overlap, pickled views of one storage), so without a bound a small file could ask for
//! terabytes. A file of `N` bytes may decode to at most `N` tensor elements in all — each tensor
//! counted every time it appears — which is at most 4× its size in memory (8× for integer
//! tensors). Every real checkpoint fits: a float element takes at least 2 bytes of the file, and
//! a storage shared by two tensors (tied weights) still fits for f32 and f16 files.

use super::read_error::ReadError;

/// The elements a file may still decode to; see the module documentation.
#[derive(Clone, Debug)]
pub struct Budget {
    limit: u64,
    left: u64,
}

impl Budget {
    /// The budget of a file of `file_bytes` bytes.
    pub fn for_file(file_bytes: usize) -> Self {
        let limit = file_bytes as u64;
        Budget { limit, left: limit }
    }

    /// Reserves `numel` elements for tensor `key` before they are copied, or refuses with an
    /// error that names the limit.
    pub fn take(&mut self, key: &str, numel: u64) -> Result<(), ReadError> {
        self.left = self
            .left
            .checked_sub(numel)
            .ok_or_else(|| ReadError::Tensor {
                key: key.to_string(),
                detail: format!(
                    "{numel} elements would take the file past its decoding limit of {} elements \
                 (one per byte of the file; tensors that share data count each time): the file \
                 describes more tensor data than it holds",
                    self.limit
                ),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_passes_the_limit_and_names_it() {
        let mut b = Budget::for_file(100);
        b.take("a", 60).unwrap();
        b.take("b", 40).unwrap();
        let e = b.take("c", 1).unwrap_err().to_string();
        assert!(
            e.contains("`c`") && e.contains("limit of 100 elements"),
            "{e}"
        );
        let mut b = Budget::for_file(10);
        assert!(b.take("big", u64::MAX).is_err());
    }
}
