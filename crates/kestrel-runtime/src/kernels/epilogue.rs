//! The fused epilogue of GEMM-based kernels: `y = act(y + bias [+ residual])`, row by row.

use crate::Activation;

/// Applies `y = act(y + bias + residual)` to `rows` rows of `cols` values stored `ld` apart
/// (`residual`, when given, uses the same layout).
pub fn bias_act(
    y: &mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Activation,
) {
    let (lo, hi) = act.bounds();
    let bias = &bias[..cols];
    for r in 0..rows {
        let row = &mut y[r * ld..r * ld + cols];
        match residual {
            Some(res) => {
                let res = &res[r * ld..r * ld + cols];
                for ((v, b), s) in row.iter_mut().zip(bias).zip(res) {
                    *v = clamp(*v + *b + *s, lo, hi);
                }
            }
            None => {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = clamp(*v + *b, lo, hi);
                }
            }
        }
    }
}

/// Applies `y = act(y + residual)` element-wise (no bias).
pub fn residual_act(y: &mut [f32], residual: Option<&[f32]>, act: Activation) {
    let (lo, hi) = act.bounds();
    match residual {
        Some(res) => {
            for (v, s) in y.iter_mut().zip(res) {
                *v = clamp(*v + *s, lo, hi);
            }
        }
        None if act != Activation::None => {
            for v in y.iter_mut() {
                *v = clamp(*v, lo, hi);
            }
        }
        None => {}
    }
}

/// `min(max(x, lo), hi)` written so that it vectorises (maxps/minps).
#[inline(always)]
pub(crate) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_residual_then_activation() {
        let mut y = vec![1.0, -2.0, 9.0, 100.0, 0.5, -7.0];
        let res = vec![0.0, 1.0, -1.0, 0.0, 0.0, 10.0];
        bias_act(&mut y, 2, 2, 3, &[0.5, -0.5], Some(&res), Activation::Relu6);
        // row 0: [1+0.5+0, -2-0.5+1] -> [1.5, 0]; column 2 untouched
        // row 1: [100+0.5, 0.5-0.5+0] -> [6, 0]
        assert_eq!(y, vec![1.5, 0.0, 9.0, 6.0, 0.0, -7.0]);
        let mut z = vec![-1.0, 3.0];
        residual_act(&mut z, None, Activation::Relu);
        assert_eq!(z, vec![0.0, 3.0]);
    }
}
