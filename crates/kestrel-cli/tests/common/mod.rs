//! What the end-to-end tests share: running the `kestrel` binary and reading its stderr.

use std::process::{Command, Output};

/// Runs the `kestrel` binary built for these tests with `args`.
pub fn kestrel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .output()
        .expect("the kestrel binary runs")
}

/// The process's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
