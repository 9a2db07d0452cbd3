//! End-to-end tests of the `kestrel` binary: a tiny training run, then eval and predict on it, and
//! the exit codes and messages of bad input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{
    assert_exit_2_naming, assert_ok, fresh_tiny_run, json_of, kestrel, read_json, read_jsonl,
    read_text, run_json, solid_png, stderr, train_tiny,
};

/// One small run shared by the tests: 2 epochs of a thin MobileNetV2 on 32 px shapes.
fn tiny_run() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let (dir, run, summary) = fresh_tiny_run("shapes:n=96,size=32,classes=3,seed=1", "2");
        assert_eq!(summary["epochs_run"], 2);
        // Checked here: the eval test, which may run at any time after this, flips it.
        assert_eq!(summary["test_evaluated"], false);
        (dir, run)
    });
    run
}

#[test]
fn train_writes_the_run_folder_of_the_spec() {
    let run = tiny_run();
    for f in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let summary = read_json(&run.join("summary.json"));
    for key in [
        "task",
        "model",
        "best_epoch",
        "epochs_run",
        "val",
        "test_evaluated",
        "train_seconds",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(summary["task"], "classify");
    // `test_evaluated` is checked in `tiny_run`: `eval --split test` in another test may have
    // set it by now.
    assert!(summary["test_evaluated"].is_boolean());
    let acc = summary["val"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(summary["val"]["macro_f1"].is_number());
    let lines = read_jsonl(&run.join("metrics.jsonl"));
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["epoch"], i + 1);
        for key in ["train_loss", "val", "lr", "seconds"] {
            assert!(l.get(key).is_some(), "metrics.jsonl lacks {key}");
        }
    }
    // The resolved configuration reads back.
    let cfg = read_text(&run.join("config.toml"));
    assert!(cfg.contains("resolution = 32"), "{cfg}");
}

