//! CARAFE's reassembly (Wang et al., ICCV 2019) on NHWC images, fused with the two steps that
//! turn the content encoder's output into kernels: the pixel shuffle and the softmax.
//!
//! For an input `x` of `(h, w, c)`, factor σ and reassembly kernel k (odd, r = ⌊k/2⌋), the
//! encoder's output `e` is `(h, w, σ²·k²)`. Output pixel `(σy + i, σx + j)` takes the k²
//! logits `e[y, x, q·σ² + i·σ + j]` (PyTorch's `pixel_shuffle` order), their softmax `w_q`, and
//! `out[σy + i, σx + j, ch] = Σ_{a,b} w_{a·k+b} · x[y + a − r, x + b − r, ch]`, zero outside the
//! image. One pass over the output: the logits of a pixel are read, normalised and used while
//! its k×k neighbourhood is summed.

use crate::parallel::{for_rows, Par};

/// The largest reassembly kernel side the runtime takes (the paper uses 5).
pub const MAX_KERNEL: usize = 11;

/// Sizes of a CARAFE reassembly.
#[derive(Debug, Clone, Copy)]
pub struct Carafe {
    /// Input `(h, w, c)`.
    pub hwc: [usize; 3],
    /// Upsampling factor σ.
    pub factor: usize,
    /// Reassembly kernel side k (odd, at most [`MAX_KERNEL`]).
    pub kernel: usize,
}

/// Reassembles `n` images: `x` is `n × (h, w, c)`, `logits` the encoder's `n × (h, w, σ²k²)`,
/// `out` receives `n × (σh, σw, c)`.
pub fn carafe(par: Par, p: &Carafe, n: usize, x: &[f32], logits: &[f32], out: &mut [f32]) {
    let [h, w, c] = p.hwc;
    let (s, k) = (p.factor, p.kernel);
    assert!(k % 2 == 1 && k <= MAX_KERNEL, "kernel {k}");
    let (k2, s2) = (k * k, s * s);
    let (oh, ow) = (h * s, w * s);
    let r = k / 2;
    for_rows(
        par,
        &mut out[..n * oh * ow * c],
        n * oh,
        ow * c,
        |row_i, row| {
            let (b, oy) = (row_i / oh, row_i % oh);
            let (y, i) = (oy / s, oy % s);
            let image = &x[b * h * w * c..][..h * w * c];
            // The kernel rows that fall inside the image.
            let a_lo = r.saturating_sub(y);
            let a_hi = k.min(h + r - y);
            let mut wq = [0f32; MAX_KERNEL * MAX_KERNEL];
            for ox in 0..ow {
                let (xx, j) = (ox / s, ox % s);
                let e = &logits[((b * h + y) * w + xx) * s2 * k2..][..s2 * k2];
                let wq = &mut wq[..k2];
                let mut max = f32::NEG_INFINITY;
                for (q, v) in wq.iter_mut().enumerate() {
                    *v = e[q * s2 + i * s + j];
                    max = max.max(*v);
                }
                let mut sum = 0.0;
                for v in wq.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                let dst = &mut row[ox * c..(ox + 1) * c];
                dst.fill(0.0);
                let b_lo = r.saturating_sub(xx);
                let b_hi = k.min(w + r - xx);
                for a in a_lo..a_hi {
                    let sy = y + a - r;
                    for bb in b_lo..b_hi {
                        let sx = xx + bb - r;
                        let wt = wq[a * k + bb] * inv;
                        let src = &image[(sy * w + sx) * c..][..c];
                        for (d, v) in dst.iter_mut().zip(src) {
                            *d += wt * v;
                        }
                    }
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition on NCHW indices in f64: logits shuffled to `(k², σh, σw)`, softmax over
    /// the k² channels, then the weighted k×k neighbourhood of the source pixel.
    fn reference(p: &Carafe, x: &[f32], logits: &[f32]) -> Vec<f64> {
        let [h, w, c] = p.hwc;
        let (s, k) = (p.factor, p.kernel);
        let r = (k / 2) as isize;
        let (oh, ow) = (h * s, w * s);
        let mut out = vec![0f64; oh * ow * c];
        for oy in 0..oh {
            for ox in 0..ow {
                let (y, xx) = (oy / s, ox / s);
                let z: Vec<f64> = (0..k * k)
                    .map(|q| {
                        let ch = q * s * s + (oy % s) * s + ox % s;
                        logits[(y * w + xx) * s * s * k * k + ch] as f64
                    })
                    .collect();
                let m = z.iter().cloned().fold(f64::MIN, f64::max);
                let total: f64 = z.iter().map(|v| (v - m).exp()).sum();
                for ch in 0..c {
                    let mut acc = 0.0;
                    for a in 0..k {
                        for bb in 0..k {
                            let sy = y as isize + a as isize - r;
                            let sx = xx as isize + bb as isize - r;
                            if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                                continue;
                            }
                            let v = x[(sy as usize * w + sx as usize) * c + ch] as f64;
                            acc += (z[a * k + bb] - m).exp() / total * v;
                        }
                    }
                    out[(oy * ow + ox) * c + ch] = acc;
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).max(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                ((state % 20001) as f32 / 10000.0 - 1.0) * scale
            })
            .collect()
    }

    /// Odd sizes, borders wider than the image (k = 5 on a 1- or 2-pixel side), σ = 1, 2, 3,
    /// channel counts off every vector width, 1 and 3 threads, two images.
    #[test]
    fn matches_the_f64_definition() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (h, w, c, s, k) in [
            (5, 4, 3, 2, 5),
            (3, 7, 17, 3, 3),
            (1, 2, 5, 2, 5),
            (6, 5, 1, 1, 3),
            (4, 3, 33, 2, 1),
            (2, 2, 4, 4, 7),
        ] {
            let p = Carafe {
                hwc: [h, w, c],
                factor: s,
                kernel: k,
            };
            let n = 2;
            let x = values(n * h * w * c, 7 + c as u32, 1.0);
            // Logits up to ±8: the softmax must subtract the maximum to stay exact.
            let e = values(n * h * w * s * s * k * k, 11 + k as u32, 8.0);
            for (threads, par) in [(1, Par::SERIAL), (3, Par::new(Some(&pool), 3))] {
                let mut out = vec![f32::NAN; n * h * s * w * s * c];
                carafe(par, &p, n, &x, &e, &mut out);
                let img = h * w;
                for b in 0..n {
                    let want = reference(
                        &p,
                        &x[b * img * c..][..img * c],
                        &e[b * img * s * s * k * k..][..img * s * s * k * k],
                    );
                    let got = &out[b * want.len()..][..want.len()];
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (*g as f64 - w).abs() < 1e-5,
                            "{h}x{w}x{c} σ{s} k{k} {threads} threads: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
