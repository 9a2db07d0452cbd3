//! [`Int8Engine`]: runs a [`QuantPlan`] on `f32` NHWC images: the input is quantised to the first
//! value's codes, every op reads and writes `u8` codes, and the last op returns reals.
//!
//! Threads are used as in the fp32 [`crate::Engine`]: a batch of at least as many images as
//! threads is split into images, each worker running the whole network on its share a few images
//! at a time; a smaller batch runs op by op with each convolution's rows split across threads.
//! MobileNetV2's inverted-residual blocks run fused, as in the fp32 engine ([`super::block`]).

use super::block::{int8_blocks, run_block};
use super::gemm::{gemm_rows, GemmScratch, GemmSrc};
use super::prepare::{prepare, Int8Layer, Prepared};
use super::table::ActQuant;
use super::QuantPlan;
use crate::engine::{check_has_ops, check_input, Observe};
use crate::error::{Result, RuntimeError};
use crate::kernels::int8_depthwise::{depthwise_u8i8_requant, depthwise_u8i8_rows, DepthwiseI8};
use crate::kernels::int8_gemm::Int8Path;
use crate::kernels::int8_requant::code;
use crate::parallel::{chunks_by, split_rows, Par};
use crate::plan::{Op, ValueId};
use crate::schedule::{assign_buffers, Slot, Step};
use crate::team::Team;
use crate::{Engine, EngineOptions, Shape};

/// How an [`Int8Engine`] runs.
#[derive(Debug, Clone, Copy)]
pub struct Int8Options {
    /// Worker threads; 0 means all available cores.
    pub threads: usize,
    /// Instruction set of the integer kernels (must be available on this CPU).
    pub path: Int8Path,
    /// Split batches of at least `threads` images by image.
    pub image_parallel: bool,
    /// Images a worker runs together when a batch is split by image (0 is treated as 1).
    pub micro_batch: usize,
    /// Run inverted-residual blocks fused (the codes are the same either way).
    pub fuse: bool,
}

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options {
            threads: 0,
            path: Int8Path::best(),
            image_parallel: true,
            micro_batch: 4,
            fuse: true,
        }
    }
}

/// Per-thread scratch: the GEMM's, the `f32` operands of the ops that run in `f32`, and a fused
/// block's rows.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) gemm: GemmScratch,
    reals: Vec<f32>,
    engines: Vec<Option<Engine>>,
    /// A fused block's expanded rows.
    pub(super) expanded: Vec<u8>,
    /// A fused block's depthwise output rows.
    pub(super) filtered: Vec<u8>,
}

/// One worker's codes: the quantised input and the value buffers, grown to the largest batch,
/// and the whole expanded tensor of a fused block whose threads share it.
#[derive(Default)]
struct Arena {
    input: Vec<u8>,
    buffers: Vec<Vec<u8>>,
    capacity: usize,
    shared: Vec<u8>,
    scratch: Scratch,
}

/// The steps of a run and where each value lives.
struct Schedule {
    steps: Vec<Step>,
    slots: Vec<Slot>,
    per_image: Vec<usize>,
}

impl Schedule {
    fn new(q: &QuantPlan, steps: Vec<Step>) -> Schedule {
        let (slots, per_image) = assign_buffers(&q.plan, &steps);
        Schedule {
            steps,
            slots,
            per_image,
        }
    }
}

/// What does not change between calls.
pub(super) struct Compiled {
    pub(super) q: QuantPlan,
    pub(super) prepared: Vec<Prepared>,
    /// Fused blocks (or op by op, without fusion).
    run: Schedule,
    /// Op by op, every value stored: for observed runs.
    ops: Schedule,
    pub(super) path: Int8Path,
}

/// Runs a validated [`QuantPlan`].
pub struct Int8Engine {
    c: Compiled,
    /// The threads beside the caller's (none for one thread).
    team: Option<Team>,
    threads: usize,
    image_parallel: bool,
    micro_batch: usize,
    arenas: Vec<Arena>,
    output: Vec<f32>,
}

