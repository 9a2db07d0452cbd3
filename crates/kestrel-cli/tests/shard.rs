//! `kestrel eval --shard`, `kestrel predict --shard` and `kestrel merge`: the merged parts print
//! exactly what the unsharded command prints (the same bytes, text or `--json`), and parts that
//! do not make up one piece of work are exit 2 naming the file.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

mod common;
use common::{
    assert_exit_2_naming, assert_ok, json_of, kestrel, read_json, run_json, solid_png, train_tiny,
};

/// Splits `data` with most items in the validation split and trains one epoch of the tiny model
/// (with `extra` flags) on it into `dir/name`.
fn train_on_manifest(dir: &Path, name: &str, data: &str, val: &str, extra: &[&str]) -> PathBuf {
    let manifest = dir.join(format!("{name}-split.json"));
    let m = manifest.to_str().unwrap();
    let o = kestrel(&[
        "split", "--data", data, "--val", val, "--test", "0.05", "--seed", "1", "--out", m,
    ]);
    assert_ok(&o, "split");
    let run = dir.join(name);
    let mut args = vec!["--split-manifest", m, "--epochs", "1"];
    args.extend_from_slice(extra);
    assert_ok(&train_tiny(data, &run, &args), "train");
    run
}

/// Shapes with 297 validation items (3 batches of 128: 128, 128, 41) and 18 test items.
const DATA: &str = "shapes:n=330,size=32,classes=3,seed=5";

/// One tiny classifier for the tests of this file, trained on [`DATA`].
fn classify_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = train_on_manifest(dir.path(), "run", DATA, "0.9", &[]);
        (dir, run)
    });
    run
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `kestrel args` and returns its stdout; it must succeed.
#[track_caller]
fn stdout(args: &[&str]) -> String {
    let o = kestrel(args);
    assert_ok(&o, &args.join(" "));
    String::from_utf8(o.stdout).unwrap()
}

/// `kestrel eval --run run --split split --shard i/n --out dir/<split>-<i>.json --json` for
/// each shard; returns the part files and checks the slices the shards report.
fn eval_shards(
    run: &Path,
    split: &str,
    n: usize,
    dir: &Path,
    slices: &[(u64, u64)],
) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let out = dir.join(format!("{split}-{i}.json"));
            let shard = format!("{i}/{n}");
            let v = run_json(&[
                "eval",
                "--run",
                s(run),
                "--split",
                split,
                "--shard",
                &shard,
                "--out",
                s(&out),
                "--json",
            ]);
            assert_eq!(
                (v["first"].as_u64(), v["end"].as_u64()),
                (Some(slices[i].0), Some(slices[i].1)),
                "{v}"
            );
            assert_eq!(v["shards"], n as u64);
            out
        })
        .collect()
}

/// `kestrel merge parts... extra...`.
fn merge(parts: &[PathBuf], extra: &[&str]) -> Output {
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(|p| s(p)));
    args.extend_from_slice(extra);
    kestrel(&args)
}

