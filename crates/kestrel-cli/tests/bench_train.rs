//! `kestrel bench train` end to end: the JSON fields of the CLI contract, with kestrel's training
//! kernels and with `KESTREL_PLAIN_OPS=1`, and bad flags exiting 2.

use std::process::Output;

mod common;
use common::{check_timing, command, json_of};

fn bench_train(extra: &[&str], plain: bool) -> Output {
    let mut cmd = command();
    cmd.args([
        "bench",
        "train",
        "--model",
        "mobilenet-v2",
        "--width",
        "0.25",
        "--resolution",
        "32",
        "--threads",
        "1",
        "--warmup",
        "1",
    ])
    .args(extra);
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