/// Where an op writes: codes of the next value, or reals of the network's output.
pub(super) enum Dst<'a> {
    Codes(&'a mut [u8]),
    Reals(&'a mut [f32]),
}

impl<'a> Dst<'a> {
    /// Cuts into consecutive parts of `sizes[i]` rows of `row` elements.
    fn split(self, sizes: &[usize], row: usize) -> Vec<Dst<'a>> {
        match self {
            Dst::Codes(b) => chunks_by(b, sizes, row)
                .into_iter()
                .map(Dst::Codes)
                .collect(),
            Dst::Reals(b) => chunks_by(b, sizes, row)
                .into_iter()
                .map(Dst::Reals)
                .collect(),
        }
    }
}

impl Int8Engine {
    /// Validates `q`, quantises and packs its weights and prepares the threads.
    pub fn new(q: QuantPlan, options: Int8Options) -> Result<Self> {
        q.validate()?;
        check_has_ops(&q.plan)?;
        if !options.path.available() {
            return Err(RuntimeError::InvalidPlan(format!(
                "this CPU cannot run the {:?} int8 kernels",
                options.path
            )));
        }
        let (threads, team) = crate::parallel::engine_team(options.threads, "kestrel-i8")?;
        let prepared = prepare(&q);
        let ops: Vec<Step> = (0..q.plan.graph.ops.len()).map(Step::Op).collect();
        let run = if options.fuse {
            int8_blocks(&q, &prepared)
        } else {
            ops.clone()
        };
        Ok(Int8Engine {
            c: Compiled {
                run: Schedule::new(&q, run),
                ops: Schedule::new(&q, ops),
                q,
                prepared,
                path: options.path,
            },
            team,
            threads,
            image_parallel: options.image_parallel,
            micro_batch: options.micro_batch.max(1),
            arenas: (0..threads).map(|_| Arena::default()).collect(),
            output: Vec::new(),
        })
    }

