//! MobileNetV2's layer list for [`crate::info`], from the same table ([`MOBILENET_V2_TABLE`]) and
//! channel rule ([`MobileNetV2Config::channels`]) its `init` uses.
//!
//! The stage configs below mirror [`InvertedResidualConfig::init`] (expand 1×1 when t ≠ 1,
//! depthwise 3×3 with the stride, linear 1×1 projection); the `info` tests check every row against
//! the tensors of a built model, so the two cannot drift apart unnoticed.

use crate::conv_bn_act::{Activation, ConvBnActConfig};
use crate::info::{Describe, InfoError, Tracer};
use crate::mobilenet_v2::{InvertedResidualConfig, MobileNetV2Config, MOBILENET_V2_TABLE};

impl InvertedResidualConfig {
    /// The block's convolutions in order, named as its fields: `expand` (absent when t = 1),
    /// `depthwise`, `project`.
    pub fn stages(&self) -> Vec<(&'static str, ConvBnActConfig)> {
        let hidden = self.in_channels * self.expand_ratio;
        let mut stages = Vec::with_capacity(3);
        if self.expand_ratio != 1 {
            stages.push((
                "expand",
                ConvBnActConfig::new(self.in_channels, hidden).with_kernel(1),
            ));
        }
        stages.push((
            "depthwise",
            ConvBnActConfig::new(hidden, hidden)
                .with_stride(self.stride)
                .with_dilation(self.dilation)
                .with_groups(hidden),
        ));
        stages.push((
            "project",
            ConvBnActConfig::new(hidden, self.out_channels)
                .with_kernel(1)
                .with_activation(Activation::Identity),
        ));
        stages
    }
}

impl MobileNetV2Config {
    /// The 17 inverted-residual blocks, from [`MOBILENET_V2_TABLE`] with the width multiplier.
    pub fn blocks(&self) -> Vec<InvertedResidualConfig> {
        let (stem, outs, _) = self.channels();
        let strides = MOBILENET_V2_TABLE
            .iter()
            .flat_map(|&(t, _, n, s)| (0..n).map(move |i| (t, if i == 0 { s } else { 1 })));
        let mut in_c = stem;
        strides
            .zip(outs)
            .map(|((t, stride), out)| {
                let block = InvertedResidualConfig::new(in_c, out, stride, t);
                in_c = out;
                block
            })
            .collect()
    }
}

impl Describe for MobileNetV2Config {
    fn trace(&self, t: &mut Tracer) -> Result<(), InfoError> {
        let (stem, _, head) = self.channels();
        t.conv_bn("stem", &ConvBnActConfig::new(3, stem).with_stride(2))?;
        let mut in_c = stem;
        for (i, block) in self.blocks().iter().enumerate() {
            let input = t.at();
            for (field, c) in block.stages() {
                t.conv_bn(&format!("blocks.{i}.{field}"), &c)?;
            }
            if block.stride == 1 && block.in_channels == block.out_channels {
                t.add(&format!("blocks.{i}"), input)?;
            }
            in_c = block.out_channels;
        }
        t.conv_bn("head", &ConvBnActConfig::new(in_c, head).with_kernel(1))?;
        t.global_avg_pool("avgpool")?;
        t.fc("classifier", self.num_classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_blocks_with_the_table_strides() {
        let blocks = MobileNetV2Config::new(1000).blocks();
        assert_eq!(blocks.len(), 17);
        let strides: Vec<usize> = blocks.iter().map(|b| b.stride).collect();
        assert_eq!(strides, [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]);
        assert_eq!(blocks[0].stages().len(), 2);
        assert_eq!(blocks[16].out_channels, 320);
    }

    #[test]
    fn parameters_and_multiply_adds_at_224() {
        // torchvision mobilenet_v2: 3,504,872 parameters; the paper (Sandler et al. 2018,
        // Table 3/4): 300 M multiply-adds, 3.4 M parameters. Exact MACs summed by hand.
        let info =
            crate::info::describe("mobilenet-v2", &MobileNetV2Config::new(1000), 224).unwrap();
        assert_eq!(info.params, 3_504_872);
        assert_eq!(info.macs, 300_774_272);
        assert!((info.macs as f64 / 1e6 - 300.0).abs() < 1.0);
        let head = info.layers.iter().find(|l| l.name == "head").unwrap();
        assert_eq!(head.out, [1280, 7, 7]);
        // 3 for the stem, then +2·jump per depthwise 3×3: 491.
        assert_eq!(head.receptive_field, 491);
    }
}
