//! Streaming metrics for data that does not fit in memory: update batch by batch, merge
//! accumulators computed apart (shards, workers), compute once. Merged accumulators give exactly
//! what one pass over all the data gives.

use crate::errors;
use crate::ranking::{matrix, slice, triple, Triple};
use crate::run::to_python;
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

/// Binary scores, kept for the exact ROC and PR curves.
#[pyclass(module = "kestrel._kestrel")]
#[derive(Default)]
pub struct BinaryAccumulator {
    inner: kestrel_metrics::BinaryAccumulator,
}

#[pymethods]
impl BinaryAccumulator {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Adds a batch of binary targets and scores (and weights).
    #[pyo3(signature = (y_true, y_score, sample_weight=None))]
    fn update(
        &mut self,
        y_true: PyReadonlyArray1<'_, bool>,
        y_score: PyReadonlyArray1<'_, f64>,
        sample_weight: Option<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<()> {
        let (y, s) = (slice(&y_true, "y_true")?, slice(&y_score, "y_score")?);
        match sample_weight {
            Some(w) => self
                .inner
                .update_weighted(y, s, slice(&w, "sample_weight")?),
            None => self.inner.update(y, s),
        }
        .map_err(errors::metrics)
    }

    /// Adds the samples of `other`.
    fn merge(&mut self, other: PyRef<'_, Self>) {
        self.inner.merge(&other.inner);
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Area under the ROC curve.
    fn roc_auc(&self, py: Python<'_>) -> PyResult<f64> {
        py.detach(|| self.inner.roc_auc()).map_err(errors::metrics)
    }

    /// Average precision.
    fn average_precision(&self, py: Python<'_>) -> PyResult<f64> {
        py.detach(|| self.inner.average_precision())
            .map_err(errors::metrics)
    }

    /// The ROC curve: `(fpr, tpr, thresholds)`.
    #[pyo3(signature = (drop_intermediate=true))]
    fn roc_curve<'py>(&self, py: Python<'py>, drop_intermediate: bool) -> PyResult<Triple<'py>> {
        let c = py
            .detach(|| self.inner.roc_curve(drop_intermediate))
            .map_err(errors::metrics)?;
        Ok(triple(py, c.fpr, c.tpr, c.thresholds))
    }

    /// The precision–recall curve: `(precision, recall, thresholds)`.
    fn precision_recall_curve<'py>(&self, py: Python<'py>) -> PyResult<Triple<'py>> {
        let c = py
            .detach(|| self.inner.pr_curve())
            .map_err(errors::metrics)?;
        Ok(triple(py, c.precision, c.recall, c.thresholds))
    }
}

/// Class labels with rows of class probabilities: the confusion matrix of the argmax
/// predictions, and the scores for the exact one-vs-rest ROC-AUC.
#[pyclass(module = "kestrel._kestrel")]
pub struct ClassificationAccumulator {
    inner: kestrel_metrics::ClassificationAccumulator,
}

#[pymethods]
impl ClassificationAccumulator {
    #[new]
    fn new(n_classes: usize) -> PyResult<Self> {
        Ok(Self {
            inner: kestrel_metrics::ClassificationAccumulator::new(n_classes)
                .map_err(errors::metrics)?,
        })
    }

    /// Adds class indices `y_true` (`n`) and probabilities `y_prob` (`n × n_classes`).
    fn update(
        &mut self,
        y_true: PyReadonlyArray1<'_, i64>,
        y_prob: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<()> {
        let y = slice(&y_true, "y_true")?;
        let p = matrix(&y_prob, "y_prob")?;
        self.inner.update(y, p).map_err(errors::metrics)
    }

    /// Adds the samples of `other` (same class count).
    fn merge(&mut self, other: PyRef<'_, Self>) -> PyResult<()> {
        self.inner.merge(&other.inner).map_err(errors::metrics)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `{"accuracy", "macro_f1", "per_class", "roc_auc_ovr_macro", "confusion"}`.
    fn compute<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = py
            .detach(|| self.inner.summary())
            .map_err(errors::metrics)?;
        to_python(py, &s)
    }
}

/// Per-pixel class indices of masks: the confusion matrix behind IoU, mIoU and pixel accuracy.
#[pyclass(module = "kestrel._kestrel")]
pub struct SegmentationAccumulator {
    inner: kestrel_metrics::SegmentationAccumulator,
}

#[pymethods]
impl SegmentationAccumulator {
    #[new]
    #[pyo3(signature = (n_classes, ignore_index=Some(255)))]
    fn new(n_classes: usize, ignore_index: Option<u64>) -> PyResult<Self> {
        Ok(Self {
            inner: kestrel_metrics::SegmentationAccumulator::new(n_classes)
                .map_err(errors::metrics)?
                .with_ignore_index(ignore_index),
        })
    }

    /// Adds true and predicted class indices of the same pixels (flattened masks).
    fn update(
        &mut self,
        py: Python<'_>,
        y_true: PyReadonlyArray1<'_, i64>,
        y_pred: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let (t, p) = (slice(&y_true, "y_true")?, slice(&y_pred, "y_pred")?);
        let inner = &mut self.inner;
        py.detach(|| inner.update(t, p)).map_err(errors::metrics)
    }

    /// Adds the pixels of `other` (same class count and ignore label).
    fn merge(&mut self, other: PyRef<'_, Self>) -> PyResult<()> {
        self.inner.merge(&other.inner).map_err(errors::metrics)
    }

    /// `{"miou", "pixel_accuracy", "iou_per_class"}` (`None` where undefined).
    fn compute<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.summary())
    }
}
