//! `--resume`: what may change when a run is continued, and which log lines it keeps.

use crate::config::TrainConfig;
use crate::driver::run_dir;
use crate::error::{Result, TrainError};
use std::path::Path;

/// Settings a resumed run may change: how long it trains. Everything else shapes the epochs
/// already run (data, model, schedule, seed, …) and must stay as it was.
pub const MAY_CHANGE: [&str; 2] = ["epochs", "patience"];

/// The settings (TOML keys) in which `new` differs from `old`, outside [`MAY_CHANGE`].
pub fn changed_fields(old: &TrainConfig, new: &TrainConfig) -> Vec<String> {
    let table = |c: &TrainConfig| match toml::Value::try_from(c) {
        Ok(toml::Value::Table(t)) => t,
        _ => unreachable!("a TrainConfig serialises to a TOML table"),
    };
    let (old, new) = (table(old), table(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !MAY_CHANGE.contains(&k.as_str()) && old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// Checks that `cfg` may continue the run in `out`: the run's `config.toml` exists and differs
/// from `cfg` in [`MAY_CHANGE`] only. Bad input otherwise, naming the folder or the field.
pub fn check_config(cfg: &TrainConfig, out: &Path) -> Result<()> {
    let path = out.join(run_dir::CONFIG);
    if !path.is_file() || !run_dir::last_checkpoint(out).is_file() {
        return Err(TrainError::BadInput(format!(
            "--resume: {} holds no run to continue (expected {} and {} from `kestrel train --out {}`)",
            out.display(),
            path.display(),
            run_dir::last_checkpoint(out).display(),
            out.display()
        )));
    }
    let old = TrainConfig::from_file(&path)?;
    let changed = changed_fields(&old, cfg);
    if let Some(first) = changed.first() {
        let show = |c: &TrainConfig| {
            toml::Value::try_from(c)
                .ok()
                .and_then(|v| v.get(first).map(|x| x.to_string()))
                .unwrap_or_else(|| "(unset)".into())
        };
        return Err(TrainError::BadInput(format!(
            "--resume: `{first}` is {} in the run's {} but {} now{}; only {} may change when resuming",
            show(&old),
            path.display(),
            show(cfg),
            if changed.len() > 1 {
                format!(" (also changed: {})", changed[1..].join(", "))
            } else {
                String::new()
            },
            MAY_CHANGE.join(" and ")
        )));
    }
    Ok(())
}

/// The lines of a JSON-lines log (`metrics.jsonl`, `grad_norms.jsonl`) whose `epoch` is at most
/// `max_epoch`, verbatim and in order; a missing file has none. A line that is not JSON with an
/// integer `epoch` is bad input naming the file and line.
pub fn kept_lines(path: &Path, max_epoch: usize) -> Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => {
            return Err(TrainError::BadInput(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let mut kept = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let epoch = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()))
            .ok_or_else(|| {
                TrainError::BadInput(format!(
                    "{} line {}: expected a JSON object with an integer `epoch`",
                    path.display(),
                    i + 1
                ))
            })?;
        if epoch as usize <= max_epoch {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_epochs_and_patience_may_change() {
        let old = TrainConfig::default();
        let new = TrainConfig {
            epochs: 40,
            patience: Some(3),
            ..old.clone()
        };
        assert!(changed_fields(&old, &new).is_empty());
        let new = TrainConfig {
            lr: 0.1,
            clip_grad_norm: Some(1.0),
            ..new
        };
        assert_eq!(changed_fields(&old, &new), ["clip_grad_norm", "lr"]);
    }

    #[test]
    fn a_changed_field_is_named_and_a_missing_run_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_config(&TrainConfig::default(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no run to continue"), "{e}");
        std::fs::create_dir_all(dir.path().join(run_dir::CHECKPOINTS)).unwrap();
        std::fs::write(run_dir::last_checkpoint(dir.path()), b"").unwrap();
        std::fs::write(
            dir.path().join(run_dir::CONFIG),
            TrainConfig::default().to_toml(),
        )
        .unwrap();
        let cfg = TrainConfig {
            seed: 7,
            epochs: 99,
            ..TrainConfig::default()
        };
        let e = check_config(&cfg, dir.path()).unwrap_err().to_string();
        assert!(e.contains("`seed` is 0") && e.contains("but 7 now"), "{e}");
        assert!(matches!(
            check_config(&cfg, dir.path()),
            Err(TrainError::BadInput(_))
        ));
    }

    #[test]
    fn kept_lines_stop_at_the_checkpoint_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        assert_eq!(kept_lines(&path, 3).unwrap(), "");
        std::fs::write(
            &path,
            "{\"epoch\":1,\"x\":0.30000000000000004}\n{\"epoch\":2}\n{\"epoch\":3}\n",
        )
        .unwrap();
        // Verbatim: the float's text is not re-printed.
        assert_eq!(
            kept_lines(&path, 2).unwrap(),
            "{\"epoch\":1,\"x\":0.30000000000000004}\n{\"epoch\":2}\n"
        );
        std::fs::write(&path, "{\"epoch\":1}\nnot json\n").unwrap();
        let e = kept_lines(&path, 2).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
