//! The plan file: a compact binary container.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `KESTPLAN` |
//! | 4 | format version (`u32`, currently 3; files of versions 1 and 2, which predate some ops, still load) |
//! | 8 | graph length `G` in bytes (`u64`) |
//! | G | the [`crate::plan::Graph`] as JSON (values, ops, shapes, weight offsets) |
//! | 8 | weight count `W` (`u64`) |
//! | 4·W | weights, `f32` little-endian |
//! | 8 | FNV-1a 64 checksum of everything before it (`u64`) |
//!
//! Loading checks the magic, version, every length against the file size, the checksum, and then
//! validates the plan (shapes, weight sizes, value references).

use crate::error::{Result, RuntimeError};
use crate::plan::{Graph, Plan};
use std::path::Path;

/// File magic.
pub const MAGIC: &[u8; 8] = b"KESTPLAN";
/// Current format version (2 added `Resize`, `ConvTranspose`, `PixelShuffle` and `Crop`; 3 added
/// `Carafe`).
pub const VERSION: u32 = 3;
/// The oldest version this build reads.
pub const MIN_VERSION: u32 = 1;

/// The FNV-1a 64 checksum a plan file ends with, of every byte before it.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A file's consecutive sections, read in order; running short or a bad checksum is an error
/// naming the file (the plan file and the int8 plan file share this reader).
pub(crate) struct Sections<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Sections<'a> {
    /// Reads `bytes`, which came from `path`.
    pub(crate) fn new(bytes: &'a [u8], path: &'a Path) -> Self {
        Sections {
            bytes,
            pos: 0,
            path,
        }
    }

    /// A format error about this file.
    pub(crate) fn err(&self, message: String) -> RuntimeError {
        RuntimeError::Format {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// The next `n` bytes (`what` names them if the file is shorter).
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let Some(end) = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()) else {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {}, file has {}",
                self.pos,
                self.bytes.len()
            )));
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next little-endian `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    /// The next little-endian `u64`.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    /// The closing FNV-1a 64 checksum of every byte before it, which must end the file.
    pub(crate) fn checksum(&mut self) -> Result<()> {
        let body_end = self.pos;
        let sum = self.u64("checksum")?;
        if self.pos != self.bytes.len() {
            return Err(self.err(format!(
                "{} unexpected bytes after the checksum",
                self.bytes.len() - self.pos
            )));
        }
        if fnv1a(&self.bytes[..body_end]) != sum {
            return Err(self.err("checksum mismatch: the file is corrupt".into()));
        }
        Ok(())
    }
}

impl Plan {
    /// Serialises the plan to the binary format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let graph = serde_json::to_vec(&self.graph).expect("a graph always serialises");
        let mut out = Vec::with_capacity(36 + graph.len() + 4 * self.weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(graph.len() as u64).to_le_bytes());
        out.extend_from_slice(&graph);
        out.extend_from_slice(&(self.weights.len() as u64).to_le_bytes());
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and validates the binary format; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Plan> {
        let mut f = Sections::new(bytes, path);
        if f.take(8, "magic")? != MAGIC {
            return Err(f.err("not a kestrel plan (magic KESTPLAN missing)".into()));
        }
        let version = f.u32("version")?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(f.err(format!(
                "format version {version}, this build reads versions {MIN_VERSION} to {VERSION}"
            )));
        }
        let glen = f.u64("graph length")?;
        let glen = usize::try_from(glen)
            .map_err(|_| f.err(format!("graph length {glen} is too large")))?;
        let graph_bytes = f.take(glen, "graph")?;
        let graph: Graph =
            serde_json::from_slice(graph_bytes).map_err(|e| f.err(format!("graph JSON: {e}")))?;
        let wlen = f.u64("weight count")?;
        let wbytes = usize::try_from(wlen)
            .ok()
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| f.err(format!("weight count {wlen} is too large")))?;
        let raw = f.take(wbytes, "weights")?;
        let weights: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        f.checksum()?;
        let plan = Plan { graph, weights };
        plan.validate().map_err(|e| f.err(e.to_string()))?;
        Ok(plan)
    }

    /// Writes the plan to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        kestrel_fsio::write_atomic(path, &self.to_bytes()).map_err(|e| RuntimeError::Format {
            path: path.to_path_buf(),
            message: format!("write failed: {e}"),
        })
    }

    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<Plan> {
        Plan::from_bytes(&read_file(path)?, path)
    }
}

/// The bytes of a plan file; a failed read names it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, ConvParams, Op, PlanBuilder, Shape};

    fn small_plan() -> Plan {
        let mut b = PlanBuilder::new(Shape { h: 5, w: 5, c: 3 });
        let w: Vec<f32> = (0..8 * 27).map(|i| i as f32 * 0.01).collect();
        let x = b
            .conv(
                0,
                &ConvParams::new(&w, Some(&[0.5; 8]), 8, 3)
                    .stride(2)
                    .padding(1)
                    .act(Activation::Relu6),
            )
            .unwrap();
        let x = b.global_pool(x).unwrap();
        let x = b.linear(x, &[0.25; 16], None, 2, Activation::None).unwrap();
        b.build(x).unwrap()
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.plan");
        let plan = small_plan();
        plan.save(&path).unwrap();
        assert_eq!(Plan::load(&path).unwrap(), plan);
        // compact: header + 4 bytes per weight + a small JSON graph
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(size < 4 * plan.weights.len() + 2048, "{size}");
    }

    #[test]
    fn rejects_damaged_files_with_clear_errors() {
        let p = Path::new("model.plan");
        let good = small_plan().to_bytes();
        let e = Plan::from_bytes(&good[..good.len() - 20], p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.plan") && e.contains("truncated"), "{e}");
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(Plan::from_bytes(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut bad = good.clone();
        bad[8] = 9;
        assert!(Plan::from_bytes(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        let mut bad = good.clone();
        bad[8] = 4; // a future version
        assert!(Plan::from_bytes(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("versions 1 to 3"));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 12] ^= 1; // a weight bit
        assert!(Plan::from_bytes(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let mut bad = good.clone();
        bad.push(0);
        assert!(Plan::from_bytes(&bad, p)
            .unwrap_err()
            .to_string()
            .contains("unexpected bytes"));
    }

    proptest::proptest! {
        /// Corrupting any byte of the graph (with the checksum recomputed, so validation is what
        /// is tested) gives a plan or an error, never a panic.
        #[test]
        fn corrupt_graphs_never_panic(pos in 0usize..10_000, byte in 0u8..=255) {
            let good = small_plan().to_bytes();
            let glen = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
            let mut bad = good.clone();
            bad[20 + pos % glen] = byte;
            let n = bad.len();
            let sum = fnv1a(&bad[..n - 8]);
            bad[n - 8..].copy_from_slice(&sum.to_le_bytes());
            let _ = Plan::from_bytes(&bad, Path::new("fuzz.plan"));
        }
    }

    /// A plan with every segmentation op: resize, transposed convolution, pixel shuffle, crop.
    fn segmentation_plan() -> Plan {
        let mut b = PlanBuilder::new(Shape { h: 5, w: 6, c: 4 });
        let up = b
            .resize(
                0,
                crate::ResizeMode::Linear,
                false,
                Some([2.0, 2.0]),
                [10, 12],
            )
            .unwrap();
        let w: Vec<f32> = (0..4 * 2 * 16).map(|i| i as f32 * 0.01).collect();
        let t = b
            .conv_transpose(
                0,
                &crate::ConvTransposeParams {
                    weight: &w,
                    bias: None,
                    out_channels: 4,
                    geom: crate::kernels::ConvGeometry::square(4, 2, 1, 1),
                    output_padding: [0, 0],
                    groups: 2,
                    act: Activation::None,
                },
            )
            .unwrap();
        let s = b.add_residual(t, up, Activation::None).unwrap();
        let p = b.pixel_shuffle(s, 2).unwrap();
        let c = b.crop(p, [19, 23]).unwrap();
        b.build(c).unwrap()
    }

    #[test]
    fn segmentation_ops_round_trip_and_version_1_files_still_load() {
        let plan = segmentation_plan();
        let kinds: Vec<_> = plan.graph.ops.iter().map(|o| o.kind_name()).collect();
        assert_eq!(
            kinds,
            [
                "resize_linear",
                "conv_transpose",
                "add",
                "pixel_shuffle",
                "crop"
            ]
        );
        assert_eq!(plan.output_shape(), Shape { h: 19, w: 23, c: 1 });
        let p = Path::new("seg.plan");
        assert_eq!(Plan::from_bytes(&plan.to_bytes(), p).unwrap(), plan);
        // A version 1 file (a classifier written before these ops existed) still loads.
        let mut old = small_plan().to_bytes();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        let n = old.len();
        let sum = fnv1a(&old[..n - 8]);
        old[n - 8..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(Plan::from_bytes(&old, p).unwrap(), small_plan());
    }

    #[test]
    fn inconsistent_segmentation_ops_are_rejected() {
        let p = Path::new("seg.plan");
        let reject = |edit: &dyn Fn(&mut Plan), needle: &str| {
            let mut plan = segmentation_plan();
            edit(&mut plan);
            let e = Plan::from_bytes(&plan.to_bytes(), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        };
        // A crop larger than its input.
        reject(&|pl| pl.graph.values[5].h = 30, "crop");
        // A resize that changes the channels.
        reject(&|pl| pl.graph.values[1].c = 3, "changes the channels");
        // A transposed convolution whose output size is not the formula's.
        reject(&|pl| pl.graph.values[2].w = 11, "expected 10x12x4");
        // A pixel shuffle on channels that are not a multiple of r².
        reject(
            &|pl| {
                if let Op::PixelShuffle { factor, .. } = &mut pl.graph.ops[3] {
                    *factor = 3;
                }
            },
            "pixel shuffle by 3",
        );
        // A non-positive resize scale.
        reject(
            &|pl| {
                if let Op::Resize { scale, .. } = &mut pl.graph.ops[0] {
                    *scale = Some([0.0, 2.0]);
                }
            },
            "resize scale",
        );
    }

    #[test]
    fn rejects_inconsistent_plans() {
        let p = Path::new("x.plan");
        // A plan whose weight array is one float short: the checksum is fine but validation fails.
        let mut plan = small_plan();
        plan.weights.pop();
        let e = Plan::from_bytes(&plan.to_bytes(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside the"), "{e}");
        // Absurd sizes fail cleanly instead of overflowing.
        let mut plan = small_plan();
        plan.graph.values[1] = Shape {
            h: usize::MAX / 2,
            w: 3,
            c: 8,
        };
        let e = Plan::from_bytes(&plan.to_bytes(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("value 1") && e.contains("exceeds"), "{e}");
        // A wrong output shape.
        let mut plan = small_plan();
        plan.graph.values[1].c = 7;
        let e = Plan::from_bytes(&plan.to_bytes(), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("op 0") && e.contains("expected 3x3x8"), "{e}");
    }
}
