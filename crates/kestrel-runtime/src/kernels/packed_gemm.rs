//! A GEMM for inference: the weight matrix is packed once into 16-column panels, the activation
//! matrix is read in place (NHWC rows or im2col patches), and the epilogue (bias, residual,
//! clamp) is applied while the output tile is still in registers, so each output is written
//! once. Micro-kernels: AVX2+FMA 6 × 16 with a portable fallback of the same shape; AVX-512
//! 12 × 32 (two panels, each broadcast of the activation feeding two FMAs; for tiles of 8 to 12
//! rows its reduction loop is written in assembly), 12 × 16 for a last odd panel, and reductions
//! longer than 256 steps taken in passes that keep the weights' slice in L1, summed in the
//! output. Outputs too large for L2 have each tile's output and residual rows prefetched by the
//! tile before.

use crate::Activation;

/// Rows of the micro-tile.
pub const MR: usize = 6;
/// Columns of the micro-tile (two AVX registers).
pub const NR: usize = 16;
/// Rows of a micro-tile of the AVX-512 kernel.
pub const MR_AVX512: usize = 12;
/// Reduction steps per pass of the AVX-512 tiles: a two-panel slice of the weights of 256 rows
/// (32 KiB) stays in L1 while every tile of a block meets it; longer reductions are summed in
/// the output over several passes, the epilogue applied by the last.
const KC_AVX512: usize = 256;
/// Outputs larger than this (bytes, with their leading dimension) are taken to be in neither L1
/// nor L2 when a GEMM starts: each tile prefetches the next one's output and residual rows.
const COLD_OUTPUT_BYTES: usize = 1 << 20;

/// One row of a panel: 16 floats on one cache line (a `Vec<f32>` from the system allocator starts
/// 16 bytes into a line, and then every 64-byte load of a panel row straddles two).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanelRow(pub [f32; NR]);

impl PanelRow {
    /// The rows' floats, in order.
    pub fn floats(rows: &[PanelRow]) -> &[f32] {
        // SAFETY: `PanelRow` is `repr(C)` around 16 `f32`s and 64 bytes long (no padding), so
        // `rows` is `16·len` consecutive, initialised floats, aligned for `f32`.
        unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<f32>(), rows.len() * NR) }
    }

    /// [`PanelRow::floats`], writable.
    pub fn floats_mut(rows: &mut [PanelRow]) -> &mut [f32] {
        // SAFETY: as in `floats`; the borrow of `rows` is exclusive and lasts as long.
        unsafe { std::slice::from_raw_parts_mut(rows.as_mut_ptr().cast::<f32>(), rows.len() * NR) }
    }
}

/// A `k×n` matrix packed as `ceil(n/16)` panels of `k×16` floats, zero-padded on the right.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedB {
    /// Rows (the reduction dimension).
    pub k: usize,
    /// Columns.
    pub n: usize,
    /// `[panel][k]` rows of 16.
    pub data: Vec<PanelRow>,
}

impl PackedB {
    /// Packs a row-major `k×n` matrix with leading dimension `ldb`.
    pub fn pack(b: &[f32], k: usize, n: usize, ldb: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = Vec::with_capacity(panels * k);
        for p in 0..panels {
            let c0 = p * NR;
            let w = NR.min(n - c0);
            for row in 0..k {
                let src = &b[row * ldb + c0..row * ldb + c0 + w];
                if w == NR {
                    // A whole panel row: a fixed-size move the compiler keeps inline (packing
                    // runs per image in training, where a `memcpy` call per row shows).
                    let r: &[f32; NR] = src.try_into().expect("a panel row");
                    data.push(PanelRow(*r));
                } else {
                    let mut r = [0.0; NR];
                    r[..w].copy_from_slice(src);
                    data.push(PanelRow(r));
                }
            }
        }
        PackedB { k, n, data }
    }

    /// Packs the `k×n` matrix `bᵀ` of a row-major `n×k` matrix `b` (leading dimension `ldb`),
    /// reading `b` in place: row `r` of a panel gathers column `r` of 16 rows of `b` (training's
    /// weight gradient `dy · xᵀ`, with `x` a `channels × pixels` image).
    pub fn pack_transposed(b: &[f32], k: usize, n: usize, ldb: usize) -> Self {
        // Blocks of 64 reduction steps: a block of the panel (4 KiB) stays in L1 while its 16
        // source rows are read (a whole panel of a large map, written 16 times, would not).
        const KB: usize = 64;
        let panels = n.div_ceil(NR);
        let mut data = vec![PanelRow([0.0; NR]); panels * k];
        let wide = super::avx512_available();
        for (p, panel) in data.chunks_exact_mut(k.max(1)).enumerate() {
            let panel = PanelRow::floats_mut(panel);
            let c0 = p * NR;
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if wide && c0 + NR <= n {
                assert!(
                    b.len() >= (c0 + NR - 1) * ldb + k,
                    "pack_transposed: b too short"
                );
                while done + NR <= k {
                    // SAFETY: AVX-512F detected; source rows `c0..c0 + 16` hold `k` floats from
                    // column `done + 16 ≤ k` on (asserted), and the panel's rows `done..done + 16`
                    // are its floats `16·done .. 16·(done + 16)`.
                    unsafe {
                        transpose16_avx512(
                            b.as_ptr().add(c0 * ldb + done),
                            ldb,
                            panel[done * NR..(done + NR) * NR].as_mut_ptr(),
                        )
                    };
                    done += NR;
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = wide;
            for k0 in (done..k).step_by(KB) {
                let k1 = (k0 + KB).min(k);
                let block = &mut panel[k0 * NR..k1 * NR];
                for c in c0..n.min(c0 + NR) {
                    let src = &b[c * ldb + k0..c * ldb + k1];
                    for (row, &v) in block.chunks_exact_mut(NR).zip(src) {
                        row[c - c0] = v;
                    }
                }
            }
        }
        PackedB { k, n, data }
    }

    /// Panics unless `data` holds every panel its `k` and `n` say (its fields are public, and the
    /// tile loops read panels through raw pointers).
    fn check(&self) {
        assert!(
            self.data.len() >= self.n.div_ceil(NR) * self.k,
            "gemm_packed: packed weights shorter than their k × n"
        );
    }

    /// The panels as the tile loop reads them.
    fn panels(&self) -> Panels<'_> {
        Panels {
            data: PanelRow::floats(&self.data),
            k: self.k,
            n: self.n,
            stride: NR,
            step: self.k * NR,
        }
    }
}

/// Writes the transpose of 16 rows of 16 floats (`src + i·ld`, `i < 16`) to 16 rows of 16 at
/// `dst`: `dst[16·j + i] = src[i·ld + j]`. Three stages: 32-bit then 64-bit interleaves of row
/// pairs within each 128-bit lane leave, for each group of four rows, four registers whose lane
/// `L` holds column `4L + c` of the group; two 128-bit lane shuffles gather each column's four
/// groups.
///
/// # Safety
/// AVX-512F must be available; the 16 source rows and 256 destination floats in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16_avx512(src: *const f32, ld: usize, dst: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's bounds.
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * ld)) });
    let pd = _mm512_castps_pd;
    let ps = _mm512_castpd_ps;
    // u[g][c]: lane L holds column 4L + c of rows 4g..4g + 4.
    let u: [[__m512; 4]; 4] = std::array::from_fn(|g| {
        let [a, b, c, d] = [r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]];
        let (t0, t1) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let (t2, t3) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        [
            ps(_mm512_unpacklo_pd(pd(t0), pd(t2))),
            ps(_mm512_unpackhi_pd(pd(t0), pd(t2))),
            ps(_mm512_unpacklo_pd(pd(t1), pd(t3))),
            ps(_mm512_unpackhi_pd(pd(t1), pd(t3))),
        ]
    });
    // By column within a lane: the four groups' registers.
    let by_col: [[__m512; 4]; 4] = std::array::from_fn(|c| std::array::from_fn(|g| u[g][c]));
    for (c, [g0, g1, g2, g3]) in by_col.into_iter().enumerate() {
        let lo01 = _mm512_shuffle_f32x4::<0x44>(g0, g1);
        let hi01 = _mm512_shuffle_f32x4::<0xEE>(g0, g1);
        let lo23 = _mm512_shuffle_f32x4::<0x44>(g2, g3);
        let hi23 = _mm512_shuffle_f32x4::<0xEE>(g2, g3);
        let out = [
            _mm512_shuffle_f32x4::<0x88>(lo01, lo23),
            _mm512_shuffle_f32x4::<0xDD>(lo01, lo23),
            _mm512_shuffle_f32x4::<0x88>(hi01, hi23),
            _mm512_shuffle_f32x4::<0xDD>(hi01, hi23),
        ];
        for (l, v) in out.into_iter().enumerate() {
            // SAFETY: row 4l + c of the 16 destination rows.
            unsafe { _mm512_storeu_ps(dst.add((4 * l + c) * NR), v) };
        }
    }
}

