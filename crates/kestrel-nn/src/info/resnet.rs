//! ResNet's layer list for [`crate::info`], from the same stem, pooling and stage lists
//! ([`ResNetConfig::stages`], [`ResidualBlockConfig::convs`] and
//! [`ResidualBlockConfig::downsample`]) its `init` builds.

use crate::info::{Cursor, Describe, InfoError, Tracer};
use crate::models::resnet::{ResNetConfig, ResidualBlockConfig};

impl ResidualBlockConfig {
    /// Traces the block under the module path `name`.
    pub fn trace(&self, name: &str, t: &mut Tracer) -> Result<(), InfoError> {
        let input = t.at();
        for (field, c) in self.convs() {
            t.conv_bn(&format!("{name}.{field}"), &c)?;
        }
        let main = t.at();
        if let Some(d) = self.downsample() {
            t.branch_from(input);
            t.conv_bn(&format!("{name}.downsample"), &d)?;
        }
        t.add(name, main)
    }
}

impl ResNetConfig {
    /// Traces the feature extractor (stem, max pool, the four stages) and returns the positions
    /// after stages 2, 3 and 4: the maps an FCN head taps.
    pub fn trace_features(&self, t: &mut Tracer) -> Result<[Cursor; 3], InfoError> {
        t.conv_bn("conv1", &self.stem())?;
        let (k, s, p) = self.max_pool();
        t.max_pool("maxpool", k, s, p)?;
        let mut ends = Vec::with_capacity(4);
        for (stage, blocks) in self.stages().iter().enumerate() {
            for (i, b) in blocks.iter().enumerate() {
                b.trace(&format!("layer{}.{i}", stage + 1), t)?;
            }
            ends.push(t.at());
        }
        match ends[..] {
            [_, s8, s16, s32] => Ok([s8, s16, s32]),
            _ => Err(InfoError::Inconsistent {
                layer: "layer4".into(),
                why: format!("{} stages, expected 4", ends.len()),
            }),
        }
    }
}

impl Describe for ResNetConfig {
    fn trace(&self, t: &mut Tracer) -> Result<(), InfoError> {
        self.trace_features(t)?;
        t.global_avg_pool("avgpool")?;
        t.fc("fc", self.num_classes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::describe;

    #[test]
    fn info_numbers_equal_torchvision() {
        // torchvision's model table: parameters, and "GFLOPS" that are multiply-adds of the
        // convolutions and the fc layer (1.81, 3.66, 4.09). Exact values summed by hand.
        for (config, name, params, macs, published) in [
            (
                ResNetConfig::resnet18(1000),
                "resnet18",
                11_689_512,
                1_814_073_344u64,
                1.81,
            ),
            (
                ResNetConfig::resnet34(1000),
                "resnet34",
                21_797_672,
                3_663_761_408,
                3.66,
            ),
            (
                ResNetConfig::resnet50(1000),
                "resnet50",
                25_557_032,
                4_089_184_256,
                4.09,
            ),
        ] {
            let info = describe(name, &config, 224).unwrap();
            assert_eq!(info.params, params, "{name}");
            assert_eq!(info.macs, macs, "{name}");
            assert!((info.macs as f64 / 1e9 - published).abs() < 0.005, "{name}");
        }
    }

    #[test]
    fn shapes_and_receptive_fields_at_224() {
        let info = describe("resnet50", &ResNetConfig::resnet50(1000), 224).unwrap();
        let row = |name: &str| info.layers.iter().find(|l| l.name == name).unwrap();
        assert_eq!(row("conv1").out, [64, 112, 112]);
        assert_eq!(row("maxpool").out, [64, 56, 56]);
        assert_eq!(row("layer1.0.downsample").out, [256, 56, 56]);
        assert_eq!(row("layer2.0.conv2").stride, 2);
        assert_eq!(row("layer4.2.conv3").out, [2048, 7, 7]);
        // Stem 7, max pool +2·2 = 11 (jump 4); each 3×3 adds 2·jump (4, 8, 16, 32 by stage,
        // the first 3×3 of a stage at the old jump): 11 + 3·8 + (8 + 3·16) + (16 + 5·32)
        // + (32 + 2·64) = 427.
        assert_eq!(row("layer4.2.conv3").receptive_field, 427);
        // A shortcut's 1×1 sees less than the main branch; the sum sees the larger.
        assert!(row("layer2.0.downsample").receptive_field < row("layer2.0.conv3").receptive_field);
        assert_eq!(
            row("layer3.0.conv1").receptive_field,
            row("layer2.3.conv3").receptive_field
        );
        // ResNet-18: 11 + 4·8 + (8 + 3·16) + (16 + 3·32) + (32 + 3·64) = 435.
        let info = describe("resnet18", &ResNetConfig::resnet18(1000), 224).unwrap();
        let last = &info.layers[info.layers.len() - 3];
        assert_eq!(last.name, "layer4.1.conv2");
        assert_eq!(last.receptive_field, 435);
    }

    #[test]
    fn dilation_grows_the_receptive_field() {
        // OS 8: each 3×3 convolution adds (effective kernel − 1)·jump = 2·dilation·8, the jump
        // staying 8 after stage 2. ResNet-18: 11 + 4·8 + (8 + 3·16) = 99 after stage 2; stage 3:
        // block 0 (d 1) 2·16, block 1 (d 2) 2·32 = +96; stage 4: block 0 (d 2) 2·32, block 1
        // (d 4) 2·64 = +192 → 387 (OS 32 gives 435).
        let os8 = describe(
            "resnet18",
            &ResNetConfig::resnet18(10).with_output_stride(8),
            224,
        )
        .unwrap();
        let last = &os8.layers[os8.layers.len() - 3];
        assert_eq!(last.name, "layer4.1.conv2");
        assert_eq!(last.out, [512, 28, 28]);
        assert_eq!(last.dilation, 4);
        assert_eq!(last.receptive_field, 387);
        // Dilation multiplies MACs by the area ratio of the maps: 16× for stage 4.
        let os32 = describe("resnet18", &ResNetConfig::resnet18(10), 224).unwrap();
        let macs = |i: &crate::info::ModelInfo, name: &str| {
            i.layers.iter().find(|l| l.name == name).unwrap().macs
        };
        assert_eq!(
            macs(&os8, "layer4.1.conv2"),
            16 * macs(&os32, "layer4.1.conv2")
        );
    }
}
