//! Convolution geometry: output sizes and receptive fields. The one place kestrel-nn computes
//! them; models, upsamplers, training kernels, `kestrel info` and the tests all call these
//! functions.
//!
//! Along one spatial axis, with input size W, kernel F, stride S, padding P (each side) and
//! dilation r:
//! - effective kernel F_eff = F + (F − 1)(r − 1) (the span of a dilated kernel);
//! - convolution / pooling output floor((W − F_eff + 2P) / S) + 1;
//! - transposed convolution output (W − 1)·S + F_eff − 2P + output_padding;
//! - receptive field, from the input side: jump j_out = j_in·S, size r_out = r_in + (F_eff − 1)·j_in,
//!   starting from a pixel (r = 1, j = 1).
//!
//! The functions never panic: a window that does not fit, a zero stride or an arithmetic overflow
//! gives `None`.

use serde::{Deserialize, Serialize};

/// Span of a dilated kernel, F + (F − 1)(r − 1); `None` for a zero kernel or dilation (or on
/// overflow).
pub fn effective_kernel(kernel: usize, dilation: usize) -> Option<usize> {
    if kernel == 0 || dilation == 0 {
        return None;
    }
    (kernel - 1).checked_mul(dilation)?.checked_add(1)
}

/// Padding that keeps the size at stride 1 for an odd kernel, (F − 1)/2 · r: what every kestrel
/// convolution uses ("same" padding, as torchvision's `Conv2dNormActivation`).
pub fn same_padding(kernel: usize, dilation: usize) -> usize {
    (kernel.saturating_sub(1) / 2).saturating_mul(dilation)
}

// The output lengths of a convolution and of a transposed convolution: kestrel-runtime's, the
// one home of these formulas (PyTorch's), used by the models, upsamplers, training kernels and
// `kestrel info` of this crate.
pub(crate) use kestrel_runtime::geometry::{conv_out_len, conv_transpose_out_len};

/// The receptive field of one unit of a feature map, along one axis, in input pixels.
///
/// This is the theoretical receptive field: the span of input pixels the unit can depend on,
/// ignoring where padding cuts it off at the image border.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceptiveField {
    /// Span of input pixels one unit sees.
    pub size: usize,
    /// Distance, in input pixels, between the receptive fields of neighbouring units (the product
    /// of the strides so far).
    pub jump: usize,
}

impl Default for ReceptiveField {
    fn default() -> Self {
        Self::PIXEL
    }
}

impl ReceptiveField {
    /// The input itself: each unit is one pixel.
    pub const PIXEL: ReceptiveField = ReceptiveField { size: 1, jump: 1 };

    /// The receptive field after one more convolution or pooling window:
    /// r_out = r_in + (F_eff − 1)·j_in, j_out = j_in·S. Padding does not change it. Saturates
    /// instead of overflowing; a zero kernel, stride or dilation counts as 1.
    pub fn then(self, kernel: usize, stride: usize, dilation: usize) -> ReceptiveField {
        let k = effective_kernel(kernel.max(1), dilation.max(1)).unwrap_or(usize::MAX);
        ReceptiveField {
            size: self.size.saturating_add((k - 1).saturating_mul(self.jump)),
            jump: self.jump.saturating_mul(stride.max(1)),
        }
    }