/// The right operand as the tile loop reads it: `ceil(n/16)` panels of `k` rows of 16 floats,
/// row `r` of panel `p` at `data[p·step + r·stride ..][..16]` — a [`PackedB`] (`stride` 16,
/// `step` 16·k), or a row-major matrix read in place (`stride` its leading dimension, `step` 16;
/// whole panels only, so no row is read past its end).
#[derive(Clone, Copy)]
struct Panels<'a> {
    data: &'a [f32],
    k: usize,
    n: usize,
    stride: usize,
    step: usize,
}

impl<'a> Panels<'a> {
    /// Panel `p` from its first float to the end of its last row (empty when `k = 0`).
    fn panel(&self, p: usize) -> &'a [f32] {
        let len = match self.k {
            0 => 0,
            k => (k - 1) * self.stride + NR,
        };
        &self.data[p * self.step..p * self.step + len]
    }
}

/// What is added and clamped in the epilogue: `c = clamp(a·b + bias + residual, act)`.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// `n` biases.
    pub bias: &'a [f32],
    /// Added before the activation; indexed exactly like the output (`row * ldc + col`).
    pub residual: Option<&'a [f32]>,
    /// Activation.
    pub act: Activation,
}

/// Calls the tile kernel `$tile` specialised for `$rows` rows (one of the listed heights, else
/// 1): constant trip counts let the compiler keep the tile in registers.
macro_rules! tile_for_rows {
    ($tile:ident, $rows:expr, $t:expr, $c:expr, $res:expr, [$($n:literal),*]) => {
        match $rows {
            $($n => $tile::<$n>($t, $c, $res),)*
            _ => $tile::<1>($t, $c, $res),
        }
    };
}

/// `c[m×n] = act(a[m×k] · b + bias + residual)`; `a` row-major with leading dimension `lda`, `c`
/// with `ldc`. `simd` selects the AVX2 kernel where the CPU has it. Single-threaded.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    ep: &Epilogue,
    simd: bool,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + b.n, "gemm_packed: dst too short");
    // SAFETY: `c` is exclusively borrowed and long enough for every panel.
    unsafe {
        gemm_packed_panels(
            m,
            a,
            lda,
            b,
            0..b.n.div_ceil(NR),
            c.as_mut_ptr(),
            ldc,
            ep,
            simd,
        )
    }
}

/// Columns up to which [`matmul_uninit`] reads its right operand in place (rows of at most 4 KiB).
const IN_PLACE_MAX_N: usize = 1024;

/// `c = a · b` for a row-major `a` (`m×k`, leading dimension `lda`) and a row-major `b` (`k×n`),
/// into an uninitialised row-major `c` (`m×n`), every element of which is written: for products
/// whose right operand changes from call to call (training's activations). Up to
/// `IN_PLACE_MAX_N` (1024) columns, `b`'s whole 16-column panels are read in place (a copy of `b`
/// costs as much as a pass of the product on small reductions) and only a last partial panel is
/// packed; wider `b` is packed whole.
#[allow(clippy::too_many_arguments)]
pub fn matmul_uninit(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: &mut [std::mem::MaybeUninit<f32>],
    simd: bool,
) {
    assert!(c.len() >= m * n, "matmul: dst too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for v in &mut c[..m * n] {
            v.write(0.0);
        }
        return;
    }
    assert!(b.len() >= k * n, "matmul: rhs too short");
    assert!(a.len() >= (m - 1) * lda + k, "matmul: lhs too short");
    // Rows of `b` a page or more apart (wide maps) cost more read in place than packed: each row
    // of a panel then sits on its own page.
    let whole = if n <= IN_PLACE_MAX_N { n / NR * NR } else { 0 };
    let zeros = vec![0.0; n.max(NR)];
    let ep = Epilogue {
        bias: &zeros,
        residual: None,
        act: Activation::None,
    };
    let seg = [Segment {
        a: a.as_ptr(),
        k,
        b_row: 0,
    }];
    // The whole panels read in place, then the rest (a last partial panel, or all of a wide
    // `b`) packed: each part with its first output column.
    let in_place = Panels {
        data: &b[..k * n],
        k,
        n: whole,
        stride: n,
        step: NR,
    };
    let rest = PackedB::pack(&b[whole..], k, n - whole, n);
    for (part, first) in [(in_place, 0), (rest.panels(), whole)] {
        // SAFETY: `a`'s `m` rows of `k` floats `lda` apart were asserted readable; the in-place
        // panels are whole, so their rows `r·n + 16p .. + 16` lie in `b`'s `k·n` floats; `c`
        // holds `m×n` elements, exclusively borrowed, and each part writes its own columns
        // `first..first + part.n` of every row.
        unsafe {
            run_tiles(
                m,
                &seg,
                lda,
                part,
                0..part.n.div_ceil(NR),
                (c.as_mut_ptr() as *mut f32).add(first),
                n,
                &ep,
                simd,
                true,
            )
        };
    }
}

/// `c = a · b` for a row-major `a` (`m×k`, leading dimension `lda`) and a packed `b`, into an
/// uninitialised row-major `c` (`m×n`), every element of which is written.
pub fn matmul_packed_uninit(
    m: usize,
    a: &[f32],
    lda: usize,
    packed: &PackedB,
    c: &mut [std::mem::MaybeUninit<f32>],
    simd: bool,
) {
    let n = packed.n;
    assert!(c.len() >= m * n, "matmul: dst too short");
    if m == 0 || n == 0 {
        return;
    }
    let zeros = vec![0.0; n];
    let ep = Epilogue {
        bias: &zeros,
        residual: None,
        act: Activation::None,
    };
    // SAFETY: `c` holds m×n elements, exclusively borrowed; the kernel writes every element of
    // every panel (bias, no residual) and reads none.
    unsafe {
        gemm_packed_panels(
            m,
            a,
            lda,
            packed,
            0..n.div_ceil(NR),
            c.as_mut_ptr() as *mut f32,
            n,
            &ep,
            simd,
        )
    }
}

/// [`gemm_packed`] restricted to the column panels `panels` (columns `16·start ..
/// min(16·end, n)`), writing through a raw pointer so threads can fill disjoint panels of one
/// output.
///
/// # Safety
/// `c` must be valid for writes of rows `0..m` with leading dimension `ldc` over the panels'
/// columns, and no other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_panels(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    panels: std::ops::Range<usize>,
    c: *mut f32,
    ldc: usize,
    ep: &Epilogue,
    simd: bool,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    b.check();
    assert!(a.len() >= (m - 1) * lda + k, "gemm_packed: lhs too short");
    assert!(ep.bias.len() >= n, "gemm_packed: bias too short");
    assert!(
        panels.end <= n.div_ceil(NR),
        "gemm_packed: panel out of range"
    );
    if let Some(r) = ep.residual {
        assert!(
            r.len() >= (m - 1) * ldc + n,
            "gemm_packed: residual too short"
        );
    }
    let seg = [Segment {
        a: a.as_ptr(),
        k,
        b_row: 0,
    }];
    // SAFETY: the one segment is `a` itself, whose `m` rows of `k` floats `lda` apart were
    // asserted readable; the caller's contract covers `c` over the columns of `panels`.
    unsafe { run_tiles(m, &seg, lda, b.panels(), panels, c, ldc, ep, simd, true) };
}

