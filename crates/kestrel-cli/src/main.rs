//! `kestrel`: train, evaluate and deploy small vision models. See `kestrel --help` and the README.

mod allocator;
mod cmd_bench;
mod cmd_bench_train;
mod cmd_eval;
mod cmd_export;
mod cmd_info;
mod cmd_merge;
mod cmd_metrics;
mod cmd_predict;
mod cmd_quantize;
mod cmd_report;
mod cmd_split;
mod cmd_train;
mod exit;
mod model_arg;
mod panic_exit;
mod pretrained;
mod replicas;
mod shard_arg;
mod threads;

use clap::{Parser, Subcommand};

/// kestrel: train, evaluate and deploy small, fast vision models.
#[derive(Parser)]
#[command(name = "kestrel", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model; with no arguments, a MobileNetV2 classifier on the built-in `shapes` data.
    Train(Box<cmd_train::TrainArgs>),
    /// Metrics of a run's best checkpoint on its validation or test split.
    Eval(cmd_eval::EvalArgs),
    /// Classify image files with a trained run.
    Predict(cmd_predict::PredictArgs),
    /// Put together the part files of `eval --shard` or `predict --shard`: prints what the
    /// unsharded command prints.
    Merge(cmd_merge::MergeArgs),
    /// Score predictions already made (a CSV of labels and scores), with optional plots.
    Metrics(cmd_metrics::MetricsArgs),
    /// Layers, parameters and multiply-adds of a model at an input size, without running it.
    Info(cmd_info::InfoArgs),
    /// Write a stratified, seeded train/val/test split manifest of a data source.
    Split(cmd_split::SplitArgs),
    /// Post-training int8 quantisation: calibrate a model's plan on sample images and write an
    /// int8 plan (for `predict`, `eval` and `bench infer` with `--plan`).
    Quantize(cmd_quantize::QuantizeArgs),
    /// A trained model with batch norm folded, as a kestrel-runtime plan or ONNX.
    Export(cmd_export::ExportArgs),
    /// Benchmarks: `bench infer` times inference of a model with random weights, `bench train`
    /// one training step on random data.
    Bench(cmd_bench::BenchArgs),
    /// (Re)write report.html and plots/ of a run folder: training curves, gradient norms,
    /// validation plots of the best checkpoint.
    Report(cmd_report::ReportArgs),
}

fn main() {
    panic_exit::install();
    exit::file_size_limit_is_an_error();
    allocator::keep_freed_buffers();
    threads::main_thread_joins_pool();
    let cli = Cli::parse();
    panic_exit::debug_panic_if_asked();
    let result = match cli.command {
        Command::Train(a) => cmd_train::run(*a),
        Command::Eval(a) => cmd_eval::run(a),
        Command::Predict(a) => cmd_predict::run(a),
        Command::Merge(a) => cmd_merge::run(a),
        Command::Metrics(a) => cmd_metrics::run(a),
        Command::Info(a) => cmd_info::run(a),
        Command::Split(a) => cmd_split::run(a),
        Command::Quantize(a) => cmd_quantize::run(a),
        Command::Export(a) => cmd_export::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Report(a) => cmd_report::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.code());
    }
}
