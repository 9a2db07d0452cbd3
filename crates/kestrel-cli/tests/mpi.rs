//! Data-parallel training over MPI (`mpirun -np 2 kestrel train …`, the `mpi` feature): two
//! processes with half the batch each against one process with the whole batch, a default run
//! that evaluates and resumes, and a process killed mid-run. Each test says why it is skipped
//! when `mpirun` is missing.
#![cfg(feature = "mpi")]

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use common::{read_jsonl, run_json};
use kestrel_train::{run_dir, Checkpoint};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `mpirun -np N kestrel ARGS`, one thread per process, or `None` (with the reason printed) when
/// Open MPI's launcher is not installed.
fn mpirun(n: usize, extra: &[&str], args: &[&str]) -> Option<Command> {
    launch(n, extra, env!("CARGO_BIN_EXE_kestrel"), args)
}

/// `mpirun EXTRA -np N PROGRAM ARGS` ([`mpirun`] with any program).
fn launch(n: usize, extra: &[&str], program: &str, args: &[&str]) -> Option<Command> {
    let found = Command::new("mpirun").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: mpirun not found (install Open MPI: apt-get install openmpi-bin)");
        return None;
    }
    let mut c = Command::new("mpirun");
    c.args([
        "--oversubscribe",
        "-x",
        "RAYON_NUM_THREADS",
        "-np",
        &n.to_string(),
    ])
    .args(extra)
    .arg(program)
    .args(args)
    .env("RAYON_NUM_THREADS", "1")
    // Root in containers and CI; shared memory without the ptrace-based single copy.
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    Some(c)
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every float of the model in `run`'s `last` checkpoint (parameters and BatchNorm statistics),
/// one vector per tensor, in module order.
fn model_values(run: &Path) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0
                .push(p.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let ckpt = Checkpoint::load(&run_dir::last_checkpoint(run)).unwrap();
    let model = ckpt.model(&Device::flex()).unwrap();
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// The largest difference between matching tensors of two runs, relative to the tensor's largest
/// magnitude (at least 1: the kernels' tests' convention, so that parameters still near 0, such
/// as β after a few small steps, are compared on the scale of the weights).
fn largest_relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (model_values(a), model_values(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            let scale = x.iter().chain(y).fold(1f32, |m, v| m.max(v.abs()));
            let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            (diff / scale) as f64
        })
        .fold(0.0, f64::max)
}

/// A 5-step ResNet-18 run (batch 16, SGD with a small learning rate): `n` processes into
/// `dir/name`. The steps are small because training a ReLU network amplifies any difference of
/// rounding (the two-process sums are reassociated): a value that lands on the other side of 0
/// switches its ReLU's gradient, and at larger rates the runs drift apart within a few steps.
/// The BatchNorm running statistics, which a wrong synchronisation moves by percents, are
/// compared too; the gradients' own synchronisation is tested in kestrel-nn against the whole
/// batch.
fn five_steps(dir: &Path, name: &str, n: usize, extra: &[&str]) -> Option<PathBuf> {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--data",
        "shapes:n=120,size=64",
        "--model",
        "resnet18",
        "--resolution",
        "64",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "0.00001",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = if n == 1 {
        common::kestrel(&args)
    } else {
        mpirun(n, &[], &args)?.output().unwrap()
    };
    assert_ok(&o, name);
    assert_eq!(
        read_jsonl(&out.join(run_dir::STEPS)).len(),
        5,
        "{name}: steps"
    );
    Some(out)
}

/// With `--sync-bn` (and no dropout: ResNet has none), 2 processes × 8 images take the same 5
/// steps as 1 process × 16: every parameter and BatchNorm statistic within 1e-5 (relative to
/// its tensor's largest value; the sums are reassociated, so not bit for bit).
#[test]
fn two_processes_with_sync_bn_equal_one_with_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let one = five_steps(dir.path(), "one", 1, &[]).unwrap();
    let Some(two) = five_steps(dir.path(), "two", 2, &["--sync-bn"]) else {
        return;
    };
    let d = largest_relative_difference(&one, &two);
    eprintln!("--sync-bn: largest relative difference after 5 steps {d:e}");
    assert!(d < 1e-5, "largest relative difference {d:e}");
    let summary = common::read_json(&two.join(run_dir::SUMMARY));
    assert_eq!(summary["replicas"]["count"], 2);
    assert_eq!(summary["replicas"]["sync_bn"], true);
}

