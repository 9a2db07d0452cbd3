//! What happens when kestrel panics: a panic is a kestrel bug, never the user's input, so it ends
//! the process with exit 1 and a message asking for a report, never Rust's default 101 (outside
//! the documented 0 / 1 / 2). A write to a closed pipe (`kestrel info --json | head`) is not a bug:
//! the reader has what it wanted, so kestrel exits 0 silently, as `cat` and `grep` users expect.

use std::panic::PanicHookInfo;

/// Installs the hook; call it first in `main`. It runs on whichever thread panicked (a rayon
/// worker too) and exits the whole process from there.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let message = payload_text(info);
        if is_closed_pipe(&message) {
            std::process::exit(0);
        }
        let location = info
            .location()
            .map_or_else(|| "an unknown place".to_string(), |l| l.to_string());
        eprintln!(
            "internal error: {message} (at {location}), please report it with the command you ran \
             (kestrel {})",
            env!("CARGO_PKG_VERSION")
        );
        std::process::exit(1);
    }));
}

/// The panic's message, whether it was a literal or a formatted string.
fn payload_text(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Whether the panic is `println!` finding stdout closed by its reader.
fn is_closed_pipe(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

/// Panics on purpose when `KESTREL_DEBUG_PANIC` asks for it, so that tests can check the hook:
/// `main` panics on the main thread, `worker` inside a rayon task. Not documented for users.
pub fn debug_panic_if_asked() {
    match std::env::var("KESTREL_DEBUG_PANIC").as_deref() {
        Ok("main") => panic!("KESTREL_DEBUG_PANIC asked for a panic"),
        Ok("worker") => rayon::scope(|s| {
            s.spawn(|_| panic!("KESTREL_DEBUG_PANIC asked for a panic in a worker"));
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_a_closed_stdout_only() {
        assert!(is_closed_pipe(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_pipe("index out of bounds: Broken pipe"));
        assert!(!is_closed_pipe(
            "failed printing to stdout: No space left on device"
        ));
    }
}
