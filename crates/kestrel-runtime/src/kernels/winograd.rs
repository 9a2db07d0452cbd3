//! 3×3, stride-1, undilated dense convolution by Winograd's minimal filtering F(4×4, 3×3) (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 4×4 block of output
//! pixels comes from a 6×6 input tile as `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, 36 multiplications
//! per input and output channel pair where direct convolution takes 144 — a quarter.
//!
//! Over channels the element-wise product becomes 36 independent GEMMs, one per tile position
//! `ξ`: `M_ξ[tiles × cout] = V_ξ[tiles × cin] · U_ξ[cin × cout]`, run on the packed GEMM
//! ([`super::packed_gemm`]). The weights `U = G g Gᵀ` are transformed once (in `f64`) and packed;
//! the inputs are transformed a block of tiles at a time, so `V` and `M` stay in cache, and the
//! output transform adds the bias and residual and applies the activation as it writes. NHWC
//! keeps every transform a run of axpy-like loops over contiguous channels.
//!
//! **Precision.** The transforms mix values with coefficients up to 8 (`Aᵀ`) and 5 (`Bᵀ`), so the
//! rounding error grows faster than direct convolution's: against an `f64` reference on
//! unit-scale data over 256 and 512 input channels it is 0.8e-5 and 2.3e-5 of the output's
//! largest magnitude, where im2col stays near 0.3e-5; the tests hold it under 5e-5
//! (`tests::error_is_bounded_against_f64`). F(6×6, 3×3) would take 64/36 multiplications per
//! output where F(4×4) takes 36/16 — a fifth fewer — but its larger points (±½, ±3…) cost about
//! another digit, and its 6-pixel tiles fit ResNet's 56/28/14/7 maps worse; F(4×4) is the usual
//! compromise.

use super::geometry::ConvGeometry;
use super::im2col::Im2colConv;
use super::packed_gemm::{gemm_packed_panels, Epilogue, PackedB, NR};
use crate::parallel::{split_ranges, Par, SendPtr};
use crate::Activation;

/// Input tile side.
const TI: usize = 6;
/// Output tile side.
const TO: usize = 4;
/// Tile positions.
const XI: usize = TI * TI;

