//! How a fixed-kernel resampler (nearest, bilinear, bicubic) is told its output size: a scale
//! factor or an explicit size, as `torch.nn.functional.interpolate(scale_factor=…)` /
//! `(size=…)`.
//!
//! The two differ in more than the size. With a scale factor s, PyTorch's output size is
//! ⌊W·s⌋ and its source-index formula uses the ratio 1/s (`recompute_scale_factor=None`, the
//! default); with a size W′ it uses W / W′. For s = 2 they agree; for s = 1.7 on W = 5
//! (W′ = 8) they do not (1/1.7 ≠ 5/8). kestrel keeps PyTorch's rule.

use super::error::UpsampleError;
use serde::{Deserialize, Serialize};

/// The output size of a resampler, per axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResizeTo {
    /// Multiply each axis by a factor: output ⌊W·s⌋, source ratio 1/s.
    Scale([f64; 2]),
    /// A fixed output size (H′, W′): source ratio W / W′.
    Size([usize; 2]),
}

impl Default for ResizeTo {
    fn default() -> Self {
        ResizeTo::Scale([2.0, 2.0])
    }
}

/// One axis of a resampling: input and output lengths, and the scale factor PyTorch would be
/// handed (`None` when the output size was given).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AxisMap {
    /// Input length.
    pub input: usize,
    /// Output length.
    pub output: usize,
    /// The user's scale factor, if the size came from one.
    pub scale: Option<f64>,
}

impl ResizeTo {
    /// Checks the factors or sizes (finite and positive; sizes at least 1).
    pub fn validate(&self, upsampler: &'static str) -> Result<(), UpsampleError> {
        match *self {
            ResizeTo::Scale(s) => {
                for v in s {
                    if !(v.is_finite() && v > 0.0) {
                        return Err(UpsampleError::field(
                            upsampler,
                            "resize.scale",
                            format!("{s:?}"),
                            "finite factors > 0",
                        ));
                    }
                }
            }
            ResizeTo::Size(s) => {
                if s.contains(&0) {
                    return Err(UpsampleError::field(
                        upsampler,
                        "resize.size",
                        format!("{s:?}"),
                        "sizes >= 1",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Output size (H′, W′) for an input of (H, W): ⌊H·s⌋ as PyTorch computes it (in f64), or
    /// the fixed size. `None` for an empty input, a bad factor, an empty or overflowing output.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.axes(input).map(|a| [a[0].output, a[1].output])
    }

    /// The two axis maps for an input of (H, W); `None` as for [`ResizeTo::output_size`].
    pub fn axes(&self, input: [usize; 2]) -> Option<[AxisMap; 2]> {
        if input.contains(&0) {
            return None;
        }
        let mut out = [AxisMap {
            input: 0,
            output: 0,
            scale: None,
        }; 2];
        for a in 0..2 {
            out[a] = match *self {
                ResizeTo::Scale(s) => {
                    let s = s[a];
                    if !(s.is_finite() && s > 0.0) {
                        return None;
                    }
                    let o = (input[a] as f64 * s).floor();
                    if !(1.0..=(u32::MAX as f64)).contains(&o) {
                        return None;
                    }
                    AxisMap {
                        input: input[a],
                        output: o as usize,
                        scale: Some(s),
                    }
                }
                ResizeTo::Size(s) => {
                    if s[a] == 0 {
                        return None;
                    }
                    AxisMap {
                        input: input[a],
                        output: s[a],
                        scale: None,
                    }
                }
            };
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_follow_torch_floor() {
        // torch: F.interpolate(x of 5×7, scale_factor=1.7) → 8×11; (2, 2) doubles.
        let r = ResizeTo::Scale([1.7, 1.7]);
        assert_eq!(r.output_size([5, 7]), Some([8, 11]));
        assert_eq!(ResizeTo::default().output_size([3, 4]), Some([6, 8]));
        assert_eq!(ResizeTo::Size([9, 2]).output_size([3, 4]), Some([9, 2]));
        assert_eq!(ResizeTo::Scale([0.1, 1.0]).output_size([3, 4]), None);
        assert_eq!(ResizeTo::Scale([f64::NAN, 1.0]).output_size([3, 4]), None);
        assert_eq!(ResizeTo::Size([1, 1]).output_size([0, 4]), None);
        assert!(ResizeTo::Size([0, 1]).validate("bilinear").is_err());
        let e = ResizeTo::Scale([-1.0, 2.0])
            .validate("nearest")
            .unwrap_err();
        assert!(e.to_string().contains("resize.scale"), "{e}");
    }

    proptest! {
        #[test]
        fn integer_scales_multiply(h in 1usize..50, w in 1usize..50, s in 1usize..6) {
            let r = ResizeTo::Scale([s as f64, s as f64]);
            prop_assert_eq!(r.output_size([h, w]), Some([h * s, w * s]));
        }

        #[test]
        fn real_scale_size_is_floor(h in 1usize..200, s in 0.2f64..5.0) {
            let out = ResizeTo::Scale([s, 1.0]).output_size([h, 1]);
            let exact = (h as f64 * s).floor() as usize;
            if exact == 0 {
                prop_assert_eq!(out, None);
            } else {
                let o = out.unwrap()[0];
                prop_assert_eq!(o, exact);
                // ⌊hs⌋ ≤ hs < ⌊hs⌋ + 1.
                prop_assert!(o as f64 <= h as f64 * s && h as f64 * s < o as f64 + 1.0);
            }
        }
    }
}