    /// The plan being run.
    pub fn plan(&self) -> &QuantPlan {
        &self.c.q
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `batch` NHWC images and returns the output reals (`batch × output length`), valid
    /// until the next call.
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<&[f32]> {
        self.run_inner(input, batch, None)
    }

    /// As [`Int8Engine::run`], op by op, calling `observe(value, reals)` with the dequantised
    /// codes of the input and of every value as it is written (the output: its reals).
    pub fn run_observed(
        &mut self,
        input: &[f32],
        batch: usize,
        observe: Observe<'_>,
    ) -> Result<&[f32]> {
        self.run_inner(input, batch, Some(observe))
    }

    fn run_inner(
        &mut self,
        input: &[f32],
        batch: usize,
        observe: Option<Observe<'_>>,
    ) -> Result<&[f32]> {
        let plan = &self.c.q.plan;
        check_input(plan, input, batch)?;
        let is = plan.input_shape();
        let (per_in, per_out) = (is.len(), plan.output_shape().len());
        if self.output.len() < batch * per_out {
            self.output.resize(batch * per_out, 0.0);
        }
        let out = &mut self.output[..batch * per_out];
        let c = &self.c;
        if observe.is_none() && self.image_parallel && batch > 1 && batch >= self.threads {
            let parts = split_rows(batch, self.threads, 1);
            let chunks = chunks_by(out, &parts, per_out);
            let mut items = Vec::with_capacity(parts.len());
            let mut first = 0;
            for ((chunk, arena), &n) in chunks.into_iter().zip(self.arenas.iter_mut()).zip(&parts) {
                items.push((chunk, arena, first));
                first += n;
            }
            let micro = self.micro_batch;
            Par::team(self.team.as_ref()).run(items, |_, (chunk, arena, first)| {
                let mut img = first;
                for dst in chunk.chunks_mut(micro * per_out) {
                    let k = dst.len() / per_out;
                    let x = &input[img * per_in..(img + k) * per_in];
                    let Arena {
                        input: qin,
                        buffers,
                        capacity,
                        shared,
                        scratch,
                    } = arena;
                    grow(c, qin, buffers, capacity, k);
                    let mut one = [std::mem::take(scratch)];
                    let bufs = Buffers {
                        buffers,
                        shared,
                        scratches: &mut one,
                    };
                    execute(c, qin, bufs, x, k, Par::SERIAL, dst, None);
                    *scratch = std::mem::take(&mut one[0]);
                    img += k;
                }
            });
        } else {
            let par = Par::team(self.team.as_ref());
            let mut scratches: Vec<Scratch> = self
                .arenas
                .iter_mut()
                .map(|a| std::mem::take(&mut a.scratch))
                .collect();
            let a0 = &mut self.arenas[0];
            let (mut qin, mut buffers, mut shared, mut cap) = (
                std::mem::take(&mut a0.input),
                std::mem::take(&mut a0.buffers),
                std::mem::take(&mut a0.shared),
                a0.capacity,
            );
            grow(c, &mut qin, &mut buffers, &mut cap, batch);
            let bufs = Buffers {
                buffers: &mut buffers,
                shared: &mut shared,
                scratches: &mut scratches,
            };
            execute(c, &mut qin, bufs, input, batch, par, out, observe);
            let a0 = &mut self.arenas[0];
            (a0.input, a0.buffers, a0.shared, a0.capacity) = (qin, buffers, shared, cap);
            for (a, s) in self.arenas.iter_mut().zip(scratches) {
                a.scratch = s;
            }
        }
        Ok(&self.output[..batch * per_out])
    }
}

/// Grows the input and value buffers to `n` images (for either schedule).
fn grow(c: &Compiled, qin: &mut Vec<u8>, buffers: &mut Vec<Vec<u8>>, cap: &mut usize, n: usize) {
    if n > *cap {
        qin.resize(n * c.q.plan.input_shape().len(), 0);
        let (a, b) = (&c.run.per_image, &c.ops.per_image);
        buffers.resize_with(a.len().max(b.len()), Vec::new);
        for (i, buf) in buffers.iter_mut().enumerate() {
            let per = a
                .get(i)
                .copied()
                .unwrap_or(0)
                .max(b.get(i).copied().unwrap_or(0));
            buf.resize(per * n, 0);
        }
        *cap = n;
    }
}

/// The memory a run works in: the value buffers, the shared expanded tensor of fused blocks, and
/// one scratch per thread.
struct Buffers<'a> {
    buffers: &'a mut [Vec<u8>],
    shared: &'a mut Vec<u8>,
    scratches: &'a mut [Scratch],
}

/// Runs every step on `n` images, writing the output reals to `out`.
#[allow(clippy::too_many_arguments)]
fn execute(
    c: &Compiled,
    qin: &mut [u8],
    bufs: Buffers,
    input: &[f32],
    n: usize,
    par: Par,
    out: &mut [f32],
    mut observe: Option<Observe<'_>>,
) {
    let Buffers {
        buffers,
        shared,
        scratches,
    } = bufs;
    let sched = if observe.is_some() { &c.ops } else { &c.run };
    let plan = &c.q.plan;
    let g = &plan.graph;
    let table = &c.q.table;
    let q0 = table.values[0];
    let qin = &mut qin[..n * plan.input_shape().len()];
    for (q, &x) in qin.iter_mut().zip(input) {
        *q = q0.quantize(x);
    }
    if let Some(f) = observe.as_deref_mut() {
        f(0, &dequantize(qin, q0));
    }
    let qin: &[u8] = qin;
    for step in &sched.steps {
        let o = step.writes(&g.ops);
        let len = n * g.values[o].len();
        let reals = o == g.output;
        let mut buf = match sched.slots[o] {
            Slot::Buffer(b) => std::mem::take(&mut buffers[b]),
            _ => unreachable!("every step's output has a buffer"),
        };
        {
            let get = |v: ValueId| -> &[u8] {
                match sched.slots[v] {
                    Slot::Input => qin,
                    Slot::Buffer(b) => &buffers[b][..n * g.values[v].len()],
                    Slot::Virtual => unreachable!("a step reads a stored value"),
                }
            };
            let dst = if reals {
                Dst::Reals(&mut out[..len])
            } else {
                Dst::Codes(&mut buf[..len])
            };
            match *step {
                Step::Op(i) => run_op(c, i, &g.ops[i], &get, n, par, scratches, dst),
                Step::Block {
                    expand,
                    dw,
                    project,
                } => {
                    let Dst::Codes(d) = dst else {
                        unreachable!("a block that writes the output is not fused")
                    };
                    let parts = (&mut *scratches, &mut *shared);
                    run_block(c, (expand, dw, project), &get, n, par, parts, d)
                }
            }
        }
        if let Some(f) = observe.as_deref_mut() {
            if reals {
                f(o, &out[..len]);
            } else {
                f(o, &dequantize(&buf[..len], table.values[o]));
            }
        }
        if let Slot::Buffer(b) = sched.slots[o] {
            buffers[b] = buf;
        }
    }
}