/// One part of the reduction of [`gemm_packed_segments`]: `k` columns of the left operand, read
/// at `a + row·lda + p`, meeting rows `b_row..b_row + k` of the packed right operand.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// Row 0's first element.
    pub a: *const f32,
    /// Columns in this part.
    pub k: usize,
    /// First row of the right operand it meets.
    pub b_row: usize,
}

/// `c[m×n] = act(Σ_s a_s · b[s.b_row..s.b_row + s.k] + bias + residual)`: [`gemm_packed`] with a
/// left operand in parts that need not be contiguous — an implicit im2col, each part one kernel
/// row's run of input pixels read in place (rows `lda` apart), with the kernel rows that fall in
/// the padding left out.
///
/// # Safety
/// Every `segs[i].a + r·lda + p` for `r < m`, `p < segs[i].k` must be readable; each segment's
/// rows of `b` must exist; `c` must be valid for writes of rows `0..m` with leading dimension
/// `ldc` over all `b.n` columns, not accessed by another thread during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_segments(
    m: usize,
    segs: &[Segment],
    lda: usize,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    ep: &Epilogue,
    simd: bool,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    b.check();
    assert!(
        segs.iter().all(|s| s.b_row + s.k <= b.k),
        "gemm_packed_segments: segment beyond the weights"
    );
    assert!(ep.bias.len() >= b.n, "gemm_packed_segments: bias too short");
    if let Some(r) = ep.residual {
        assert!(
            r.len() >= (m - 1) * ldc + b.n,
            "gemm_packed_segments: residual too short"
        );
    }
    let panels = 0..b.n.div_ceil(NR);
    // SAFETY: this function's contract is `run_tiles`' over all the panels.
    unsafe { run_tiles(m, segs, lda, b.panels(), panels, c, ldc, ep, simd, true) };
}

