//! `kestrel eval`.

use crate::cmd_bench::{inference_engine, EngineKind};
use crate::exit::{print_json, CliError};
use crate::shard_arg::{write_part, ShardArgs};
use clap::{Args, ValueEnum};
use kestrel_metrics::ClassificationSummary;
use kestrel_train::{
    eval_int8, eval_run, eval_shard, EvalReport, EvalSplit, InferenceEngine, Int8EvalReport,
};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Val,
    Test,
}

/// Flags of `kestrel eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The run folder written by `kestrel train`.
    #[arg(long)]
    run: PathBuf,
    /// Which held-out split to read; `test` is recorded in summary.json.
    #[arg(long, value_enum, default_value = "val")]
    split: SplitArg,
    /// `int8`: score the split with the fp32 model and with its int8 plan side by side
    /// (`--plan FILE`, default RUN/int8.plan), with their top-1 agreement.
    #[arg(long, value_enum, default_value_t = EngineKind::Runtime)]
    engine: EngineKind,
    /// An int8 plan of the run's model (`kestrel quantize`); implies `--engine int8`.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    shard: ShardArgs,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `kestrel eval`: scores the run's best checkpoint on its validation or test split and
/// prints the metrics (one JSON document with `--json`); with `--shard`, scores the shard's slice
/// of the split and writes the part file.
pub fn run(a: EvalArgs) -> Result<(), CliError> {
    let split = match a.split {
        SplitArg::Val => EvalSplit::Val,
        SplitArg::Test => EvalSplit::Test,
    };
    if a.plan.is_some() || a.engine == EngineKind::Int8 {
        let InferenceEngine::Int8(q) =
            inference_engine(EngineKind::Int8, a.plan.as_deref(), Some(&a.run))?
        else {
            unreachable!("asked for int8")
        };
        if a.shard.get()?.is_some() {
            return Err(CliError::BadInput(
                "--shard does not combine with an int8 plan: run `kestrel eval --plan` whole"
                    .into(),
            ));
        }
        let report = eval_int8(&a.run, split, &q)?;
        if a.json {
            return print_json(&report);
        }
        print_int8(&report);
        return Ok(());
    }
    if let Some((shard, out)) = a.shard.get()? {
        return write_part(&eval_shard(&a.run, split, shard)?, out, a.json);
    }
    let report = eval_run(&a.run, split)?;
    if a.json {
        return print_json(&report);
    }
    print_report(&report);
    Ok(())
}

/// The text of `kestrel eval` (and of `kestrel merge` of its parts).
pub fn print_report(report: &EvalReport) {
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    match report {
        EvalReport::Classify(r) => print_classification(&r.split, &r.metrics),
        EvalReport::Segment(r) => {
            println!(
                "split {}: mIoU {}, pixel accuracy {}",
                r.split,
                show(r.miou),
                show(r.pixel_accuracy)
            );
            for (name, iou) in r.class_names.iter().zip(&r.iou_per_class) {
                println!("{name:>12} IoU {}", show(*iou));
            }
        }
        EvalReport::Multitask(r) => {
            println!(
                "split {}: accuracy {:.4}, macro-F1 {:.4} | mIoU {}, pixel accuracy {}",
                r.split,
                r.classification.accuracy,
                r.classification.macro_f1,
                show(r.miou),
                show(r.pixel_accuracy)
            );
            for c in &r.classification.per_class {
                println!("{:>12} f1 {:.4}", c.class, c.f1);
            }
            for (name, iou) in r.seg_class_names.iter().zip(&r.iou_per_class) {
                println!("{name:>12} IoU {}", show(*iou));
            }
        }
    }
}

/// The text of `kestrel eval --plan`: fp32 and int8 side by side.
fn print_int8(r: &Int8EvalReport) {
    println!(
        "split {} ({} images), int8 plan {}",
        r.split, r.images, r.plan
    );
    println!("{:>22} {:>9} {:>9}", "", "fp32", "int8");
    println!(
        "{:>22} {:>9.4} {:>9.4}",
        "accuracy", r.fp32.accuracy, r.int8.accuracy
    );
    println!(
        "{:>22} {:>9.4} {:>9.4}",
        "macro-F1", r.fp32.macro_f1, r.int8.macro_f1
    );
    println!(
        "top-1 agreement {:.4}, accuracy drop {:.2} points",
        r.top1_agreement, r.accuracy_drop_points
    );
}

/// The text of a classifier's evaluation.
fn print_classification(split: &str, m: &ClassificationSummary) {
    println!(
        "split {split}: accuracy {:.4}, macro-F1 {:.4}",
        m.accuracy, m.macro_f1
    );
    if let Some(auc) = m.roc_auc_ovr_macro {
        println!("one-vs-rest ROC-AUC (macro) {auc:.4}");
    }
    println!(
        "{:>12} {:>9} {:>9} {:>9} {:>9}",
        "class", "precision", "recall", "f1", "support"
    );
    for c in &m.per_class {
        println!(
            "{:>12} {:>9.4} {:>9.4} {:>9.4} {:>9}",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }
    println!("confusion (rows: true class, columns: predicted):");
    for row in &m.confusion {
        println!(
            "  {}",
            row.iter().map(|v| format!("{v:>6}")).collect::<String>()
        );
    }
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
}
