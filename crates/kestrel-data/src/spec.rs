//! `--data SPEC` parsing: `shapes[:k=v,...]`, `folder:PATH`, `seg:PATH`, `idx:PATH`.

use crate::error::DataError;
use crate::formats::shapes::ShapesConfig;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    /// The built-in synthetic dataset.
    Shapes(ShapesConfig),
    /// ImageFolder layout: `PATH/<class>/<image>`.
    Folder(PathBuf),
    /// Images and masks: `PATH/images/<stem>.<ext>`, `PATH/masks/<stem>.png`.
    Seg(PathBuf),
    /// MNIST-style IDX files.
    Idx(PathBuf),
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec::Shapes(ShapesConfig::default())
    }
}

fn spec_err(spec: &str, reason: impl Into<String>) -> DataError {
    DataError::Spec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(spec: &str) -> Result<Self, DataError> {
        let (kind, rest) = match spec.split_once(':') {
            Some((k, r)) => (k, Some(r)),
            None => (spec, None),
        };
        let path = |rest: Option<&str>| -> Result<PathBuf, DataError> {
            match rest {
                Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
                _ => Err(spec_err(spec, format!("expected `{kind}:PATH`"))),
            }
        };
        match kind {
            "shapes" => {
                let mut cfg = ShapesConfig::default();
                for pair in rest.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').ok_or_else(|| {
                        spec_err(spec, format!("expected key=value, got `{pair}`"))
                    })?;
                    let int = |v: &str| {
                        v.parse::<u64>().map_err(|_| {
                            spec_err(
                                spec,
                                format!("`{key}` expects a non-negative integer, got `{v}`"),
                            )
                        })
                    };
                    match key {
                        "n" => cfg.n = int(value)? as usize,
                        "size" => cfg.size = int(value)? as usize,
                        "classes" => cfg.classes = int(value)? as usize,
                        "seed" => cfg.seed = int(value)?,
                        "imbalance" => {
                            cfg.imbalance = value.parse::<f64>().map_err(|_| {
                                spec_err(spec, format!("`imbalance` expects a number >= 1, got `{value}`"))
                            })?
                        }
                        other => {
                            return Err(spec_err(
                                spec,
                                format!(
                                    "unknown option `{other}`; expected n, size, classes, imbalance or seed"
                                ),
                            ))
                        }
                    }
                }
                cfg.validate().map_err(|e| spec_err(spec, e.to_string()))?;
                Ok(DataSpec::Shapes(cfg))
            }
            "folder" => Ok(DataSpec::Folder(path(rest)?)),
            "seg" => Ok(DataSpec::Seg(path(rest)?)),
            "idx" => Ok(DataSpec::Idx(path(rest)?)),
            other => Err(spec_err(
                spec,
                format!(
                    "unknown source `{other}`; expected shapes, folder:PATH, seg:PATH or idx:PATH"
                ),
            )),
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Shapes(c) => write!(
                f,
                "shapes:n={},size={},classes={},imbalance={},seed={}",
                c.n, c.size, c.classes, c.imbalance, c.seed
            ),
            DataSpec::Folder(p) => write!(f, "folder:{}", p.display()),
            DataSpec::Seg(p) => write!(f, "seg:{}", p.display()),
            DataSpec::Idx(p) => write!(f, "idx:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes_options_and_round_trips() {
        let spec: DataSpec = "shapes:n=100,size=32,classes=5,imbalance=20,seed=3"
            .parse()
            .unwrap();
        let DataSpec::Shapes(c) = &spec else {
            panic!("not shapes")
        };
        assert_eq!(
            (c.n, c.size, c.classes, c.imbalance, c.seed),
            (100, 32, 5, 20.0, 3)
        );
        assert_eq!(spec.to_string().parse::<DataSpec>().unwrap(), spec);
        assert_eq!("shapes".parse::<DataSpec>().unwrap(), DataSpec::default());
    }

    #[test]
    fn errors_name_the_problem() {
        let e = "shapes:n=abc".parse::<DataSpec>().unwrap_err().to_string();
        assert!(e.contains("`n`") && e.contains("abc"), "{e}");
        let e = "shapes:colour=red"
            .parse::<DataSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = "hdf5:x".parse::<DataSpec>().unwrap_err().to_string();
        assert!(e.contains("hdf5") && e.contains("folder:PATH"), "{e}");
        assert!("folder:".parse::<DataSpec>().is_err());
        assert_eq!(
            "folder:/data/x".parse::<DataSpec>().unwrap(),
            DataSpec::Folder("/data/x".into())
        );
    }
}
