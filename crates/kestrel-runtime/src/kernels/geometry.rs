//! Output sizes of windowed operations (convolution, pooling), with PyTorch's conventions.

use serde::{Deserialize, Serialize};

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

    /// Output size along one axis, `floor((n + 2p - d(k-1) - 1) / s) + 1`, or `None` when the window
    /// does not fit or a parameter is zero.
    fn out_len(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
        if k == 0 || s == 0 || d == 0 {
            return None;
        }
        // Checked: plan files are user input, and absurd sizes must fail, not wrap.
        let span = d.checked_mul(k - 1)?.checked_add(1)?;
        let padded = p.checked_mul(2)?.checked_add(n)?;
        if padded < span {
            return None;
        }
        Some((padded - span) / s + 1)
    }

    /// Output `(height, width)` for an input of `(h, w)`, or `None` when the window does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let oh = Self::out_len(
            h,
            self.kernel[0],
            self.stride[0],
            self.padding[0],
            self.dilation[0],
        )?;
        let ow = Self::out_len(
            w,
            self.kernel[1],
            self.stride[1],
            self.padding[1],
            self.dilation[1],
        )?;
        Some((oh, ow))
    }

    /// Whether this is a plain 1×1, stride-1, unpadded window.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// Range of kernel taps `k` in `0..kernel` whose input coordinate `o*s - p + k*d` lies in `0..n`.
#[inline]
pub(crate) fn valid_taps(
    o: usize,
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> (usize, usize) {
    let start = (o * s) as isize - p as isize;
    let mut lo = 0usize;
    while lo < k && start + ((lo * d) as isize) < 0 {
        lo += 1;
    }
    let mut hi = k;
    while hi > lo && start + ((hi - 1) * d) as isize >= n as isize {
        hi -= 1;
    }
    (lo, hi)
}

/// The outputs `o` in `0..out_len` whose whole window lies inside the input (`valid_taps` is all
/// of `0..k`): `o·s ≥ p` and `o·s − p + (k − 1)·d ≤ n − 1`; empty when none does. Kernels run these
/// without border checks and the rest through a general path.
pub(crate) fn interior(
    out_len: usize,
    n: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> std::ops::Range<usize> {
    let span = (k - 1) * d;
    let lo = p.div_ceil(s).min(out_len);
    let hi = if n + p > span {
        ((n - 1 + p - span) / s + 1).min(out_len)
    } else {
        0
    };
    lo..hi.max(lo)
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
    fn interior_is_where_every_tap_is_valid() {
        for n in 1..9 {
            for k in 1..5 {
                for s in 1..3 {
                    for p in 0..3 {
                        for d in 1..3 {
                            for out_len in 0..n + 3 {
                                let want: Vec<usize> = (0..out_len)
                                    .filter(|&o| valid_taps(o, n, k, s, p, d) == (0, k))
                                    .collect();
                                let got: Vec<usize> = interior(out_len, n, k, s, p, d).collect();
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
                                let (lo, hi) = valid_taps(o, n, k, s, p, d);
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