fn dequantize(codes: &[u8], q: ActQuant) -> Vec<f32> {
    codes.iter().map(|&c| q.dequantize(c)).collect()
}

/// Runs op `i` into `dst`.
#[allow(clippy::too_many_arguments)]
fn run_op<'v>(
    c: &Compiled,
    i: usize,
    op: &Op,
    get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
    n: usize,
    par: Par,
    scratches: &mut [Scratch],
    dst: Dst,
) {
    let g = &c.q.plan.graph;
    let table = &c.q.table;
    match (&c.prepared[i], op) {
        (Prepared::Gemm(layer), _) => {
            let (x, xs, rows) = match op {
                Op::Conv(cv) => {
                    let o = g.values[cv.output];
                    (cv.input, Some(cv), n * o.h * o.w)
                }
                _ => (op.inputs()[0], None, n),
            };
            let src = GemmSrc {
                x: get(x),
                hwc: g.values[x],
                conv: xs.filter(|cv| cv.kind == crate::plan::ConvKind::Im2col),
                out: g.values[op.output()],
                zero: table.values[x].zero,
            };
            let res = xs.and_then(|cv| cv.residual).map(get);
            let cout = layer.weight.n;
            // Balanced parts (a 7×7 map's 49 rows as 25 + 24, not 32 + 17): the tiles of 8 rows
            // finish a part's last rows one at a time.
            let items = row_parts(par, rows, 1, cout, dst, scratches);
            par.run(items, |_, (rows, d, s)| {
                gemm_rows(c.path, layer, &src, res, rows, d, &mut s.gemm)
            });
        }
        (Prepared::Depthwise(layer), Op::Conv(cv)) => {
            let (is, os) = (g.values[cv.input], g.values[cv.output]);
            let op8 = DepthwiseI8 {
                hwc: [is.h, is.w, is.c],
                geom: cv.geom,
                zero: table.values[cv.input].zero,
                weight: &layer.weight,
            };
            let (x, res) = (get(cv.input), cv.residual.map(get));
            let rows = n * os.h;
            let items = row_parts(par, rows, 1, os.w * os.c, dst, scratches);
            par.run(items, |_, (rows, d, s)| {
                depthwise_rows(
                    c.path,
                    layer,
                    &op8,
                    is,
                    os,
                    x,
                    res,
                    rows,
                    d,
                    &mut s.gemm.acc,
                )
            });
        }
        (Prepared::Codes, _) => codes_op(c, op, get, n, dst),
        (Prepared::Float(p, after), _) => {
            let s = &mut scratches[0];
            let x = op.inputs()[0];
            let xq = table.values[x];
            s.reals.clear();
            s.reals.extend(get(x).iter().map(|&v| xq.dequantize(v)));
            if s.engines.len() < g.ops.len() {
                s.engines.resize_with(g.ops.len(), || None);
            }
            let engine = s.engines[i].get_or_insert_with(|| {
                let opts = EngineOptions {
                    threads: 1,
                    ..Default::default()
                };
                Engine::new((**p).clone(), opts).expect("a one-op plan of a valid plan is valid")
            });
            let y = engine.run(&s.reals, n).expect("shapes were checked");
            let yq = table.values[op.output()];
            let res = after.map(|(r, act)| (get(r), table.values[r], act));
            let real = |j: usize| match res {
                Some((r, rq, act)) => act.apply(y[j] + rq.dequantize(r[j])),
                None => y[j],
            };
            match dst {
                Dst::Reals(d) => d.iter_mut().enumerate().for_each(|(j, v)| *v = real(j)),
                Dst::Codes(d) => d
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = yq.quantize(real(j))),
            }
        }
        (Prepared::Depthwise(_), _) => unreachable!("depthwise layers are convolutions"),
    }
}

