//! torchvision's state-dict names for kestrel's module paths, and a guess at which torchvision
//! model a set of names came from.
//!
//! | kestrel | torchvision |
//! |---|---|
//! | MobileNetV2 `stem.conv` / `stem.bn` | `features.0.0` / `features.0.1` |
//! | `blocks.{b}.expand` (t ≠ 1) | `features.{b+1}.conv.0.0` / `.conv.0.1` |
//! | `blocks.{b}.depthwise` | `features.{b+1}.conv.{p}.0` / `.1` (p = 1, or 0 when t = 1) |
//! | `blocks.{b}.project` | `features.{b+1}.conv.{p+1}` (conv) / `.conv.{p+2}` (BN) |
//! | `head` | `features.{blocks+1}.0` / `.1` |
//! | `classifier` | `classifier.1` |
//! | ResNet `conv1.conv` / `conv1.bn` | `conv1` / `bn1` |
//! | `layer{s}.{b}.conv{k}.conv` / `.bn` | `layer{s}.{b}.conv{k}` / `.bn{k}` |
//! | `layer{s}.{b}.downsample.conv` / `.bn` | `layer{s}.{b}.downsample.0` / `.1` |
//! | `fc` | `fc` |
//!
//! BatchNorm γ and β are `weight` and `bias` in PyTorch; the running statistics keep their names.

/// PyTorch's name of a BatchNorm tensor.
fn bn_leaf(leaf: &str) -> Option<&'static str> {
    Some(match leaf {
        "gamma" => "weight",
        "beta" => "bias",
        "running_mean" => "running_mean",
        "running_var" => "running_var",
        _ => return None,
    })
}

/// A `ConvBnAct`'s tensor (`conv.weight`, `bn.gamma`, ...) under torchvision's `conv_name` /
/// `bn_name`.
fn conv_bn(rest: &[&str], conv_name: &str, bn_name: &str) -> Option<String> {
    match rest {
        ["conv", "weight"] => Some(format!("{conv_name}.weight")),
        ["bn", leaf] => Some(format!("{bn_name}.{}", bn_leaf(leaf)?)),
        _ => None,
    }
}

/// torchvision's name for a kestrel MobileNetV2 tensor path; `has_expand(b)` says whether block
/// `b` has an expansion convolution, `blocks` is the number of blocks (17).
pub fn mobilenet_v2_name(
    path: &str,
    has_expand: impl Fn(usize) -> bool,
    blocks: usize,
) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    match parts[..] {
        ["stem", ref rest @ ..] => conv_bn(rest, "features.0.0", "features.0.1"),
        ["head", ref rest @ ..] => {
            let f = blocks + 1;
            conv_bn(rest, &format!("features.{f}.0"), &format!("features.{f}.1"))
        }
        ["classifier", leaf @ ("weight" | "bias")] => Some(format!("classifier.1.{leaf}")),
        ["blocks", b, stage, ref rest @ ..] => {
            let b: usize = b.parse().ok()?;
            let skip = usize::from(!has_expand(b));
            let pos = match stage {
                "expand" if skip == 0 => 0,
                "depthwise" => 1 - skip,
                "project" => 2 - skip,
                _ => return None,
            };
            let f = format!("features.{}.conv", b + 1);
            if stage == "project" {
                conv_bn(rest, &format!("{f}.{pos}"), &format!("{f}.{}", pos + 1))
            } else {
                conv_bn(rest, &format!("{f}.{pos}.0"), &format!("{f}.{pos}.1"))
            }
        }
        _ => None,
    }
}

/// torchvision's name for a kestrel ResNet tensor path.
pub fn resnet_name(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    match parts[..] {
        ["conv1", ref rest @ ..] => conv_bn(rest, "conv1", "bn1"),
        ["fc", leaf @ ("weight" | "bias")] => Some(format!("fc.{leaf}")),
        [layer, b, "downsample", ref rest @ ..] if layer.starts_with("layer") => conv_bn(
            rest,
            &format!("{layer}.{b}.downsample.0"),
            &format!("{layer}.{b}.downsample.1"),
        ),
        [layer, b, conv, ref rest @ ..] if layer.starts_with("layer") => {
            let k = conv.strip_prefix("conv")?;
            conv_bn(
                rest,
                &format!("{layer}.{b}.conv{k}"),
                &format!("{layer}.{b}.bn{k}"),
            )
        }
        _ => None,
    }
}

