//! [`Engine`]: runs a [`Plan`] on NHWC input with activation buffers assigned once by liveness
//! (values whose lifetimes do not overlap share a buffer), reused across calls, and a fixed team
//! of threads that spin between jobs (see `team.rs`: a batch-1 run meets at a barrier per op, and
//! a parked rayon worker took a wake-up of ~15 µs at each).
//!
//! Two ways of using the threads: a batch of two or more images and at least as many images as
//! threads is split into images, each worker running the whole network on its images, a small
//! micro-batch at a time, in its own arena (no synchronisation between ops; fused blocks go image
//! by image so activations stay in cache); a smaller batch is run op by op with each op split
//! across all threads.

use crate::aligned::AlignedBuf;
use crate::error::{Result, RuntimeError};
use crate::kernels::conv_transpose::{conv_transpose, ConvTranspose, SubPixel};
use crate::kernels::depthwise::{depthwise, Depthwise};
use crate::kernels::im2col::{im2col_conv, pack_groups, scratch_len, Im2colConv};
use crate::kernels::inverted_residual::{
    inverted_residual, Expansion, InvertedResidual, Pointwise1x1,
};
use crate::kernels::packed_gemm::PackedB;
use crate::kernels::pointwise::{pointwise, Pointwise};
use crate::kernels::resize::{axis_taps, resize, AxisTaps};
use crate::kernels::winograd::{self, winograd_conv, WinogradWeights};
use crate::kernels::{carafe, eltwise, pool, rearrange};
use crate::parallel::Par;
use crate::plan::{ConvKind, Op, Plan};
use crate::schedule::{assign_buffers, find_blocks, Slot, Step};
use crate::team::Team;
use std::time::Instant;

/// A callback given each value's floats as a run writes them: `(value, floats of the batch)`.
pub type Observe<'a> = &'a mut (dyn FnMut(crate::ValueId, &[f32]) + Send);

/// Which kernel implementations to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelPath {
    /// AVX2+FMA where the CPU has them, portable code otherwise.
    #[default]
    Auto,
    /// Portable code only (for testing and comparison).
    Scalar,
}

/// Which GEMM runs 1×1 and im2col convolutions and linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GemmBackend {
    /// This crate's packed-panel GEMM with the epilogue fused into the micro-kernel.
    #[default]
    Packed,
    /// The `gemm` crate, followed by a separate epilogue pass.
    GemmCrate,
}

/// How an engine runs.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Worker threads; 0 means all available cores.
    pub threads: usize,
    /// Kernel implementations.
    pub kernel_path: KernelPath,
    /// GEMM implementation.
    pub gemm: GemmBackend,
    /// Split batches of at least `threads` images by image (otherwise every op is split).
    pub image_parallel: bool,
    /// Images each worker runs together when a batch is split by image: fused blocks still go
    /// image by image, but the other ops (stem, last 1×1, classifier) read their weights once per
    /// micro-batch. 0 is treated as 1.
    pub micro_batch: usize,
    /// Run expand → depthwise → project chains (MobileNetV2 blocks) fused, band by band of rows
    /// (needs [`GemmBackend::Packed`]).
    pub fuse_blocks: bool,
    /// Record the time spent in each kind of op (see [`Engine::profile`]).
    pub profile: bool,
    /// Run dense 3×3 stride-1 convolutions by Winograd F(4×4, 3×3)
    /// ([`crate::kernels::winograd`]) where the map has enough tiles for it to pay (needs
    /// [`GemmBackend::Packed`]).
    pub winograd: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 0,
            kernel_path: KernelPath::Auto,
            gemm: GemmBackend::Packed,
            image_parallel: true,
            micro_batch: 4,
            fuse_blocks: true,
            profile: false,
            winograd: true,
        }
    }
}

/// Accumulated time of one kind of op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpProfile {
    /// Op kind (see [`Op::kind_name`]).
    pub kind: &'static str,
    /// Number of op executions.
    pub calls: u64,
    /// Total seconds (summed over workers when images run in parallel).
    pub seconds: f64,
}

/// Weights repacked by the engine for the packed GEMM.
enum Packed {
    None,
    One(PackedB),
    Groups(Vec<PackedB>),
    /// Interpolation taps of a resize, along height and width.
    Resize(Box<[AxisTaps; 2]>),
    /// A transposed convolution run as its sub-pixel convolution.
    SubPixel(Box<SubPixel>),
}

