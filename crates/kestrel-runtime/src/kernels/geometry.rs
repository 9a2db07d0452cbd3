//! Window geometry of convolution and pooling, with PyTorch's conventions: the output length of
//! a convolution ([`conv_out_len`]) and of a transposed convolution ([`conv_transpose_out_len`]),
//! and per axis (the crate-internal `Axis`) which kernel taps of an output fall inside the input. The one home of
//! these formulas in the workspace; the crate re-exports this module as `kestrel_runtime::geometry`.

use serde::{Deserialize, Serialize};

/// Output length of a convolution (or pooling window) along one axis of `n` inputs, kernel `k`,
/// stride `s`, padding `p` on both sides and dilation `d` — PyTorch's `Conv2d` formula
/// `floor((n + 2p − d·(k − 1) − 1) / s) + 1`. `None` when the window does not fit in the padded
/// input, when `k`, `s` or `d` is zero, or on overflow (plan files are user input: absurd sizes
/// must fail, not wrap).
pub fn conv_out_len(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    if k == 0 || s == 0 || d == 0 {
        return None;
    }
    let span = d.checked_mul(k - 1)?.checked_add(1)?;
    let padded = p.checked_mul(2)?.checked_add(n)?;
    if padded < span {
        return None;
    }
    Some((padded - span) / s + 1)
}

/// Output length of a transposed convolution along one axis of `n` inputs, kernel `k`, stride
/// `s`, padding `p` (removed from both sides of the output), dilation `d` and `output_padding`
/// (added on one side) — PyTorch's `ConvTranspose2d` formula
/// `(n − 1)·s − 2p + d·(k − 1) + output_padding + 1`. `None` when the result is not positive,
/// when `n`, `k`, `s` or `d` is zero, or on overflow. (PyTorch also requires
/// `output_padding < max(s, d)`; that rule is the caller's.)
pub fn conv_transpose_out_len(
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    output_padding: usize,
) -> Option<usize> {
    if n == 0 || k == 0 || s == 0 || d == 0 {
        return None;
    }
    let grown = (n - 1)
        .checked_mul(s)?
        .checked_add(d.checked_mul(k - 1)?)?
        .checked_add(output_padding)?
        .checked_add(1)?;
    grown.checked_sub(p.checked_mul(2)?).filter(|&v| v > 0)
}

/// The window of a 2-D convolution or pooling over an NHWC image: kernel size, stride, symmetric
/// zero padding and dilation, each as `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeometry {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding added on both sides along height and width.
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// A square window: `k`×`k` kernel, stride `s`, padding `p`, dilation `d`.
    pub fn square(k: usize, s: usize, p: usize, d: usize) -> Self {
        ConvGeometry {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
            dilation: [d, d],
        }
    }

    /// The window along axis `i` (0: height, 1: width) over an input of length `n`.
    #[inline]
    pub(crate) fn axis(&self, i: usize, n: usize) -> Axis {
        Axis {
            n,
            k: self.kernel[i],
            s: self.stride[i],
            p: self.padding[i],
            d: self.dilation[i],
        }
    }

    /// Output `(height, width)` for an input of `(h, w)` ([`conv_out_len`] along each axis), or
    /// `None` when the window does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let len = |a: Axis| conv_out_len(a.n, a.k, a.s, a.p, a.d);
        Some((len(self.axis(0, h))?, len(self.axis(1, w))?))
    }

    /// Output `(height, width)` of a transposed convolution with this window and
    /// `output_padding` on an input of `(h, w)` ([`conv_transpose_out_len`] along each axis).
    pub fn transposed_output_hw(
        &self,
        output_padding: [usize; 2],
        h: usize,
        w: usize,
    ) -> Option<(usize, usize)> {
        let len = |a: Axis, op| conv_transpose_out_len(a.n, a.k, a.s, a.p, a.d, op);
        Some((
            len(self.axis(0, h), output_padding[0])?,
            len(self.axis(1, w), output_padding[1])?,
        ))
    }

    /// Whether this is a plain 1×1, stride-1, unpadded window.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// One axis of a window over an input of `n` samples: kernel `k`, stride `s`, padding `p`,
/// dilation `d`. Output `o`'s tap `t` reads input coordinate `o·s − p + t·d` (negative or `≥ n`:
/// in the padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Input length.
    pub n: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub s: usize,
    /// Padding on both sides.
    pub p: usize,
    /// Dilation.
    pub d: usize,
}

impl Axis {
    /// The input coordinate `o·s − p + t·d` that tap `t` of output `o` reads (for a transposed
    /// convolution: the output coordinate that input `o` scatters to through tap `t`).
    #[inline]
    pub fn input_at(&self, o: usize, t: usize) -> isize {
        (o * self.s + t * self.d) as isize - self.p as isize
    }

