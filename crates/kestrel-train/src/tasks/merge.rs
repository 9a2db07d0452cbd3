//! `kestrel merge`: the part files of a sharded `kestrel eval` or `kestrel predict`
//! ([`super::shard`]) put back together.
//!
//! The parts must be shards `0..N` of one piece of work, each exactly once, in any order: the
//! same command, shard count, item list, batch and model file, and for an evaluation the same
//! split and task, for a prediction the same model source, `--top-k` and engine. The partial
//! evaluations are then merged in shard order (exactly: counts add, kept probabilities
//! concatenate) and reported as `kestrel eval` reports the whole split; the predictions are
//! concatenated in shard order, which is the order the images were given.
//!
//! Merging the parts of the test split records `test_evaluated` in the run's `summary.json`
//! (the shards themselves do not): in the run folder the parts name, when it is reachable from
//! here and still holds the checkpoint the parts were made with. Otherwise the merge still
//! reports, with a note that nothing was recorded.

use super::eval::{record_test_evaluated, EvalReport};
use super::predict::Prediction;
use super::shard::{Job, ModelFile, Part};
use crate::driver::run_dir;
use crate::error::{Result, TrainError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `kestrel merge` prints.
#[derive(Clone, Debug)]
pub enum Merged {
    /// The parts of `kestrel eval --shard`: the whole split's report.
    Eval {
        /// The report, as `kestrel eval` gives it unsharded.
        report: Box<EvalReport>,
        /// Notes for stderr (a test split whose `test_evaluated` could not be recorded).
        notes: Vec<String>,
    },
    /// The parts of `kestrel predict --shard`: the predictions of every image, in the order
    /// given.
    Predict(Vec<Prediction>),
}

/// The fields that must agree between the parts of one piece of work, with their values.
fn identity(p: &Part) -> Vec<(&'static str, String)> {
    let mut id = vec![
        (
            "command",
            match p.job {
                Job::Eval(_) => "eval",
                Job::Predict(_) => "predict",
            }
            .to_string(),
        ),
        ("shards", p.shards.to_string()),
        ("items", p.items.to_string()),
        ("batch", p.batch.to_string()),
        ("items_fnv1a64", p.items_fnv1a64.clone()),
        ("model", p.model.to_string()),
    ];
    match &p.job {
        Job::Eval(e) => {
            id.push(("split", e.split.clone()));
            id.push(("task", e.partial.task().to_string()));
        }
        Job::Predict(q) => {
            id.push(("source", q.source.clone()));
            id.push(("top_k", q.top_k.to_string()));
            id.push(("engine", q.engine.clone()));
        }
    }
    id
}

/// Reads the part files `paths` and checks that they are shards `0..N` of one piece of work,
/// each once; returns them in shard order with their files. Bad input naming the file (and the
/// field) that differs, the file that repeats a shard, or the shards that are missing.
fn read_parts(paths: &[PathBuf]) -> Result<Vec<(&Path, Part)>> {
    let Some((first_path, rest)) = paths.split_first() else {
        return Err(TrainError::BadInput(
            "no part files: expected the --out files of the shards".into(),
        ));
    };
    let first = Part::read(first_path)?;
    let id = identity(&first);
    let count = first.shards;
    let mut slots: BTreeMap<usize, (&Path, Part)> = BTreeMap::new();
    slots.insert(first.shard, (first_path, first));
    for path in rest {
        let part = Part::read(path)?;
        for ((field, want), (_, got)) in id.iter().zip(identity(&part)) {
            if *want != got {
                return Err(TrainError::BadInput(format!(
                    "{}: {field} is {got}, but {} has {want}: parts of different runs, splits, \
                     checkpoints or image lists do not merge",
                    path.display(),
                    first_path.display()
                )));
            }
        }
        let shard = part.shard();
        if let Some((seen, _)) = slots.get(&part.shard) {
            return Err(TrainError::BadInput(format!(
                "{}: shard {shard} again, {} is shard {shard} too; expected each shard once",
                path.display(),
                seen.display()
            )));
        }
        slots.insert(part.shard, (path, part));
    }
    if slots.len() < count {
        // The count comes from a file: list a few missing shards, not all of them.
        const LISTED: usize = 10;
        let missing = count - slots.len();
        let mut names: Vec<String> = (0..count)
            .filter(|i| !slots.contains_key(i))
            .take(LISTED)
            .map(|i| format!("{i}/{count}"))
            .collect();
        if missing > LISTED {
            names.push(format!("and {} more", missing - LISTED));
        }
        let given: Vec<String> = slots
            .values()
            .map(|(p, part)| format!("{} ({})", p.display(), part.shard()))
            .collect();
        return Err(TrainError::BadInput(format!(
            "shard {} missing: the parts given are {}",
            names.join(", "),
            given.join(", ")
        )));
    }
    Ok(slots.into_values().collect())
}

/// `kestrel merge PART...`: checks the parts (see the module documentation) and puts them
/// together. Every problem with the parts is bad input naming the file.
pub fn merge_parts(paths: &[PathBuf]) -> Result<Merged> {
    let parts = read_parts(paths)?;
    let mut jobs = parts
        .into_iter()
        .map(|(path, part)| (path, part.model, part.job));
    let (_, model, first) = jobs.next().expect("at least one part");
    match first {
        Job::Eval(e) => {
            let mut partial = e.partial;
            let mut runs = vec![e.run];
            for (path, _, job) in jobs {
                let Job::Eval(e) = job else {
                    unreachable!("read_parts checked the command")
                };
                partial
                    .merge(&e.partial)
                    .map_err(|err| TrainError::BadInput(format!("{}: {err}", path.display())))?;
                if !runs.contains(&e.run) {
                    runs.push(e.run);
                }
            }
            let report = Box::new(partial.report(&e.split)?);
            let notes = if e.split == "test" {
                record_test(&runs, &model)
            } else {
                Vec::new()
            };
            Ok(Merged::Eval { report, notes })
        }
        Job::Predict(p) => {
            let mut predictions = p.predictions;
            for (_, _, job) in jobs {
                let Job::Predict(p) = job else {
                    unreachable!("read_parts checked the command")
                };
                predictions.extend(p.predictions);
            }
            Ok(Merged::Predict(predictions))
        }
    }
}

/// Records `test_evaluated` in the first of `runs` whose best checkpoint is still `model`;
/// returns a note when none is.
fn record_test(runs: &[PathBuf], model: &ModelFile) -> Vec<String> {
    for run in runs {
        let same = ModelFile::read(&run_dir::best_checkpoint(run), "checkpoint")
            .is_ok_and(|(_, file)| file == *model);
        if same {
            return match run_dir::read_summary(run).and_then(|s| record_test_evaluated(run, s)) {
                Ok(()) => Vec::new(),
                Err(e) => vec![format!("test_evaluated not recorded: {e}")],
            };
        }
    }
    let runs: Vec<String> = runs.iter().map(|r| r.display().to_string()).collect();
    vec![format!(
        "test_evaluated not recorded: no run folder {} here holds the checkpoint the parts were \
         made with",
        runs.join(", ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::eval::EvalPartial;
    use crate::tasks::predict::TopClass;
    use crate::tasks::shard::{EvalJob, PredictJob};
    use crate::tasks::shard_range;
    use kestrel_data::Shard;
    use kestrel_metrics::ClassificationAccumulator;

    /// 5 items of 2 classes, batches of 2: labels and probability rows.
    const LABELS: [usize; 5] = [0, 1, 1, 0, 1];
    const PROBS: [f32; 10] = [0.9, 0.1, 0.3, 0.7, 0.6, 0.4, 0.55, 0.45, 0.2, 0.8];

    fn partial(items: std::ops::Range<usize>) -> EvalPartial {
        let mut acc =
            ClassificationAccumulator::with_class_names(vec!["a".into(), "b".into()]).unwrap();
        acc.update(
            &LABELS[items.clone()],
            &PROBS[2 * items.start..2 * items.end],
        )
        .unwrap();
        EvalPartial::Classify {
            classification: acc,
        }
    }

    fn eval_part(shard: Shard, run: &Path, split: &str, model: &[u8]) -> Part {
        let job = Job::Eval(EvalJob {
            run: run.to_path_buf(),
            split: split.into(),
            partial: partial(shard_range(5, 2, shard)),
        });
        Part::new(shard, 5, 2, b"items", ModelFile::of(model), job)
    }

    /// Writes `parts` as `<name>.json` files in `dir`; returns their paths.
    fn write(dir: &Path, parts: &[(&str, Part)]) -> Vec<PathBuf> {
        parts
            .iter()
            .map(|(name, part)| {
                let path = dir.join(format!("{name}.json"));
                part.write(&path).unwrap();
                path
            })
            .collect()
    }

    fn shard(index: usize, count: usize) -> Shard {
        Shard { index, count }
    }

    fn err(paths: &[PathBuf]) -> String {
        match merge_parts(paths) {
            Err(TrainError::BadInput(m)) => m,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn eval_parts_in_any_order_merge_to_the_whole_report() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let whole = serde_json::to_value(partial(0..5).report("val").unwrap()).unwrap();
        // 3 batches over 4 shards: the last is empty and still counts.
        let parts: Vec<(&str, Part)> = ["p0", "p1", "p2", "p3"]
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, eval_part(shard(i, 4), run, "val", b"ckpt")))
            .collect();
        assert_eq!((parts[3].1.first, parts[3].1.end), (5, 5));
        let mut paths = write(dir.path(), &parts);
        paths.reverse();
        let Merged::Eval { report, notes } = merge_parts(&paths).unwrap() else {
            panic!("an eval")
        };
        assert_eq!(serde_json::to_value(report).unwrap(), whole);
        assert!(notes.is_empty());

        // One shard of one: the whole split.
        let one = write(
            dir.path(),
            &[("one", eval_part(shard(0, 1), run, "val", b"ckpt"))],
        );
        let Merged::Eval { report, .. } = merge_parts(&one).unwrap() else {
            panic!("an eval")
        };
        assert_eq!(serde_json::to_value(report).unwrap(), whole);
    }

    #[test]
    fn missing_repeated_and_foreign_parts_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let p = |i| eval_part(shard(i, 3), run, "val", b"ckpt");
        let paths = write(
            dir.path(),
            &[("s0", p(0)), ("s1", p(1)), ("s2", p(2)), ("again", p(1))],
        );
        let e = err(&[paths[0].clone(), paths[2].clone()]);
        assert!(
            e.contains("shard 1/3 missing") && e.contains("s0.json (0/3)"),
            "{e}"
        );
        let e = err(&paths);
        assert!(
            e.contains("again.json: shard 1/3 again") && e.contains("s1.json"),
            "{e}"
        );

        let other = write(
            dir.path(),
            &[
                (
                    "other_model",
                    eval_part(shard(1, 3), run, "val", b"another ckpt"),
                ),
                ("other_split", eval_part(shard(1, 3), run, "test", b"ckpt")),
                ("other_count", eval_part(shard(1, 4), run, "val", b"ckpt")),
            ],
        );
        for (path, field) in other.iter().zip(["model", "split", "shards"]) {
            let e = err(&[paths[0].clone(), path.clone(), paths[2].clone()]);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(e.contains(&format!("{name}: {field} is")), "{e}");
            assert!(e.contains("s0.json has"), "{e}");
        }
    }

    #[test]
    fn edited_or_foreign_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &[("p", eval_part(shard(0, 2), dir.path(), "val", b"ckpt"))],
        )
        .remove(0);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        type Edit = dyn Fn(&mut serde_json::Value);
        let cases: [(&Edit, &str); 6] = [
            (&|v| v["format"] = "x".into(), "`format` is \"x\""),
            (&|v| v["version"] = 9.into(), "part format version 9"),
            (
                &|v| v["end"] = 3.into(),
                "items 0..3 in batches of 2, expected 0..4",
            ),
            (&|v| v["shard"] = 2.into(), "`shard` 2 of `shards` 2"),
            (&|v| v["eval"]["split"] = "train".into(), "split `train`"),
            (
                &|v| v["eval"]["partial"]["classification"]["labels"][0] = 7.into(),
                "bad part",
            ),
        ];
        for (edit, want) in cases {
            let mut bad = v.clone();
            edit(&mut bad);
            let p = dir.path().join("bad.json");
            std::fs::write(&p, bad.to_string()).unwrap();
            let e = err(&[p]);
            assert!(
                e.starts_with(&format!("{}: ", dir.path().join("bad.json").display())),
                "{e}"
            );
            assert!(e.contains(want), "{want}: {e}");
        }
        let e = err(&[dir.path().join("none.json")]);
        assert!(e.contains("none.json: cannot read"), "{e}");
    }

    #[test]
    fn a_merged_test_split_is_recorded_in_the_run_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join(run_dir::CHECKPOINTS)).unwrap();
        std::fs::write(run_dir::best_checkpoint(&run), b"ckpt").unwrap();
        let summary = serde_json::json!({
            "task": "classify", "model": "m", "best_epoch": 1, "epochs_run": 1, "val": {},
            "test_evaluated": false, "train_seconds": 1.0
        });
        std::fs::write(run.join(run_dir::SUMMARY), summary.to_string()).unwrap();
        let parts = write(
            dir.path(),
            &[
                ("t0", eval_part(shard(0, 2), &run, "test", b"ckpt")),
                ("t1", eval_part(shard(1, 2), &run, "test", b"ckpt")),
            ],
        );
        let Merged::Eval { notes, .. } = merge_parts(&parts).unwrap() else {
            panic!("an eval")
        };
        assert!(notes.is_empty(), "{notes:?}");
        assert!(run_dir::read_summary(&run).unwrap().test_evaluated);
        // A checkpoint that changed since: nothing recorded, and a note says so.
        std::fs::write(run_dir::best_checkpoint(&run), b"retrained").unwrap();
        std::fs::write(run.join(run_dir::SUMMARY), summary.to_string()).unwrap();
        let Merged::Eval { notes, .. } = merge_parts(&parts).unwrap() else {
            panic!("an eval")
        };
        assert!(
            notes[0].contains("test_evaluated not recorded"),
            "{notes:?}"
        );
        assert!(!run_dir::read_summary(&run).unwrap().test_evaluated);
    }

    #[test]
    fn predict_parts_concatenate_in_image_order_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<PathBuf> = (0..5)
            .map(|i| PathBuf::from(format!("img{i}.png")))
            .collect();
        let list: Vec<u8> = images
            .iter()
            .flat_map(|p| p.to_str().unwrap().bytes().chain([0]))
            .collect();
        let prediction = |i: usize| Prediction {
            image: images[i].clone(),
            // Not a short decimal: JSON text alone may not bring it back exactly.
            top: vec![TopClass {
                class: i,
                label: format!("c{i}"),
                prob: f64::from(0.1f32) / (i + 3) as f64,
            }],
            boxes: None,
        };
        let part = |i: usize| {
            let s = shard(i, 2);
            let job = Job::Predict(PredictJob {
                source: "run".into(),
                top_k: 1,
                engine: "runtime".into(),
                predictions: shard_range(5, 2, s).map(prediction).collect(),
            });
            Part::new(s, 5, 2, &list, ModelFile::of(b"ckpt"), job)
        };
        let paths = write(dir.path(), &[("b", part(1)), ("a", part(0))]);
        let Merged::Predict(all) = merge_parts(&paths).unwrap() else {
            panic!("a prediction")
        };
        assert_eq!(all, (0..5).map(prediction).collect::<Vec<_>>());
        // An eval part among predict parts: a different command.
        let eval = write(
            dir.path(),
            &[("e", eval_part(shard(0, 2), dir.path(), "val", b"ckpt"))],
        );
        let e = err(&[paths[0].clone(), eval[0].clone()]);
        assert!(
            e.contains("e.json: command is eval") && e.contains("b.json has predict"),
            "{e}"
        );
    }
}