/// Everything about the plan that does not change between calls.
struct Compiled {
    plan: Plan,
    simd: bool,
    slots: Vec<Slot>,
    /// Floats per image each buffer must hold.
    per_image: Vec<usize>,
    scratch_floats: usize,
    /// Scratch of fused blocks, for all threads.
    block_floats: usize,
    packed: Vec<Packed>,
    /// Winograd weights of the convolutions that can take them.
    winograd: Vec<Option<WinogradWeights>>,
    steps: Vec<Step>,
}

/// One worker's activation buffers and scratch, grown to the largest batch it has run.
#[derive(Default)]
struct Arena {
    buffers: Vec<AlignedBuf>,
    scratch: AlignedBuf,
    block_scratch: AlignedBuf,
    capacity: usize,
    profile: Vec<OpProfile>,
}

/// Runs a validated plan. Buffers grow to the largest batch seen and are then reused.
pub struct Engine {
    c: Compiled,
    team: Option<Team>,
    threads: usize,
    image_parallel: bool,
    micro_batch: usize,
    profile: bool,
    arenas: Vec<Arena>,
    output: Vec<f32>,
}

impl Engine {
    /// Validates `plan` and prepares buffers and threads.
    pub fn new(plan: Plan, options: EngineOptions) -> Result<Self> {
        plan.validate()?;
        check_has_ops(&plan)?;
        let g = &plan.graph;
        let (threads, team) = crate::parallel::engine_team(options.threads, "kestrel-rt")?;
        let use_packed = options.gemm == GemmBackend::Packed;
        let steps = if options.fuse_blocks && use_packed {
            find_blocks(&plan)
        } else {
            (0..g.ops.len()).map(Step::Op).collect()
        };
        let (slots, per_image) = assign_buffers(&plan, &steps);
        let mut scratch_floats = 0usize;
        let mut packed = Vec::with_capacity(g.ops.len());
        let mut winograd = Vec::with_capacity(g.ops.len());
        for op in &g.ops {
            winograd.push(match op {
                Op::Conv(c) if options.winograd && use_packed && c.kind == ConvKind::Im2col => {
                    let p = im2col_params(&plan, c, g.values[c.input]);
                    winograd::fits(&p).then(|| {
                        let w = WinogradWeights::new(p.weight, p.hwc[2], p.cout);
                        scratch_floats = scratch_floats.max(w.scratch_floats(threads));
                        w
                    })
                }
                _ => None,
            });
            packed.push(match op {
                Op::Conv(c) => {
                    let is = g.values[c.input];
                    match c.kind {
                        ConvKind::Pointwise if use_packed => Packed::One(PackedB::pack(
                            plan.slice(c.weight),
                            is.c,
                            c.out_channels,
                            c.out_channels,
                        )),
                        ConvKind::Im2col => {
                            let k = c.geom.kernel[0] * c.geom.kernel[1] * (is.c / c.groups);
                            scratch_floats = scratch_floats.max(scratch_len(k, threads));
                            if use_packed {
                                Packed::Groups(pack_groups(&im2col_params(&plan, c, is)))
                            } else {
                                Packed::None
                            }
                        }
                        _ => Packed::None,
                    }
                }
                Op::Linear {
                    input,
                    out_features,
                    weight,
                    ..
                } if use_packed => Packed::One(PackedB::pack(
                    plan.slice(*weight),
                    g.values[*input].c,
                    *out_features,
                    *out_features,
                )),
                Op::Resize {
                    input,
                    output,
                    mode,
                    align_corners,
                    scale,
                } => {
                    let (i, o) = (g.values[*input], g.values[*output]);
                    Packed::Resize(Box::new([
                        axis_taps(*mode, i.h, o.h, scale.map(|s| s[0]), *align_corners),
                        axis_taps(*mode, i.w, o.w, scale.map(|s| s[1]), *align_corners),
                    ]))
                }
                Op::ConvTranspose(ct) if use_packed => {
                    let p = transposed_params(&plan, ct);
                    SubPixel::new(&p).map_or(Packed::None, |sp| {
                        scratch_floats = scratch_floats.max(sp.scratch_floats(&p, threads));
                        Packed::SubPixel(Box::new(sp))
                    })
                }
                _ => Packed::None,
            });
        }
        let mut block_floats = 0usize;
        for st in &steps {
            if let Step::Block {
                expand,
                dw,
                project,
            } = *st
            {
                block_floats = block_floats
                    .max(block_params(&plan, &packed, expand, dw, project).scratch_floats(threads));
            }
        }
        let arenas = (0..threads).map(|_| Arena::default()).collect();
        Ok(Engine {
            c: Compiled {
                simd: options.kernel_path == KernelPath::Auto,
                slots,
                per_image,
                scratch_floats,
                block_floats,
                packed,
                winograd,
                steps,
                plan,
            },
            team,
            threads,
            image_parallel: options.image_parallel,
            micro_batch: options.micro_batch.max(1),
            profile: options.profile,
            arenas,
            output: Vec::new(),
        })
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.c.plan
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Number of activation buffers (per worker) the liveness analysis needed.
    pub fn buffer_count(&self) -> usize {
        self.c.per_image.len()
    }

    /// Time per op kind since creation (empty unless profiling was enabled), slowest first.
    pub fn profile(&self) -> Vec<OpProfile> {
        let mut all: Vec<OpProfile> = Vec::new();
        for a in &self.arenas {
            for p in &a.profile {
                match all.iter_mut().find(|q| q.kind == p.kind) {
                    Some(q) => {
                        q.calls += p.calls;
                        q.seconds += p.seconds;
                    }
                    None => all.push(p.clone()),
                }
            }
        }
        all.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        all
    }

    /// Runs `batch` images given as NHWC `f32` (`batch × h × w × c` floats) and returns the output,
    /// `batch × output_shape().len()` floats, valid until the next call.
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<&[f32]> {
        self.run_inner(input, batch, None)
    }

    /// As [`Engine::run`], op by op on the whole batch, calling `observe(value, floats)` for the
    /// input and for every value as it is written (calibration reads every activation this way).
    /// Values inside fused blocks are not seen: build the engine with `fuse_blocks: false` to
    /// observe all of them.
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
        check_input(&self.c.plan, input, batch)?;
        let is = self.c.plan.input_shape();
        let per_in = is.len();
        let per_out = self.c.plan.output_shape().len();
        if self.output.len() < batch * per_out {
            self.output.resize(batch * per_out, 0.0);
        }
        let out = &mut self.output[..batch * per_out];
        let c = &self.c;
        let profile = self.profile;
        let micro = self.micro_batch;
        if observe.is_none() && self.image_parallel && batch > 1 && batch >= self.threads {
            let parts = crate::parallel::split_rows(batch, self.threads, 1);
            let chunks = crate::parallel::chunks_by(out, &parts, per_out);
            let mut first = 0;
            let mut items = Vec::with_capacity(parts.len());
            for ((chunk, arena), &n) in chunks.into_iter().zip(self.arenas.iter_mut()).zip(&parts) {
                items.push((chunk, arena, first));
                first += n;
            }
            Par::team(self.team.as_ref()).run(items, |_, (chunk, arena, first)| {
                let mut img = first;
                for dst in chunk.chunks_mut(micro * per_out) {
                    let k = dst.len() / per_out;
                    let x = &input[img * per_in..(img + k) * per_in];
                    dst.copy_from_slice(execute(c, arena, x, k, Par::SERIAL, profile, None));
                    img += k;
                }
            });
        } else {
            // Every op's parts meet the team's spinning helpers: no wake-up per op.
            let par = Par::team(self.team.as_ref());
            let y = execute(c, &mut self.arenas[0], input, batch, par, profile, observe);
            out.copy_from_slice(y);
        }
        Ok(&self.output[..batch * per_out])
    }
}

