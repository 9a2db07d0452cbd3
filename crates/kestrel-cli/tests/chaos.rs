//! Chaos: a training run killed with SIGKILL at random moments — during a step, while a
//! checkpoint or a log is being written, while the report is — always leaves a run folder that
//! `kestrel eval` reads and that `--resume` continues to exactly the final state of an
//! uninterrupted run; and a checkpoint write that fails stops the run with exit 1 and the
//! previous checkpoint intact.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{command, kestrel, stderr, SMALL_SHAPES, TINY};

/// Kills in the chaos test.
const KILLS: usize = 20;
/// Epochs of every run here.
const EPOCHS: &str = "10";

/// The arguments of the run, into `out`, with `extra` flags.
fn train_args(out: &Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["train", "--data", SMALL_SHAPES];
    args.extend(TINY);
    args.extend(["--epochs", epochs, "--out", out.to_str().unwrap(), "--json"]);
    args.extend_from_slice(extra);
    args.into_iter().map(String::from).collect()
}

/// Starts `kestrel train` in the background, its stderr going to `log`.
fn spawn(args: &[String], log: &Path) -> Child {
    command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the kestrel binary runs")
}

/// A small deterministic generator of kill delays (a 64-bit LCG, the top bits as a fraction).
struct Delays(u64);

impl Delays {
    fn next(&mut self, max: Duration) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        max.mul_f64((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// What must come out the same however the run was interrupted: every epoch's line of
/// `metrics.jsonl` without its timing, `steps.jsonl`, the summary's results, and the best
/// checkpoint's weights, byte for byte as its exported plan (the checkpoint file itself holds
/// Burn's random parameter ids, which differ from process to process).
fn final_state(run: &Path) -> (Vec<serde_json::Value>, String, serde_json::Value, Vec<u8>) {
    let metrics = common::read_jsonl(&run.join("metrics.jsonl"))
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect();
    let steps = common::read_text(&run.join("steps.jsonl"));
    let s = common::read_json(&run.join("summary.json"));
    let summary = serde_json::json!([s["best_epoch"], s["epochs_run"], s["val"]]);
    let plan = run.with_extension("plan");
    let o = kestrel(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--format",
        "plan",
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "export: {}", stderr(&o));
    let best = std::fs::read(&plan).unwrap();
    (metrics, steps, summary, best)
}

/// Whether the run in `run` is complete: its summary after every epoch (its report may be
/// missing, if the kill came while it was written).
fn complete(run: &Path) -> bool {
    let summary = std::fs::read(run.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    summary.is_some_and(|s| s["epochs_run"] == EPOCHS.parse::<u64>().unwrap())
}

/// The files being written in the run folder, its checkpoints and plots: the destinations of
/// the temporary files (`.<name>.tmp-…`) there.
fn being_written(run: &Path) -> Vec<String> {
    ["", "checkpoints", "plots"]
        .iter()
        .filter_map(|d| std::fs::read_dir(run.join(d)).ok())
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let (dest, _) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
            Some(dest.to_string())
        })
        .collect()
}

/// How many temporary files there are (see [`being_written`]).
fn temporaries(run: &Path) -> usize {
    being_written(run).len()
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let started = Instant::now();
    let o = kestrel(
        &train_args(&reference, EPOCHS, &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let whole = started.elapsed();
    assert!(o.status.success(), "uninterrupted run: {}", stderr(&o));
    let want = final_state(&reference);

    let seed = std::env::var("KESTREL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261204u64);
    let mut delays = Delays(seed);
    let (mut kills, mut chains) = (0, 0);
    let mut during_writes = std::collections::BTreeMap::<String, usize>::new();
    while kills < KILLS {
        chains += 1;
        let run = dir.path().join(format!("chain-{chains}"));
        let log = dir.path().join(format!("chain-{chains}.log"));
        let mut child = spawn(&train_args(&run, EPOCHS, &[]), &log);
        // The first kill comes once there is a checkpoint: before it there is no run yet.
        while !run.join("checkpoints/last.ckpt").exists() {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let status = loop {
            // Every other kill lands at a random moment; the others, after a random moment, as
            // soon as a given file is being written (its temporary file appears): the `last`
            // checkpoint, a log, a plot of the report, the report page, in turn. So checkpoint, log
            // and report writes are hit as well as steps.
            let at_a_write = kills % 2 == 1;
            let target = ["last.ckpt", "metrics.jsonl", "loss.png", "report.html"][kills / 2 % 4];
            let deadline = Instant::now() + delays.next(whole / 2);
            let mut exited = None;
            while exited.is_none() {
                let now = Instant::now();
                if now >= deadline
                    && (!at_a_write || being_written(&run).iter().any(|f| f == target))
                {
                    break;
                }
                if now >= deadline + whole {
                    break; // No write came: kill wherever the run is.
                }
                exited = child.try_wait().unwrap();
                if !at_a_write || now < deadline {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            if let Some(status) = exited.or(child.try_wait().unwrap()) {
                break status;
            }
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            for file in being_written(&run) {
                *during_writes.entry(file).or_insert(0) += 1;
            }
            let run_s = run.to_str().unwrap();
            let o = kestrel(&["eval", "--run", run_s, "--json"]);
            assert!(
                o.status.success(),
                "eval after kill {kills}: {}",
                stderr(&o)
            );
            if complete(&run) {
                // Killed after the summary, while the report was written or the process exited:
                // nothing to resume; `kestrel report` writes the report again (as the run's
                // warning says when writing it fails).
                let o = kestrel(&["report", "--run", run_s]);
                assert!(
                    o.status.success(),
                    "report after kill {kills}: {}",
                    stderr(&o)
                );
                break std::process::ExitStatus::default();
            }
            let resume = train_args(&run, EPOCHS, &["--resume"]);
            if kills == KILLS {
                // The last resume runs to the end.
                let o = kestrel(&resume.iter().map(String::as_str).collect::<Vec<_>>());
                break o.status;
            }
            child = spawn(&resume, &log);
        };
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            status.success(),
            "chain {chains} ended with {status}: {log_text}"
        );
        assert_eq!(temporaries(&run), 0, "chain {chains} left temporary files");
        assert!(run.join("report.html").is_file(), "chain {chains}");
        let got = final_state(&run);
        assert_eq!(got.0, want.0, "chain {chains}: metrics.jsonl");
        assert_eq!(got.1, want.1, "chain {chains}: steps.jsonl");
        assert_eq!(got.2, want.2, "chain {chains}: summary.json");
        assert!(got.3 == want.3, "chain {chains}: the best weights differ");
    }
    eprintln!(
        "chaos: {kills} kills over {chains} run(s) (seed {seed}); files being written at the \
         kills: {during_writes:?}; every run resumed to the uninterrupted result"
    );
}

/// Runs `kestrel args` with its file-size limit set to `bytes` (RLIMIT_FSIZE).
fn kestrel_file_size_limited(args: &[String], bytes: u64) -> Output {
    let mut cmd = command();
    cmd.args(args);
    // SAFETY: the closure runs in the child between fork and exec and only calls `setrlimit`,
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.output().expect("the kestrel binary runs")
}

/// A one-epoch run and its `last` checkpoint's bytes.
fn one_epoch_run(dir: &Path) -> (PathBuf, Vec<u8>) {
    let run = dir.join("run");
    let o = kestrel(
        &train_args(&run, "1", &[])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let last = std::fs::read(run.join("checkpoints/last.ckpt")).unwrap();
    (run, last)
}

/// After a failed checkpoint write: exit 1 naming the file, the `last` checkpoint as it was,
/// no temporary file, and a run that `eval` reads and `--resume` continues.
#[track_caller]
fn assert_failed_write_left_the_run_intact(o: &Output, run: &Path, last: &[u8]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(".ckpt") && err.contains("intact"), "{err}");
    assert_eq!(
        std::fs::read(run.join("checkpoints/last.ckpt")).unwrap(),
        last
    );
    assert_eq!(temporaries(run), 0);
    let o = kestrel(&["eval", "--run", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resume = train_args(run, "2", &["--resume"]);
    let o = kestrel(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_checkpoint_write_past_the_file_size_limit_stops_with_the_last_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (run, last) = one_epoch_run(dir.path());
    // 100 kB: the logs fit, a checkpoint (over 1 MB) does not.
    let resume = train_args(&run, "2", &["--resume"]);
    let o = kestrel_file_size_limited(&resume, 100_000);
    assert_failed_write_left_the_run_intact(&o, &run, &last);
}

#[test]
fn a_checkpoint_folder_made_read_only_stops_with_the_last_checkpoint_intact() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: `geteuid` only reads the process's credentials.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: running as root, which writes into read-only folders anyway");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (run, last) = one_epoch_run(dir.path());
    let ckpts = run.join("checkpoints");
    std::fs::set_permissions(&ckpts, std::fs::Permissions::from_mode(0o555)).unwrap();
    let resume = train_args(&run, "2", &["--resume"]);
    let o = kestrel(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::set_permissions(&ckpts, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_failed_write_left_the_run_intact(&o, &run, &last);
}