/// `Bᵀ` (6×6): written out term by term in `bt6`, which the tests check against it.
#[cfg(test)]
const BT: [[f64; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// `Aᵀ` (4×6): written out in `at4`, checked against it in the tests.
#[cfg(test)]
const AT: [[f64; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// `G` (6×3).
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Floats of `V` and `M` a block of tiles aims to hold.
const BLOCK_FLOATS: usize = 192 * 1024;

/// Tiles a block holds at least: each block reads all of `U` (four times the plain weights), so
/// fewer tiles would make the convolution a stream of weights.
const MIN_BLOCK_TILES: usize = 16;

/// Tiles a thread needs for the threads to split the tiles; with fewer they split the output
/// channels (each reading only its share of `U`) and all transform the same inputs.
const SPLIT_TILES: usize = 32;

/// Whether [`winograd_conv`] computes `p`: a dense 3×3 convolution, stride and dilation 1.
pub fn fits(p: &Im2colConv) -> bool {
    let g: &ConvGeometry = &p.geom;
    p.groups == 1 && g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1]
}

/// Whether Winograd beats im2col on `p` for `n` images on `threads` threads: when each thread
/// gets enough tiles to reuse the transformed weights, which are four times the plain ones and
/// are read once per block of tiles. A map of a few tiles (ResNet's last 7 × 7 stage at batch 1)
/// stays on im2col.
pub fn pays(p: &Im2colConv, n: usize, threads: usize) -> bool {
    let Some((oh, ow)) = p.geom.output_hw(p.hwc[0], p.hwc[1]) else {
        return false;
    };
    let tiles = n * oh.div_ceil(TO) * ow.div_ceil(TO);
    tiles >= (MIN_TILES_PER_THREAD * threads.max(1)).max(p.hwc[2] * p.cout / WEIGHTS_PER_TILE)
}

/// Tiles each thread needs for [`pays`].
const MIN_TILES_PER_THREAD: usize = 8;

/// Plain weights (`cin·cout`) per tile a call may bring: past that, reading `U` costs more than
/// the multiplications it saves (ResNet's 512-channel stage needs 64 tiles, its 256-channel one
/// 16).
const WEIGHTS_PER_TILE: usize = 4096;

/// The transformed weights `U_ξ = (G g Gᵀ)_ξ` of a convolution, packed for the GEMM.
pub struct WinogradWeights {
    /// One `cin × cout` matrix per tile position.
    u: Vec<PackedB>,
    cin: usize,
    cout: usize,
    /// `cout` zeros: the GEMMs' bias.
    zeros: Vec<f32>,
}

impl WinogradWeights {
    /// Transforms `weight` (`[3][3][cin][cout]`, a dense convolution's plan layout).
    ///
    /// # Panics
    /// If `weight` is not `9·cin·cout` long.
    pub fn new(weight: &[f32], cin: usize, cout: usize) -> Self {
        assert_eq!(weight.len(), 9 * cin * cout, "winograd: weight length");
        let mut u = vec![vec![0f32; cin * cout]; XI];
        for ci in 0..cin {
            for co in 0..cout {
                let g =
                    |ky: usize, kx: usize| weight[((ky * 3 + kx) * cin + ci) * cout + co] as f64;
                // t = G g (6×3), then U = t Gᵀ (6×6).
                let mut t = [[0f64; 3]; 6];
                for (a, ta) in t.iter_mut().enumerate() {
                    for (kx, v) in ta.iter_mut().enumerate() {
                        *v = (0..3).map(|ky| G[a][ky] * g(ky, kx)).sum();
                    }
                }
                for a in 0..TI {
                    for b in 0..TI {
                        let v: f64 = (0..3).map(|kx| t[a][kx] * G[b][kx]).sum();
                        u[a * TI + b][ci * cout + co] = v as f32;
                    }
                }
            }
        }
        WinogradWeights {
            u: u.iter()
                .map(|m| PackedB::pack(m, cin, cout, cout))
                .collect(),
            cin,
            cout,
            zeros: vec![0.0; cout],
        }
    }

    /// Tiles a block holds.
    fn block_tiles(&self) -> usize {
        (BLOCK_FLOATS / (XI * (self.cin + self.cout)).max(1)).clamp(MIN_BLOCK_TILES, 128)
    }

    /// Scratch floats [`winograd_conv`] needs with `threads` threads.
    pub fn scratch_floats(&self, threads: usize) -> usize {
        threads * self.per_thread()
    }

    fn per_thread(&self) -> usize {
        let t = self.block_tiles();
        let c = self.cin.max(self.cout);
        // The input tile and its half-transform, then V and M.
        2 * XI * c + XI * t * (self.cin + self.cout)
    }
}

/// `out = act(conv(input) + bias + residual)` for `n` NHWC images; `p` must [`fits`] and `w` be
/// its transformed weights. Threads split the tiles, or the output channels when there are few
/// tiles.
///
/// # Panics
/// If `p` does not fit, the weights do not match it, or a buffer is too short.
#[allow(clippy::too_many_arguments)]
pub fn winograd_conv(
    par: Par,
    p: &Im2colConv,
    w: &WinogradWeights,
    n: usize,
    input: &[f32],
    residual: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut [f32],
    simd: bool,
) {
    assert!(fits(p), "winograd: not a 3×3 stride-1 dense convolution");
    let [h, wd, cin] = p.hwc;
    assert!(w.cin == cin && w.cout == p.cout, "winograd: weights");
    assert!(p.bias.len() >= p.cout, "winograd: bias");
    let (oh, ow) = p.geom.output_hw(h, wd).expect("checked by the plan");
    let len = n * oh * ow * p.cout;
    assert!(
        input.len() >= n * h * wd * cin && out.len() >= len,
        "winograd: buffers"
    );
    assert!(
        residual.is_none_or(|r| r.len() >= len),
        "winograd: residual"
    );
    let (ty, tx) = (oh.div_ceil(TO), ow.div_ceil(TO));
    let tiles = n * ty * tx;
    let per = w.per_thread();
    let dst = SendPtr(out.as_mut_ptr());
    let geo = Geo {
        h,
        w: wd,
        oh,
        ow,
        ty: ty * tx,
        tx,
        pad: [p.geom.padding[0], p.geom.padding[1]],
    };
    let bt = w.block_tiles();
    let panels = p.cout.div_ceil(NR);
    if par.threads() > 1 && tiles < SPLIT_TILES * par.threads() && panels > 1 {
        // Few tiles: every thread transforms each block's inputs, and computes its share of the
        // output channels.
        let ranges = split_ranges(panels, par.threads(), 1);
        assert!(scratch.len() >= ranges.len() * per, "winograd: scratch");
        for t0 in (0..tiles).step_by(bt) {
            let t1 = tiles.min(t0 + bt);
            let items: Vec<_> = ranges
                .iter()
                .cloned()
                .zip(scratch.chunks_mut(per))
                .collect();
            par.run(items, |_, (panels, s)| {
                // SAFETY: this thread alone writes the channels of `panels` of these tiles'
                // pixels, which lie inside `out` (checked above).
                unsafe { block(p, w, &geo, input, residual, dst, t0..t1, panels, s, simd) };
            });
        }
        return;
    }
    let threads = par.threads().min(tiles).max(1);
    assert!(scratch.len() >= threads * per, "winograd: scratch");
    let items: Vec<_> = split_ranges(tiles, threads, 1)
        .into_iter()
        .zip(scratch.chunks_mut(per))
        .collect();
    par.run(items, |_, (range, s)| {
        for t0 in range.clone().step_by(bt) {
            let t1 = range.end.min(t0 + bt);
            // SAFETY: the tiles of `t0..t1` are this thread's alone; their output pixels are
            // inside `out` (checked above) and no other thread writes them.
            unsafe { block(p, w, &geo, input, residual, dst, t0..t1, 0..panels, s, simd) };
        }
    });
}

/// Sizes of a run.
struct Geo {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Tiles per image.
    ty: usize,
    /// Tiles per row.
    tx: usize,
    pad: [usize; 2],
}

impl Geo {
    /// Image and output origin `(img, oy, ox)` of tile `t`.
    fn tile(&self, t: usize) -> (usize, usize, usize) {
        let (img, r) = (t / self.ty, t % self.ty);
        (img, (r / self.tx) * TO, (r % self.tx) * TO)
    }
}

/// Tiles `tiles`, output channels of `panels` (16 each): input transform, 36 GEMMs, output
/// transform.
///
/// # Safety
/// `out` points at the run's output; no other thread writes these channels of these tiles'
/// pixels.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    p: &Im2colConv,
    w: &WinogradWeights,
    g: &Geo,
    input: &[f32],
    residual: Option<&[f32]>,
    out: SendPtr,
    tiles: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    s: &mut [f32],
    simd: bool,
) {
    let (cin, cout) = (w.cin, w.cout);
    let chs = panels.start * NR..(panels.end * NR).min(cout);
    let m = tiles.len();
    let c = cin.max(cout);
    let (d, rest) = s.split_at_mut(XI * c);
    d[..cin].fill(0.0);
    let d: &[f32] = d;
    let (t, rest) = rest.split_at_mut(XI * c);
    let (v, rest) = rest.split_at_mut(XI * m * cin);
    let mm = &mut rest[..XI * m * cout];
    for (k, tile) in tiles.clone().enumerate() {
        let (img, oy, ox) = g.tile(tile);
        let image = &input[img * g.h * g.w * cin..(img + 1) * g.h * g.w * cin];
        let zeros = &d[..cin];
        let pix = pixels(g, image, cin, oy, ox, zeros);
        transform_input(simd, &pix, &mut t[..XI * cin], v, k, m, cin);
    }
    let ep = Epilogue {
        bias: &w.zeros,
        residual: None,
        act: Activation::None,
    };
    for xi in 0..XI {
        let a = &v[xi * m * cin..(xi + 1) * m * cin];
        let c = &mut mm[xi * m * cout..(xi + 1) * m * cout];
        // SAFETY: `c` holds `m` rows of `cout` and is this thread's.
        unsafe {
            gemm_packed_panels(
                m,
                a,
                cin,
                &w.u[xi],
                panels.clone(),
                c.as_mut_ptr(),
                cout,
                &ep,
                simd,
            )
        };
    }
    let o = Outputs {
        p,
        g,
        mm,
        m,
        chs,
        residual,
        out,
    };
    for (k, tile) in tiles.enumerate() {
        // SAFETY: the caller's contract.
        unsafe { transform_output(simd, &o, k, tile, &mut t[..XI * cout]) };
    }
}

/// What the output transform of a block reads and where it writes.
struct Outputs<'a> {
    p: &'a Im2colConv<'a>,
    g: &'a Geo,
    /// The 36 `m × cout` products.
    mm: &'a [f32],
    m: usize,
    /// The output channels this thread writes.
    chs: std::ops::Range<usize>,
    residual: Option<&'a [f32]>,
    /// The run's output.
    out: SendPtr,
}

/// The 36 pixels (`[i][j]`, `cin` floats each) of the input tile at output origin `(oy, ox)`:
/// slices of `image`, or `zeros` outside it.
fn pixels<'a>(
    g: &Geo,
    image: &'a [f32],
    cin: usize,
    oy: usize,
    ox: usize,
    zeros: &'a [f32],
) -> [&'a [f32]; XI] {
    std::array::from_fn(|ij| {
        let (iy, ix) = (
            (oy + ij / TI) as isize - g.pad[0] as isize,
            (ox + ij % TI) as isize - g.pad[1] as isize,
        );
        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
            zeros
        } else {
            let at = (iy as usize * g.w + ix as usize) * cin;
            &image[at..at + cin]
        }
    })
}