#[track_caller]
fn merged_stdout(parts: &[PathBuf], extra: &[&str]) -> String {
    let o = merge(parts, extra);
    assert_ok(&o, "merge");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn eval_shards_merge_to_exactly_the_unsharded_output() {
    let run = classify_run();
    let dir = tempfile::tempdir().unwrap();
    let whole_json = stdout(&["eval", "--run", s(run), "--json"]);
    let whole_text = stdout(&["eval", "--run", s(run)]);
    let v: serde_json::Value = serde_json::from_str(&whole_json).unwrap();
    assert!(v["roc_auc_ovr_macro"].is_number(), "{v}");
    let parts = eval_shards(
        run,
        "val",
        3,
        dir.path(),
        &[(0, 128), (128, 256), (256, 297)],
    );
    // Every metric, the confusion matrix and ROC-AUC (from the probabilities) to the last digit.
    assert_eq!(merged_stdout(&parts, &["--json"]), whole_json);
    assert_eq!(merged_stdout(&parts, &[]), whole_text);
    // In any order.
    let shuffled = [parts[2].clone(), parts[0].clone(), parts[1].clone()];
    assert_eq!(merged_stdout(&shuffled, &["--json"]), whole_json);
    let part = read_json(&parts[1]);
    assert_eq!(part["format"], "kestrel-part");
    assert_eq!(part["eval"]["split"], "val");
    assert_eq!(part["eval"]["partial"]["task"], "classify");
}

#[test]
fn test_split_shards_are_recorded_when_merged_and_an_empty_shard_merges() {
    let run = classify_run();
    let dir = tempfile::tempdir().unwrap();
    // 18 test items are one batch: the second shard is empty.
    let parts = eval_shards(run, "test", 2, dir.path(), &[(0, 18), (18, 18)]);
    let test_evaluated = || read_json(&run.join("summary.json"))["test_evaluated"].clone();
    assert_eq!(
        test_evaluated(),
        false,
        "a shard alone does not record the test split"
    );
    let merged = merged_stdout(&parts, &["--json"]);
    assert_eq!(test_evaluated(), true, "the merge does");
    assert_eq!(
        merged,
        stdout(&["eval", "--run", s(run), "--split", "test", "--json"])
    );
}

#[test]
fn predict_shards_merge_to_exactly_the_unsharded_output() {
    let run = classify_run();
    let dir = tempfile::tempdir().unwrap();
    // 70 images: the runtime's batches of 64 give shards of 64 and 6, Burn's of 8 give 40 and 30.
    let images: Vec<String> = (0..70u32)
        .map(|i| {
            let p = dir.path().join(format!("img{i}.png"));
            solid_png(
                &p,
                20 + i % 5,
                24,
                [(i * 37 % 256) as u8, (i * 91 % 256) as u8, 90],
            );
            p.to_str().unwrap().to_string()
        })
        .collect();
    for (engine, cut) in [("runtime", 64), ("burn", 40)] {
        let predict = |extra: &[&str]| {
            let mut args = vec![
                "predict",
                "--run",
                s(run),
                "--engine",
                engine,
                "--top-k",
                "2",
            ];
            args.extend_from_slice(extra);
            args.extend(images.iter().map(String::as_str));
            kestrel(&args)
        };
        let parts: Vec<PathBuf> = (0..2)
            .map(|i| {
                let out = dir.path().join(format!("{engine}-{i}.json"));
                let v = json_of(
                    &predict(&["--shard", &format!("{i}/2"), "--out", s(&out), "--json"]),
                    "predict --shard",
                );
                assert_eq!(v["first"], [0, cut][i], "{v}");
                out
            })
            .collect();
        let whole = predict(&["--json"]);
        assert_ok(&whole, "predict");
        assert_eq!(
            merged_stdout(&parts, &["--json"]).as_bytes(),
            whole.stdout,
            "{engine}"
        );
        assert_eq!(
            merged_stdout(&parts, &[]).as_bytes(),
            predict(&[]).stdout,
            "{engine}"
        );
    }
}

#[test]
fn multitask_shards_merge_both_tasks_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // 72 validation items: batches of 32 give shards of 32, 32 and 8.
    let run = train_on_manifest(
        dir.path(),
        "mt",
        "shapes:n=90,size=32,classes=3,seed=5",
        "0.8",
        &["--task", "multitask"],
    );
    let parts = eval_shards(&run, "val", 3, dir.path(), &[(0, 32), (32, 64), (64, 72)]);
    let whole = stdout(&["eval", "--run", s(&run), "--json"]);
    assert_eq!(merged_stdout(&parts, &["--json"]), whole);
    assert_eq!(
        merged_stdout(&parts, &[]),
        stdout(&["eval", "--run", s(&run)])
    );
    assert_eq!(read_json(&parts[0])["eval"]["partial"]["task"], "multitask");
}