/// Bad plan unless it has an op (the output is not the input): what both engines run.
pub(crate) fn check_has_ops(plan: &Plan) -> Result<()> {
    if plan.graph.output == 0 {
        return Err(RuntimeError::InvalidPlan(
            "the output is the input: the plan has no ops".into(),
        ));
    }
    Ok(())
}

/// Bad input unless `input` holds `batch ≥ 1` NHWC images of the plan's input shape.
pub(crate) fn check_input(plan: &Plan, input: &[f32], batch: usize) -> Result<()> {
    let is = plan.input_shape();
    if batch == 0 {
        return Err(RuntimeError::Input("batch must be at least 1".into()));
    }
    if input.len() != batch * is.len() {
        return Err(RuntimeError::Input(format!(
            "got {} floats, expected {} (batch {batch} x NHWC {is})",
            input.len(),
            batch * is.len()
        )));
    }
    Ok(())
}

/// The im2col operands of a convolution op.
fn im2col_params<'a>(plan: &'a Plan, c: &crate::plan::ConvOp, is: crate::Shape) -> Im2colConv<'a> {
    Im2colConv {
        hwc: [is.h, is.w, is.c],
        cout: c.out_channels,
        groups: c.groups,
        geom: c.geom,
        weight: plan.slice(c.weight),
        bias: plan.slice(c.bias),
        act: c.act,
    }
}

