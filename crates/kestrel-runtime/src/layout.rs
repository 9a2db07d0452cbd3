//! Conversions from PyTorch's OIHW convolution weights to the layouts the kernels read, and back
//! ([`unpack_conv`], [`unpack_conv_transpose`], for exporting a plan to other formats). Every
//! function works on any element type (`f32` weights, `i8` quantised ones).

use crate::kernels::conv_transpose::pack_conv_transpose;
use crate::plan::ConvKind;

/// OIHW `[cout][cin][1][1]` → `[cin][cout]` (pointwise convolution / fully connected, where a
/// PyTorch `Linear` weight `[out][in]` is the same array).
pub fn pack_pointwise<T: Copy + Default>(oihw: &[T], cout: usize, cin: usize) -> Vec<T> {
    let mut out = vec![T::default(); cin * cout];
    for o in 0..cout {
        for i in 0..cin {
            out[i * cout + o] = oihw[o * cin + i];
        }
    }
    out
}

/// OIHW `[c][1][kh][kw]` → `[kh][kw][c]` (depthwise convolution, vectorised over channels).
pub fn pack_depthwise<T: Copy + Default>(oihw: &[T], c: usize, kh: usize, kw: usize) -> Vec<T> {
    let mut out = vec![T::default(); c * kh * kw];
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
pub fn pack_im2col<T: Copy + Default>(
    oihw: &[T],
    cout: usize,
    cin_g: usize,
    kh: usize,
    kw: usize,
    groups: usize,
) -> Vec<T> {
    let cout_g = cout / groups;
    let k = kh * kw * cin_g;
    let mut out = vec![T::default(); groups * k * cout_g];
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

/// The inverse of a packing: `pack` applied to the element indices `0..n` tells where each
/// element went, so the packed array scatters back (one home for each layout's formula).
fn unpack_with<T: Copy + Default>(
    packed: &[T],
    pack: impl FnOnce(&[usize]) -> Vec<usize>,
) -> Vec<T> {
    let indices: Vec<usize> = (0..packed.len()).collect();
    let mut out = vec![T::default(); packed.len()];
    for (&src, &v) in pack(&indices).iter().zip(packed) {
        out[src] = v;
    }
    out
}

/// A convolution's weights in the layout of `kind` back to OIHW `[cout][cin/groups][kh][kw]`
/// (a linear layer's `[in][out]` is the pointwise layout with `kh = kw = 1`, and comes back as
/// PyTorch's `[out][in]`).
pub fn unpack_conv<T: Copy + Default>(
    packed: &[T],
    kind: ConvKind,
    cout: usize,
    cin_g: usize,
    [kh, kw]: [usize; 2],
    groups: usize,
) -> Vec<T> {
    unpack_with(packed, |oihw| match kind {
        ConvKind::Pointwise => pack_pointwise(oihw, cout, cin_g),
        ConvKind::Depthwise => pack_depthwise(oihw, cout, kh, kw),
        ConvKind::Im2col => pack_im2col(oihw, cout, cin_g, kh, kw, groups),
    })
}

/// A transposed convolution's weights back to PyTorch's `[cin][cout/groups][kh][kw]` (the
/// inverse of [`pack_conv_transpose`]).
pub fn unpack_conv_transpose<T: Copy + Default>(
    packed: &[T],
    cin: usize,
    cout: usize,
    [kh, kw]: [usize; 2],
    groups: usize,
) -> Vec<T> {
    unpack_with(packed, |w| {
        pack_conv_transpose(w, cin, cout, kh, kw, groups)
    })
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

    #[test]
    fn unpacking_inverts_every_layout() {
        // The examples above, backwards.
        let pw = unpack_conv(
            &[1., 4., 2., 5., 3., 6.],
            ConvKind::Pointwise,
            2,
            3,
            [1, 1],
            1,
        );
        assert_eq!(pw, vec![1., 2., 3., 4., 5., 6.]);
        let dw = unpack_conv(&[1i8, 3, 2, 4], ConvKind::Depthwise, 2, 1, [1, 2], 2);
        assert_eq!(dw, vec![1, 2, 3, 4]);
        // Round trips of uneven shapes: 6 out, 4 in per group, 2 groups, 3x2 kernel.
        let oihw: Vec<i32> = (0..6 * 4 * 6).collect();
        let packed = pack_im2col(&oihw, 6, 4, 3, 2, 2);
        assert_ne!(packed, oihw);
        assert_eq!(
            unpack_conv(&packed, ConvKind::Im2col, 6, 4, [3, 2], 2),
            oihw
        );
        let dw: Vec<i32> = (0..5 * 9).collect();
        let packed = pack_depthwise(&dw, 5, 3, 3);
        assert_eq!(
            unpack_conv(&packed, ConvKind::Depthwise, 5, 1, [3, 3], 5),
            dw
        );
        // Transposed: 4 in, 6 out, 2 groups, 2x3 kernel.
        let w: Vec<i32> = (0..4 * 3 * 6).collect();
        let packed = pack_conv_transpose(&w, 4, 6, 2, 3, 2);
        assert_ne!(packed, w);
        assert_eq!(unpack_conv_transpose(&packed, 4, 6, [2, 3], 2), w);
    }
}