/// The blocked tile loop shared by [`gemm_packed_panels`] and [`gemm_packed_segments`];
/// `allow_avx512 = false` keeps to the AVX2 tiles (for testing them on an AVX-512 CPU).
///
/// # Safety
/// As [`gemm_packed_segments`], over the columns of `panels`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_tiles(
    m: usize,
    segs: &[Segment],
    lda: usize,
    b: Panels,
    panels: std::ops::Range<usize>,
    c: *mut f32,
    ldc: usize,
    ep: &Epilogue,
    simd: bool,
    allow_avx512: bool,
) {
    let (k, n) = (b.k, b.n);
    let simd = simd && super::simd_available();
    let wide = simd && allow_avx512 && super::avx512_available();
    // AVX-512: 32 registers hold a 12 × 32 tile (two zmm accumulators per row).
    let mr = if wide { MR_AVX512 } else { MR };
    // Rows per pass over the panels: a block of `a` of up to 384 KiB stays in L2 while the weight
    // panels stream past it, once per block (a 49 × 1024 block in one pass: MobileNetV1's last
    // 1×1 reads its 4 MB of weights once, not twice); blocks of nearly equal height, so that no
    // block is a sliver.
    let kc = if wide { KC_AVX512 } else { usize::MAX };
    // Several passes only when the reduction is longer than one (no allocation otherwise).
    let cut = match segs.iter().map(|s| s.k).sum::<usize>() > kc {
        true => k_chunks(segs, kc),
        false => Vec::new(),
    };
    let passes = cut.len().max(1);
    let mc = ((384 * 1024) / (4 * k.min(kc).max(1))).clamp(mr, 20 * mr) / mr * mr;
    let blocks = m.div_ceil(mc);
    let (lo, hi) = ep.act.bounds();
    // An output too large to have stayed in L2 since it was last written: its rows (and the
    // residual's) are prefetched a tile ahead.
    let cold = m * ldc * 4 > COLD_OUTPUT_BYTES;
    let mut m0 = 0;
    for blk in 0..blocks {
        let mb = m / blocks + usize::from(blk < m % blocks);
        for ci in 0..passes {
            let segs = cut.get(ci).map_or(segs, Vec::as_slice);
            let (fresh, finish) = (ci == 0, ci + 1 == passes);
            let mut p = panels.start;
            while p < panels.end {
                // On AVX-512, two panels at a time: each broadcast of `a` feeds two FMAs, halving the
                // loads per FMA (with two 512-bit FMA ports, a one-panel tile is load-bound).
                let pair = wide && p + 1 < panels.end;
                let width = if pair { 2 } else { 1 };
                let c0 = p * NR;
                let cols = (width * NR).min(n - c0);
                let bp = b.panel(p);
                let bp_hi = if pair { b.panel(p + 1) } else { &[][..] };
                // Tiles of nearly equal height (49 rows: 10+10+10+10+9, not 12+12+12+12+1): a
                // one-row tile is a single FMA chain, latency-bound at a quarter of the FMA rate.
                let tiles = mb.div_ceil(mr);
                let mut r = m0;
                for i in 0..tiles {
                    let rows = mb / tiles + usize::from(i < mb % tiles);
                    // The first tile of a panel pulls the next panel(s) towards L2 as it goes, so the
                    // weights of a large layer (read from memory at batch 1) stream ahead of use.
                    let ahead = |q: usize| {
                        if i == 0 && q < panels.end {
                            b.panel(q).as_ptr()
                        } else {
                            std::ptr::null()
                        }
                    };
                    let t = Tile {
                        segs,
                        lda,
                        b: bp,
                        b_hi: bp_hi,
                        stride: b.stride,
                        next: ahead(p + width),
                        next_hi: if pair { ahead(p + 3) } else { std::ptr::null() },
                        c0,
                        cols,
                        row: r,
                        ldc,
                        bias: &ep.bias[c0..c0 + cols],
                        lo,
                        hi,
                        fresh,
                        finish,
                    };
                    let res = ep.residual;
                    // The next tile of this sweep: its output rows (first met here, in the first
                    // pass) and its residual rows (read by the last pass's epilogue) are fetched
                    // while this tile computes. They lie a whole output row apart, too far for
                    // the hardware's stride prefetchers, and cost a cache miss each otherwise
                    // (ResNet-50's 56 × 56 layers at batch 32: outputs and residuals of
                    // megabytes per image).
                    if cold && i + 1 < tiles {
                        let next_rows = mb / tiles + usize::from(i + 1 < mb % tiles);
                        let at = (r + rows) * ldc + c0;
                        if fresh {
                            prefetch_rows(c.wrapping_add(at), next_rows, ldc, cols, true);
                        }
                        if let (true, Some(res)) = (finish, res) {
                            let rp = res.as_ptr().wrapping_add(at);
                            prefetch_rows(rp, next_rows, ldc, cols, false);
                        }
                    }
                    // The AVX-512 tiles take up to 12 rows.
                    #[cfg(target_arch = "x86_64")]
                    macro_rules! avx512_tile {
                        ($kernel:ident) => {
                            tile_for_rows!(
                                $kernel,
                                rows,
                                &t,
                                c,
                                res,
                                [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2]
                            )
                        };
                    }
                    #[cfg(target_arch = "x86_64")]
                    if pair {
                        // SAFETY: AVX-512F detected; the tile's rows `r..r + rows` (at most 12) and
                        // columns `c0..c0 + cols` (two panels) lie in the block the caller made valid.
                        unsafe { avx512_tile!(tile_avx512_pair) }
                    } else if wide && cols <= NR / 2 {
                        // SAFETY: as below; the tile touches only the panel's first 8 columns.
                        unsafe { avx512_tile!(tile_avx512_half) }
                    } else if wide {
                        // SAFETY: AVX-512F detected; the tile's rows `r..r + rows` (at most 12) and
                        // columns `c0..c0 + cols` lie in the block the caller made valid.
                        unsafe { avx512_tile!(tile_avx512) }
                    } else if simd {
                        // SAFETY: AVX2/FMA detected; the tile's rows (at most 6) and columns lie in
                        // the block the caller made valid.
                        unsafe { tile_for_rows!(tile_avx2, rows, &t, c, res, [6, 5, 4, 3, 2]) }
                    } else {
                        // SAFETY: the tile's rows (at most 6) and columns lie in the block the caller
                        // made valid.
                        unsafe { scalar_dispatch(&t, rows, c, res) };
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    // SAFETY: the tile's rows (at most 6) and columns lie in the block the caller
                    // made valid.
                    unsafe {
                        scalar_dispatch(&t, rows, c, res)
                    };
                    r += rows;
                    debug_assert!(rows <= mr && r <= m0 + mb);
                }
                p += width;
            }
        }
        m0 += mb;
    }
}

/// Asks for the cache lines of `rows` rows of `cols` floats, `ld` apart from `p`, to be brought
/// into the cache (`write`: for writing). Only a hint: never faults, whatever the address.
#[inline]
fn prefetch_rows(p: *const f32, rows: usize, ld: usize, cols: usize, write: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T1};
        for r in 0..rows {
            let row = p.wrapping_add(r * ld).cast::<i8>();
            // The lines the row's `cols` floats touch (it need not start on a line).
            let lines = ((row as usize % 64) + cols * 4).div_ceil(64);
            for l in 0..lines {
                let at = row.wrapping_add(64 * l);
                // SAFETY: a prefetch only hints; it never faults, whatever the address.
                unsafe {
                    if write {
                        _mm_prefetch::<_MM_HINT_ET0>(at);
                    } else {
                        _mm_prefetch::<_MM_HINT_T1>(at);
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, rows, ld, cols, write);
}

/// `segs` cut into passes of at most `kc` reduction steps (a segment split where a pass ends).
fn k_chunks(segs: &[Segment], kc: usize) -> Vec<Vec<Segment>> {
    let mut chunks = vec![Vec::new()];
    let mut room = kc;
    for s in segs {
        let mut s = *s;
        while s.k > 0 {
            if room == 0 {
                chunks.push(Vec::new());
                room = kc;
            }
            let take = s.k.min(room);
            chunks
                .last_mut()
                .expect("one pass at least")
                .push(Segment { k: take, ..s });
            s = Segment {
                a: s.a.wrapping_add(take),
                k: s.k - take,
                b_row: s.b_row + take,
            };
            room -= take;
        }
    }
    chunks
}

/// Calls the portable tile kernel specialised for `rows` rows (constant trip counts let the
/// compiler keep the tile in vector registers).
///
/// # Safety
/// `c` valid for the tile's rows and columns.
unsafe fn scalar_dispatch(t: &Tile, rows: usize, c: *mut f32, res: Option<&[f32]>) {
    // SAFETY: the caller's contract is every tile kernel's.
    unsafe { tile_for_rows!(tile_scalar, rows, t, c, res, [6, 5, 4, 3, 2]) }
}

/// One micro-tile's operands.
struct Tile<'a> {
    /// The left operand's parts (one for a plain GEMM).
    segs: &'a [Segment],
    lda: usize,
    /// The panel: row `r` at `b[r·stride ..][..16]`.
    b: &'a [f32],
    /// The next panel, read alike, for a two-panel tile (empty otherwise).
    b_hi: &'a [f32],
    /// Floats from one row of the panel to the next (16 when packed).
    stride: usize,
    /// A panel to prefetch into L2 alongside (null: none).
    next: *const f32,
    /// A second panel to prefetch, beside a two-panel tile (null: none).
    next_hi: *const f32,
    /// First output column.
    c0: usize,
    /// Valid columns (≤ 16; ≤ 32 for a two-panel tile).
    cols: usize,
    /// First row: of the output, and of the left operand's segments.
    row: usize,
    ldc: usize,
    bias: &'a [f32],
    lo: f32,
    hi: f32,
    /// The sums start at zero (else from the output: a later pass of a long reduction).
    fresh: bool,
    /// The epilogue is applied (else the sums are stored as they are, for a later pass).
    finish: bool,
}

/// The portable micro-kernel: R rows × 16 columns.
///
/// # Safety
/// Each segment's rows `t.row..t.row + R` must be readable (`s.k` floats each), and `c` valid
/// for the tile's rows and columns.
unsafe fn tile_scalar<const R: usize>(t: &Tile, c: *mut f32, res: Option<&[f32]>) {
    debug_assert!(t.fresh && t.finish, "one pass only");
    // Row by row: one 16-wide accumulator stays in registers (SSE2 has only 16 of them).
    let mut acc = [[0.0f32; NR]; R];
    for (r, accr) in acc.iter_mut().enumerate() {
        let mut v = [0.0f32; NR];
        for s in t.segs {
            // SAFETY: row `t.row + r` of the segment, readable for `s.k` floats (the caller's
            // contract).
            let arow = unsafe { std::slice::from_raw_parts(s.a.add((t.row + r) * t.lda), s.k) };
            let bs = t.b[s.b_row * t.stride..].chunks(t.stride);
            for (&av, bv) in arow.iter().zip(bs.map(|row| &row[..NR])) {
                for (x, &y) in v.iter_mut().zip(bv) {
                    *x += av * y;
                }
            }
        }
        *accr = v;
    }
    for (r, accr) in acc.iter().enumerate() {
        // SAFETY: row `r` of the tile, which the caller made writable.
        unsafe { store_row_scalar(t, r, accr, c, res) };
    }
}

/// The epilogue of row `r` of a tile, element by element: its `t.cols` accumulated values `acc`
/// plus bias (and residual), clamped, stored to `c`.
///
/// # Safety
/// `c` valid for writes of the tile's row `r` over its columns.
#[inline(always)]
unsafe fn store_row_scalar(t: &Tile, r: usize, acc: &[f32; NR], c: *mut f32, res: Option<&[f32]>) {
    let base = (t.row + r) * t.ldc + t.c0;
    for j in 0..t.cols {
        let mut v = acc[j] + t.bias[j];
        if let Some(res) = res {
            v += res[base + j];
        }
        // SAFETY: column `c0 + j` of the tile's row `r` (the caller's contract).
        unsafe { *c.add(base + j) = super::epilogue::clamp(v, t.lo, t.hi) };
    }
}

/// The AVX2 micro-kernel: R rows × 16 columns in two ymm accumulators a row, the `a` value
/// broadcast into the FMA; a partial panel's epilogue goes element by element.
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`tile_scalar`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(t: &Tile, c: *mut f32, res: Option<&[f32]>) {
    use std::arch::x86_64::*;
    debug_assert!(t.fresh && t.finish, "one pass only");
    let mut acc0 = [_mm256_setzero_ps(); R];
    let mut acc1 = [_mm256_setzero_ps(); R];
    for s in t.segs {
        // SAFETY: rows `t.row..t.row + R` of the segment are readable for `s.k` floats (the
        // caller's contract), and the panel holds rows `b_row..b_row + s.k` of 16 floats.
        unsafe {
            let a = s.a.add(t.row * t.lda);
            let b = t.b.as_ptr().add(s.b_row * t.stride);
            for p in 0..s.k {
                let b0 = _mm256_loadu_ps(b.add(p * t.stride));
                let b1 = _mm256_loadu_ps(b.add(p * t.stride + 8));
                for r in 0..R {
                    let av = _mm256_broadcast_ss(&*a.add(r * t.lda + p));
                    acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
                    acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
                }
            }
        }
    }
    let (vlo, vhi) = (_mm256_set1_ps(t.lo), _mm256_set1_ps(t.hi));
    if t.cols == NR {
        // SAFETY: a whole panel: the bias holds 16 floats, and each row's 16 columns from `c0`
        // are in the output (the caller's contract) and, with a residual, in it (indexed alike).
        unsafe {
            let bias0 = _mm256_loadu_ps(t.bias.as_ptr());
            let bias1 = _mm256_loadu_ps(t.bias.as_ptr().add(8));
            for r in 0..R {
                let base = (t.row + r) * t.ldc + t.c0;
                let mut v0 = _mm256_add_ps(acc0[r], bias0);
                let mut v1 = _mm256_add_ps(acc1[r], bias1);
                if let Some(res) = res {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res.as_ptr().add(base)));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(res.as_ptr().add(base + 8)));
                }
                let dst = c.add(base);
                _mm256_storeu_ps(dst, _mm256_min_ps(_mm256_max_ps(v0, vlo), vhi));
                _mm256_storeu_ps(dst.add(8), _mm256_min_ps(_mm256_max_ps(v1, vlo), vhi));
            }
        }
    } else {
        let mut tmp = [0.0f32; NR];
        for r in 0..R {
            // SAFETY: `tmp` holds 16 floats; row `r` of the tile is the caller's to write.
            unsafe {
                _mm256_storeu_ps(tmp.as_mut_ptr(), acc0[r]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc1[r]);
                store_row_scalar(t, r, &tmp, c, res);
            }
        }
    }
}

