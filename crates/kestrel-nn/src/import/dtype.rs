//! Element types of stored tensors and their conversion to kestrel's f32 / i64.

use super::read_error::ReadError;

/// The element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the top half of a binary32).
    BF16,
    /// IEEE binary64.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean, one byte.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether the type holds floating-point values (converted to f32 on import).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    }

    /// The dtype of a torch storage class name (`FloatStorage`, `HalfStorage`, ...).
    pub fn from_torch_storage(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// The dtype of a safetensors header `dtype` string (`F32`, `BF16`, ...).
    pub fn from_safetensors(name: &str) -> Option<DType> {
        Some(match name {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }

    /// Element `i` of little-endian `bytes` as f64 (floats) — exact for every type but i64
    /// beyond 2⁵³.
    fn read_f64(self, b: &[u8]) -> f64 {
        match self {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            DType::F16 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])) as f64,
            DType::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
            DType::F64 => f64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            _ => self.read_i64(b) as f64,
        }
    }

    /// Element of little-endian `b` as i64 (integers and bools).
    fn read_i64(self, b: &[u8]) -> i64 {
        match self {
            DType::I64 => i64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            DType::I8 => b[0] as i8 as i64,
            DType::U8 => b[0] as i64,
            DType::Bool => (b[0] != 0) as i64,
            _ => self.read_f64(b) as i64,
        }
    }

    /// Decodes the elements at `indices` (element indices into `bytes`, already checked to be in
    /// range) as f32 values.
    pub fn gather_f32(self, bytes: &[u8], indices: impl Iterator<Item = usize>) -> Vec<f32> {
        let s = self.size();
        indices
            .map(|i| self.read_f64(&bytes[i * s..(i + 1) * s]) as f32)
            .collect()
    }

    /// Decodes the elements at `indices` as i64 values.
    pub fn gather_i64(self, bytes: &[u8], indices: impl Iterator<Item = usize>) -> Vec<i64> {
        let s = self.size();
        indices
            .map(|i| self.read_i64(&bytes[i * s..(i + 1) * s]))
            .collect()
    }

    /// Checks that `bytes` holds exactly `numel` elements, for error messages about `what`.
    pub fn check_len(self, bytes: &[u8], numel: usize, what: &str) -> Result<(), ReadError> {
        match numel.checked_mul(self.size()) {
            Some(n) if n == bytes.len() => Ok(()),
            _ => Err(ReadError::Corrupt(format!(
                "{what}: {} bytes, expected {numel} elements of {} bytes",
                bytes.len(),
                self.size()
            ))),
        }
    }
}

/// IEEE binary16 bits to f32 (exact: every half value is a float).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        0x1f if frac == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_matches_the_ieee_definition() {
        // Values from the IEEE 754 binary16 table: 1, −2, 65504 (max), 2⁻¹⁴ (min normal),
        // 2⁻²⁴ (min subnormal), 1/3 rounded (0x3555 = 0.333251953125), infinities, NaN.
        for (bits, want) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0400, 6.103_515_6e-5),
            (0x0001, 5.960_464_5e-8),
            (0x3555, 0.333_251_95),
            (0x8000, -0.0),
        ] {
            assert_eq!(f16_to_f32(bits), want, "{bits:#x}");
        }
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn lengths_are_checked() {
        assert!(DType::F32.check_len(&[0; 8], 2, "x").is_ok());
        assert!(DType::F32.check_len(&[0; 7], 2, "x").is_err());
        assert!(DType::F64.check_len(&[], usize::MAX, "x").is_err());
    }
}