/// `N` rows of `len` floats of `x`, `stride` apart from `x0`.
#[inline(always)]
fn rows<const N: usize>(x: &[f32], x0: usize, stride: usize, len: usize) -> [&[f32]; N] {
    std::array::from_fn(|k| &x[x0 + k * stride..][..len])
}

/// `N` disjoint rows of `len` floats of `r`, `rs ≥ len` apart from `r0`.
#[inline(always)]
fn rows_mut<const N: usize>(r: &mut [f32], r0: usize, rs: usize, len: usize) -> [&mut [f32]; N] {
    assert!(rs >= len, "rows overlap");
    let mut rest = &mut r[r0..];
    std::array::from_fn(|k| {
        let cut = if k + 1 < N { rs } else { len };
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(cut);
        rest = tail;
        &mut head[..len]
    })
}

/// `r = Bᵀ x` for six rows `x[k]` of `len` floats (`x` rows `stride` apart from `x0`, `r` rows
/// `rs` apart from `r0`).
#[inline(always)]
fn bt6(x: &[f32], x0: usize, stride: usize, r: &mut [f32], r0: usize, rs: usize, len: usize) {
    bt6_rows(rows(x, x0, stride, len), r, r0, rs, len)
}

/// `r = Bᵀ x` for six rows `x[k]` of `len` floats into `r` (rows `rs` apart from `r0`).
#[inline(always)]
fn bt6_rows(x: [&[f32]; 6], r: &mut [f32], r0: usize, rs: usize, len: usize) {
    let x: [&[f32]; 6] = x.map(|row| &row[..len]);
    let [r0, r1, r2, r3, r4, r5] = rows_mut::<6>(r, r0, rs, len);
    for c in 0..len {
        let (d0, d1, d2, d3, d4, d5) = (x[0][c], x[1][c], x[2][c], x[3][c], x[4][c], x[5][c]);
        r0[c] = 4.0 * d0 - 5.0 * d2 + d4;
        r1[c] = -4.0 * (d1 + d2) + d3 + d4;
        r2[c] = 4.0 * (d1 - d2) - d3 + d4;
        r3[c] = 2.0 * (d3 - d1) - d2 + d4;
        r4[c] = 2.0 * (d1 - d3) - d2 + d4;
        r5[c] = 4.0 * d1 - 5.0 * d3 + d5;
    }
}

