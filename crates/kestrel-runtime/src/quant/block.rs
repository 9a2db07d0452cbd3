//! MobileNetV2's inverted-residual block (expand 1×1 or a fused stem, depthwise, project 1×1 with
//! the residual) run fused on codes, as the fp32 engine runs it
//! ([`crate::kernels::inverted_residual`]): band by band of output rows, the expanded codes
//! (six times the block's input) held only a few rows at a time, the rows that consecutive bands
//! share kept rather than recomputed, and the depthwise output of a band projected while it is
//! still in cache. Each op computes exactly what it computes alone, so the codes are the same as
//! op by op; what changes is the memory traffic and the number of times the threads meet (once a
//! block instead of three times).
//!
//! When threads split a small map's rows (under sixteen output rows a thread), each would have to
//! recompute the expanded rows its window shares with its neighbour's; there they first expand
//! their shares of the map into one shared tensor, then filter and project their output rows.

use super::engine::{row_parts, Compiled, Dst, Scratch};
use super::gemm::{gemm_rows, GemmScratch, GemmSrc};
use super::prepare::{Int8Layer, Prepared};
use super::QuantPlan;
use crate::kernels::int8_depthwise::{depthwise_u8i8_requant, DepthwiseI8};
use crate::kernels::int8_gemm::PackedB8;
use crate::parallel::{split_ranges, Par};
use crate::plan::{ConvOp, Op, ValueId};
use crate::schedule::{find_blocks, Step};
use crate::Shape;

/// Bytes of expanded rows a band aims to hold (with its depthwise output, inside the second-level
/// cache).
#[cfg(not(test))]
const BAND_BYTES: usize = 128 * 1024;
/// Small in tests, so that their small maps run as many bands and the kept rows are exercised.
#[cfg(test)]
const BAND_BYTES: usize = 256;

/// Output rows a thread needs for the threads to split a block's rows band by band; fewer, and
/// they share one expanded tensor instead.
const MIN_ROWS_PER_THREAD: usize = 16;

/// The fp32 engine's fused blocks ([`find_blocks`]) that the int8 engine can fuse: integer
/// expansion (if any), depthwise and projection, the projection writing codes (not the network's
/// output). Every other op runs alone.
pub(super) fn int8_blocks(q: &QuantPlan, prepared: &[Prepared]) -> Vec<Step> {
    let g = &q.plan.graph;
    let mut steps = Vec::new();
    for step in find_blocks(&q.plan) {
        let Step::Block {
            expand,
            dw,
            project,
        } = step
        else {
            steps.push(step);
            continue;
        };
        let gemm = |i: usize| matches!(prepared[i], Prepared::Gemm(_));
        let fits = expand.is_none_or(gemm)
            && matches!(prepared[dw], Prepared::Depthwise(_))
            && gemm(project)
            && g.ops[project].output() != g.output;
        if fits {
            steps.push(step);
        } else {
            steps.extend(expand.into_iter().chain([dw, project]).map(Step::Op));
        }
    }
    steps
}

/// The ops of a fused block, their layers and shapes.
struct Block<'a> {
    c: &'a Compiled,
    expand: Option<(&'a ConvOp, &'a Int8Layer<PackedB8>)>,
    dw: (&'a ConvOp, &'a Int8Layer<Vec<i8>>),
    project: (&'a ConvOp, &'a Int8Layer<PackedB8>),
    /// The block's input.
    input: ValueId,
    /// The depthwise input (the expanded tensor), its output, the block's output.
    hidden: Shape,
    filtered: Shape,
    out: Shape,
}

