//! `kestrel bench train` end to end: the JSON fields of the CLI contract, with kestrel's training
//! kernels and with `KESTREL_PLAIN_OPS=1`, for a classifier and an FCN segmenter, and bad flags
//! exiting 2.

use std::process::Output;

mod common;
use common::{assert_exit_2_naming, check_timing, command, json_of};

/// `kestrel bench train` of MobileNetV2 at width 0.25 and 32 px.
fn bench_train(extra: &[&str], plain: bool) -> Output {
    let mut args = vec![
        "--model",
        "mobilenet-v2",
        "--width",
        "0.25",
        "--resolution",
        "32",
        "--warmup",
        "1",
    ];
    args.extend_from_slice(extra);
    bench_train_args(&args, plain)
}

/// `kestrel bench train ARGS --threads 1`.
fn bench_train_args(args: &[&str], plain: bool) -> Output {
    let mut cmd = command();
    cmd.args(["bench", "train", "--threads", "1"]).args(args);
    if plain {
        cmd.env("KESTREL_PLAIN_OPS", "1");
    } else {
        cmd.env_remove("KESTREL_PLAIN_OPS");
    }
    cmd.output().expect("the kestrel binary runs")
}

#[test]
fn json_has_the_spec_fields_with_and_without_the_custom_kernels() {
    for plain in [false, true] {
        let v = json_of(
            &bench_train(&["--batch", "2", "--json"], plain),
            "bench train",
        );
        check_timing(&v, "mobilenet-v2", 2, 32);
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (extra, flag) in [
        (&["--batch", "1"][..], "--batch"),
        (&["--batch", "2", "--runs", "2"][..], "--runs"),
        (&["--batch", "2", "--classes", "1"][..], "--classes"),
    ] {
        let o = bench_train(extra, false);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(flag), "{extra:?}: {e}");
    }
}

/// FCN-8s on MobileNetV2 (width 0.25, 64 px, the fewest timed steps, no warm-up) at output
/// stride 32 with bilinear upsampling and at 8 (dilated) with transposed convolutions.
fn bench_fcn(extra: &[&str]) -> Output {
    let mut args = vec![
        "--model",
        "fcn8s-mobilenet-v2",
        "--width",
        "0.25",
        "--resolution",
        "64",
        "--batch",
        "2",
        "--classes",
        "3",
        "--warmup",
        "0",
        "--runs",
        "10",
    ];
    args.extend_from_slice(extra);
    bench_train_args(&args, false)
}

#[test]
fn a_segmenter_step_runs_and_reports_the_spec_fields() {
    for extra in [
        &["--json"][..],
        &[
            "--json",
            "--output-stride",
            "8",
            "--upsampler",
            "transposed",
        ],
    ] {
        let v = json_of(&bench_fcn(extra), "bench train fcn8s");
        check_timing(&v, "fcn8s-mobilenet-v2", 2, 64);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "batch",
                "median_ms",
                "min_ms",
                "model",
                "resolution",
                "threads"
            ]
        );
    }
}

#[test]
fn bad_segmenter_flags_exit_2_naming_the_flag() {
    for (extra, flag) in [
        (&["--output-stride", "12"][..], "--output-stride"),
        (&["--upsampler", "nope"][..], "--upsampler"),
    ] {
        assert_exit_2_naming(&bench_fcn(extra), &[flag]);
    }
    // A classifier has neither setting.
    for (extra, flag) in [
        (
            &["--batch", "2", "--output-stride", "16"][..],
            "--output-stride",
        ),
        (
            &["--batch", "2", "--upsampler", "transposed"][..],
            "--upsampler",
        ),
    ] {
        assert_exit_2_naming(&bench_train(extra, false), &[flag]);
    }
}
