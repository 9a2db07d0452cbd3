//! Split manifests: the train/val/test membership `kestrel split` writes and `--split-manifest`
//! reads, as JSON `{"seed", "classes", "train": [...], "val": [...], "test": [...]}`.
//!
//! Items are named by [`ItemKey`]: paths relative to the dataset root for `folder:` and `seg:`,
//! indices for `shapes` and `idx:`. A manifest need not name every item of the dataset (unlisted
//! items are unused), but every item it names must exist, and in one split only.

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::fsio::write_atomic;
use crate::item_key::ItemKey;
use crate::split::Split;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// A split manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Seed that produced the split.
    pub seed: u64,
    /// Class names of the dataset, in index order.
    pub classes: Vec<String>,
    /// Training items.
    pub train: Vec<ItemKey>,
    /// Validation items.
    pub val: Vec<ItemKey>,
    /// Test items.
    pub test: Vec<ItemKey>,
}

/// The three splits with their JSON names, in order.
fn parts(m: &Manifest) -> [(&'static str, &Vec<ItemKey>); 3] {
    [("train", &m.train), ("val", &m.val), ("test", &m.test)]
}

impl Manifest {
    /// Names the items of `split` of `ds`. An index past the dataset's end is an error.
    pub fn from_split(ds: &dyn Dataset, split: &Split) -> Result<Manifest, DataError> {
        let keys = ds.item_keys();
        let name = |field: &str, idx: &[usize]| -> Result<Vec<ItemKey>, DataError> {
            idx.iter()
                .map(|&i| {
                    keys.get(i).cloned().ok_or_else(|| {
                        DataError::value(
                            field,
                            format!(
                                "item {i} is past the dataset's end: expected < {}",
                                keys.len()
                            ),
                        )
                    })
                })
                .collect()
        };
        Ok(Manifest {
            seed: split.seed,
            classes: ds.class_names(),
            train: name("train", &split.train)?,
            val: name("val", &split.val)?,
            test: name("test", &split.test)?,
        })
    }

    /// The manifest as pretty-printed JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the manifest to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads a manifest, checking that no item is listed twice.
    pub fn load(path: &Path) -> Result<Manifest, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DataError::format(path, format!("cannot read the split manifest ({e})"))
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            DataError::format(
                path,
                format!(
                    "not a split manifest ({e}): expected JSON {{\"seed\", \"classes\", \"train\": [...], \"val\": [...], \"test\": [...]}}"
                ),
            )
        })?;
        m.check_disjoint()
            .map_err(|e| DataError::format(path, e.to_string()))?;
        Ok(m)
    }

    /// Reads a manifest and resolves it against `ds`; errors name the file.
    pub fn load_split(path: &Path, ds: &dyn Dataset) -> Result<Split, DataError> {
        Self::load(path)?
            .resolve(ds)
            .map_err(|e| DataError::format(path, e.to_string()))
    }

    fn check_disjoint(&self) -> Result<(), DataError> {
        let mut seen: HashMap<&ItemKey, &str> = HashMap::new();
        for (field, keys) in parts(self) {
            for key in keys {
                if let Some(first) = seen.insert(key, field) {
                    let reason = if first == field {
                        format!("item {key} is listed twice: expected each item once")
                    } else {
                        format!(
                            "item {key} is in both `{first}` and `{field}`: expected each item in one split"
                        )
                    };
                    return Err(DataError::value(field, reason));
                }
            }
        }
        Ok(())
    }

    /// Indices into `ds` of the manifest's items. Errors when the classes differ, an item is not
    /// in the dataset, or an item is listed twice.
    pub fn resolve(&self, ds: &dyn Dataset) -> Result<Split, DataError> {
        self.check_disjoint()?;
        let classes = ds.class_names();
        if classes != self.classes {
            return Err(DataError::value(
                "classes",
                format!(
                    "the manifest lists classes {:?} but the dataset has {classes:?}",
                    self.classes
                ),
            ));
        }
        let keys = ds.item_keys();
        let index: HashMap<&ItemKey, usize> =
            keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let hint = match keys.first() {
            Some(ItemKey::Path(p)) => {
                format!("expected a path relative to the dataset root, like `{p}`")
            }
            _ => format!("expected an index < {}", keys.len()),
        };
        let find = |field: &str, list: &[ItemKey]| -> Result<Vec<usize>, DataError> {
            let mut out = list
                .iter()
                .map(|k| {
                    index.get(k).copied().ok_or_else(|| {
                        DataError::value(field, format!("item {k} is not in the dataset: {hint}"))
                    })
                })
                .collect::<Result<Vec<usize>, DataError>>()?;
            out.sort_unstable();
            Ok(out)
        };
        Ok(Split {
            seed: self.seed,
            train: find("train", &self.train)?,
            val: find("val", &self.val)?,
            test: find("test", &self.test)?,
        })
    }

    /// Items per class in each split, as (split name, counts indexed by class), for `ds`.
    pub fn class_counts(
        &self,
        ds: &dyn Dataset,
    ) -> Result<Vec<(&'static str, Vec<usize>)>, DataError> {
        let split = self.resolve(ds)?;
        let labels = ds.labels();
        let k = self.classes.len();
        let count = |idx: &[usize]| {
            let mut c = vec![0usize; k];
            for &i in idx {
                if let Some(slot) = c.get_mut(labels[i]) {
                    *slot += 1;
                }
            }
            c
        };
        Ok(vec![
            ("train", count(&split.train)),
            ("val", count(&split.val)),
            ("test", count(&split.test)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::split_dataset;
    use crate::Item;

    /// `n` items named `c<label>/<i>.png` with labels drawn from a skewed pattern.
    struct Named {
        labels: Vec<usize>,
    }

    impl Named {
        fn new(n: usize) -> Self {
            // Class sizes roughly 4 : 2 : 1.
            let labels = (0..n)
                .map(|i| match i % 7 {
                    0..=3 => 0,
                    4 | 5 => 1,
                    _ => 2,
                })
                .collect();
            Self { labels }
        }
    }

    impl Dataset for Named {
        fn len(&self) -> usize {
            self.labels.len()
        }
        fn class_names(&self) -> Vec<String> {
            vec!["ant".into(), "bee".into(), "cow".into()]
        }
        fn labels(&self) -> Vec<usize> {
            self.labels.clone()
        }
        fn get(&self, _: usize) -> Result<Item, DataError> {
            Err(DataError::value("get", "not needed"))
        }
        fn item_keys(&self) -> Vec<ItemKey> {
            self.labels
                .iter()
                .enumerate()
                .map(|(i, l)| ItemKey::Path(format!("c{l}/{i}.png")))
                .collect()
        }
    }

    #[test]
    fn manifests_are_stratified_disjoint_and_deterministic() {
        let ds = Named::new(701);
        let (val, test) = (0.1, 0.25);
        let m = Manifest::from_split(&ds, &split_dataset(&ds, val, test, 5).unwrap()).unwrap();
        let again = Manifest::from_split(&ds, &split_dataset(&ds, val, test, 5).unwrap()).unwrap();
        assert_eq!(m, again);
        let other = Manifest::from_split(&ds, &split_dataset(&ds, val, test, 6).unwrap()).unwrap();
        assert_ne!(m.val, other.val);

        // Counted from the keys themselves: `c<label>/...`.
        let per_class = |keys: &[ItemKey]| {
            let mut c = [0usize; 3];
            for k in keys {
                let ItemKey::Path(p) = k else { panic!("{k}") };
                c[(p.as_bytes()[1] - b'0') as usize] += 1;
            }
            c
        };
        let totals = per_class(&ds.item_keys());
        assert_eq!(totals, [401, 200, 100]);
        for (name, keys, frac) in [("val", &m.val, val), ("test", &m.test, test)] {
            let got = per_class(keys);
            for c in 0..3 {
                let want = totals[c] as f64 * frac;
                assert!(
                    (got[c] as f64 - want).abs() <= 1.0,
                    "{name} class {c}: {} vs {want}",
                    got[c]
                );
            }
        }
        let mut all: Vec<&ItemKey> = m.train.iter().chain(&m.val).chain(&m.test).collect();
        all.sort();
        let n = all.len();
        all.dedup();
        assert_eq!((all.len(), n), (701, 701), "not a partition");
    }

    #[test]
    fn saves_loads_and_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.json");
        let ds = Named::new(30);
        let split = split_dataset(&ds, 0.2, 0.2, 1).unwrap();
        let m = Manifest::from_split(&ds, &split).unwrap();
        m.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["classes", "seed", "test", "train", "val"]);
        assert_eq!(v["classes"][1], "bee");
        assert!(v["train"][0].is_string());
        let back = Manifest::load(&path).unwrap();
        assert_eq!(back, m);
        assert_eq!(Manifest::load_split(&path, &ds).unwrap(), split);
        let counts = back.class_counts(&ds).unwrap();
        let total: usize = counts.iter().flat_map(|(_, c)| c).sum();
        assert_eq!(total, 30);
    }

    #[test]
    fn index_keys_for_index_sources() {
        let ds = crate::Shapes::new(crate::ShapesConfig {
            n: 40,
            ..Default::default()
        })
        .unwrap();
        let m = Manifest::from_split(&ds, &split_dataset(&ds, 0.2, 0.2, 0).unwrap()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert!(v["val"][0].is_u64());
        // 10 per class, 2 of them to val.
        assert_eq!(m.resolve(&ds).unwrap().val.len(), 8);
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Named::new(10);
        let e = Manifest::load(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json") && e.contains("cannot read"), "{e}");

        let p = dir.path().join("m.json");
        std::fs::write(&p, "{\"seed\": 1, \"train\": [").unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("m.json") && e.contains("not a split manifest"),
            "{e}"
        );

        let write = |train: &str, val: &str, test: &str| {
            std::fs::write(
                &p,
                format!(
                    r#"{{"seed": 1, "classes": ["ant", "bee", "cow"], "train": [{train}], "val": [{val}], "test": [{test}]}}"#
                ),
            )
            .unwrap();
        };
        write(r#""c0/0.png""#, r#""c1/4.png""#, r#""c0/0.png""#);
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("`c0/0.png`") && e.contains("`train`") && e.contains("`test`"),
            "{e}"
        );
        write(r#""c0/0.png", "c0/0.png""#, "", "");
        assert!(Manifest::load(&p)
            .unwrap_err()
            .to_string()
            .contains("twice"));

        write(r#""c0/0.png""#, r#""c9/99.png""#, "");
        let e = Manifest::load_split(&p, &ds).unwrap_err().to_string();
        assert!(
            e.contains("m.json") && e.contains("`c9/99.png`") && e.contains("not in the dataset"),
            "{e}"
        );
        write("3", "", "");
        let e = Manifest::load_split(&p, &ds).unwrap_err().to_string();
        assert!(e.contains("relative to the dataset root"), "{e}");

        std::fs::write(
            &p,
            r#"{"seed": 1, "classes": ["x"], "train": [], "val": [], "test": []}"#,
        )
        .unwrap();
        let e = Manifest::load_split(&p, &ds).unwrap_err().to_string();
        assert!(e.contains("classes"), "{e}");
    }
}