/// The AVX-512 micro-kernel: R rows × 16 columns, one zmm accumulator per row, the `a` value
/// broadcast into the FMA; masked loads and stores for a partial panel.
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available; otherwise as [`tile_scalar`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512<const R: usize>(t: &Tile, c: *mut f32, res: Option<&[f32]>) {
    use std::arch::x86_64::*;
    let mask: __mmask16 = if t.cols >= NR {
        0xffff
    } else {
        ((1u32 << t.cols) - 1) as __mmask16
    };
    let mut acc = [_mm512_setzero_ps(); R];
    if !t.fresh {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: the tile's row `r` over its columns (the lanes of `mask`), written by the
            // previous pass.
            *acc = unsafe { _mm512_maskz_loadu_ps(mask, c.add((t.row + r) * t.ldc + t.c0)) };
        }
    }
    for s in t.segs {
        let next = t.next.wrapping_add(s.b_row * t.stride);
        // SAFETY: as in `tile_avx2`; the prefetch only hints and never faults.
        unsafe {
            let a = s.a.add(t.row * t.lda);
            let b = t.b.as_ptr().add(s.b_row * t.stride);
            for p in 0..s.k {
                if !t.next.is_null() {
                    _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(p * t.stride) as *const i8);
                }
                let bv = _mm512_loadu_ps(b.add(p * t.stride));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * t.lda + p));
                    *acc = _mm512_fmadd_ps(av, bv, *acc);
                }
            }
        }
    }
    if !t.finish {
        for (r, &acc) in acc.iter().enumerate() {
            // SAFETY: the tile's row `r` over its columns (the caller's contract).
            unsafe { _mm512_mask_storeu_ps(c.add((t.row + r) * t.ldc + t.c0), mask, acc) };
        }
        return;
    }
    let (vlo, vhi) = (_mm512_set1_ps(t.lo), _mm512_set1_ps(t.hi));
    // SAFETY: the lanes of `mask` are the tile's `cols` columns: in the bias, in each of its rows
    // of the output (the caller's contract) and of the residual (indexed alike).
    unsafe {
        let bias = _mm512_maskz_loadu_ps(mask, t.bias.as_ptr());
        for (r, &acc) in acc.iter().enumerate() {
            let base = (t.row + r) * t.ldc + t.c0;
            let mut v = _mm512_add_ps(acc, bias);
            if let Some(res) = res {
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res.as_ptr().add(base)));
            }
            _mm512_mask_storeu_ps(c.add(base), mask, _mm512_min_ps(_mm512_max_ps(v, vlo), vhi));
        }
    }
}

/// The two-panel AVX-512 micro-kernel: R rows × 32 columns (panels `b` and `b_hi`), two zmm
/// accumulators per row, each broadcast of `a` feeding both; the second panel may be partial
/// (masked loads and stores past its `cols − 16` columns).
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available, `t.b_hi` a panel read like `t.b` and
/// `16 < t.cols ≤ 32`; otherwise as [`tile_scalar`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512_pair<const R: usize>(t: &Tile, c: *mut f32, res: Option<&[f32]>) {
    use std::arch::x86_64::*;
    debug_assert!(t.cols > NR && t.cols <= 2 * NR);
    let mask = ((1u32 << (t.cols - NR)) - 1) as __mmask16;
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    if !t.fresh {
        for r in 0..R {
            // SAFETY: the tile's row `r`: 16 whole columns, then the second panel's valid ones
            // (the lanes of `mask`), written by the previous pass.
            unsafe {
                let row = c.add((t.row + r) * t.ldc + t.c0);
                (lo[r], hi[r]) = (
                    _mm512_loadu_ps(row),
                    _mm512_maskz_loadu_ps(mask, row.add(NR)),
                );
            }
        }
    }
    // Packed panels (rows 16 floats apart) and tiles of 8 to 12 rows: the assembly loop.
    if R >= 8 && t.stride == NR {
        for s in t.segs {
            if s.k == 0 {
                continue;
            }
            // SAFETY: AVX-512F (the caller's); `s.k > 0`; the segment's rows `t.row..t.row + R`
            // hold `s.k` readable floats each and both panels its `s.k` rows, as in the loop
            // below. The prefetched panels are only hinted at.
            unsafe {
                let next = t.next.wrapping_add(s.b_row * NR);
                // With one panel left to fetch, the second prefetch repeats the first.
                let next_hi = match t.next_hi.is_null() {
                    true => next,
                    false => t.next_hi.wrapping_add(s.b_row * NR),
                };
                let steps = PairSteps {
                    a: s.a.add(t.row * t.lda),
                    lda: t.lda,
                    b: t.b.as_ptr().add(s.b_row * NR),
                    b_hi: t.b_hi.as_ptr().add(s.b_row * NR),
                    next,
                    next_hi,
                    k: s.k,
                };
                pair_steps_asm::<R>(&steps, !t.next.is_null(), &mut lo, &mut hi);
            }
        }
    } else {
        for s in t.segs {
            let next = t.next.wrapping_add(s.b_row * t.stride);
            let next_hi = t.next_hi.wrapping_add(s.b_row * t.stride);
            // SAFETY: as in `tile_avx512`, for both panels (each holds the segment's rows); the
            // prefetches only hint and never fault.
            unsafe {
                let a = s.a.add(t.row * t.lda);
                let b = t.b.as_ptr().add(s.b_row * t.stride);
                let b_hi = t.b_hi.as_ptr().add(s.b_row * t.stride);
                for p in 0..s.k {
                    if !t.next.is_null() {
                        _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(p * t.stride) as *const i8);
                    }
                    if !t.next_hi.is_null() {
                        _mm_prefetch::<_MM_HINT_T1>(next_hi.wrapping_add(p * t.stride) as *const i8);
                    }
                    let b0 = _mm512_loadu_ps(b.add(p * t.stride));
                    let b1 = _mm512_loadu_ps(b_hi.add(p * t.stride));
                    for r in 0..R {
                        let av = _mm512_set1_ps(*a.add(r * t.lda + p));
                        lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
                        hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
                    }
                }
            }
        }
    }
    if !t.finish {
        for r in 0..R {
            // SAFETY: as for the first pass's loads above.
            unsafe {
                let row = c.add((t.row + r) * t.ldc + t.c0);
                _mm512_storeu_ps(row, lo[r]);
                _mm512_mask_storeu_ps(row.add(NR), mask, hi[r]);
            }
        }
        return;
    }
    let (vlo, vhi) = (_mm512_set1_ps(t.lo), _mm512_set1_ps(t.hi));
    // SAFETY: the first 16 columns are whole; the lanes of `mask` are the second panel's valid
    // columns: in the bias, in each of the tile's rows of the output (the caller's contract) and
    // of the residual (indexed alike).
    unsafe {
        let bias0 = _mm512_loadu_ps(t.bias.as_ptr());
        let bias1 = _mm512_maskz_loadu_ps(mask, t.bias.as_ptr().add(NR));
        for r in 0..R {
            let base = (t.row + r) * t.ldc + t.c0;
            let mut v0 = _mm512_add_ps(lo[r], bias0);
            let mut v1 = _mm512_add_ps(hi[r], bias1);
            if let Some(res) = res {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(res.as_ptr().add(base)));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mask, res.as_ptr().add(base + NR)));
            }
            _mm512_storeu_ps(c.add(base), _mm512_min_ps(_mm512_max_ps(v0, vlo), vhi));
            let v1 = _mm512_min_ps(_mm512_max_ps(v1, vlo), vhi);
            _mm512_mask_storeu_ps(c.add(base + NR), mask, v1);
        }
    }
}

