//! [`Tracer`]: walks a network layer by layer for [`crate::info`], tracking the feature map's
//! shape and receptive field and counting parameters and multiply-adds with the conventions
//! described there.

use super::{InfoError, LayerInfo, LayerKind, ModelInfo};
use crate::geometry::{conv_out_len, ReceptiveField};
use crate::layers::conv_bn_act::ConvBnActConfig;

/// A square sliding window: kernel, stride, padding (each side), dilation.
#[derive(Clone, Copy, Debug)]
struct Window {
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
}

/// Where the tracer stands: the current feature map's shape and receptive field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Shape [C, H, W] (H = W).
    pub shape: [usize; 3],
    /// Receptive field of one unit of the map.
    pub receptive_field: ReceptiveField,
}

/// Walks a network layer by layer, computing shapes, receptive fields, parameters and
/// multiply-adds. Branches (residual shortcuts) are traced by [`Tracer::branch_from`] an earlier
/// [`Cursor`] and joined with [`Tracer::add`].
#[derive(Clone, Debug)]
pub struct Tracer {
    input: [usize; 3],
    at: Cursor,
    layers: Vec<LayerInfo>,
    prefix: String,
}

fn product(factors: &[usize]) -> Option<u64> {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(u64::try_from(f).ok()?))
}

impl Tracer {
    /// Starts at a `channels` × `size` × `size` input.
    pub fn new(channels: usize, size: usize) -> Tracer {
        let input = [channels, size, size];
        Tracer {
            input,
            at: Cursor {
                shape: input,
                receptive_field: ReceptiveField::PIXEL,
            },
            layers: Vec::new(),
            prefix: String::new(),
        }
    }

