//! A minimal reader for the zip archives PyTorch writes (≥ 1.6): stored (uncompressed)
//! entries, optional ZIP64 records, CRC-32 checked on access. Every offset and length is
//! checked against the archive's size; nothing is allocated from a declared size.

use super::read_error::{corrupt, ReadError};
use std::collections::HashMap;

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

/// One entry of the central directory.
#[derive(Clone, Debug)]
struct Entry {
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// An archive in memory, indexed by entry name.
pub struct ZipArchive<'a> {
    data: &'a [u8],
    entries: HashMap<String, Entry>,
    names: Vec<String>,
}

fn bytes_at<const N: usize>(d: &[u8], at: usize) -> Result<[u8; N], ReadError> {
    at.checked_add(N)
        .and_then(|end| d.get(at..end))
        .map(|b| b.try_into().expect("N bytes"))
        .ok_or_else(|| corrupt("zip structure runs past the end of the file"))
}

fn u16_at(d: &[u8], at: usize) -> Result<u16, ReadError> {
    bytes_at(d, at).map(u16::from_le_bytes)
}

fn u32_at(d: &[u8], at: usize) -> Result<u32, ReadError> {
    bytes_at(d, at).map(u32::from_le_bytes)
}

fn u64_at(d: &[u8], at: usize) -> Result<u64, ReadError> {
    bytes_at(d, at).map(u64::from_le_bytes)
}

fn to_usize(v: u64, what: &str) -> Result<usize, ReadError> {
    usize::try_from(v).map_err(|_| corrupt(format!("zip {what} {v} is beyond the file")))
}