    /// Range of kernel taps `t` in `0..k` whose input coordinate lies in `0..n`.
    #[inline]
    pub fn valid_taps(&self, o: usize) -> (usize, usize) {
        let start = (o * self.s) as isize - self.p as isize;
        let mut lo = 0usize;
        while lo < self.k && start + ((lo * self.d) as isize) < 0 {
            lo += 1;
        }
        let mut hi = self.k;
        while hi > lo && start + ((hi - 1) * self.d) as isize >= self.n as isize {
            hi -= 1;
        }
        (lo, hi)
    }

    /// The outputs `o` in `0..out_len` whose whole window lies inside the input
    /// ([`Axis::valid_taps`] is all of `0..k`): `o·s ≥ p` and `o·s − p + (k − 1)·d ≤ n − 1`; empty
    /// when none does. Kernels run these without border checks and the rest through a general
    /// path.
    pub fn interior(&self, out_len: usize) -> std::ops::Range<usize> {
        let (n, s, p) = (self.n, self.s, self.p);
        let span = (self.k - 1) * self.d;
        let lo = p.div_ceil(s).min(out_len);
        let hi = if n + p > span {
            ((n - 1 + p - span) / s + 1).min(out_len)
        } else {
            0
        };
        lo..hi.max(lo)
    }

    /// For a transposed convolution along this axis (`n` inputs), fills `out` with the
    /// `(tap, input)` pairs whose scattered window reaches output coordinate `o`:
    /// `o + p = input·s + tap·d`.
    pub fn transposed_sources(&self, o: usize, out: &mut Vec<(usize, usize)>) {
        out.clear();
        for t in 0..self.k {
            let num = (o + self.p) as isize - (t * self.d) as isize;
            if num >= 0 && (num as usize).is_multiple_of(self.s) && (num as usize / self.s) < self.n
            {
                out.push((t, num as usize / self.s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_match_pytorch_formula() {
        // torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)(torch.zeros(1, 3, 224, 224)).shape[-2:] == (112, 112)
        assert_eq!(
            ConvGeometry::square(3, 2, 1, 1).output_hw(224, 224),
            Some((112, 112))
        );
        // MaxPool2d(3, 2, 1) on 112 -> 56 (ResNet stem)
        assert_eq!(
            ConvGeometry::square(3, 2, 1, 1).output_hw(112, 112),
            Some((56, 56))
        );
        // 7x7 s2 p3 on 224 -> 112
        assert_eq!(
            ConvGeometry::square(7, 2, 3, 1).output_hw(224, 224),
            Some((112, 112))
        );
        // dilation 2, padding 2, 3x3 keeps size 13
        assert_eq!(
            ConvGeometry::square(3, 1, 2, 2).output_hw(13, 13),
            Some((13, 13))
        );
        assert_eq!(ConvGeometry::square(5, 1, 0, 1).output_hw(3, 3), None);
        assert_eq!(ConvGeometry::square(3, 0, 0, 1).output_hw(3, 3), None);
        assert_eq!(
            ConvGeometry::square(usize::MAX, 1, usize::MAX / 2, 3).output_hw(3, 3),
            None
        );
    }

    #[test]
    fn transposed_sizes_follow_pytorch() {
        // nn.ConvTranspose2d(1, 1, 16, stride=8, padding=4)(torch.zeros(1, 1, 7, 7)).shape[-1] == 56
        assert_eq!(conv_transpose_out_len(7, 16, 8, 4, 1, 0), Some(56));
        // kernel 3, stride 2, padding 1, output_padding 1: 5 -> 10
        assert_eq!(conv_transpose_out_len(5, 3, 2, 1, 1, 1), Some(10));
        assert_eq!(conv_transpose_out_len(1, 1, 1, 1, 1, 0), None);
    }

    #[test]
    fn interior_is_where_every_tap_is_valid() {
        for n in 1..9 {
            for k in 1..5 {
                for s in 1..3 {
                    for p in 0..3 {
                        for d in 1..3 {
                            for out_len in 0..n + 3 {
                                let a = Axis { n, k, s, p, d };
                                let want: Vec<usize> = (0..out_len)
                                    .filter(|&o| a.valid_taps(o) == (0, k))
                                    .collect();
                                let got: Vec<usize> = a.interior(out_len).collect();
                                assert_eq!(got, want, "n{n} k{k} s{s} p{p} d{d} out{out_len}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn valid_taps_agree_with_brute_force() {
        for n in 1..7 {
            for k in 1..5 {
                for s in 1..3 {
                    for p in 0..3 {
                        for d in 1..3 {
                            for o in 0..n + 2 {
                                let (lo, hi) = Axis { n, k, s, p, d }.valid_taps(o);
                                for t in 0..k {
                                    let i = (o * s + t * d) as isize - p as isize;
                                    let inside = i >= 0 && i < n as isize;
                                    assert_eq!(
                                        inside,
                                        t >= lo && t < hi,
                                        "n{n} k{k} s{s} p{p} d{d} o{o} t{t}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