#[test]
fn parts_that_do_not_make_up_one_evaluation_exit_2_naming_the_file() {
    let run = classify_run();
    let dir = tempfile::tempdir().unwrap();
    let parts = eval_shards(
        run,
        "val",
        3,
        dir.path(),
        &[(0, 128), (128, 256), (256, 297)],
    );
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();

    let o = merge(&[parts[0].clone(), parts[2].clone()], &[]);
    assert_exit_2_naming(
        &o,
        &["shard 1/3 missing", &name(&parts[0]), &name(&parts[2])],
    );

    let again = dir.path().join("again.json");
    std::fs::copy(&parts[1], &again).unwrap();
    let o = merge(
        &[
            parts[0].clone(),
            parts[1].clone(),
            again.clone(),
            parts[2].clone(),
        ],
        &[],
    );
    assert_exit_2_naming(&o, &["again.json: shard 1/3 again", &name(&parts[1])]);

    // Shard 1 of another run of the same data and split: another checkpoint.
    let other = train_on_manifest(dir.path(), "other", DATA, "0.9", &["--seed", "7"]);
    let foreign = dir.path().join("foreign.json");
    let o = kestrel(&[
        "eval",
        "--run",
        s(&other),
        "--shard",
        "1/3",
        "--out",
        s(&foreign),
    ]);
    assert_ok(&o, "eval --shard of the other run");
    let o = merge(&[parts[0].clone(), foreign, parts[2].clone()], &[]);
    assert_exit_2_naming(&o, &["foreign.json: model is", &name(&parts[0])]);

    let out = dir.path().join("x.json");
    let o = kestrel(&["eval", "--run", s(run), "--shard", "2/2", "--out", s(&out)]);
    assert_exit_2_naming(&o, &["--shard 2/2: expected I/N with 0 ≤ I < N"]);
    let o = kestrel(&["eval", "--run", s(run), "--shard", "0/2"]);
    assert_exit_2_naming(&o, &["--out"]);
    let o = kestrel(&["eval", "--run", s(run), "--out", s(&out)]);
    assert_exit_2_naming(&o, &["--shard"]);
    let nowhere = dir.path().join("no/such/x.json");
    let o = kestrel(&[
        "eval",
        "--run",
        s(run),
        "--shard",
        "0/2",
        "--out",
        s(&nowhere),
    ]);
    assert_exit_2_naming(&o, &["--out", "does not exist"]);
    assert!(!out.exists());
    let o = merge(&[run.join("summary.json")], &[]);
    assert_exit_2_naming(&o, &["summary.json", "kestrel-part"]);
}

#[test]
fn pretrained_predict_shards_merge_and_other_weights_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kestrel-nn/tests/fixtures/import");
    let images: Vec<String> = (0..10u32)
        .map(|i| {
            let p = dir.path().join(format!("pic{i}.png"));
            solid_png(&p, 60 + i, 50, [(i * 25) as u8, 200, (250 - i * 20) as u8]);
            p.to_str().unwrap().to_string()
        })
        .collect();
    // Burn's batches of 8: shards of 8 and 2.
    let predict = |weights: &str, extra: &[&str]| {
        let w = fixtures.join(weights);
        let mut args = vec!["predict", "--arch", "mobilenet-v2", "--width", "0.1"];
        args.extend(["--weights", s(&w), "--engine", "burn"]);
        args.extend_from_slice(extra);
        args.extend(images.iter().map(String::as_str));
        kestrel(&args)
    };
    let part = |weights: &str, i: usize| {
        let out = dir.path().join(format!("{weights}-{i}.json"));
        let o = predict(weights, &["--shard", &format!("{i}/2"), "--out", s(&out)]);
        assert_ok(&o, "predict --shard");
        out
    };
    let parts = [
        part("mnv2_w010.safetensors", 0),
        part("mnv2_w010.safetensors", 1),
    ];
    let whole = predict("mnv2_w010.safetensors", &["--json"]);
    assert_ok(&whole, "predict");
    assert_eq!(merged_stdout(&parts, &["--json"]).as_bytes(), whole.stdout);
    assert_eq!(read_json(&parts[1])["first"], 8);
    // The same network from another file is another model file.
    let other = part("mnv2_w010.pth", 1);
    let o = merge(&[parts[0].clone(), other], &[]);
    assert_exit_2_naming(&o, &["mnv2_w010.pth-1.json: model is"]);
}