/// Which torchvision classifier a set of state-dict keys looks like (`mobilenet-v2`,
/// `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`), if any.
pub fn guess_arch<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    let has = |k: &str| keys.clone().any(|x| x == k);
    if has("features.0.0.weight") && has("classifier.1.weight") {
        return Some("mobilenet-v2".into());
    }
    if has("layer1.0.conv1.weight") && has("fc.weight") {
        let blocks = keys
            .clone()
            .filter_map(|k| {
                k.strip_prefix("layer3.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .map_or(0, |b| b + 1);
        let name = match (has("layer1.0.conv3.weight"), blocks) {
            (false, 2) => "resnet18",
            (false, 6) => "resnet34",
            (true, 6) => "resnet50",
            (true, 23) => "resnet101",
            (true, 36) => "resnet152",
            _ => "ResNet",
        };
        return Some(name.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobilenet_v2_names_follow_torchvision() {
        // Names from torchvision.models.mobilenet_v2().state_dict().keys().
        let name = |p: &str| mobilenet_v2_name(p, |b| b != 0, 17).unwrap();
        assert_eq!(name("stem.conv.weight"), "features.0.0.weight");
        assert_eq!(name("stem.bn.gamma"), "features.0.1.weight");
        assert_eq!(
            name("blocks.0.depthwise.conv.weight"),
            "features.1.conv.0.0.weight"
        );
        assert_eq!(
            name("blocks.0.depthwise.bn.beta"),
            "features.1.conv.0.1.bias"
        );
        assert_eq!(
            name("blocks.0.project.conv.weight"),
            "features.1.conv.1.weight"
        );
        assert_eq!(
            name("blocks.0.project.bn.running_var"),
            "features.1.conv.2.running_var"
        );
        assert_eq!(
            name("blocks.1.expand.conv.weight"),
            "features.2.conv.0.0.weight"
        );
        assert_eq!(
            name("blocks.1.depthwise.bn.gamma"),
            "features.2.conv.1.1.weight"
        );
        assert_eq!(
            name("blocks.16.project.conv.weight"),
            "features.17.conv.2.weight"
        );
        assert_eq!(
            name("blocks.16.project.bn.running_mean"),
            "features.17.conv.3.running_mean"
        );
        assert_eq!(name("head.bn.running_var"), "features.18.1.running_var");
        assert_eq!(name("classifier.weight"), "classifier.1.weight");
        assert_eq!(
            mobilenet_v2_name("blocks.0.expand.conv.weight", |b| b != 0, 17),
            None
        );
        assert_eq!(mobilenet_v2_name("stem.conv.bias", |_| true, 17), None);
    }

    #[test]
    fn resnet_names_follow_torchvision() {
        // Names from torchvision.models.resnet50().state_dict().keys().
        let name = |p: &str| resnet_name(p).unwrap();
        assert_eq!(name("conv1.conv.weight"), "conv1.weight");
        assert_eq!(name("conv1.bn.gamma"), "bn1.weight");
        assert_eq!(
            name("layer1.0.conv3.bn.running_var"),
            "layer1.0.bn3.running_var"
        );
        assert_eq!(
            name("layer2.0.downsample.conv.weight"),
            "layer2.0.downsample.0.weight"
        );
        assert_eq!(
            name("layer2.0.downsample.bn.beta"),
            "layer2.0.downsample.1.bias"
        );
        assert_eq!(name("layer4.2.conv2.conv.weight"), "layer4.2.conv2.weight");
        assert_eq!(name("fc.bias"), "fc.bias");
        assert_eq!(resnet_name("maxpool.weight"), None);
    }

    #[test]
    fn guesses_the_architecture_from_keys() {
        let r18 = [
            "conv1.weight",
            "layer1.0.conv1.weight",
            "layer3.1.conv2.weight",
            "fc.weight",
        ];
        assert_eq!(guess_arch(r18.iter().copied()).as_deref(), Some("resnet18"));
        let r50 = [
            "layer1.0.conv1.weight",
            "layer1.0.conv3.weight",
            "layer3.5.bn3.bias",
            "fc.weight",
        ];
        assert_eq!(guess_arch(r50.iter().copied()).as_deref(), Some("resnet50"));
        let m = ["features.0.0.weight", "classifier.1.weight"];
        assert_eq!(
            guess_arch(m.iter().copied()).as_deref(),
            Some("mobilenet-v2")
        );
        assert_eq!(guess_arch(["a.weight"].iter().copied()), None);
    }
}
