//! The report's plots, written as PNG files into `<run>/plots/`: training curves from the epoch
//! log, the gradient-norm heat map, and the validation plots of the best checkpoint.

use super::epoch_log::EpochPoint;
use super::grad_table::{heat_map, MAX_COLUMNS, MAX_ROWS};
use super::step_log::{epoch_positions, smoothed, StepPoint};
use super::val_results::ValResults;
use super::ReportInputs;
use crate::error::{Result, TrainError};
use kestrel_metrics::bar_chart::{bar_chart_size, write_bar_chart, BarChart};
use kestrel_metrics::heat_map::{write_heat_map, HeatLayout};
use kestrel_metrics::line_chart::{write_line_chart, LineChart, Series, LINE_CHART_SIZE};
use kestrel_metrics::plot::{confusion_size, write_confusion, write_plots, CURVE_SIZE};
use std::collections::BTreeSet;
use std::path::Path;

/// Folder of the plots inside a run folder.
pub const PLOTS: &str = "plots";

/// One written plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// File name inside `plots/`.
    pub file: String,
    /// Short title (the HTML section heading).
    pub title: String,
    /// What the plot shows, for the HTML caption.
    pub caption: String,
    /// Pixel size of the PNG.
    pub size: (u32, u32),
}

/// A series per key of `pick(epoch)`, in key order, over the epochs.
fn series_by_key(
    epochs: &[EpochPoint],
    pick: impl Fn(&EpochPoint) -> &std::collections::BTreeMap<String, f64>,
) -> Vec<Series> {
    let keys: BTreeSet<&String> = epochs.iter().flat_map(|e| pick(e).keys()).collect();
    keys.into_iter()
        .map(|k| Series {
            name: k.clone(),
            points: epochs
                .iter()
                .filter_map(|e| pick(e).get(k).map(|&v| (e.epoch as f64, v)))
                .collect(),
            faint: false,
        })
        .collect()
}

/// Weight of the smoothed per-step loss (TensorBoard's smoothing slider).
const SMOOTHING: f64 = 0.9;

/// The training-loss curves: with a step log, every step's loss (faint), its smoothed curve and
/// the epoch means; otherwise the epoch means alone. Positions are in epochs.
fn loss_series(epochs: &[EpochPoint], steps: &[StepPoint]) -> Vec<Series> {
    let means = series_by_key(epochs, |e| &e.train_loss);
    if steps.is_empty() {
        return means;
    }
    let x = epoch_positions(steps);
    let loss: Vec<f64> = steps.iter().map(|s| s.loss).collect();
    let mut out = vec![
        Series {
            name: "per step".into(),
            points: x.iter().copied().zip(loss.iter().copied()).collect(),
            faint: true,
        },
        Series {
            name: format!("smoothed ({SMOOTHING})"),
            points: x.iter().copied().zip(smoothed(&loss, SMOOTHING)).collect(),
            faint: false,
        },
    ];
    out.extend(means.into_iter().map(|mut s| {
        s.name = format!("epoch mean ({})", s.name);
        s
    }));
    out
}

/// The learning rate of each parameter group: per step with a step log, else per epoch.
fn lr_series(epochs: &[EpochPoint], steps: &[StepPoint]) -> Vec<Series> {
    if steps.is_empty() {
        return series_by_key(epochs, |e| &e.lr);
    }
    let x = epoch_positions(steps);
    let groups: BTreeSet<&String> = steps.iter().flat_map(|s| s.lr.keys()).collect();
    groups
        .into_iter()
        .map(|g| Series {
            name: g.clone(),
            points: x
                .iter()
                .zip(steps)
                .filter_map(|(&x, s)| s.lr.get(g).map(|&v| (x, v)))
                .collect(),
            faint: false,
        })
        .collect()
}

fn metrics_err(e: kestrel_metrics::MetricsError) -> TrainError {
    match e {
        kestrel_metrics::MetricsError::Io { path, source } => {
            TrainError::Runtime(format!("cannot write {}: {source}", path.display()))
        }
        other => TrainError::Runtime(format!("plot: {other}")),
    }
}

