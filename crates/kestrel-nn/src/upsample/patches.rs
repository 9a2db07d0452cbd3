//! k×k neighbourhoods of every pixel (`unfold` with zero padding k/2), built from a zero pad and
//! k² shifted slices so that the backward is the one of `pad` and `slice` on every backend
//! (Burn's `unfold4d` with padding takes a slow one-hot-convolution path).

use burn::tensor::ops::PadMode;
use burn::tensor::Tensor;

/// For an (N, C, H, W) tensor and odd k, the (N, C·k², H, W) tensor whose channel
/// c·k² + a·k + b at (y, x) is input channel c at (y + a − k/2, x + b − k/2), zero outside.
pub fn neighbourhoods(x: Tensor<4>, k: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    if k == 1 {
        return x;
    }
    let r = k / 2;
    let padded = x.pad([(r, r), (r, r)], PadMode::Constant(0.0));
    let mut taps = Vec::with_capacity(k * k);
    for a in 0..k {
        for b in 0..k {
            taps.push(padded.clone().slice([0..n, 0..c, a..a + h, b..b + w]));
        }
    }
    // (N, C, k², H, W) → (N, C·k², H, W).
    Tensor::stack::<5>(taps, 2).reshape([n, c * k * k, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matches_brute_force() {
        let (n, c, h, w, k) = (2, 3, 4, 5, 3);
        let device = Device::flex();
        let v: Vec<f32> = (0..n * c * h * w).map(|i| i as f32 + 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [n, c, h, w]), &device);
        let p: Vec<f32> = neighbourhoods(x, k).into_data().try_to_vec().unwrap();
        let r = (k / 2) as isize;
        for b in 0..n {
            for ch in 0..c {
                for a in 0..k {
                    for bb in 0..k {
                        for y in 0..h {
                            for xx in 0..w {
                                let sy = y as isize + a as isize - r;
                                let sx = xx as isize + bb as isize - r;
                                let want =
                                    if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
                                        0.0
                                    } else {
                                        v[((b * c + ch) * h + sy as usize) * w + sx as usize]
                                    };
                                let q = ch * k * k + a * k + bb;
                                let got = p[((b * c * k * k + q) * h + y) * w + xx];
                                assert_eq!(got, want);
                            }
                        }
                    }
                }
            }
        }
    }
}