/// The kernel operands of a transposed convolution.
fn transposed_params<'a>(plan: &'a Plan, ct: &crate::plan::ConvTransposeOp) -> ConvTranspose<'a> {
    let (s, o) = (plan.graph.values[ct.input], plan.graph.values[ct.output]);
    ConvTranspose {
        hwc: [s.h, s.w, s.c],
        out_hw: [o.h, o.w],
        cout: ct.out_channels,
        groups: ct.groups,
        geom: ct.geom,
        weight: plan.slice(ct.weight),
        bias: plan.slice(ct.bias),
        act: ct.act,
    }
}

/// The fused-block operands of the chain `expand → dw → project` (weights packed for both 1×1s).
fn block_params<'a>(
    plan: &'a Plan,
    packed: &'a [Packed],
    expand: Option<usize>,
    dw: usize,
    project: usize,
) -> InvertedResidual<'a> {
    let ops = &plan.graph.ops;
    let vals = &plan.graph.values;
    let conv = |i: usize| match &ops[i] {
        Op::Conv(c) => c,
        _ => unreachable!("blocks are made of convolutions"),
    };
    let pw = |i: usize| {
        let c = conv(i);
        let Packed::One(b) = &packed[i] else {
            unreachable!("fused 1x1s are packed")
        };
        Pointwise1x1 {
            weight: b,
            bias: plan.slice(c.bias),
            act: c.act,
        }
    };
    let d = conv(dw);
    let hs = vals[d.input];
    let input = vals[conv(expand.unwrap_or(dw)).input];
    let expansion = |i: usize| {
        let c = conv(i);
        match (&c.kind, &packed[i]) {
            (ConvKind::Im2col, Packed::Groups(g)) => Expansion::Dense {
                conv: im2col_params(plan, c, input),
                weight: &g[0],
            },
            _ => Expansion::Pointwise(pw(i)),
        }
    };
    InvertedResidual {
        hwc: [input.h, input.w, input.c],
        expand: expand.map(expansion),
        dw: Depthwise {
            hwc: [hs.h, hs.w, hs.c],
            geom: d.geom,
            weight: plan.slice(d.weight),
            bias: plan.slice(d.bias),
            act: d.act,
        },
        project: pw(project),
    }
}