/// One segment of a two-panel tile's reduction, as [`pair_steps_asm`] reads it.
#[cfg(target_arch = "x86_64")]
struct PairSteps {
    /// The tile's first row of the segment; row `r` at `a + r·lda`, step `p` at `+ p`.
    a: *const f32,
    lda: usize,
    /// The two panels at the segment's first row (16 floats a row).
    b: *const f32,
    b_hi: *const f32,
    /// Panels prefetched alongside (only read when asked).
    next: *const f32,
    next_hi: *const f32,
    /// Steps.
    k: usize,
}

/// One step of the assembly loop, `$da` bytes past the rows' pointers and `$db` past the
/// panels': both panels' rows loaded, then each listed row's value broadcast into two FMAs
/// (`$addr`: the row's address, `$l`/`$h`: its accumulators' operand names).
#[cfg(target_arch = "x86_64")]
macro_rules! pair_step {
    ($da:literal, $db:literal, [$(($idx:literal, $addr:literal, $l:ident, $h:ident)),*]) => {
        concat!(
            "vmovups {b0}, zmmword ptr [{bp}", $db, "]\n",
            "vmovups {b1}, zmmword ptr [{bq}", $db, "]\n",
            $(
                "vbroadcastss {t}, dword ptr [", $addr, $da, "]\n",
                "vfmadd231ps {", stringify!($l), "}, {t}, {b0}\n",
                "vfmadd231ps {", stringify!($h), "}, {t}, {b1}\n",
            )*
        )
    };
}

/// The assembly loop of [`pair_steps_asm`] for the listed rows (`$idx`: the row, `$addr`: its
/// address from one of four row pointers, `$l`/`$h`: its accumulators' operand names): two
/// steps an iteration, then an odd last step; `pf` prefetches the next panels' rows as it goes.
#[cfg(target_arch = "x86_64")]
macro_rules! pair_loop {
    ($st:expr, $lo:expr, $hi:expr, $pf:tt, [$(($idx:literal, $addr:literal, $l:ident, $h:ident)),*]) => {{
        let st: &PairSteps = $st;
        let ld = st.lda * 4;
        let a = st.a;
        let (mut a0, mut a3) = (a, a.wrapping_add(3 * st.lda));
        let (mut a6, mut a9) = (a.wrapping_add(6 * st.lda), a.wrapping_add(9 * st.lda));
        let (mut bp, mut bq, mut np, mut nq) = (st.b, st.b_hi, st.next, st.next_hi);
        let (mut pairs, odd) = (st.k / 2, st.k % 2);
        // SAFETY: the caller's: every row's `k` floats and both panels' `k` rows are readable;
        // prefetches never fault.
        unsafe {
            std::arch::asm!(
                "test {pairs}, {pairs}",
                "jz 3f",
                "2:",
                pair_loop!(@pf $pf, ""),
                pair_step!("", "", [$(($idx, $addr, $l, $h)),*]),
                pair_loop!(@pf $pf, "+64"),
                pair_step!("+4", "+64", [$(($idx, $addr, $l, $h)),*]),
                "add {a0}, 8",
                "add {a3}, 8",
                "add {a6}, 8",
                "add {a9}, 8",
                "add {bp}, 128",
                "add {bq}, 128",
                pair_loop!(@adv $pf),
                "dec {pairs}",
                "jnz 2b",
                "3:",
                "test {odd}, {odd}",
                "jz 4f",
                pair_step!("", "", [$(($idx, $addr, $l, $h)),*]),
                "4:",
                "/* {ld} {np} {nq} */",
                a0 = inout(reg) a0, a3 = inout(reg) a3, a6 = inout(reg) a6, a9 = inout(reg) a9,
                bp = inout(reg) bp, bq = inout(reg) bq, np = inout(reg) np, nq = inout(reg) nq,
                pairs = inout(reg) pairs, odd = in(reg) odd, ld = in(reg) ld,
                b0 = out(zmm_reg) _, b1 = out(zmm_reg) _, t = out(zmm_reg) _,
                $($l = inout(zmm_reg) $lo[$idx], $h = inout(zmm_reg) $hi[$idx],)*
                options(nostack, readonly),
            );
        }
        let _ = (a0, a3, a6, a9, bp, bq, np, nq, pairs);
    }};
    (@pf pf, $d:literal) => { concat!("prefetcht1 [{np}", $d, "]\nprefetcht1 [{nq}", $d, "]") };
    (@pf none, $d:literal) => { "" };
    (@adv pf) => { "add {np}, 128\nadd {nq}, 128" };
    (@adv none) => { "" };
}

/// The reduction of a two-panel tile of `R` = 8 to 12 rows, in assembly: `lo[r] += a[r·lda +
/// p]·b[p]`, `hi[r] += a[r·lda + p]·b_hi[p]` over the segment's steps (LLVM's code for the
/// intrinsic loop recomputes twelve row addresses a step and spills the panel pointers; this
/// loop keeps four row pointers and the panels in registers: a step is 24 FMAs, 14 loads and
/// about four other instructions).
///
/// # Safety
/// AVX-512F; `st.k > 0`; rows `0..R` of `a` readable for `st.k` floats, both panels for
/// `st.k` rows of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pair_steps_asm<const R: usize>(
    st: &PairSteps,
    prefetch: bool,
    lo: &mut [std::arch::x86_64::__m512; R],
    hi: &mut [std::arch::x86_64::__m512; R],
) {
    // The first `$n` rows (one `u` each) of the table: four groups of three rows, each group
    // from its own pointer plus 0, 1 or 2 row strides.
    macro_rules! first_rows {
        ($pf:tt, $n:tt) => {
            first_rows!(@take $pf, $n, [], [
                (0, "{a0}", l0, h0), (1, "{a0}+{ld}", l1, h1), (2, "{a0}+{ld}*2", l2, h2),
                (3, "{a3}", l3, h3), (4, "{a3}+{ld}", l4, h4), (5, "{a3}+{ld}*2", l5, h5),
                (6, "{a6}", l6, h6), (7, "{a6}+{ld}", l7, h7), (8, "{a6}+{ld}*2", l8, h8),
                (9, "{a9}", l9, h9), (10, "{a9}+{ld}", l10, h10), (11, "{a9}+{ld}*2", l11, h11)
            ])
        };
        (@take $pf:tt, (), [$($taken:tt),*], [$($rest:tt),*]) => {
            pair_loop!(st, lo, hi, $pf, [$($taken),*])
        };
        (@take $pf:tt, (u $($n:tt)*), [$($taken:tt),*], [$head:tt $(, $rest:tt)*]) => {
            first_rows!(@take $pf, ($($n)*), [$($taken,)* $head], [$($rest),*])
        };
    }
    macro_rules! by_height {
        ($pf:tt) => {
            match R {
                12 => first_rows!($pf, (u u u u u u u u u u u u)),
                11 => first_rows!($pf, (u u u u u u u u u u u)),
                10 => first_rows!($pf, (u u u u u u u u u u)),
                9 => first_rows!($pf, (u u u u u u u u u)),
                8 => first_rows!($pf, (u u u u u u u u)),
                _ => unreachable!("pair_steps_asm: 8 to 12 rows"),
            }
        };
    }
    if prefetch {
        by_height!(pf)
    } else {
        by_height!(none)
    }
}