/// Writes every plot that `inputs` supports into `dir` (created if needed) and lists them in
/// report order, with notes on what could not be drawn.
///
/// # Errors
/// Runtime error when a file cannot be written.
pub fn write_all(dir: &Path, inputs: &ReportInputs) -> Result<(Vec<Plot>, Vec<String>)> {
    std::fs::create_dir_all(dir).map_err(|e| {
        TrainError::BadInput(format!(
            "cannot create {}: {e}; expected a writable run folder",
            dir.display()
        ))
    })?;
    let mut plots = Vec::new();
    let mut notes = Vec::new();
    let epochs = &inputs.epochs;
    let mut line = |file: &str, title: &str, y: &str, caption: &str, series: Vec<Series>| {
        if series.is_empty() {
            return Ok::<(), TrainError>(());
        }
        let chart = LineChart {
            title: title.into(),
            x_desc: "epoch".into(),
            y_desc: y.into(),
            series,
        };
        write_line_chart(&chart, &dir.join(file)).map_err(metrics_err)?;
        plots.push(Plot {
            file: file.into(),
            title: title.into(),
            caption: caption.into(),
            size: LINE_CHART_SIZE,
        });
        Ok(())
    };
    let per_step = !inputs.steps.is_empty();
    line(
        "loss.png",
        "Training loss",
        "loss",
        if per_step {
            "Training loss of every optimiser step (pale), its exponential moving average, and each epoch's mean per task."
        } else {
            "Mean training loss of each epoch, one curve per task."
        },
        loss_series(epochs, &inputs.steps),
    )?;
    line(
        "val_metrics.png",
        "Validation metrics",
        "value",
        "Every validation metric recorded after each epoch.",
        series_by_key(epochs, |e| &e.val),
    )?;
    line(
        "lr.png",
        "Learning rate",
        "learning rate",
        if per_step {
            "Learning rate of each parameter group at every optimiser step: the warm-up and the schedule."
        } else {
            "Learning rate of each parameter group at the end of each epoch."
        },
        lr_series(epochs, &inputs.steps),
    )?;
    line(
        "task_weights.png",
        "Task weights",
        "loss weight",
        "Weight of each task's loss in the total, per epoch.",
        series_by_key(epochs, |e| &e.task_weights),
    )?;
    if inputs.grad_norms.is_empty() {
        notes.push(format!(
            "No gradient-norm samples ({} absent or empty): no heat map.",
            crate::driver::run_dir::GRAD_NORMS
        ));
    } else {
        let map = heat_map(&inputs.grad_norms, MAX_ROWS, MAX_COLUMNS);
        let size = HeatLayout::new(&map.rows, map.columns.len()).size;
        write_heat_map(&map, &dir.join("grad_norms.png")).map_err(metrics_err)?;
        plots.push(Plot {
            file: "grad_norms.png".into(),
            title: "Gradient norms".into(),
            caption: format!(
                "L2 norm of each layer's gradient at each sampled step ({} samples), log10 colour \
                 scale; NaN, +inf, zero and missing norms have colours of their own. Above {MAX_ROWS} \
                 layers, rows are groups of layers (their joint norm); above {MAX_COLUMNS} samples, \
                 columns are bins.",
                inputs.grad_norms.len()
            ),
            size,
        });
    }
    match &inputs.val {
        None => notes.push("No validation results of the best checkpoint.".into()),
        Some(v @ ValResults::Classification { class_names, .. }) => {
            match v.classification_report() {
                Ok(Some((p, report))) => {
                    write_plots(&p, &report, dir).map_err(metrics_err)?;
                    let k = class_names.len();
                    plots.push(Plot {
                        file: "confusion.png".into(),
                        title: "Confusion matrix".into(),
                        caption: "Validation images of the best checkpoint: row per true class, \
                                  column per predicted class (argmax); shade = share of the row."
                            .into(),
                        size: confusion_size(k),
                    });
                    plots.push(Plot {
                        file: "roc.png".into(),
                        title: "ROC curves".into(),
                        caption: "One-vs-rest ROC curve of each class (first ten) on the \
                                  validation split, with its AUC."
                            .into(),
                        size: CURVE_SIZE,
                    });
                    plots.push(Plot {
                        file: "pr.png".into(),
                        title: "Precision-recall curves".into(),
                        caption: "One-vs-rest precision-recall curve of each class (first ten) on \
                                  the validation split, with average precision and PR-AUC."
                            .into(),
                        size: CURVE_SIZE,
                    });
                }
                Ok(None) => {}
                Err(e) => notes.push(format!("Validation plots not drawn: {e}")),
            }
        }
        Some(ValResults::Segmentation {
            class_names,
            confusion,
            iou_per_class,
        }) => {
            write_confusion(class_names, confusion, &dir.join("confusion.png"))
                .map_err(metrics_err)?;
            plots.push(Plot {
                file: "confusion.png".into(),
                title: "Pixel confusion matrix".into(),
                caption: "Validation pixels of the best checkpoint (mask value 255 ignored): row \
                          per true class, column per predicted class; shade = share of the row."
                    .into(),
                size: confusion_size(class_names.len()),
            });
            let chart = BarChart {
                title: "IoU per class".into(),
                y_desc: "IoU".into(),
                labels: class_names.clone(),
                values: iou_per_class.clone(),
            };
            write_bar_chart(&chart, &dir.join("iou.png")).map_err(metrics_err)?;
            plots.push(Plot {
                file: "iou.png".into(),
                title: "IoU per class".into(),
                caption: "Intersection over union of each class on the validation split; n/a when \
                          a class is neither present nor predicted."
                    .into(),
                size: bar_chart_size(class_names.len()),
            });
        }
    }
    Ok((plots, notes))
}