/// Runs every op on `n` images in `arena`; returns the output value's floats.
fn execute<'a>(
    c: &Compiled,
    arena: &'a mut Arena,
    input: &[f32],
    n: usize,
    par: Par,
    profile: bool,
    mut observe: Option<Observe<'_>>,
) -> &'a [f32] {
    if n > arena.capacity {
        for (i, &per) in c.per_image.iter().enumerate() {
            if arena.buffers.len() <= i {
                arena.buffers.push(AlignedBuf::default());
            }
            arena.buffers[i].resize(per * n);
        }
        arena.capacity = n;
    }
    if arena.scratch.len() < c.scratch_floats {
        arena.scratch.resize(c.scratch_floats);
    }
    if arena.block_scratch.len() < c.block_floats {
        arena.block_scratch.resize(c.block_floats);
    }
    let plan = &c.plan;
    let vals = &plan.graph.values;
    let simd = c.simd;
    if let Some(f) = observe.as_deref_mut() {
        f(0, &input[..n * vals[0].len()]);
    }
    for step in &c.steps {
        let t0 = profile.then(Instant::now);
        let Slot::Buffer(ob) = c.slots[step.writes(&plan.graph.ops)] else {
            unreachable!("outputs live in buffers")
        };
        let mut out = std::mem::take(&mut arena.buffers[ob]);
        let buffers = &arena.buffers;
        let get = |v: usize| -> &[f32] {
            match c.slots[v] {
                Slot::Input => input,
                Slot::Buffer(b) => &buffers[b],
                Slot::Virtual => unreachable!("fused values are never read"),
            }
        };
        let i = match *step {
            Step::Op(i) => i,
            Step::Block {
                expand,
                dw,
                project,
            } => {
                let p = block_params(plan, &c.packed, expand, dw, project);
                let Op::Conv(pc) = &plan.graph.ops[project] else {
                    unreachable!("blocks end with a convolution")
                };
                let x = get(step.reads(&plan.graph.ops)[0]);
                let res = pc.residual.map(get);
                inverted_residual(par, &p, n, x, res, &mut out, &mut arena.block_scratch, simd);
                let v = step.writes(&plan.graph.ops);
                if let Some(f) = observe.as_deref_mut() {
                    f(v, &out[..n * vals[v].len()]);
                }
                arena.buffers[ob] = out;
                if let Some(t0) = t0 {
                    record(&mut arena.profile, "inverted_residual", t0);
                }
                continue;
            }
        };
        let op = &plan.graph.ops[i];
        let packed = &c.packed[i];
        {
            let one = match packed {
                Packed::One(b) => Some((b, simd)),
                _ => None,
            };
            match op {
                Op::Conv(cv) => {
                    let is = vals[cv.input];
                    let x = get(cv.input);
                    let res = cv.residual.map(get);
                    let (weight, bias) = (plan.slice(cv.weight), plan.slice(cv.bias));
                    match cv.kind {
                        ConvKind::Pointwise => {
                            let p = Pointwise {
                                cin: is.c,
                                cout: cv.out_channels,
                                weight,
                                bias,
                                act: cv.act,
                            };
                            pointwise(par, &p, n * is.h * is.w, x, res, &mut out, one);
                        }
                        ConvKind::Depthwise => {
                            let p = Depthwise {
                                hwc: [is.h, is.w, is.c],
                                geom: cv.geom,
                                weight,
                                bias,
                                act: cv.act,
                            };
                            depthwise(par, &p, n, x, res, &mut out, simd);
                        }
                        ConvKind::Im2col => {
                            let p = im2col_params(plan, cv, is);
                            let scratch = &mut arena.scratch;
                            match &c.winograd[i] {
                                Some(w) if winograd::pays(&p, n, par.threads()) => {
                                    winograd_conv(par, &p, w, n, x, res, &mut out, scratch, simd)
                                }
                                _ => {
                                    let groups = match packed {
                                        Packed::Groups(g) => Some((&g[..], simd)),
                                        _ => None,
                                    };
                                    im2col_conv(par, &p, n, x, res, &mut out, scratch, groups);
                                }
                            }
                        }
                    }
                }
                Op::MaxPool { input: i, geom, .. } => {
                    let s = vals[*i];
                    pool::max_pool(par, [s.h, s.w, s.c], geom, n, get(*i), &mut out, simd);
                }
                Op::GlobalAvgPool { input: i, .. } => {
                    let s = vals[*i];
                    pool::global_avg_pool(n, s.h * s.w, s.c, get(*i), &mut out);
                }
                Op::Linear {
                    input: i,
                    out_features,
                    weight,
                    bias,
                    act,
                    ..
                } => {
                    let p = Pointwise {
                        cin: vals[*i].c,
                        cout: *out_features,
                        weight: plan.slice(*weight),
                        bias: plan.slice(*bias),
                        act: *act,
                    };
                    pointwise(par, &p, n, get(*i), None, &mut out, one);
                }
                Op::Add { a, b, act, .. } => {
                    let len = n * vals[*a].len();
                    eltwise::add(&get(*a)[..len], &get(*b)[..len], *act, &mut out[..len]);
                }
                Op::Clip {
                    input: i, min, max, ..
                } => {
                    let len = n * vals[*i].len();
                    eltwise::clip(&get(*i)[..len], *min, *max, &mut out[..len]);
                }
                Op::Resize { input: i, .. } => {
                    let Packed::Resize(t) = packed else {
                        unreachable!("resize taps are computed at construction")
                    };
                    let s = vals[*i];
                    resize(par, [s.h, s.w, s.c], &t[0], &t[1], n, get(*i), &mut out);
                }
                Op::ConvTranspose(ct) => {
                    let (p, x) = (transposed_params(plan, ct), get(ct.input));
                    match packed {
                        Packed::SubPixel(sp) => {
                            sp.run(par, &p, n, x, &mut out, &mut arena.scratch, simd)
                        }
                        _ => conv_transpose(par, &p, n, x, &mut out),
                    }
                }
                Op::PixelShuffle {
                    input: i, factor, ..
                } => {
                    let s = vals[*i];
                    rearrange::pixel_shuffle(par, [s.h, s.w, s.c], *factor, n, get(*i), &mut out);
                }
                Op::Carafe {
                    input: i,
                    kernels,
                    factor,
                    kernel,
                    ..
                } => {
                    let s = vals[*i];
                    let p = carafe::Carafe {
                        hwc: [s.h, s.w, s.c],
                        factor: *factor,
                        kernel: *kernel,
                    };
                    carafe::carafe(par, &p, n, get(*i), get(*kernels), &mut out);
                }
                Op::Crop {
                    input: i,
                    output: o,
                } => {
                    let (s, os) = (vals[*i], vals[*o]);
                    rearrange::crop([s.h, s.w, s.c], [os.h, os.w], n, get(*i), &mut out);
                }
            }
        }
        if let Some(f) = observe.as_deref_mut() {
            let v = op.output();
            f(v, &out[..n * vals[v].len()]);
        }
        arena.buffers[ob] = out;
        if let Some(t0) = t0 {
            record(&mut arena.profile, op.kind_name(), t0);
        }
    }
    let Slot::Buffer(ob) = c.slots[plan.graph.output] else {
        unreachable!()
    };
    &arena.buffers[ob][..n * plan.output_shape().len()]
}