    /// The receptive field of the sum of two branches that start from the same map and end with
    /// the same stride (a residual connection): the larger of the two. Both branches' windows
    /// are centred on the same input position, as with kestrel's symmetric padding, so the union
    /// of the two spans is the larger span. `None` when the jumps differ (the branches could not
    /// be added).
    pub fn merge(self, other: ReceptiveField) -> Option<ReceptiveField> {
        (self.jump == other.jump).then(|| ReceptiveField {
            size: self.size.max(other.size),
            jump: self.jump,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Device, Tensor};
    use proptest::prelude::*;

    #[test]
    fn textbook_examples() {
        // CS231n: W = 7, F = 3, P = 0: stride 1 → 5, stride 2 → 3; F = 3, P = 1, S = 1 keeps W.
        assert_eq!(conv_out_len(7, 3, 1, 0, 1), Some(5));
        assert_eq!(conv_out_len(7, 3, 2, 0, 1), Some(3));
        assert_eq!(conv_out_len(224, 3, 1, 1, 1), Some(224));
        // ResNet stem: 224 → 7×7/2 pad 3 → 112 → 3×3/2 pad 1 max pool → 56.
        assert_eq!(conv_out_len(224, 7, 2, 3, 1), Some(112));
        assert_eq!(conv_out_len(112, 3, 2, 1, 1), Some(56));
        // Dilation 2 turns a 3×3 kernel into a 5×5 span.
        assert_eq!(effective_kernel(3, 2), Some(5));
        assert_eq!(conv_out_len(10, 3, 1, 0, 2), Some(6));
        // The window does not fit.
        assert_eq!(conv_out_len(2, 3, 1, 0, 1), None);
        assert_eq!(conv_out_len(5, 3, 0, 0, 1), None);
        assert_eq!(conv_out_len(5, 0, 1, 0, 1), None);
        // FCN's 2× upsampling: ConvTranspose2d(k = 4, s = 2, p = 1) doubles the size.
        assert_eq!(conv_transpose_out_len(7, 4, 2, 1, 1, 0), Some(14));
        assert_eq!(conv_transpose_out_len(7, 3, 2, 1, 1, 1), Some(14));
        assert_eq!(conv_transpose_out_len(1, 1, 1, 1, 1, 0), None);
        assert_eq!(same_padding(3, 1), 1);
        assert_eq!(same_padding(7, 1), 3);
        assert_eq!(same_padding(3, 4), 4);
        assert_eq!(same_padding(1, 1), 0);
    }

    #[test]
    fn receptive_field_of_known_stacks() {
        // Two 3×3 convolutions see 5×5, three see 7×7 (the VGG argument).
        let rf = ReceptiveField::PIXEL.then(3, 1, 1).then(3, 1, 1);
        assert_eq!(rf, ReceptiveField { size: 5, jump: 1 });
        assert_eq!(rf.then(3, 1, 1).size, 7);
        // A 3×3 stride-2 then a 3×3: 3 + 2·2 = 7, jump 2.
        let rf = ReceptiveField::PIXEL.then(3, 2, 1).then(3, 1, 1);
        assert_eq!(rf, ReceptiveField { size: 7, jump: 2 });
        // Dilations 1, 2, 4 of 3×3 kernels: 3, 7, 15 (Yu & Koltun, 2016).
        let rf = ReceptiveField::PIXEL
            .then(3, 1, 1)
            .then(3, 1, 2)
            .then(3, 1, 4);
        assert_eq!(rf.size, 15);
        assert_eq!(rf.merge(ReceptiveField { size: 1, jump: 2 }), None);
        let a = ReceptiveField { size: 9, jump: 4 };
        let b = ReceptiveField { size: 5, jump: 4 };
        assert_eq!(a.merge(b), Some(a));
    }

    /// Input positions output unit 0 of a 1-D stack (kernel, stride, dilation; no padding)
    /// depends on, by direct enumeration from the output back to the input.
    fn support_of_unit(layers: &[(usize, usize, usize)], unit: usize) -> Vec<usize> {
        let mut positions = vec![unit];
        for &(k, s, d) in layers.iter().rev() {
            let mut prev: Vec<usize> = positions
                .iter()
                .flat_map(|&o| (0..k).map(move |t| o * s + t * d))
                .collect();
            prev.sort_unstable();
            prev.dedup();
            positions = prev;
        }
        positions
    }

    fn layer() -> impl Strategy<Value = (usize, usize, usize)> {
        (1usize..=5, 1usize..=3, 1usize..=3)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn receptive_field_equals_enumerated_support(
            layers in prop::collection::vec(layer(), 1..=6),
        ) {
            let rf = layers
                .iter()
                .fold(ReceptiveField::PIXEL, |rf, &(k, s, d)| rf.then(k, s, d));
            let first = support_of_unit(&layers, 0);
            let second = support_of_unit(&layers, 1);
            prop_assert_eq!(first[first.len() - 1] - first[0] + 1, rf.size);
            prop_assert_eq!(second[0] - first[0], rf.jump);
        }
    }

    /// Conv2d arguments: batch-free input (C, H, W), output channels, groups, per-axis kernel,
    /// stride, padding, dilation.
    #[derive(Debug, Clone)]
    struct ConvCase {
        in_c: usize,
        out_c: usize,
        groups: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    }

    fn conv_case() -> impl Strategy<Value = ConvCase> {
        (
            1usize..=3,
            1usize..=3,
            1usize..=2,
            [1usize..=12, 1usize..=12],
            [1usize..=4, 1usize..=4],
            [1usize..=3, 1usize..=3],
            [0usize..=2, 0usize..=2],
            [1usize..=3, 1usize..=3],
        )
            .prop_map(
                |(g, cin, cout, size, kernel, stride, padding, dilation)| ConvCase {
                    in_c: g * cin,
                    out_c: g * cout,
                    groups: g,
                    size,
                    kernel,
                    stride,
                    padding,
                    dilation,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn conv_out_len_matches_burn(c in conv_case()) {
            let expect: Vec<Option<usize>> = (0..2)
                .map(|a| conv_out_len(c.size[a], c.kernel[a], c.stride[a], c.padding[a], c.dilation[a]))
                .collect();
            prop_assume!(expect.iter().all(Option::is_some));
            let device = Device::flex();
            let x = Tensor::<4>::ones([1, c.in_c, c.size[0], c.size[1]], &device);
            let w = Tensor::<4>::ones(
                [c.out_c, c.in_c / c.groups, c.kernel[0], c.kernel[1]],
                &device,
            );
            let y = conv2d(
                x,
                w,
                None,
                ConvOptions::new(c.stride, c.padding, c.dilation, c.groups),
            );
            prop_assert_eq!(
                y.dims(),
                [1, c.out_c, expect[0].unwrap(), expect[1].unwrap()],
                "{:?}", c
            );
        }

        #[test]
        fn conv_transpose_out_len_matches_burn(
            c in conv_case(),
            extra in [0usize..=2, 0usize..=2],
        ) {
            // PyTorch's rule for output_padding: below the stride or the dilation.
            let output_padding: [usize; 2] =
                std::array::from_fn(|a| extra[a] % c.stride[a].max(c.dilation[a]));
            let expect: Vec<Option<usize>> = (0..2)
                .map(|a| {
                    conv_transpose_out_len(c.size[a], c.kernel[a], c.stride[a], c.padding[a], c.dilation[a], output_padding[a])
                })
                .collect();
            prop_assume!(expect.iter().all(Option::is_some));
            let device = Device::flex();
            let x = Tensor::<4>::ones([1, c.in_c, c.size[0], c.size[1]], &device);
            // Transposed weights are (in, out / groups, kH, kW).
            let w = Tensor::<4>::ones(
                [c.in_c, c.out_c / c.groups, c.kernel[0], c.kernel[1]],
                &device,
            );
            let y = conv_transpose2d(
                x,
                w,
                None,
                ConvTransposeOptions::new(c.stride, c.padding, output_padding, c.dilation, c.groups),
            );
            prop_assert_eq!(
                y.dims(),
                [1, c.out_c, expect[0].unwrap(), expect[1].unwrap()],
                "{:?} output_padding {:?}", c, output_padding
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The gradient of one output unit of a stack of all-ones convolutions with respect to an
        /// all-ones input is positive exactly on the input pixels that unit depends on (every
        /// path has a positive weight), so its extent is the receptive field.
        #[test]
        fn receptive_field_equals_burn_gradient_support(
            layers in prop::collection::vec(layer(), 1..=4),
        ) {
            let rf = layers
                .iter()
                .fold(ReceptiveField::PIXEL, |rf, &(k, s, d)| rf.then(k, s, d));
            // Room for output units 0 and 1 along the width, one row along the height.
            let width = rf.size + rf.jump;
            let device = Device::flex().autodiff();
            let x = Tensor::<4>::ones([1, 1, rf.size, width], &device).require_grad();
            let mut y = x.clone();
            for &(k, s, d) in &layers {
                let w = Tensor::<4>::ones([1, 1, k, k], &device);
                y = conv2d(y, w, None, ConvOptions::new([s, s], [0, 0], [d, d], 1));
            }
            prop_assert_eq!(y.dims()[2], 1);
            prop_assert!(y.dims()[3] >= 2);
            let unit = y.slice([0..1, 0..1, 0..1, 1..2]).sum();
            let grads = unit.backward();
            let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
            let hit = |i: usize| g[i] > 0.0;
            let cols: Vec<usize> = (0..width)
                .filter(|&c| (0..rf.size).any(|r| hit(r * width + c)))
                .collect();
            let rows: Vec<usize> = (0..rf.size)
                .filter(|&r| (0..width).any(|c| hit(r * width + c)))
                .collect();
            // Unit 1 starts one jump to the right and spans the receptive field.
            prop_assert_eq!(cols[0], rf.jump);
            prop_assert_eq!(cols[cols.len() - 1] - cols[0] + 1, rf.size);
            prop_assert_eq!(rows[rows.len() - 1] - rows[0] + 1, rf.size);
        }
    }
}