#[test]
fn eval_json_has_the_spec_fields_and_test_is_recorded() {
    let run = tiny_run().to_str().unwrap().to_string();
    let v = run_json(&["eval", "--run", &run, "--json"]);
    for key in [
        "split",
        "accuracy",
        "macro_f1",
        "per_class",
        "roc_auc_ovr_macro",
        "confusion",
    ] {
        assert!(v.get(key).is_some(), "eval JSON lacks {key}: {v}");
    }
    assert_eq!(v["split"], "val");
    let per_class = v["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 3);
    for key in ["class", "precision", "recall", "f1", "support"] {
        assert!(per_class[0].get(key).is_some(), "per_class lacks {key}");
    }
    // Confusion rows sum to the supports.
    let confusion = v["confusion"].as_array().unwrap();
    for (row, c) in confusion.iter().zip(per_class) {
        let sum: u64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .sum();
        assert_eq!(sum, c["support"].as_u64().unwrap());
    }
    run_json(&["eval", "--run", &run, "--split", "test", "--json"]);
    let summary = read_json(&Path::new(&run).join("summary.json"));
    assert_eq!(summary["test_evaluated"], true);
}

#[test]
fn predict_json_lists_ranked_classes_and_corrupt_images_exit_2() {
    let run = tiny_run().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("img.png");
    solid_png(&good, 40, 30, [200, 40, 40]);
    let v = run_json(&[
        "predict",
        "--run",
        &run,
        "--top-k",
        "2",
        "--json",
        good.to_str().unwrap(),
    ]);
    let first = &v.as_array().unwrap()[0];
    assert_eq!(first["image"], good.to_str().unwrap());
    let top = first["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    for key in ["class", "label", "prob"] {
        assert!(top[0].get(key).is_some(), "top lacks {key}");
    }
    assert!(top[0]["prob"].as_f64().unwrap() >= top[1]["prob"].as_f64().unwrap());

    let corrupt = dir.path().join("corrupt.png");
    let mut bytes = std::fs::read(&good).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&corrupt, bytes).unwrap();
    let o = kestrel(&["predict", "--run", &run, corrupt.to_str().unwrap()]);
    assert_exit_2_naming(&o, &["corrupt.png"]);
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn bad_input_exits_2_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = kestrel(&[
        "train",
        "--model",
        "vgg16",
        "--out",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &["vgg16", "mobilenet-v2"]);

    let o = kestrel(&["train", "--data", "shapes:classes=0"]);
    assert_exit_2_naming(&o, &["classes"]);

    // --out under a regular file cannot be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let o = kestrel(&[
        "train",
        "--data",
        "shapes:n=40",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &["a-file"]);

    let o = kestrel(&[
        "eval",
        "--run",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &["nowhere"]);

    // Unknown flags are usage errors.
    let o = kestrel(&["train", "--epochz", "3"]);
    assert_exit_2_naming(&o, &["--epochz"]);
}

#[test]
fn metrics_scores_a_csv_with_the_spec_fields_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pred.csv");
    // scikit-learn: roc_auc_score([0,0,1,1,0,1], [0.1,0.4,0.35,0.8,0.2,0.9]) = 0.8888...;
    // average_precision_score = 0.9166...; at threshold 0.5: precision 1, recall 2/3.
    std::fs::write(
        &csv,
        "y_true,score\n0,0.1\n0,0.4\n1,0.35\n1,0.8\n0,0.2\n1,0.9\n",
    )
    .unwrap();
    let plots = dir.path().join("plots");
    let v = run_json(&[
        "metrics",
        "--input",
        csv.to_str().unwrap(),
        "--json",
        "--plots",
        plots.to_str().unwrap(),
    ]);
    // The fields of the contract (docs/cli.md), binary and multiclass ones alike.
    let fields = "n classes accuracy precision recall f1 tpr fpr roc_auc average_precision pr_auc \
                  confusion per_class roc_auc_ovr_macro roc_auc_ovr_weighted";
    for key in fields.split_whitespace() {
        assert!(v.get(key).is_some(), "metrics JSON lacks {key}: {v}");
    }
    assert_eq!(v["n"], 6);
    assert!(
        (v["roc_auc"].as_f64().unwrap() - 8.0 / 9.0).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (v["average_precision"].as_f64().unwrap() - 11.0 / 12.0).abs() < 1e-12,
        "{v}"
    );
    assert!((v["precision"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert!((v["recall"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!(v["roc_auc_ovr_macro"].is_null());
    for f in ["roc.png", "pr.png", "confusion.png"] {
        let bytes = std::fs::read(plots.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{f} is not a PNG");
    }

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "y_true,score\n0,0.1\n1,abc\n").unwrap();
    let o = kestrel(&["metrics", "--input", bad.to_str().unwrap()]);
    assert_exit_2_naming(&o, &["bad.csv", "line"]);
}

#[test]
fn a_split_manifest_fixes_the_splits_of_training_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("split.json");
    let data = "shapes:n=60,size=32,classes=2,seed=4";
    let o = kestrel(&[
        "split",
        "--data",
        data,
        "--val",
        "0.3",
        "--test",
        "0.2",
        "--seed",
        "9",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_ok(&o, "split");
    let m = read_json(&manifest);
    let n_val = m["val"].as_array().unwrap().len();
    assert_eq!(n_val, 18, "30 % of 30 per class, twice: {m}");
    let run = dir.path().join("run");
    let o = train_tiny(
        data,
        &run,
        &[
            "--split-manifest",
            manifest.to_str().unwrap(),
            "--epochs",
            "1",
        ],
    );
    assert_ok(&o, "train");
    let v = run_json(&["eval", "--run", run.to_str().unwrap(), "--json"]);
    let support: u64 = v["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["support"].as_u64().unwrap())
        .sum();
    assert_eq!(support as usize, n_val);

    let o = kestrel(&[
        "train",
        "--split-manifest",
        dir.path().join("none.json").to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &["none.json"]);
}

#[test]
fn train_balances_interleaves_and_augments_on_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // Classes of about 45 %, 32 % and 23 %: equal labels can stand 2 apart.
    let data = "shapes:n=96,size=32,classes=3,imbalance=2,seed=1";
    let o = train_tiny(
        data,
        &run,
        &[
            "--balance",
            "weights",
            "--interleave",
            "2",
            "--augment",
            "standard",
            "--epochs",
            "1",
            "--json",
        ],
    );
    let summary = json_of(&o, "train");
    assert_eq!(summary["epochs_run"], 1);
    let config = read_text(&run.join("config.toml"));
    for line in [
        "balance = \"weights\"",
        "interleave = 2",
        "augment = \"standard\"",
    ] {
        assert!(config.contains(line), "config.toml lacks {line}:\n{config}");
    }
    // The written config reproduces the run's settings.
    let again = dir.path().join("again");
    let o = kestrel(&[
        "train",
        "--config",
        run.join("config.toml").to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_ok(&o, "train --config");
    let a = read_text(&again.join("config.toml"));
    assert_eq!(a, config);

    // No order keeps 3 classes 5 apart.
    let o = kestrel(&[
        "train",
        "--data",
        data,
        "--interleave",
        "5",
        "--out",
        dir.path().join("r5").to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &["interleave"]);
    assert!(!dir.path().join("r5").exists(), "nothing written");
    for (flag, value) in [("--balance", "smoothe"), ("--augment", "heavy")] {
        let o = kestrel(&["train", flag, value]);
        assert_exit_2_naming(&o, &[value, &flag[2..]]);
    }
}

#[test]
fn skip_bad_leaves_out_a_truncated_png_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    for (c, class) in ["circle", "square"].iter().enumerate() {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..10u8 {
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                let v = if c == 0 { x * 16 } else { y * 16 } as u8;
                image::Rgb([v, i * 20, 255 - v])
            });
            img.save(root.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    // A PNG cut in half.
    let whole = std::fs::read(root.join("circle/0.png")).unwrap();
    std::fs::write(root.join("circle/broken.png"), &whole[..whole.len() / 2]).unwrap();
    // No test split, so that every item is read by training. Solid-colour images give BatchNorm
    // almost no variance, so the first gradients can pass the exploding-gradient alarm, which is
    // not what this test is about: its threshold is raised.
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "val_fraction = 0.2\ntest_fraction = 0.0\nexplode_above = 1e9\n",
    )
    .unwrap();
    let data = format!("folder:{}", root.display());
    let train = |extra: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut args = vec![
            "train",
            "--config",
            config.to_str().unwrap(),
            "--data",
            &data,
            "--resolution",
            "32",
            "--width",
            "0.25",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        kestrel(&args)
    };
    let o = train(&[], "strict");
    assert_exit_2_naming(&o, &["broken.png"]);

    let o = train(&["--skip-bad"], "lenient");
    assert_ok(&o, "train --skip-bad");
    let err = stderr(&o);
    assert!(err.contains("skipped 1 unreadable item(s) of 21"), "{err}");
    assert!(err.contains("broken.png"), "{err}");
    let config = read_text(&dir.path().join("lenient/config.toml"));
    assert!(config.contains("skip_bad = true"), "{config}");
}

/// `--augment auto` (the default) resolves by the data and `config.toml` records the choice:
/// quarter turns for `shapes`, a horizontal flip only for an image folder.
#[test]
fn the_default_augmentation_is_resolved_by_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pics");
    for (class, base) in [("dark", 30u32), ("light", 160)] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..12u32 {
            // Noisy images (a solid one has no variance for BatchNorm to normalise).
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let h = (x * 7919 + y * 104_729 + i * 1_299_709).wrapping_mul(2_654_435_761);
                let v = (base + (h >> 25)) as u8;
                image::Rgb([v, v / 2 + 40, 255 - v])
            });
            img.save(folder.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let data = format!("folder:{}", folder.display());
    for (data, want) in [(common::SMALL_SHAPES, "dihedral"), (data.as_str(), "hflip")] {
        let run = dir.path().join(want);
        let o = common::train_tiny(data, &run, &["--epochs", "1"]);
        assert_ok(&o, data);
        let config = common::read_text(&run.join("config.toml"));
        assert!(
            config.contains(&format!("augment = \"{want}\"")),
            "{data}: {config}"
        );
    }
}

/// The flags of runs over several processes: a timeout that is not a positive number of seconds
/// is exit 2 naming the flag, and a kestrel built without MPI that an MPI launcher started as
/// one of several processes says how to build one with it (exit 2), before reading any data.
#[test]
fn several_process_flags_are_checked() {
    let o = kestrel(&["train", "--collective-timeout", "0", "--epochs", "1"]);
    assert_exit_2_naming(&o, &["`--collective-timeout`", "seconds > 0"]);
    #[cfg(not(feature = "mpi"))]
    {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let o = common::command()
            .args(["train", "--epochs", "1", "--out", out.to_str().unwrap()])
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .output()
            .unwrap();
        assert_exit_2_naming(&o, &["one of 2 MPI processes", "--features mpi"]);
        assert!(!out.exists(), "no run folder");
    }
}