impl<'a> ZipArchive<'a> {
    /// Reads the central directory of `data`.
    pub fn new(data: &'a [u8]) -> Result<Self, ReadError> {
        // The end-of-central-directory record: 22 bytes plus a comment of at most 64 KiB.
        let lo = data.len().saturating_sub(22 + 0xffff);
        let eocd = (lo..=data.len().saturating_sub(22))
            .rev()
            .find(|&i| u32_at(data, i).ok() == Some(EOCD))
            .ok_or_else(|| {
                corrupt("no zip end-of-central-directory record (the file is cut short?)")
            })?;
        let mut count = u16_at(data, eocd + 10)? as u64;
        let mut cd_size = u32_at(data, eocd + 12)? as u64;
        let mut cd_offset = u32_at(data, eocd + 16)? as u64;
        if (count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff)
            && eocd >= 20
            && u32_at(data, eocd - 20)? == ZIP64_LOCATOR
        {
            let at = to_usize(u64_at(data, eocd - 20 + 8)?, "ZIP64 record offset")?;
            if u32_at(data, at)? != ZIP64_EOCD {
                return Err(corrupt("bad ZIP64 end-of-central-directory record"));
            }
            count = u64_at(data, at + 32)?;
            cd_size = u64_at(data, at + 40)?;
            cd_offset = u64_at(data, at + 48)?;
        }
        let start = to_usize(cd_offset, "central directory offset")?;
        let end = start
            .checked_add(to_usize(cd_size, "central directory size")?)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt("zip central directory runs past the end of the file"))?;
        let mut entries = HashMap::new();
        let mut names = Vec::new();
        let mut at = start;
        for _ in 0..count {
            if end - at < 46 || u32_at(data, at)? != CENTRAL {
                return Err(corrupt("bad zip central directory entry"));
            }
            let method = u16_at(data, at + 10)?;
            let crc = u32_at(data, at + 16)?;
            let mut compressed = u32_at(data, at + 20)? as u64;
            let mut size = u32_at(data, at + 24)? as u64;
            let name_len = u16_at(data, at + 28)? as usize;
            let extra_len = u16_at(data, at + 30)? as usize;
            let comment_len = u16_at(data, at + 32)? as usize;
            let mut local_offset = u32_at(data, at + 42)? as u64;
            let name_end = at + 46 + name_len;
            let extra_end = name_end + extra_len;
            let next = extra_end + comment_len;
            if next > end {
                return Err(corrupt("zip central directory entry runs past its end"));
            }
            let name = std::str::from_utf8(&data[at + 46..name_end])
                .map_err(|_| corrupt("zip entry name is not UTF-8"))?
                .to_string();
            // ZIP64 extra field: the 64-bit values of the fields saturated above, in order.
            let mut x = name_end;
            while x + 4 <= extra_end {
                let id = u16_at(data, x)?;
                let len = u16_at(data, x + 2)? as usize;
                let body = x + 4;
                if body + len > extra_end {
                    return Err(corrupt("zip extra field runs past its entry"));
                }
                if id == 0x0001 {
                    let mut f = body;
                    for v in [&mut size, &mut compressed, &mut local_offset] {
                        if *v == 0xffff_ffff {
                            if f + 8 > body + len {
                                return Err(corrupt("short ZIP64 extra field"));
                            }
                            *v = u64_at(data, f)?;
                            f += 8;
                        }
                    }
                }
                x = body + len;
            }
            names.push(name.clone());
            entries.insert(
                name,
                Entry {
                    method,
                    crc,
                    compressed,
                    size,
                    local_offset,
                },
            );
            at = next;
        }
        Ok(ZipArchive {
            data,
            entries,
            names,
        })
    }

    /// Entry names in central-directory order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The bytes of entry `name` (`Ok(None)` if absent); only stored entries are supported, and
    /// the CRC-32 must match.
    pub fn get(&self, name: &str) -> Result<Option<&'a [u8]>, ReadError> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        if e.method != 0 {
            return Err(ReadError::Unsupported(format!(
                "zip entry `{name}` is compressed (method {}); PyTorch stores entries \
                 uncompressed",
                e.method
            )));
        }
        if e.compressed != e.size {
            return Err(corrupt(format!("zip entry `{name}`: stored sizes differ")));
        }
        let at = to_usize(e.local_offset, "local header offset")?;
        if u32_at(self.data, at)? != LOCAL {
            return Err(corrupt(format!("zip entry `{name}`: bad local header")));
        }
        let n = u16_at(self.data, at + 26)? as usize;
        let x = u16_at(self.data, at + 28)? as usize;
        let start = at
            .checked_add(30 + n + x)
            .ok_or_else(|| corrupt(format!("zip entry `{name}`: bad local header")))?;
        let end = to_usize(e.size, "entry size")?
            .checked_add(start)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                corrupt(format!(
                    "zip entry `{name}` runs past the end of the file (cut short?)"
                ))
            })?;
        let bytes = &self.data[start..end];
        if crc32(bytes) != e.crc {
            return Err(corrupt(format!("zip entry `{name}`: CRC-32 mismatch")));
        }
        Ok(Some(bytes))
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip uses.
pub fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        })
    });
    !bytes.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC for "123456789".
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// `zipfile.ZipFile(buf, 'w', ZIP_STORED).writestr(ZipInfo('a/x', (1980, 1, 1, 0, 0, 0)), b'hello')`
    /// from CPython.
    const HELLO: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00!\x00\x86\xa6\x106\x05\x00\x00\x00\x05\x00\x00\x00\x03\x00\x00\x00a/xhelloPK\x01\x02\x14\x03\x14\x00\x00\x00\x00\x00\x00\x00!\x00\x86\xa6\x106\x05\x00\x00\x00\x05\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00a/xPK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x001\x00\x00\x00&\x00\x00\x00\x00\x00";

    #[test]
    fn reads_a_python_zip_and_rejects_damage() {
        let z = ZipArchive::new(HELLO).unwrap();
        assert_eq!(z.names(), ["a/x"]);
        assert_eq!(z.get("a/x").unwrap().unwrap(), b"hello");
        assert!(z.get("a/y").unwrap().is_none());
        // Every truncation fails cleanly.
        for n in 0..HELLO.len() {
            if let Ok(z) = ZipArchive::new(&HELLO[..n]) {
                assert!(z.get("a/x").is_err() || z.get("a/x").unwrap().is_none());
            }
        }
        // A flipped data byte fails the CRC.
        let mut bad = HELLO.to_vec();
        bad[34] ^= 1;
        let e = ZipArchive::new(&bad).unwrap().get("a/x").unwrap_err();
        assert!(e.to_string().contains("CRC"), "{e}");
    }
}