/// A panel with at most 8 valid columns (the last panel of 24 output channels) on an AVX-512
/// CPU: R rows × 8 columns in ymm registers. Where a 512-bit FMA issues at half the rate of
/// 256-bit ones (Zen 4), half-width FMAs do this panel's work in half the time of masked full
/// ones; where both issue two a cycle, in the same time.
///
/// # Safety
/// AVX-512F and VL, AVX2 and FMA must be available and the tile at most 8 columns wide;
/// otherwise as [`tile_scalar`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn tile_avx512_half<const R: usize>(t: &Tile, c: *mut f32, res: Option<&[f32]>) {
    use std::arch::x86_64::*;
    let mask: __mmask8 = ((1u32 << t.cols) - 1) as __mmask8;
    let mut acc = [_mm256_setzero_ps(); R];
    if !t.fresh {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as in `tile_avx512`: the tile's row `r` over its (at most 8) columns.
            *acc = unsafe { _mm256_maskz_loadu_ps(mask, c.add((t.row + r) * t.ldc + t.c0)) };
        }
    }
    for s in t.segs {
        // SAFETY: as in `tile_avx2`, reading the panel's first 8 columns only.
        unsafe {
            let a = s.a.add(t.row * t.lda);
            let b = t.b.as_ptr().add(s.b_row * t.stride);
            for p in 0..s.k {
                let bv = _mm256_loadu_ps(b.add(p * t.stride));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.add(r * t.lda + p));
                    *acc = _mm256_fmadd_ps(av, bv, *acc);
                }
            }
        }
    }
    if !t.finish {
        for (r, &acc) in acc.iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm256_mask_storeu_ps(c.add((t.row + r) * t.ldc + t.c0), mask, acc) };
        }
        return;
    }
    let (vlo, vhi) = (_mm256_set1_ps(t.lo), _mm256_set1_ps(t.hi));
    // SAFETY: as in `tile_avx512`: the lanes of `mask` are the tile's (at most 8) columns.
    unsafe {
        let bias = _mm256_maskz_loadu_ps(mask, t.bias.as_ptr());
        for (r, &acc) in acc.iter().enumerate() {
            let base = (t.row + r) * t.ldc + t.c0;
            let mut v = _mm256_add_ps(acc, bias);
            if let Some(res) = res {
                v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mask, res.as_ptr().add(base)));
            }
            _mm256_mask_storeu_ps(c.add(base), mask, _mm256_min_ps(_mm256_max_ps(v, vlo), vhi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_rows_start_on_cache_lines_in_panel_order() {
        // 3 × 20: two panels of three rows, the second holding columns 16..20 then zeros. Every
        // row starts on a 64-byte line (both packings), and the flat view reads them in order.
        let b: Vec<f32> = (0..3 * 20).map(|i| i as f32).collect();
        let t: Vec<f32> = (0..20 * 3).map(|i| b[(i % 3) * 20 + i / 3]).collect();
        for pb in [
            PackedB::pack(&b, 3, 20, 20),
            PackedB::pack_transposed(&t, 3, 20, 3),
        ] {
            assert!(pb
                .data
                .iter()
                .all(|r| (r as *const PanelRow as usize).is_multiple_of(64)));
            let flat = PanelRow::floats(&pb.data);
            assert_eq!(flat.len(), 2 * 3 * NR);
            assert_eq!(flat[..NR], b[..NR]);
            assert_eq!(flat[3 * NR..3 * NR + 4], b[16..20]);
            assert!(flat[3 * NR + 4..4 * NR].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn packed_weights_shorter_than_their_size_are_refused() {
        let mut b = PackedB::pack(&[1.0; 3 * 20], 3, 20, 20);
        b.data.truncate(b.data.len() - 1);
        let (a, bias) = ([1.0f32; 2 * 3], [0.0f32; 20]);
        let ep = Epilogue {
            bias: &bias,
            residual: None,
            act: crate::Activation::None,
        };
        for simd in [false, true] {
            let e = std::panic::catch_unwind(|| {
                let mut c = [0.0f32; 2 * 20];
                gemm_packed(2, &a, 3, &b, &mut c, 20, &ep, simd)
            })
            .unwrap_err();
            let e = e.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(e.contains("packed weights shorter"), "{e}");
        }
    }

    /// Packing `bᵀ` in place equals packing the transposed copy, panel padding included; the
    /// product through it is `a · bᵀ`.
    #[test]
    fn pack_transposed_equals_packing_the_transpose() {
        // Full 16 × 16 blocks (the AVX-512 transpose) with a partial panel and a tail of k.
        for (k, n, ld) in [
            (5, 33, 5),
            (9, 16, 11),
            (1, 3, 2),
            (20, 17, 20),
            (150, 35, 153),
        ] {
            let b: Vec<f32> = (0..n * ld).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let t: Vec<f32> = (0..k * n).map(|i| b[(i % n) * ld + i / n]).collect();
            assert_eq!(
                PackedB::pack_transposed(&b, k, n, ld),
                PackedB::pack(&t, k, n, n)
            );
            let m = 3;
            let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 - 2.0).collect();
            let packed = PackedB::pack_transposed(&b, k, n, ld);
            let mut c = vec![std::mem::MaybeUninit::new(f32::NAN); m * n];
            matmul_packed_uninit(m, &a, k, &packed, &mut c, true);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|p| a[i * k + p] * b[j * ld + p]).sum();
                    // SAFETY: the product wrote every element.
                    let got = unsafe { c[i * n + j].assume_init() };
                    assert!((got - want).abs() < 1e-4, "{k}x{n}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn matmul_uninit_writes_the_whole_product() {
        for (m, k, n, simd) in [
            (7, 5, 33, true),
            (29, 40, 50, true),
            (3, 7, 1100, true),
            (13, 16, 16, false),
            (1, 27, 5, true),
            (4, 0, 3, true),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 13) as f32 * 0.25 - 1.5)
                .collect();
            let mut c = vec![std::mem::MaybeUninit::new(f32::NAN); m * n];
            matmul_uninit(m, k, n, &a, k, &b, &mut c, simd);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                    // SAFETY: initialised above (NaN) and overwritten by the product.
                    let got = unsafe { c[i * n + j].assume_init() };
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n} [{i}][{j}]"
                    );
                }
            }
        }
    }
    use crate::kernels::reference::lcg_vec;
    use proptest::prelude::*;

    /// `m × n` product with the left operand in three segments of `seg` steps, segment `s` read
    /// from `x[step·s + lda·r + p]` and meeting rows `seg·s ..` of the weights, through the
    /// scalar, AVX2 and (where the CPU has it) AVX-512 tiles, against `f64`.
    #[allow(clippy::too_many_arguments)]
    fn segments_match_f64(
        m: usize,
        n: usize,
        lda: usize,
        seg: usize,
        step: usize,
        ep: Epilogue,
        tol: f64,
    ) {
        let x = lcg_vec(2 * step + (m - 1) * lda + seg, 1);
        let b = lcg_vec(3 * seg * n, 2);
        let pb = PackedB::pack(&b, 3 * seg, n, n);
        let segs: Vec<Segment> = (0..3)
            .map(|s| Segment {
                a: x[s * step..].as_ptr(),
                k: seg,
                b_row: seg * s,
            })
            .collect();
        let (lo, hi) = ep.act.bounds();
        for (simd, allow_avx512) in [(false, false), (true, false), (true, true)] {
            let mut c = vec![f32::NAN; m * n];
            // SAFETY: segment s reads x[step·s + lda·r + p] for r < m, p < seg: below
            // 2·step + lda·(m − 1) + seg = x.len().
            unsafe {
                run_tiles(
                    m,
                    &segs,
                    lda,
                    pb.panels(),
                    0..n.div_ceil(NR),
                    c.as_mut_ptr(),
                    n,
                    &ep,
                    simd,
                    allow_avx512,
                )
            };
            for r in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..3 * seg)
                        .map(|q| x[q / seg * step + r * lda + q % seg] as f64 * b[q * n + j] as f64)
                        .sum();
                    let res = ep.residual.map_or(0.0, |res| res[r * n + j] as f64);
                    let want = (dot + ep.bias[j] as f64 + res).clamp(lo as f64, hi as f64);
                    let got = c[r * n + j] as f64;
                    assert!(
                        (got - want).abs() <= tol,
                        "simd {simd} avx512 {allow_avx512} ({r},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Three segments of 9 steps read 7 floats apart (an implicit im2col), meeting rows 0, 9 and
    /// 18 of the weights; 33 columns end in a 1-column panel.
    #[test]
    fn every_tile_kernel_reads_segments() {
        let bias = lcg_vec(33, 3);
        let ep = Epilogue {
            bias: &bias,
            residual: None,
            act: Activation::None,
        };
        segments_match_f64(29, 33, 7, 9, 13, ep, 1e-4);
    }

    /// Reductions longer than one pass of the AVX-512 tiles: three segments of 150 steps (the
    /// first pass ends inside the second segment), a residual and ReLU6 applied once, at the end;
    /// 41 columns end in a two-panel tile with a partial panel and a one-panel tile.
    #[test]
    fn reductions_cut_into_passes_match_f64() {
        let segs = |k| Segment {
            a: std::ptr::null(),
            k,
            b_row: 0,
        };
        assert_eq!(k_chunks(&[segs(150); 3], KC_AVX512).len(), 2);
        assert_eq!(k_chunks(&[segs(150); 3], 100).len(), 5);
        let (bias, res) = (lcg_vec(41, 6), lcg_vec(29 * 41, 7));
        let ep = Epilogue {
            bias: &bias,
            residual: Some(&res),
            act: Activation::Relu6,
        };
        segments_match_f64(29, 41, 170, 150, 7, ep, 1e-3);
    }

    /// `gemm_packed` of `m × k → n` (output and residual `ldc` apart) with a residual and `act`,
    /// on both paths, against an f64 reference on every `row_step`-th row.
    #[allow(clippy::too_many_arguments)]
    fn residual_gemm_matches_f64(
        m: usize,
        k: usize,
        n: usize,
        ldc: usize,
        act: Activation,
        seed: u64,
        row_step: usize,
    ) {
        let a = lcg_vec(m * k, seed);
        let b = lcg_vec(k * n, seed + 1);
        let bias = lcg_vec(n, seed + 2);
        let res = lcg_vec(m * ldc, seed + 3);
        let pb = PackedB::pack(&b, k, n, n);
        let (lo, hi) = act.bounds();
        for simd in [false, true] {
            let mut c = vec![f32::NAN; m * ldc];
            let ep = Epilogue {
                bias: &bias,
                residual: Some(&res),
                act,
            };
            gemm_packed(m, &a, k, &pb, &mut c, ldc, &ep, simd);
            for i in (0..m).step_by(row_step) {
                for j in 0..n {
                    let dot: f64 = (0..k)
                        .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                        .sum();
                    let want = (dot + bias[j] as f64 + res[i * ldc + j] as f64)
                        .clamp(lo as f64, hi as f64);
                    let got = c[i * ldc + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4,
                        "{m}x{k}x{n} simd {simd} ({i},{j}) {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn outputs_past_the_cold_size_match_f64() {
        // 2100 rows × 136 columns (ldc 140) is past COLD_OUTPUT_BYTES: every tile prefetches
        // the next one's output and residual rows; 260 steps make two passes (the first writes
        // partial sums, the last reads the residual), and 136 columns end in a half panel.
        const { assert!(2100 * 140 * 4 > COLD_OUTPUT_BYTES) };
        residual_gemm_matches_f64(2100, 260, 136, 140, Activation::Relu6, 5, 7);
    }

    #[test]
    fn long_reductions_split_rows_into_even_blocks_and_tiles() {
        // k = 2000 keeps 48 rows of `a` a block and k = 960 96 rows: 97 rows become blocks of
        // 33+32+32 rows, 197 of 66+66+65, 49 one block, all in tiles of ≤ 12 rows; 24 and 40
        // columns end in a half panel.
        for (m, k, n) in [(97, 2000, 24), (197, 960, 40), (49, 960, 16)] {
            residual_gemm_matches_f64(m, k, n, n, Activation::None, 1, 1);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_naive_f64(m in 1usize..30, n in 1usize..50, k in 0usize..40, pad_a in 0usize..3, pad_c in 0usize..3,
                             act in 0usize..3, with_res in any::<bool>(), simd in any::<bool>(), seed in 0u64..1000) {
            let act = [Activation::None, Activation::Relu, Activation::Relu6][act];
            let (lda, ldc) = (k + pad_a, n + pad_c);
            let a = lcg_vec(m * lda, seed);
            let b = lcg_vec(k * n, seed + 1);
            let bias = lcg_vec(n, seed + 2);
            let res = lcg_vec(m * ldc, seed + 3);
            let pb = PackedB::pack(&b, k, n, n);
            let mut c = vec![f32::NAN; m * ldc];
            let ep = Epilogue { bias: &bias, residual: with_res.then_some(&res[..]), act };
            gemm_packed(m, &a, lda, &pb, &mut c, ldc, &ep, simd);
            for i in 0..m {
                for j in 0..n {
                    let mut want: f64 = (0..k).map(|p| a[i * lda + p] as f64 * b[p * n + j] as f64).sum::<f64>() + bias[j] as f64;
                    if with_res { want += res[i * ldc + j] as f64; }
                    let want = match act { Activation::None => want, Activation::Relu => want.max(0.0), Activation::Relu6 => want.clamp(0.0, 6.0) };
                    let got = c[i * ldc + j] as f64;
                    prop_assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0) * (k as f64).max(1.0).sqrt(), "({i},{j}) {got} vs {want}");
                }
                for j in n..ldc {
                    prop_assert!(c[i * ldc + j].is_nan(), "padding column written");
                }
            }
        }
    }

    #[test]
    fn large_k_block_boundaries() {
        // m spans several row blocks of the L2 loop; k large.
        let (m, n, k) = (300, 40, 700);
        let a = lcg_vec(m * k, 1);
        let b = lcg_vec(k * n, 2);
        let bias = vec![0.0; n];
        let pb = PackedB::pack(&b, k, n, n);
        for simd in [false, true] {
            let mut c = vec![0.0; m * n];
            gemm_packed(
                m,
                &a,
                k,
                &pb,
                &mut c,
                n,
                &Epilogue {
                    bias: &bias,
                    residual: None,
                    act: Activation::None,
                },
                simd,
            );
            for &(i, j) in &[(0, 0), (299, 39), (150, 17), (7, 33)] {
                let want: f64 = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
                assert!(
                    (c[i * n + j] as f64 - want).abs() < 1e-3,
                    "{simd} ({i},{j})"
                );
            }
        }
    }
}
