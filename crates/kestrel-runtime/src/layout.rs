//! Conversions from PyTorch's OIHW convolution weights to the layouts the kernels read.

/// OIHW `[cout][cin][1][1]` → `[cin][cout]` (pointwise convolution / fully connected, where a
/// PyTorch `Linear` weight `[out][in]` is the same array).
pub fn pack_pointwise(oihw: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut out = vec![0.0; cin * cout];
    for o in 0..cout {
        for i in 0..cin {
            out[i * cout + o] = oihw[o * cin + i];
        }
    }
    out
}

/// OIHW `[c][1][kh][kw]` → `[kh][kw][c]` (depthwise convolution, vectorised over channels).
pub fn pack_depthwise(oihw: &[f32], c: usize, kh: usize, kw: usize) -> Vec<f32> {
    let mut out = vec![0.0; c * kh * kw];
    for ch in 0..c {
        for y in 0..kh {
            for x in 0..kw {
                out[(y * kw + x) * c + ch] = oihw[(ch * kh + y) * kw + x];
            }
        }
    }
    out
}

/// OIHW `[cout][cin/groups][kh][kw]` → `[groups][kh][kw][cin/groups][cout/groups]` (im2col GEMM:
/// per group a `K×N` matrix with `K = kh·kw·cin_g` rows ordered like the im2col patch columns).
pub fn pack_im2col(
    oihw: &[f32],
    cout: usize,
    cin_g: usize,
    kh: usize,
    kw: usize,
    groups: usize,
) -> Vec<f32> {
    let cout_g = cout / groups;
    let k = kh * kw * cin_g;
    let mut out = vec![0.0; groups * k * cout_g];
    for g in 0..groups {
        for oc in 0..cout_g {
            let o = g * cout_g + oc;
            for i in 0..cin_g {
                for y in 0..kh {
                    for x in 0..kw {
                        let row = (y * kw + x) * cin_g + i;
                        out[g * k * cout_g + row * cout_g + oc] =
                            oihw[((o * cin_g + i) * kh + y) * kw + x];
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_is_transpose() {
        // O=2, I=3: [[1,2,3],[4,5,6]] -> [[1,4],[2,5],[3,6]]
        assert_eq!(
            pack_pointwise(&[1., 2., 3., 4., 5., 6.], 2, 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }

    #[test]
    fn depthwise_puts_channels_last() {
        // c=2, 1x2 kernel: ch0 [1,2], ch1 [3,4] -> tap0 [1,3], tap1 [2,4]
        assert_eq!(
            pack_depthwise(&[1., 2., 3., 4.], 2, 1, 2),
            vec![1., 3., 2., 4.]
        );
    }

    #[test]
    fn im2col_layout_single_group() {
        // cout=2, cin=1, 1x2 kernel: o0 [1,2], o1 [3,4] -> rows (tap) x cols (o): [[1,3],[2,4]]
        assert_eq!(
            pack_im2col(&[1., 2., 3., 4.], 2, 1, 1, 2, 1),
            vec![1., 3., 2., 4.]
        );
        // two groups of one output each: group blocks are separate 2x1 matrices
        assert_eq!(
            pack_im2col(&[1., 2., 3., 4.], 2, 1, 1, 2, 2),
            vec![1., 2., 3., 4.]
        );
    }
}
