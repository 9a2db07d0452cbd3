//! The integer GEMM of int8 inference: `C = A·B` with `A` unsigned 8-bit activations (an
//! asymmetric quantisation: real = scale·(a − zero point)), `B` signed 8-bit weights (symmetric,
//! per output channel) and exact 32-bit sums. The zero point is taken out afterwards with the
//! weights' column sums: `Σₖ (aₖ − z)·bₖ = Σₖ aₖ·bₖ − z·Σₖ bₖ` ([`PackedB8::col_sums`]).
//!
//! `B` is packed once into panels of 16 columns whose rows come in groups of 4 (`[panel][k/4][16
//! columns][4]`): one 64-byte group is what AVX-512 VNNI's `vpdpbusd` multiplies with 4
//! activations broadcast to every column, adding 4 products into each 32-bit lane.
//!
//! One file per path, dispatched at run time: `scalar` (the reference every path must equal
//! exactly), `avx512_vnni` (`vpdpbusd`), `avx2` (activations and weights widened to 16 bits and
//! multiplied pairwise with `vpmaddwd`: exact, where `vpmaddubsw`'s 16-bit pair sums would
//! saturate for some u8 × s8 products).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512_vnni;
mod scalar;
#[cfg(test)]
mod tests;

/// Columns of a panel.
pub const NR: usize = 16;
/// Rows of `B` (the reduction) per group.
pub const KG: usize = 4;

/// A `k×n` int8 matrix packed for [`gemm_u8i8`], with its column sums.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedB8 {
    /// Rows (the reduction dimension).
    pub k: usize,
    /// Columns.
    pub n: usize,
    /// `[panel][k.div_ceil(4)][16][4]`, zero-padded past `k` and `n`.
    pub data: Vec<i8>,
    /// `Σₖ b[k][j]` per column `j`.
    pub col_sums: Vec<i32>,
}

impl PackedB8 {
    /// Packs a row-major `k×n` matrix with leading dimension `ldb`.
    ///
    /// # Panics
    /// If `b` is shorter than `(k − 1)·ldb + n` (for `k > 0`) or `ldb < n`.
    pub fn pack(b: &[i8], k: usize, n: usize, ldb: usize) -> Self {
        assert!(ldb >= n, "int8 gemm: ldb {ldb} < n {n}");
        assert!(
            k == 0 || b.len() >= (k - 1) * ldb + n,
            "int8 gemm: B holds {} values, k × n = {k} × {n} with ldb {ldb} needs more",
            b.len()
        );
        let (panels, groups) = (n.div_ceil(NR), k.div_ceil(KG));
        let mut data = vec![0i8; panels * groups * NR * KG];
        for row in 0..k {
            for col in 0..n {
                let (p, j) = (col / NR, col % NR);
                let (g, t) = (row / KG, row % KG);
                data[((p * groups + g) * NR + j) * KG + t] = b[row * ldb + col];
            }
        }
        let col_sums = (0..n)
            .map(|col| (0..k).map(|row| i32::from(b[row * ldb + col])).sum())
            .collect();
        PackedB8 {
            k,
            n,
            data,
            col_sums,
        }
    }

    /// Row groups per panel.
    fn groups(&self) -> usize {
        self.k.div_ceil(KG)
    }

    /// Panel `p`: `groups × 16 × 4` values.
    fn panel(&self, p: usize) -> &[i8] {
        let len = self.groups() * NR * KG;
        &self.data[p * len..(p + 1) * len]
    }

    /// Panics unless `data` and `col_sums` hold what `k` and `n` say (the fields are public and
    /// the SIMD paths read panels by those sizes).
    fn check(&self) {
        assert_eq!(
            self.data.len(),
            self.n.div_ceil(NR) * self.groups() * NR * KG,
            "int8 gemm: packed weights do not hold k × n = {} × {}",
            self.k,
            self.n
        );
        assert_eq!(self.col_sums.len(), self.n, "int8 gemm: column sums");
    }
}