impl Block<'_> {
    /// The depthwise operands.
    fn depthwise(&self) -> DepthwiseI8<'_> {
        let (cv, layer) = self.dw;
        DepthwiseI8 {
            hwc: [self.hidden.h, self.hidden.w, self.hidden.c],
            geom: cv.geom,
            zero: self.c.q.table.values[cv.input].zero,
            weight: &layer.weight,
        }
    }

    /// Expanded rows `[e0, e1)` that output rows `y0..y1` read.
    fn needs(&self, y0: usize, y1: usize) -> (usize, usize) {
        let g = self.dw.0.geom;
        let span = (g.kernel[0] - 1) * g.dilation[0] + 1;
        let h = self.hidden.h;
        let e0 = (y0 * g.stride[0]).saturating_sub(g.padding[0]).min(h);
        let e1 = ((y1 - 1) * g.stride[0] + span)
            .saturating_sub(g.padding[0])
            .min(h);
        (e0, e1.max(e0))
    }

    /// Output rows a band holds: as many as keep its expanded rows within [`BAND_BYTES`].
    fn band_rows(&self) -> usize {
        let g = self.dw.0.geom;
        let span = (g.kernel[0] - 1) * g.dilation[0] + 1;
        let rows = BAND_BYTES / (self.hidden.w * self.hidden.c).max(1);
        let r = if rows > span {
            (rows - span) / g.stride[0] + 1
        } else {
            1
        };
        r.clamp(1, self.filtered.h.max(1))
    }

    /// Expands rows `rows` of image `img` into `out` (those rows' codes).
    fn expand_rows<'v>(
        &self,
        get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
        img: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
        s: &mut GemmScratch,
    ) {
        let Some((cv, layer)) = self.expand else {
            return;
        };
        let (h, w) = (self.hidden.h, self.hidden.w);
        let src = GemmSrc {
            x: get(cv.input),
            hwc: self.c.q.plan.graph.values[cv.input],
            conv: (cv.kind == crate::ConvKind::Im2col).then_some(cv),
            out: self.hidden,
            zero: self.c.q.table.values[cv.input].zero,
        };
        let pixels = (img * h + rows.start) * w..(img * h + rows.end) * w;
        gemm_rows(self.c.path, layer, &src, None, pixels, Dst::Codes(out), s);
    }

    /// Output rows `rows` of image `img` into `out` (those rows' codes), band by band: the
    /// expanded rows from `shared` (the whole batch's) when given, else made here and kept
    /// between bands.
    fn rows<'v>(
        &self,
        get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
        shared: Option<&[u8]>,
        img: usize,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
        s: &mut Scratch,
    ) {
        let Scratch {
            gemm,
            expanded,
            filtered,
            ..
        } = s;
        let (hid, fil, o) = (self.hidden, self.filtered, self.out);
        let row = hid.w * hid.c;
        let band = self.band_rows();
        let g = self.dw.0.geom;
        let span = (g.kernel[0] - 1) * g.dilation[0] + 1;
        grow(expanded, ((band - 1) * g.stride[0] + span).min(hid.h) * row);
        grow(filtered, band * fil.w * fil.c);
        let depthwise = self.depthwise();
        let rq = self.dw.1.requant();
        let (pcv, player) = self.project;
        let res = pcv.residual.map(get);
        let mut kept: Option<(usize, usize)> = None;
        let mut y0 = rows.start;
        while y0 < rows.end {
            let y1 = rows.end.min(y0 + band);
            let (e0, e1) = self.needs(y0, y1);
            let (input, first): (&[u8], usize) = match (self.expand.is_some(), shared) {
                (true, None) => {
                    // Rows kept from the last band move to the front; the rest are made.
                    let from = match kept {
                        Some((k0, k1)) if k0 <= e0 && e0 < k1 => {
                            let k1 = k1.min(e1);
                            expanded.copy_within((e0 - k0) * row..(k1 - k0) * row, 0);
                            k1
                        }
                        _ => e0,
                    };
                    let dst = &mut expanded[(from - e0) * row..(e1 - e0) * row];
                    self.expand_rows(get, img, from..e1, dst, gemm);
                    kept = Some((e0, e1));
                    (&expanded[..(e1 - e0) * row], e0)
                }
                (true, Some(x)) => (&x[(img * hid.h + e0) * row..(img * hid.h + e1) * row], e0),
                (false, _) => {
                    let x = get(self.input);
                    (&x[(img * hid.h + e0) * row..(img * hid.h + e1) * row], e0)
                }
            };
            let mid = &mut filtered[..(y1 - y0) * fil.w * fil.c];
            depthwise_u8i8_requant(
                self.c.path,
                &depthwise,
                input,
                first,
                y0..y1,
                &rq,
                None,
                mid,
                &mut gemm.acc,
            );
            let src = GemmSrc {
                x: mid,
                hwc: fil,
                conv: None,
                out: o,
                zero: 0,
            };
            let (p0, p1) = ((img * o.h + y0) * o.w, (img * o.h + y1) * o.w);
            let at = (y0 - rows.start) * o.w * o.c;
            let dst = Dst::Codes(&mut out[at..at + (p1 - p0) * o.c]);
            let r = res.map(|v| &v[p0 * o.c..p1 * o.c]);
            gemm_rows(self.c.path, player, &src, r, 0..p1 - p0, dst, gemm);
            y0 = y1;
        }
    }

    /// Output rows `rows` of the batch (image-major) into `out` (those rows' codes).
    fn batch_rows<'v>(
        &self,
        get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
        shared: Option<&[u8]>,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
        s: &mut Scratch,
    ) {
        let (oh, row) = (self.out.h, self.out.w * self.out.c);
        let mut r = rows.start;
        while r < rows.end {
            let (img, ya) = (r / oh, r % oh);
            let yb = oh.min(ya + rows.end - r);
            let at = (r - rows.start) * row;
            let dst = &mut out[at..at + (yb - ya) * row];
            self.rows(get, shared, img, ya..yb, dst, s);
            r += yb - ya;
        }
    }
}

