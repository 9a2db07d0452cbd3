//! The 1000 ImageNet-1k class names, indexed as the outputs of torchvision's pretrained
//! classifiers (`assets/imagenet_classes.txt`, written by `tools/imagenet_labels.py` from
//! `torchvision.models._meta._IMAGENET_CATEGORIES`).

use std::sync::LazyLock;

/// Number of ImageNet-1k classes.
pub const NUM_CLASSES: usize = 1000;

const RAW: &str = include_str!("../assets/imagenet_classes.txt");

/// The class names in index order (`LABELS[207]` is "golden retriever").
pub static LABELS: LazyLock<Vec<&'static str>> = LazyLock::new(|| RAW.lines().collect());

/// The name of class `index`, or `None` past the last class.
pub fn label(index: usize) -> Option<&'static str> {
    LABELS.get(index).copied()
}

/// The name of class `index` of a `classes`-way model of imported weights: the ImageNet name
/// when the model has ImageNet's 1000 classes, `class <index>` otherwise.
pub fn class_label(index: usize, classes: usize) -> String {
    match label(index) {
        Some(name) if classes == NUM_CLASSES => name.to_string(),
        _ => format!("class {index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_names_in_torchvision_order() {
        assert_eq!(LABELS.len(), NUM_CLASSES);
        // Known indices of the ImageNet-1k synset order (n01440764 tench first, n15075141
        // toilet tissue last).
        assert_eq!(label(0), Some("tench"));
        assert_eq!(label(1), Some("goldfish"));
        assert_eq!(label(207), Some("golden retriever"));
        assert_eq!(label(999), Some("toilet tissue"));
        assert_eq!(label(1000), None);
        assert!(LABELS.iter().all(|n| !n.is_empty() && n.trim() == *n));
    }
}