/// Which instruction set runs [`gemm_u8i8_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Path {
    /// The portable loop.
    Scalar,
    /// AVX2 (16-bit products, `vpmaddwd`).
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`).
    Avx512Vnni,
}

impl Int8Path {
    /// The fastest path this CPU has.
    pub fn best() -> Int8Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return Int8Path::Avx512Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Int8Path::Avx2;
            }
        }
        Int8Path::Scalar
    }

    /// Every path this CPU can run, slowest first (tests check each against the reference).
    #[cfg(test)]
    pub(crate) fn all_available() -> Vec<Int8Path> {
        [Int8Path::Scalar, Int8Path::Avx2, Int8Path::Avx512Vnni]
            .into_iter()
            .filter(|p| p.available())
            .collect()
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Int8Path::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// `c[i][j] = Σₖ a[i][k]·b[k][j]` exactly, for the `m` rows of `a` (leading dimension `lda`)
/// into `c` (leading dimension `ldc`), on the fastest path this CPU has.
///
/// # Panics
/// If a buffer is shorter than its rows say, `lda < k` or `ldc < n`.
pub fn gemm_u8i8(a: &[u8], m: usize, lda: usize, b: &PackedB8, c: &mut [i32], ldc: usize) {
    gemm_u8i8_with(Int8Path::best(), a, m, lda, b, c, ldc)
}

/// [`gemm_u8i8`] on a given path (tests force each one).
///
/// # Panics
/// As [`gemm_u8i8`], and if this CPU cannot run `path`.
pub fn gemm_u8i8_with(
    path: Int8Path,
    a: &[u8],
    m: usize,
    lda: usize,
    b: &PackedB8,
    c: &mut [i32],
    ldc: usize,
) {
    b.check();
    let (k, n) = (b.k, b.n);
    assert!(
        lda >= k && ldc >= n,
        "int8 gemm: lda {lda} < k {k} or ldc {ldc} < n {n}"
    );
    if m == 0 {
        return;
    }
    assert!(
        a.len() >= (m - 1) * lda + k && c.len() >= (m - 1) * ldc + n,
        "int8 gemm: A or C shorter than {m} rows"
    );
    assert!(path.available(), "int8 gemm: this CPU cannot run {path:?}");
    match path {
        Int8Path::Scalar => scalar::gemm(a, m, lda, b, c, ldc),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 (checked above); the shapes were checked above.
        Int8Path::Avx2 => unsafe { avx2::gemm(a, m, lda, b, c, ldc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512 F and VNNI (checked above); the shapes were checked above.
        Int8Path::Avx512Vnni => unsafe { avx512_vnni::gemm(a, m, lda, b, c, ldc) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by available()"),
    }
}

/// `C = A·B` through the requantising epilogue `rq` into codes `out` (leading dimension `ldo`),
/// with the residual codes `res` (same layout as `out`) when the op adds one. AVX-512 VNNI fuses
/// the two ([`avx512_vnni::gemm_requant`]); the other paths store the sums in `scratch` first.
/// Every path gives the same codes.
///
/// # Panics
/// As [`gemm_u8i8_with`], and if `out`, `res` or the epilogue's channels are too short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_u8i8_requant(
    path: Int8Path,
    a: &[u8],
    m: usize,
    lda: usize,
    b: &PackedB8,
    rq: &crate::kernels::int8_requant::Requant,
    res: Option<&[u8]>,
    out: &mut [u8],
    ldo: usize,
    scratch: &mut Vec<i32>,
) {
    b.check();
    let (k, n) = (b.k, b.n);
    assert!(
        lda >= k && ldo >= n,
        "int8 gemm: lda {lda} < k {k} or ldo {ldo} < n {n}"
    );
    if m == 0 {
        return;
    }
    let rows_len = (m - 1) * ldo + n;
    assert!(
        a.len() >= (m - 1) * lda + k && out.len() >= rows_len,
        "int8 gemm: A or the output shorter than {m} rows"
    );
    assert!(
        res.is_none_or(|r| r.len() >= rows_len),
        "int8 gemm: residual rows"
    );
    assert!(
        rq.corr.len() >= n && rq.mult.len() >= n,
        "int8 gemm: epilogue channels"
    );
    assert!(path.available(), "int8 gemm: this CPU cannot run {path:?}");
    #[cfg(target_arch = "x86_64")]
    if path == Int8Path::Avx512Vnni
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
    {
        // SAFETY: the CPU has AVX-512 F, VNNI (the path), BW and VL (checked); the shapes were
        // checked above.
        return unsafe { avx512_vnni::gemm_requant(a, m, lda, b, rq, res, out, ldo) };
    }
    if scratch.len() < m * n {
        scratch.resize(m * n, 0);
    }
    let acc = &mut scratch[..m * n];
    gemm_u8i8_with(path, a, m, lda, b, acc, n);
    for (r, sums) in acc.chunks_exact(n).enumerate() {
        let o = r * ldo;
        rq.row_u8(sums, res.map(|v| &v[o..o + n]), &mut out[o..o + n]);
    }
}

/// The 4 activations of group `g` of row `row` (zeros past `k`), as one little-endian word.
#[inline(always)]
fn a_group(row: &[u8], g: usize, k: usize) -> [u8; KG] {
    let start = g * KG;
    if start + KG <= k {
        [row[start], row[start + 1], row[start + 2], row[start + 3]]
    } else {
        let mut v = [0u8; KG];
        for (t, slot) in v.iter_mut().enumerate().take(k - start) {
            *slot = row[start + t];
        }
        v
    }
}