/// An op's `rows` output rows (of `row_len` elements) cut into one part per thread (each a
/// multiple of `align` rows but the last), with its destination and its thread's scratch.
pub(super) fn row_parts<'a, 'd>(
    par: Par,
    rows: usize,
    align: usize,
    row_len: usize,
    dst: Dst<'d>,
    scratches: &'a mut [Scratch],
) -> Vec<(std::ops::Range<usize>, Dst<'d>, &'a mut Scratch)> {
    let parts = split_rows(rows, par.threads().min(scratches.len()), align);
    let dsts = dst.split(&parts, row_len);
    let mut r0 = 0;
    dsts.into_iter()
        .zip(scratches.iter_mut())
        .zip(&parts)
        .map(|((d, s), &m)| {
            r0 += m;
            (r0 - m..r0, d, s)
        })
        .collect()
}

/// Depthwise output rows `rows` (image-major `(image, y)` pairs) with the epilogue, into `dst`.
#[allow(clippy::too_many_arguments)]
fn depthwise_rows(
    path: Int8Path,
    layer: &Int8Layer<Vec<i8>>,
    op: &DepthwiseI8,
    is: Shape,
    os: Shape,
    x: &[u8],
    res: Option<&[u8]>,
    rows: std::ops::Range<usize>,
    mut dst: Dst,
    acc: &mut Vec<i32>,
) {
    let row_len = os.w * os.c;
    let rq = layer.requant();
    if let Dst::Codes(d) = &mut dst {
        let mut r = rows.start;
        while r < rows.end {
            let (img, y0) = (r / os.h, r % os.h);
            let y1 = os.h.min(y0 + rows.end - r);
            let image = &x[img * is.len()..(img + 1) * is.len()];
            let (a, b) = (
                (r - rows.start) * row_len,
                (r - rows.start + y1 - y0) * row_len,
            );
            let resr = res.map(|v| &v[r * row_len..(r + y1 - y0) * row_len]);
            depthwise_u8i8_requant(path, op, image, 0, y0..y1, &rq, resr, &mut d[a..b], acc);
            r += y1 - y0;
        }
        return;
    }
    let per = (16 * 1024 / row_len.max(1)).max(1);
    if acc.len() < per * row_len {
        acc.resize(per * row_len, 0);
    }
    let scratch = acc;
    let mut r = rows.start;
    while r < rows.end {
        let (img, y0) = (r / os.h, r % os.h);
        let y1 = (y0 + per).min(os.h).min(y0 + rows.end - r);
        let image = &x[img * is.len()..(img + 1) * is.len()];
        let acc = &mut scratch[..(y1 - y0) * row_len];
        depthwise_u8i8_rows(path, op, image, y0..y1, acc);
        for (j, sums) in acc.chunks_exact(os.c).enumerate() {
            let pix = (img * os.h + y0) * os.w + j;
            let resr = res.map(|v| &v[pix * os.c..(pix + 1) * os.c]);
            let at = (r - rows.start) * row_len + j * os.c;
            if let Dst::Reals(d) = &mut dst {
                rq.row_f32(sums, resr, layer.epi.act, &mut d[at..at + os.c]);
            }
        }
        r += y1 - y0;
    }
}

