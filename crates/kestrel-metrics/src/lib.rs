//! kestrel-metrics: classification, ranking and segmentation metrics that
//! agree with scikit-learn (to 1e-9 on the fixtures in `tests/fixtures`),
//! computed exactly and fast, plus the report and plots behind
//! `kestrel metrics` and `kestrel eval`.
//!
//! * Ranking: one core, [`curve::BinaryCurve`] (tie-aware cumulative true and
//!   false positives over distinct thresholds), from which [`roc`] (curve,
//!   ROC-AUC) and [`pr`] (curve, average precision, PR-AUC) derive.
//! * Counting: [`confusion::ConfusionMatrix`] and, from it, [`classification`]
//!   (precision, recall, F-beta, rates, averages, classification report) and
//!   [`iou`] (per-class IoU, mIoU, pixel accuracy).
//! * Scores: [`top_k::top_k_accuracy`], [`log_loss::log_loss`],
//!   [`ovr::roc_auc_ovr`].
//! * Streaming with exact merges: [`BinaryAccumulator`],
//!   [`ClassificationAccumulator`], [`SegmentationAccumulator`].
//! * The CLI layer: [`csv_input::load`], [`report::Report`],
//!   [`plot::write_plots`].
//!
//! Conventions: labels are class indices `0..n_classes`; matrices of scores
//! are row-major `n_samples × n_classes` slices; a ratio with a zero
//! denominator is 0 and reported (scikit-learn's default `zero_division`);
//! a metric scikit-learn leaves undefined is [`MetricsError::Undefined`]
//! (or `None`/`null` in summaries, with a warning). Invalid input is an error,
//! never a panic.

pub mod bar_chart;
pub mod binary_accumulator;
pub mod class_metrics;
pub mod classification;
pub mod classification_accumulator;
pub mod confusion;
pub mod csv_input;
pub mod curve;
pub mod error;
pub mod heat_map;
pub mod iou;
pub mod label;
pub mod line_chart;
pub mod log_loss;
pub mod ovr;
pub mod plot;
pub mod pr;
pub mod predict;
pub mod predictions;
pub mod report;
pub mod roc;
pub mod segmentation_accumulator;
mod sort;
pub mod top_k;
pub mod trapezoid;
mod validate;

pub use binary_accumulator::BinaryAccumulator;
pub use class_metrics::ClassMetrics;
pub use classification::Average;
pub use classification_accumulator::{ClassificationAccumulator, ClassificationSummary};
pub use confusion::ConfusionMatrix;
pub use curve::BinaryCurve;
pub use error::{MetricsError, Result};
pub use iou::{jaccard, SegmentationScores};
pub use label::Label;
pub use predict::argmax;
pub use predictions::{Predictions, Scores};
pub use report::Report;
pub use segmentation_accumulator::SegmentationAccumulator;