    /// Prefixes every following row's name with `prefix` (`backbone.`), for a network nested in
    /// a larger one; `""` ends it.
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    fn named(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The current position.
    pub fn at(&self) -> Cursor {
        self.at
    }

    /// Continues from an earlier position: the start of a parallel branch.
    pub fn branch_from(&mut self, from: Cursor) {
        self.at = from;
    }

    /// A residual sum of the current map and the map at `other` (the other branch's end): the
    /// shapes must agree; the receptive field is the larger one.
    pub fn add(&mut self, name: &str, other: Cursor) -> Result<(), InfoError> {
        let inconsistent = |why: String| InfoError::Inconsistent {
            layer: name.to_string(),
            why,
        };
        if self.at.shape != other.shape {
            return Err(inconsistent(format!(
                "adding maps of shapes {:?} and {:?}",
                self.at.shape, other.shape
            )));
        }
        self.at.receptive_field = self
            .at
            .receptive_field
            .merge(other.receptive_field)
            .ok_or_else(|| inconsistent("adding maps of different strides".into()))?;
        Ok(())
    }

    /// The resolution this trace started from.
    fn resolution(&self) -> usize {
        self.input[1]
    }

    /// A sliding window (convolution or pooling) over the current map; returns the row, not yet
    /// pushed, with zero params and macs.
    fn window(
        &self,
        name: &str,
        kind: LayerKind,
        out_channels: usize,
        w: Window,
    ) -> Result<LayerInfo, InfoError> {
        let [_, size, _] = self.at.shape;
        let out =
            conv_out_len(size, w.kernel, w.stride, w.padding, w.dilation).ok_or_else(|| {
                InfoError::TooSmall {
                    resolution: self.resolution(),
                    layer: name.to_string(),
                    size,
                    kernel: w.kernel,
                    padding: w.padding,
                    dilation: w.dilation,
                }
            })?;
        Ok(LayerInfo {
            name: self.named(name),
            kind,
            input: self.at.shape,
            out: [out_channels, out, out],
            kernel: w.kernel,
            stride: w.stride,
            dilation: w.dilation,
            groups: 1,
            params: 0,
            macs: 0,
            receptive_field: self
                .at
                .receptive_field
                .then(w.kernel, w.stride, w.dilation)
                .size,
        })
    }

    fn push(&mut self, row: LayerInfo) {
        self.at = Cursor {
            shape: row.out,
            receptive_field: self
                .at
                .receptive_field
                .then(row.kernel, row.stride, row.dilation),
        };
        self.layers.push(row);
    }

    /// A bias-free convolution followed by BatchNorm, as [`ConvBnActConfig::init`] builds it
    /// (padding (k − 1)/2 · dilation).
    pub fn conv_bn(&mut self, name: &str, c: &ConvBnActConfig) -> Result<(), InfoError> {
        let in_c = self.at.shape[0];
        if c.in_channels != in_c || c.groups == 0 || !in_c.is_multiple_of(c.groups) {
            return Err(InfoError::Inconsistent {
                layer: name.to_string(),
                why: format!(
                    "{} input channels in {} groups, but the map has {in_c} channels",
                    c.in_channels, c.groups
                ),
            });
        }
        let padding = crate::geometry::same_padding(c.kernel, c.dilation);
        let window = Window {
            kernel: c.kernel,
            stride: c.stride,
            padding,
            dilation: c.dilation,
        };
        let mut row = self.window(name, LayerKind::Conv, c.out_channels, window)?;
        let overflow = || InfoError::Overflow(name.to_string());
        let per_output = [c.in_channels / c.groups, c.kernel, c.kernel];
        let weights =
            product(&[&[c.out_channels][..], &per_output].concat()).ok_or_else(overflow)?;
        row.groups = c.groups;
        row.params = weights
            .checked_add(product(&[2, c.out_channels]).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
        row.macs = product(&[&row.out[..], &per_output].concat()).ok_or_else(overflow)?;
        self.push(row);
        Ok(())
    }

    /// Max pooling with a square window (keeps the channels).
    pub fn max_pool(
        &mut self,
        name: &str,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<(), InfoError> {
        let c = self.at.shape[0];
        let window = Window {
            kernel,
            stride,
            padding,
            dilation: 1,
        };
        let row = self.window(name, LayerKind::MaxPool, c, window)?;
        self.push(row);
        Ok(())
    }

    /// Global average pooling: a window as large as the map, down to 1 × 1.
    pub fn global_avg_pool(&mut self, name: &str) -> Result<(), InfoError> {
        let [c, size, _] = self.at.shape;
        let window = Window {
            kernel: size,
            stride: size,
            padding: 0,
            dilation: 1,
        };
        let row = self.window(name, LayerKind::AvgPool, c, window)?;
        self.push(row);
        Ok(())
    }

    /// A fully connected layer with bias on the (flattened) current map.
    pub fn fc(&mut self, name: &str, out_features: usize) -> Result<(), InfoError> {
        let overflow = || InfoError::Overflow(name.to_string());
        let inputs = product(&self.at.shape).ok_or_else(overflow)?;
        let out = u64::try_from(out_features).map_err(|_| overflow())?;
        let macs = inputs.checked_mul(out).ok_or_else(overflow)?;
        let row = LayerInfo {
            name: self.named(name),
            kind: LayerKind::Fc,
            input: self.at.shape,
            out: [out_features, 1, 1],
            kernel: 1,
            stride: 1,
            dilation: 1,
            groups: 1,
            params: macs.checked_add(out).ok_or_else(overflow)?,
            macs,
            // Each output sees every input unit, whose receptive field it inherits.
            receptive_field: self.at.receptive_field.size,
        };
        self.at.shape = row.out;
        self.layers.push(row);
        Ok(())
    }

    /// A convolution with bias and no BatchNorm (padding `(k − 1)/2 · dilation`, groups 1), as an
    /// FCN score layer.
    pub fn conv_bias(
        &mut self,
        name: &str,
        out_channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<(), InfoError> {
        let in_c = self.at.shape[0];
        let window = Window {
            kernel,
            stride,
            padding: crate::geometry::same_padding(kernel, 1),
            dilation: 1,
        };
        let mut row = self.window(name, LayerKind::Conv, out_channels, window)?;
        let overflow = || InfoError::Overflow(name.to_string());
        let per_output = [in_c, kernel, kernel];
        let weights = product(&[&[out_channels][..], &per_output].concat()).ok_or_else(overflow)?;
        row.params = weights
            .checked_add(out_channels as u64)
            .ok_or_else(overflow)?;
        row.macs = product(&[&row.out[..], &per_output].concat()).ok_or_else(overflow)?;
        self.push(row);
        Ok(())
    }

    /// An upsampling layer `up` with `params` trainable parameters (see
    /// [`crate::layers::params::trainable_params`]). Its multiply-adds:
    /// - nearest, bilinear, bicubic: 0 (interpolation, like pooling, is not counted);
    /// - transposed convolution: C_in·H·W · (C_out/groups)·k² (every input unit is spread over a
    ///   k × k window of every output channel of its group);
    /// - pixel shuffle: its convolution, C_out·r² · H·W · C_in·k²;
    /// - CARAFE: the 1×1 compressor, the k_enc × k_enc content encoder predicting r²·k_up²
    ///   weights per input unit, and the reassembly, C·H′·W′·k_up²;
    /// - Meta-Upscale: per output unit, the weight-prediction network (3·h + h·C_out·C_in·k²)
    ///   and the predicted filter (C_out·C_in·k²).
    ///
    /// The receptive field grows by (support − 1) input units, support being what `kernel`
    /// reports (1, 2, 4, ⌈k/r⌉, k, max(k_enc, k_up), k), and its jump shrinks by the factor.
    pub fn upsample(
        &mut self,
        name: &str,
        up: &crate::upsample::UpsamplerConfig,
        params: u64,
    ) -> Result<(), InfoError> {
        use crate::upsample::UpsamplerConfig as U;
        let [c, size, _] = self.at.shape;
        let inconsistent = |why: String| InfoError::Inconsistent {
            layer: name.to_string(),
            why,
        };
        let [out, _] = up
            .output_size([size, size])
            .ok_or_else(|| inconsistent(format!("no upsampled size for a {size}×{size} map")))?;
        let out_c = up.output_channels(c);
        let overflow = || InfoError::Overflow(name.to_string());
        let p = |f: &[usize]| product(f).ok_or_else(overflow);
        let (support, macs) = match up {
            U::Interpolate(c) => (c.mode.support(), 0),
            U::Transposed(t) => {
                let k = t.kernel[0];
                let g = t.groups.max(1);
                (
                    k.div_ceil(t.stride[0].max(1)),
                    p(&[c, size, size, out_c / g, k, k])?,
                )
            }
            U::PixelShuffle(s) => {
                let conv_out = out_c * s.factor * s.factor;
                let k = if s.conv_out_channels.is_some() {
                    s.kernel
                } else {
                    1
                };
                let macs = if s.conv_out_channels.is_some() {
                    p(&[conv_out, size, size, c, k, k])?
                } else {
                    0
                };
                (k, macs)
            }
            U::Carafe(cf) => {
                let r2k2 = cf.factor * cf.factor * cf.up_kernel * cf.up_kernel;
                let compress = p(&[cf.compressed_channels, size, size, c])?;
                let encode = p(&[
                    r2k2,
                    size,
                    size,
                    cf.compressed_channels,
                    cf.encoder_kernel,
                    cf.encoder_kernel,
                ])?;
                let reassemble = p(&[c, out, out, cf.up_kernel, cf.up_kernel])?;
                let macs = compress
                    .checked_add(encode)
                    .and_then(|m| m.checked_add(reassemble))
                    .ok_or_else(overflow)?;
                (cf.encoder_kernel.max(cf.up_kernel), macs)
            }
            U::Meta(m) => {
                let filter = p(&[m.out_channels, c, m.kernel, m.kernel])?;
                let hidden = m.hidden as u64;
                let per_unit = hidden
                    .checked_mul(3)
                    .and_then(|a| a.checked_add(hidden.checked_mul(filter)?))
                    .and_then(|a| a.checked_add(filter))
                    .ok_or_else(overflow)?;
                (
                    m.kernel,
                    per_unit.checked_mul(p(&[out, out])?).ok_or_else(overflow)?,
                )
            }
        };
        let rf = self.at.receptive_field;
        let factor = out / size.max(1);
        let grown = rf.then(support, 1, 1);
        if factor == 0 || out != factor * size || !rf.jump.is_multiple_of(factor) {
            return Err(inconsistent(format!(
                "upsampling a {size}×{size} map with jump {} to {out}×{out}: the tracer follows only \
                 whole factors that divide the jump",
                rf.jump
            )));
        }
        let receptive_field = crate::geometry::ReceptiveField {
            size: grown.size,
            jump: rf.jump / factor,
        };
        self.layers.push(LayerInfo {
            name: self.named(name),
            kind: LayerKind::Upsample,
            input: self.at.shape,
            out: [out_c, out, out],
            kernel: support,
            stride: 1,
            dilation: 1,
            groups: 1,
            params,
            macs,
            receptive_field: receptive_field.size,
        });
        self.at = Cursor {
            shape: [out_c, out, out],
            receptive_field,
        };
        Ok(())
    }

    /// Cuts the current map to `size` × `size` from the top-left corner (FCN's crop before a
    /// sum); no row, no count. An error if the map is smaller.
    pub fn crop(&mut self, name: &str, size: usize) -> Result<(), InfoError> {
        let [c, h, _] = self.at.shape;
        if h < size {
            return Err(InfoError::Inconsistent {
                layer: name.to_string(),
                why: format!("cropping a {h}×{h} map to {size}×{size}"),
            });
        }
        self.at.shape = [c, size, size];
        Ok(())
    }

    /// The description, with totals.
    pub fn finish(self, model: &str) -> Result<ModelInfo, InfoError> {
        let overflow = || InfoError::Overflow(model.to_string());
        let mut params = 0u64;
        let mut macs = 0u64;
        for l in &self.layers {
            params = params.checked_add(l.params).ok_or_else(overflow)?;
            macs = macs.checked_add(l.macs).ok_or_else(overflow)?;
        }
        Ok(ModelInfo {
            model: model.to_string(),
            params,
            macs,
            input: self.input,
            layers: self.layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::conv_bn_act::Activation;

    #[test]
    fn a_small_stack_by_hand() {
        let mut t = Tracer::new(3, 32);
        // 3×3 stride-2 conv 3 → 8: 16×16 output; weights 8·3·9 = 216, BN 16; MACs 216·256.
        t.conv_bn("a", &ConvBnActConfig::new(3, 8).with_stride(2))
            .unwrap();
        // Depthwise 3×3: weights 8·1·9 = 72, BN 16; MACs 72·256.
        t.conv_bn("b", &ConvBnActConfig::new(8, 8).with_groups(8))
            .unwrap();
        let skip = t.at();
        t.max_pool("p", 3, 2, 1).unwrap();
        t.global_avg_pool("g").unwrap();
        t.fc("fc", 10).unwrap();
        let info = t.finish("toy").unwrap();
        let rows: Vec<_> = info
            .layers
            .iter()
            .map(|l| (l.out, l.params, l.macs, l.receptive_field))
            .collect();
        assert_eq!(
            rows,
            [
                ([8, 16, 16], 232, 55_296, 3),
                ([8, 16, 16], 88, 18_432, 7),
                ([8, 8, 8], 0, 0, 11),
                ([8, 1, 1], 0, 0, 11 + 7 * 4),
                ([10, 1, 1], 90, 80, 39),
            ]
        );
        assert_eq!(info.params, 232 + 88 + 90);
        assert_eq!(info.macs, 55_296 + 18_432 + 80);
        assert_eq!(info.layers[1].groups, 8);
        assert_eq!(skip.shape, [8, 16, 16]);
    }

    #[test]
    fn too_small_inputs_and_inconsistencies_are_errors() {
        // A 3×3 window without padding does not fit a 2×2 map; with padding 1 it does.
        let mut t = Tracer::new(3, 2);
        let e = t.max_pool("pool", 3, 1, 0).unwrap_err();
        assert!(
            matches!(e, InfoError::TooSmall { ref layer, size: 2, kernel: 3, .. } if layer == "pool"),
            "{e}"
        );
        assert!(e.to_string().contains("`pool`"), "{e}");
        t.max_pool("pool", 3, 1, 1).unwrap();
        let e = Tracer::new(3, 0)
            .conv_bn("stem", &ConvBnActConfig::new(3, 8).with_kernel(7))
            .unwrap_err();
        assert!(matches!(e, InfoError::TooSmall { size: 0, .. }), "{e}");
        let mut t = Tracer::new(3, 8);
        let e = t.conv_bn("x", &ConvBnActConfig::new(4, 8)).unwrap_err();
        assert!(matches!(e, InfoError::Inconsistent { .. }), "{e}");
        let start = t.at();
        t.conv_bn(
            "y",
            &ConvBnActConfig::new(3, 3)
                .with_stride(2)
                .with_activation(Activation::Identity),
        )
        .unwrap();
        assert!(matches!(
            t.add("sum", start),
            Err(InfoError::Inconsistent { .. })
        ));
    }

    #[test]
    fn json_field_names_are_the_contract() {
        let mut t = Tracer::new(3, 8);
        t.conv_bn("stem", &ConvBnActConfig::new(3, 4)).unwrap();
        let v = serde_json::to_value(t.finish("toy").unwrap()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = ["model", "params", "macs", "input", "layers"];
        want.sort_unstable();
        assert_eq!(keys, want);
        let row = v["layers"][0].as_object().unwrap();
        let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = [
            "name",
            "kind",
            "in",
            "out",
            "kernel",
            "stride",
            "dilation",
            "groups",
            "params",
            "macs",
            "receptive_field",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["layers"][0]["kind"], "conv");
        assert_eq!(v["layers"][0]["in"], serde_json::json!([3, 8, 8]));
        assert_eq!(v["input"], serde_json::json!([3, 8, 8]));
    }
}