/// Pools and adds, on codes.
fn codes_op<'v>(
    c: &Compiled,
    op: &Op,
    get: &(dyn Fn(ValueId) -> &'v [u8] + Sync),
    n: usize,
    dst: Dst,
) {
    let g = &c.q.plan.graph;
    let t = &c.q.table;
    let yq = t.values[op.output()];
    if let Op::Add { a, b, act, .. } = op {
        let (qa, qb) = (t.values[*a], t.values[*b]);
        let (xa, xb) = (get(*a), get(*b));
        match dst {
            Dst::Reals(d) => {
                for ((v, &p), &q) in d.iter_mut().zip(xa).zip(xb) {
                    *v = act.apply(qa.dequantize(p) + qb.dequantize(q));
                }
            }
            Dst::Codes(d) => {
                let ra = (qa.scale as f64 / yq.scale as f64) as f32;
                let rb = (qb.scale as f64 / yq.scale as f64) as f32;
                let (za, zb) = (qa.zero as f32, qb.zero as f32);
                let (lo, hi) = yq.clamp_codes(*act);
                let (z, lo, hi) = (yq.zero as i32, lo as i32, hi as i32);
                for ((v, &p), &q) in d.iter_mut().zip(xa).zip(xb) {
                    *v = code((p as f32 - za) * ra + (q as f32 - zb) * rb, z, lo, hi);
                }
            }
        }
        return;
    }
    let mut tmp = Vec::new();
    let (codes, reals): (&mut [u8], Option<&mut [f32]>) = match dst {
        Dst::Codes(d) => (d, None),
        Dst::Reals(d) => {
            tmp.resize(d.len(), 0);
            (&mut tmp, Some(d))
        }
    };
    match op {
        Op::GlobalAvgPool { input, .. } => {
            let s = g.values[*input];
            let (pixels, ch) = (s.h * s.w, s.c);
            let x = get(*input);
            let mut sum = vec![0u64; ch];
            for b in 0..n {
                sum.fill(0);
                for p in x[b * pixels * ch..(b + 1) * pixels * ch].chunks_exact(ch) {
                    for (a, &v) in sum.iter_mut().zip(p) {
                        *a += v as u64;
                    }
                }
                // The mean of codes is the code of the mean, rounded half to even (as
                // QuantizeLinear rounds the float mean of the dequantised values).
                let px = pixels as u64;
                for (d, &a) in codes[b * ch..(b + 1) * ch].iter_mut().zip(&sum) {
                    let (q, r) = (a / px, a % px);
                    let up = 2 * r > px || (2 * r == px && q % 2 == 1);
                    *d = (q + u64::from(up)) as u8;
                }
            }
        }
        Op::MaxPool { input, geom, .. } => {
            let (s, o) = (g.values[*input], g.values[op.output()]);
            let x = get(*input);
            let (ry, rx) = (geom.axis(0, s.h), geom.axis(1, s.w));
            for b in 0..n {
                let image = &x[b * s.len()..(b + 1) * s.len()];
                for oy in 0..o.h {
                    let (y0, y1) = ry.valid_taps(oy);
                    for ox in 0..o.w {
                        let (x0, x1) = rx.valid_taps(ox);
                        let d = &mut codes[((b * o.h + oy) * o.w + ox) * s.c..][..s.c];
                        d.fill(0);
                        for ky in y0..y1 {
                            let iy = ry.input_at(oy, ky) as usize;
                            for kx in x0..x1 {
                                let ix = rx.input_at(ox, kx) as usize;
                                let p = &image[(iy * s.w + ix) * s.c..][..s.c];
                                for (v, &q) in d.iter_mut().zip(p) {
                                    *v = (*v).max(q);
                                }
                            }
                        }
                    }
                }
            }
        }
        _ => unreachable!("only pools and adds run on codes"),
    }
    if let Some(r) = reals {
        for (v, &q) in r.iter_mut().zip(codes.iter()) {
            *v = yq.dequantize(q);
        }
    }
}