/// Grows `v` to at least `n` elements.
fn grow(v: &mut Vec<u8>, n: usize) {
    if v.len() < n {
        v.resize(n, 0);
    }
}

/// Runs the fused block `(expand, dw, project)` on `n` images into `dst` (the projection's
/// codes): threads split the output rows band by band, or on small maps first share the
/// expansion (see the module's documentation).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_block<'v>(
    c: &Compiled,
    (expand, dw, project): (Option<usize>, usize, usize),
    get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
    n: usize,
    par: Par,
    (scratches, shared): (&mut [Scratch], &mut Vec<u8>),
    dst: &mut [u8],
) {
    let g = &c.q.plan.graph;
    let conv = |i: usize| match &g.ops[i] {
        Op::Conv(cv) => cv,
        _ => unreachable!("a fused block is of convolutions"),
    };
    let gemm = |i: usize| match &c.prepared[i] {
        Prepared::Gemm(l) => l,
        _ => unreachable!("checked by int8_blocks"),
    };
    let Prepared::Depthwise(dl) = &c.prepared[dw] else {
        unreachable!("checked by int8_blocks")
    };
    let (dcv, pcv) = (conv(dw), conv(project));
    let b = Block {
        c,
        expand: expand.map(|e| (conv(e), gemm(e))),
        dw: (dcv, dl),
        project: (pcv, gemm(project)),
        input: expand.map_or(dcv.input, |e| conv(e).input),
        hidden: g.values[dcv.input],
        filtered: g.values[dcv.output],
        out: g.values[pcv.output],
    };
    let threads = par.threads().min(scratches.len()).max(1);
    let rows = n * b.out.h;
    let share = threads > 1 && b.expand.is_some() && rows < MIN_ROWS_PER_THREAD * threads;
    let shared: Option<&[u8]> = if share {
        // Every thread expands its share of the batch's pixels into one tensor.
        let (cv, layer) = b.expand.expect("checked above");
        let hid = b.hidden;
        grow(shared, n * hid.len());
        let src = GemmSrc {
            x: get(cv.input),
            hwc: g.values[cv.input],
            conv: (cv.kind == crate::ConvKind::Im2col).then_some(cv),
            out: hid,
            zero: c.q.table.values[cv.input].zero,
        };
        let whole = Dst::Codes(&mut shared[..n * hid.len()]);
        let items = row_parts(par, n * hid.h * hid.w, 1, hid.c, whole, scratches);
        par.run(items, |_, (px, d, s)| {
            gemm_rows(c.path, layer, &src, None, px, d, &mut s.gemm)
        });
        Some(&shared[..n * hid.len()])
    } else {
        None
    };
    let row = b.out.w * b.out.c;
    let parts = split_ranges(rows, threads, 1);
    let mut items = Vec::with_capacity(parts.len());
    let mut rest = &mut dst[..rows * row];
    for (range, s) in parts.into_iter().zip(scratches.iter_mut()) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(range.len() * row);
        items.push((range, head, s));
        rest = tail;
    }
    par.run(items, |_, (range, out, s)| {
        b.batch_rows(get, shared, range, out, s)
    });
}
