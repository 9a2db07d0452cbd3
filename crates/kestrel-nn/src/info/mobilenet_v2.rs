//! MobileNetV2's layer list for [`crate::info`], from the same table ([`MOBILENET_V2_TABLE`]) and
//! channel rule ([`MobileNetV2Config::channels`]) its `init` uses.
//!
//! The blocks and their stages come from [`MobileNetV2Config::blocks`] and
//! [`InvertedResidualConfig::stages`], the same lists `init` builds the modules from.
//!
//! [`MOBILENET_V2_TABLE`]: crate::models::mobilenet_v2::MOBILENET_V2_TABLE
//! [`InvertedResidualConfig::stages`]: crate::models::mobilenet_v2::InvertedResidualConfig::stages

use crate::info::{Cursor, Describe, InfoError, Tracer};
use crate::layers::conv_bn_act::ConvBnActConfig;
use crate::models::mobilenet_v2::MobileNetV2Config;

impl MobileNetV2Config {
    /// Traces the feature extractor (stem, blocks, head convolution) and returns the positions
    /// after the blocks [`MobileNetV2Config::tap_blocks`] names and after the head: the stride-8,
    /// stride-16 and last maps an FCN head taps.
    pub fn trace_features(&self, t: &mut Tracer) -> Result<[Cursor; 3], InfoError> {
        let (stem, _, head) = self.channels();
        let taps = self.tap_blocks();
        let mut tapped = Vec::with_capacity(2);
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
            if taps.contains(&i) {
                tapped.push(t.at());
            }
        }
        t.conv_bn("head", &ConvBnActConfig::new(in_c, head).with_kernel(1))?;
        match tapped[..] {
            [s8, s16] => Ok([s8, s16, t.at()]),
            _ => Err(InfoError::Inconsistent {
                layer: "blocks".into(),
                why: format!("tap blocks {taps:?} outside the network"),
            }),
        }
    }
}

impl Describe for MobileNetV2Config {
    fn trace(&self, t: &mut Tracer) -> Result<(), InfoError> {
        self.trace_features(t)?;
        t.global_avg_pool("avgpool")?;
        t.fc("classifier", self.num_classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn dilated_receptive_field() {
        // Each depthwise 3×3 adds (effective kernel − 1)·jump = 2·rate·jump. At OS 16 the jump
        // stays 16 from block 6 on; the 160-row's first block keeps rate 1, the next three use
        // rate 2.
        let info = crate::info::describe(
            "mobilenet-v2",
            &MobileNetV2Config::new(1000).with_output_stride(16),
            224,
        )
        .unwrap();
        let head = info.layers.iter().find(|l| l.name == "head").unwrap();
        assert_eq!(head.out, [1280, 14, 14]);
        // Stem 3 (jump 2); block 0 +4; blocks 1–2: +4 (stride 2 at jump 2), +8; blocks 3–5: +8,
        // +16, +16; blocks 6–12: +16, then 6 × 32; blocks 13–16 at jump 16: +32, then 3 × 64.
        let want = 3 + 4 + (4 + 8) + (8 + 2 * 16) + (16 + 6 * 32) + (32 + 3 * 64);
        assert_eq!(head.receptive_field, want);
        // The same 491 as at OS 32 (rate 2 at jump 16 = rate 1 at jump 32), on a 14×14 map.
        assert_eq!(want, 491);
    }
}