/// Without `--sync-bn` each process normalises with its own 8 images' statistics, as PyTorch's
/// DDP does: the runs differ, and only through BatchNorm — with BatchNorm frozen (running
/// statistics, no batch statistics) 2 processes equal 1 again.
#[test]
fn without_sync_bn_only_batch_norm_makes_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let one = five_steps(dir.path(), "one", 1, &[]).unwrap();
    let Some(two) = five_steps(dir.path(), "two", 2, &[]) else {
        return;
    };
    let d = largest_relative_difference(&one, &two);
    eprintln!("local BatchNorm: largest relative difference after 5 steps {d:e}");
    assert!(d > 1e-3, "local BatchNorm statistics should differ: {d:e}");
    let one = five_steps(dir.path(), "one-frozen", 1, &["--freeze-bn"]).unwrap();
    let two = five_steps(dir.path(), "two-frozen", 2, &["--freeze-bn"]).unwrap();
    let d = largest_relative_difference(&one, &two);
    eprintln!("frozen BatchNorm: largest relative difference after 5 steps {d:e}");
    assert!(
        d < 1e-5,
        "frozen BatchNorm: largest relative difference {d:e}"
    );
}

/// The default `shapes` recipe on 2 processes reaches val accuracy ≥ 0.95; its folder (written
/// by process 0 alone) evaluates, and `--resume` continues it on 2 processes.
#[test]
fn a_two_process_default_run_trains_evaluates_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let Some(mut c) = mpirun(
        2,
        &[],
        &["train", "--data", "shapes", "--out", out_s, "--json"],
    ) else {
        return;
    };
    let o = c.output().unwrap();
    assert_ok(&o, "train");
    // Process 0 alone prints the summary.
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let acc = summary["val"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.95, "val accuracy {acc}");
    assert_eq!(summary["replicas"]["count"], 2);
    let eval = run_json(&["eval", "--run", out_s, "--json"]);
    assert_eq!(eval["accuracy"].as_f64(), Some(acc), "{eval}");
    let epochs = summary["epochs_run"].as_u64().unwrap() + 1;
    let more = epochs.to_string();
    let o = mpirun(
        2,
        &[],
        &["train", "--out", out_s, "--resume", "--epochs", &more],
    )
    .unwrap()
    .output()
    .unwrap();
    assert_ok(&o, "resume");
    let lines = read_jsonl(&out.join(run_dir::METRICS));
    assert_eq!(lines.len() as u64, epochs, "one metrics line per epoch");
}

/// A task that cannot train on several processes yet (multitask) says so, exit 2 on each.
#[test]
fn multitask_refuses_several_processes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "train",
        "--task",
        "multitask",
        "--data",
        "shapes:n=64",
        "--epochs",
        "1",
    ];
    let Some(mut c) = mpirun(2, &[], &args) else {
        return;
    };
    let o = c.args(["--out", out.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("task `multitask` cannot train on several processes"),
        "{err}"
    );
}

/// A process killed during training ends the job: the survivor's wait for it times out
/// (`--collective-timeout 5`) and it exits with 1, saying which exchange failed. (mpirun's own
/// reaction to a dead process, killing the rest, is switched off with `--enable-recovery` so
/// that the timeout is what is tested.)
#[test]
fn a_killed_process_stops_the_others_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let codes = dir.path().join("codes");
    let script = format!(
        "{} train --data shapes:n=4000 --resolution 32 --width 0.25 --epochs 50 --collective-timeout 5 --out {} 2>>{}/err.$OMPI_COMM_WORLD_RANK; echo $? > {}/code.$OMPI_COMM_WORLD_RANK",
        env!("CARGO_BIN_EXE_kestrel"),
        out.display(),
        codes.display(),
        codes.display()
    );
    std::fs::create_dir_all(&codes).unwrap();
    let Some(mut job) = launch(2, &["--enable-recovery"], "sh", &["-c", &script]) else {
        return;
    };
    let mut job = job
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both are training (a step has been taken), then kill process 1.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no training started"
        );
        std::thread::sleep(Duration::from_millis(200));
        if let Some(pid) = kestrel_process(&out, "1") {
            if std::fs::read_to_string(codes.join("err.0")).is_ok_and(|e| e.contains("training")) {
                std::thread::sleep(Duration::from_secs(3));
                break pid;
            }
        }
    };
    // SAFETY: sending SIGKILL to a process id this test found running kestrel.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the job did not end after a process was killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let waited = killed.elapsed();
    let code0 = std::fs::read_to_string(codes.join("code.0")).unwrap();
    let err0 = std::fs::read_to_string(codes.join("err.0")).unwrap();
    assert_eq!(
        code0.trim(),
        "1",
        "survivor's exit code ({status:?}); stderr:\n{err0}"
    );
    assert!(
        err0.contains("replica 0 of 2") && err0.contains("no answer within 5 s"),
        "{err0}"
    );
    assert!(waited < Duration::from_secs(30), "ended after {waited:?}");
}

/// The pid of the `kestrel train` process of MPI rank `rank` writing to `out`, from `/proc`.
fn kestrel_process(out: &Path, rank: &str) -> Option<i32> {
    let want_rank = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.starts_with(env!("CARGO_BIN_EXE_kestrel"))
            || !cmdline.contains(out.to_str().unwrap())
        {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|&b| b == 0)
            .any(|v| v == want_rank.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}