/// `V = Bᵀ d B` of one tile (`d`: its 36 pixels, `t`: `[6][6][cin]` scratch) into row `k` of
/// the 36 `m × cin` matrices of `v`.
fn transform_input(
    simd: bool,
    d: &[&[f32]; XI],
    t: &mut [f32],
    v: &mut [f32],
    k: usize,
    m: usize,
    cin: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if simd && super::avx512_available() {
        // SAFETY: the CPU has AVX-512 (checked above).
        return unsafe { transform_input_avx512(d, t, v, k, m, cin) };
    }
    let _ = simd;
    transform_input_portable(d, t, v, k, m, cin)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_input_avx512(
    d: &[&[f32]; XI],
    t: &mut [f32],
    v: &mut [f32],
    k: usize,
    m: usize,
    cin: usize,
) {
    transform_input_portable(d, t, v, k, m, cin)
}

#[inline(always)]
fn transform_input_portable(
    d: &[&[f32]; XI],
    t: &mut [f32],
    v: &mut [f32],
    k: usize,
    m: usize,
    cin: usize,
) {
    // Columns: t[a][j] = Σ_i Bᵀ[a][i] d[i][j].
    for j in 0..TI {
        let col = std::array::from_fn(|i| d[i * TI + j]);
        bt6_rows(col, t, j * cin, TI * cin, cin);
    }
    // Rows: V[a][b] = Σ_j t[a][j] Bᵀ[b][j], into matrix ξ = a·6 + b, row k.
    let rs = m * cin;
    for a in 0..TI {
        bt6(t, a * TI * cin, cin, v, (a * TI) * rs + k * cin, rs, cin);
    }
}

/// `y = Aᵀ x` for six rows `x[k]` (`stride` apart from `x0`) into four rows of `r` (`rs` apart
/// from `r0`).
#[inline(always)]
fn at4(x: &[f32], x0: usize, stride: usize, r: &mut [f32], r0: usize, rs: usize, len: usize) {
    let x: [&[f32]; 6] = rows(x, x0, stride, len);
    let [r0, r1, r2, r3] = rows_mut::<4>(r, r0, rs, len);
    for c in 0..len {
        let (m0, m1, m2, m3, m4, m5) = (x[0][c], x[1][c], x[2][c], x[3][c], x[4][c], x[5][c]);
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        r0[c] = m0 + s12 + s34;
        r1[c] = d12 + 2.0 * d34;
        r2[c] = s12 + 4.0 * s34;
        r3[c] = d12 + 8.0 * d34 + m5;
    }
}

/// `Y = Aᵀ M A` of tile row `k` (tile `tile` of the run) of the products, with bias, residual
/// and activation, into the tile's output pixels that lie inside the output (channels `o.chs`).
/// `t` is scratch of `28·len(o.chs)` floats at least.
///
/// # Safety
/// `o.out` points at the run's output (`n·oh·ow·cout` floats); no other thread writes these
/// channels of this tile.
unsafe fn transform_output(simd: bool, o: &Outputs, k: usize, tile: usize, t: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd && super::avx512_available() {
        // SAFETY: the CPU has AVX-512 (checked above); the caller's contract.
        return unsafe { output_avx512(o, k, tile, t) };
    }
    let _ = simd;
    // SAFETY: the caller's contract.
    unsafe { output_portable(o, k, tile, t) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn output_avx512(o: &Outputs, k: usize, tile: usize, t: &mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe { output_portable(o, k, tile, t) }
}

#[inline(always)]
unsafe fn output_portable(o: &Outputs, k: usize, tile: usize, t: &mut [f32]) {
    let Outputs {
        p,
        g,
        mm,
        m,
        ref chs,
        residual,
        out,
    } = *o;
    let (img, oy, ox) = g.tile(tile);
    let (cout, len) = (p.cout, chs.len());
    let rs = m * cout;
    let (t, y) = t.split_at_mut(TO * TI * len);
    // Columns: t[a][j] = Σ_i Aᵀ[a][i] M[i][j] (t: [4][6][len]).
    for j in 0..TI {
        at4(
            mm,
            j * rs + k * cout + chs.start,
            TI * rs,
            t,
            j * len,
            TI * len,
            len,
        );
    }
    let (lo, hi) = p.act.bounds();
    let bias = &p.bias[chs.start..chs.end];
    for a in 0..TO.min(g.oh - oy) {
        // Rows: Y[a][b] = Σ_j t[a][j] Aᵀ[b][j] (y: [4][len]).
        at4(t, a * TI * len, len, y, 0, len, len);
        for b in 0..TO.min(g.ow - ox) {
            let at = ((img * g.oh + oy + a) * g.ow + ox + b) * cout + chs.start;
            // SAFETY: pixel `(oy + a, ox + b)` is inside the output (the loops' bounds); the
            // caller's contract makes these channels of it this thread's alone.
            let o = unsafe { std::slice::from_raw_parts_mut(out.get().add(at), len) };
            let yb = &y[b * len..(b + 1) * len];
            match residual {
                Some(r) => {
                    let r = &r[at..at + len];
                    for (((o, &v), &bi), &r) in o.iter_mut().zip(yb).zip(bias).zip(r) {
                        *o = (v + bi + r).max(lo).min(hi);
                    }
                }
                None => {
                    for ((o, &v), &bi) in o.iter_mut().zip(yb).zip(bias) {
                        *o = (v + bi).max(lo).min(hi);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
