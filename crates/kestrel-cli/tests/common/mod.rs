//! What the end-to-end tests share: running the `kestrel` binary, reading its output and the
//! files it writes, and training the tiny runs the tests work on.
//!
//! Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `kestrel` binary built for these tests, to add arguments and environment to.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
}

/// Runs the `kestrel` binary built for these tests with `args`.
pub fn kestrel(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("the kestrel binary runs")
}

/// The process's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `o` succeeded, naming `what` and showing its stderr otherwise.
#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: {}", stderr(o));
}

/// Asserts that `o` succeeded and reads its stdout as one JSON document.
#[track_caller]
pub fn json_of(o: &Output, what: &str) -> Value {
    assert_ok(o, what);
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON document")
}

/// Runs `kestrel args` and reads its stdout as one JSON document; it must succeed.
#[track_caller]
pub fn run_json(args: &[&str]) -> Value {
    json_of(&kestrel(args), &args.join(" "))
}

/// Asserts exit code 2 (bad input) and a message on stderr that names each of `needles`.
#[track_caller]
pub fn assert_exit_2_naming(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle} not named: {err}");
    }
}

/// The text of a file the binary wrote.
#[track_caller]
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON file the binary wrote.
#[track_caller]
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_text(path)).unwrap()
}

/// A JSON-lines file the binary wrote, one value per line.
#[track_caller]
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    read_text(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes a `w` × `h` PNG of one colour to `path`.
pub fn solid_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

/// The small data most tiny runs train on: 48 `shapes` images of 32 px, 3 classes.
pub const SMALL_SHAPES: &str = "shapes:n=48,size=32,classes=3,seed=2";

/// The tiny model every end-to-end run trains: a width of 0.25 at 32 px, batches of 8 (the task's
/// default model unless `--model` says otherwise).
pub const TINY: [&str; 6] = ["--resolution", "32", "--width", "0.25", "--batch-size", "8"];

/// Runs `kestrel train` of the [`TINY`] model on `data` into `out`, with `extra` flags (the task,
/// the epochs, `--json`, ...).
pub fn train_tiny(data: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--data", data];
    args.extend(TINY);
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    kestrel(&args)
}

/// Trains a [`TINY`] classifier on `data` for `epochs` into a new temporary folder, with
/// `--json`; returns the folder (the run lives as long as it does), the run and its summary.
#[track_caller]
pub fn fresh_tiny_run(data: &str, epochs: &str) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train_tiny(data, &run, &["--epochs", epochs, "--json"]);
    let summary = json_of(&o, "train");
    (dir, run, summary)
}

/// Checks the fields `kestrel bench infer` and `kestrel bench train` share: `model`, `batch`
/// and `resolution` as asked, one thread, and 0 < `min_ms` ≤ `median_ms`. Returns the median.
#[track_caller]
pub fn check_timing(v: &Value, model: &str, batch: u64, resolution: u64) -> f64 {
    assert_eq!(v["model"], model);
    assert_eq!(v["batch"], batch);
    assert_eq!(v["resolution"], resolution);
    assert_eq!(v["threads"], 1);
    let (min, median) = (
        v["min_ms"].as_f64().unwrap(),
        v["median_ms"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= median, "{v}");
    median
}
