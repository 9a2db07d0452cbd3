//! Stable names of dataset items, as split manifests record them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a split manifest names an item: a path relative to the dataset root for file-based sources
/// (`folder:`, `seg:`), an index for generated or packed sources (`shapes`, `idx:`).
///
/// In JSON it is a bare string or a bare non-negative integer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemKey {
    /// Position in the dataset.
    Index(usize),
    /// Path relative to the dataset root, with `/` separators.
    Path(String),
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemKey::Index(i) => write!(f, "{i}"),
            ItemKey::Path(p) => write!(f, "`{p}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_a_bare_string_or_number() {
        let keys = vec![ItemKey::Index(3), ItemKey::Path("cat/1.png".into())];
        let text = serde_json::to_string(&keys).unwrap();
        assert_eq!(text, r#"[3,"cat/1.png"]"#);
        assert_eq!(serde_json::from_str::<Vec<ItemKey>>(&text).unwrap(), keys);
        assert!(serde_json::from_str::<ItemKey>("-1").is_err());
        assert!(serde_json::from_str::<ItemKey>("1.5").is_err());
    }
}
