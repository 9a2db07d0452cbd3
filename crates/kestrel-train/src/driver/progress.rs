//! What a run tells its user while it trains: the progress bar, the epoch lines, and the
//! vanishing-gradient warnings (each parameter named once).

use crate::config::TrainConfig;
use crate::driver::grad_health::{GradAlarm, GradAlarmKind, ParamGradNorm};
use crate::driver::run_dir::GRAD_NORMS;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;

/// How the loop reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar and per-epoch lines on stderr.
    Bar,
    /// Per-epoch lines on stderr only.
    Lines,
    /// Nothing.
    Quiet,
}

/// The progress bar (hidden unless `progress` is [`Progress::Bar`]) of a run of
/// `steps_per_epoch` × epochs steps.
fn progress_bar(cfg: &TrainConfig, steps_per_epoch: usize, progress: Progress) -> ProgressBar {
    let total_steps = steps_per_epoch * cfg.epochs;
    let bar = match progress {
        Progress::Bar => {
            ProgressBar::with_draw_target(Some(total_steps as u64), ProgressDrawTarget::stderr())
        }
        _ => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    bar
}

/// The run's voice on stderr: the bar, and lines printed above it.
pub(super) struct Log {
    /// The progress bar.
    pub bar: ProgressBar,
    progress: Progress,
}

impl Log {
    /// The bar of a run of `steps_per_epoch` × epochs steps, standing at `step`.
    pub fn new(cfg: &TrainConfig, steps_per_epoch: usize, progress: Progress, step: usize) -> Self {
        let bar = progress_bar(cfg, steps_per_epoch, progress);
        bar.set_position(step as u64);
        Self { bar, progress }
    }

    /// Prints `line` above the bar, unless quiet.
    pub fn say(&self, line: String) {
        if self.progress != Progress::Quiet {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// Whether anything is printed.
    pub fn quiet(&self) -> bool {
        self.progress == Progress::Quiet
    }

    /// Clears the bar (before an error leaves the loop).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// The module path a parameter belongs to (`blocks.4.project.bn` for
/// `blocks.4.project.bn.beta`).
fn layer_of(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(layer, _)| layer)
}

/// The vanishing alarms of layers whose every parameter vanishes. A single tensor with no
/// gradient inside a layer that learns is the normal case for BatchNorm shifts that feed only
/// convolutions and BatchNorms (they cancel it), so it is not a layer whose gradient vanishes.
pub(super) fn whole_layers_vanishing(
    alarms: &[GradAlarm],
    norms: &[ParamGradNorm],
) -> Vec<GradAlarm> {
    let vanishing: HashSet<&str> = alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing)
        .map(|a| a.path.as_str())
        .collect();
    let learning: HashSet<&str> = norms
        .iter()
        .filter(|n| !vanishing.contains(n.path.as_str()))
        .map(|n| layer_of(&n.path))
        .collect();
    alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing && !learning.contains(layer_of(&a.path)))
        .cloned()
        .collect()
}

/// The alarms of `alarms` whose parameter also vanished at the previous sample (`before`, which
/// then becomes this sample's vanishing parameters). A gradient that vanishes at one sample only
/// is how some networks start: an FCN's score layers are zero-initialised, so on its first step
/// no gradient reaches the backbone, and after that step it does. A dead layer vanishes at every
/// sample, so it is reported from the second one on.
pub(super) fn lasting_vanishing(
    alarms: Vec<GradAlarm>,
    before: &mut HashSet<String>,
) -> Vec<GradAlarm> {
    let now: HashSet<String> = alarms.iter().map(|a| a.path.clone()).collect();
    let lasting = alarms
        .into_iter()
        .filter(|a| before.contains(&a.path))
        .collect();
    *before = now;
    lasting
}

/// Prints one warning line naming the parameters whose gradient vanishes for the first time in
/// this session (at most three named): some vanish by construction (a BatchNorm shift feeding
/// only convolutions and BatchNorms, which cancel it), and repeating them every sample would
/// bury the rest. `grad_norms.jsonl` keeps every norm.
pub(super) fn warn_vanishing(
    alarms: &[GradAlarm],
    reported: &mut HashSet<String>,
    epoch: usize,
    step: usize,
    say: &impl Fn(String),
) {
    const SHOWN: usize = 3;
    let new: Vec<&GradAlarm> = alarms
        .iter()
        .filter(|a| a.kind == GradAlarmKind::Vanishing && reported.insert(a.path.clone()))
        .collect();
    if new.is_empty() {
        return;
    }
    let named: Vec<String> = new.iter().take(SHOWN).map(|a| a.to_string()).collect();
    let more = new.len().saturating_sub(SHOWN);
    say(format!(
        "warning: epoch {epoch}, step {step}: {}{}",
        named.join("; "),
        if more > 0 {
            format!("; and {more} more parameter(s) (see {GRAD_NORMS})")
        } else {
            String::new()
        }
    ));
}
