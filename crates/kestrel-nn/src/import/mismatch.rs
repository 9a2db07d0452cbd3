//! Everything wrong between a state dict and a model, reported at once.

use std::fmt;

/// Longest list printed in full; longer ones end with "… and N more".
const SHOWN: usize = 8;

/// The differences between a state dict and the model it was applied to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mismatch {
    /// What the model is (`mobilenet-v2`, `resnet18`, ...).
    pub expected: String,
    /// What the keys look like, when recognisable (`resnet50`, ...).
    pub detected: Option<String>,
    /// torchvision names the model needs that the state dict lacks.
    pub missing: Vec<String>,
    /// Keys of the state dict the model has no place for (`num_batches_tracked` excluded).
    pub unexpected: Vec<String>,
    /// (key, shape the model needs, shape found).
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Keys holding integers where the model needs floats.
    pub not_float: Vec<String>,
}

impl Mismatch {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shapes.is_empty()
            && self.not_float.is_empty()
    }
}

/// A list of tensor names for a message: the first few, then "… and N more".
pub fn shortened(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    let mut s = shown.join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", … and {} more", items.len() - SHOWN));
    }
    s
}

fn list(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    write!(f, "{}", shortened(items))
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the weights do not fit {}", self.expected)?;
        if let Some(d) = self.detected.as_ref().filter(|d| **d != self.expected) {
            write!(
                f,
                " (this looks like a {d} state dict, not {})",
                self.expected
            )?;
        }
        if !self.missing.is_empty() {
            write!(f, "; {} missing keys: ", self.missing.len())?;
            list(f, &self.missing)?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; {} unexpected keys: ", self.unexpected.len())?;
            list(f, &self.unexpected)?;
        }
        if !self.shapes.is_empty() {
            write!(f, "; {} shape mismatches: ", self.shapes.len())?;
            let items: Vec<String> = self
                .shapes
                .iter()
                .map(|(k, want, got)| format!("{k} expected {want:?}, found {got:?}"))
                .collect();
            list(f, &items)?;
        }
        if !self.not_float.is_empty() {
            write!(
                f,
                "; {} integer tensors where floats are needed: ",
                self.not_float.len()
            )?;
            list(f, &self.not_float)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_truncated_with_a_count() {
        let m = Mismatch {
            expected: "mobilenet-v2".into(),
            detected: Some("resnet18".into()),
            missing: (0..20).map(|i| format!("k{i}")).collect(),
            shapes: vec![("fc.weight".into(), vec![10, 512], vec![1000, 512])],
            ..Default::default()
        };
        let s = m.to_string();
        assert!(
            s.contains("this looks like a resnet18 state dict, not mobilenet-v2"),
            "{s}"
        );
        assert!(
            s.contains("20 missing keys: k0, k1,") && s.contains("… and 12 more"),
            "{s}"
        );
        assert!(!s.contains("k8,"), "{s}");
        assert!(
            s.contains("fc.weight expected [10, 512], found [1000, 512]"),
            "{s}"
        );
    }
}