/// Adds the time since `t0` to `kind`'s entry.
fn record(profile: &mut Vec<OpProfile>, kind: &'static str, t0: Instant) {
    let dt = t0.elapsed().as_secs_f64();
    match profile.iter_mut().find(|p| p.kind == kind) {
        Some(p) => {
            p.calls += 1;
            p.seconds += dt;
        }
        None => profile.push(OpProfile {
            kind,
            calls: 1,
            seconds: dt,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, ConvParams, PlanBuilder, Shape};

    /// input → [expand] → depthwise → project (+ input); with `leak`, the depthwise output is
    /// also pooled into the plan's output, so the chain must not be fused.
    fn chain(expand: bool, leak: bool) -> Plan {
        let mut b = PlanBuilder::new(Shape { h: 6, w: 5, c: 4 });
        let mut x = b.input();
        let hidden = if expand { 8 } else { 4 };
        if expand {
            x = b
                .conv(
                    x,
                    &ConvParams::new(&[0.1; 32], None, 8, 1).act(Activation::Relu6),
                )
                .unwrap();
        }
        let d = b
            .depthwise(
                x,
                &ConvParams::new(&vec![0.2; hidden * 9], None, 0, 3).padding(1),
            )
            .unwrap();
        let p = b
            .conv(d, &ConvParams::new(&vec![0.3; 4 * hidden], None, 4, 1))
            .unwrap();
        let p = b.add_residual(p, 0, Activation::None).unwrap();
        let out = if leak { b.global_pool(d).unwrap() } else { p };
        b.build(out).unwrap()
    }

    #[test]
    fn fuses_only_private_chains() {
        assert_eq!(
            find_blocks(&chain(true, false)),
            vec![Step::Block {
                expand: Some(0),
                dw: 1,
                project: 2
            }]
        );
        assert_eq!(
            find_blocks(&chain(false, false)),
            vec![Step::Block {
                expand: None,
                dw: 0,
                project: 1
            }]
        );
        let leaky = find_blocks(&chain(true, true));
        assert!(leaky.iter().all(|s| matches!(s, Step::Op(_))), "{leaky:?}");
    }

    #[test]
    fn fused_and_unfused_agree() {
        for expand in [true, false] {
            let plan = chain(expand, false);
            let x: Vec<f32> = (0..2 * 6 * 5 * 4)
                .map(|i| (i % 7) as f32 * 0.3 - 1.0)
                .collect();
            let run = |fuse_blocks| {
                let opts = EngineOptions {
                    threads: 2,
                    fuse_blocks,
                    image_parallel: false,
                    ..Default::default()
                };
                Engine::new(plan.clone(), opts)
                    .unwrap()
                    .run(&x, 2)
                    .unwrap()
                    .to_vec()
            };
            let (a, b) = (run(true), run(false));
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() < 1e-5, "{p} vs {q}");
            }
        }
    }
}
