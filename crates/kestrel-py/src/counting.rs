//! Counting metrics of class indices: the confusion matrix and what derives from it (precision,
//! recall, F-beta, support, Jaccard). `kestrel.metrics` maps labels to indices `0..k` first.

use crate::errors;
use crate::ranking::{matrix, slice, weights};
use kestrel_metrics::classification::{averaged_scores, per_class_scores};
use kestrel_metrics::{Average, ConfusionMatrix};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The weighted `k × k` confusion matrix of class indices (rows: true class).
#[pyfunction]
#[pyo3(signature = (y_true, y_pred, n_classes, sample_weight=None))]
pub fn confusion_matrix<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray1<'_, i64>,
    y_pred: PyReadonlyArray1<'_, i64>,
    n_classes: usize,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (t, p) = (slice(&y_true, "y_true")?, slice(&y_pred, "y_pred")?);
    let w = weights(&sample_weight)?;
    let cm = py
        .detach(|| ConfusionMatrix::from_labels(t, p, n_classes, w))
        .map_err(errors::metrics)?;
    let flat: Vec<f64> = cm.rows().into_iter().flatten().collect();
    PyArray1::from_vec(py, flat).reshape([n_classes, n_classes])
}

/// A confusion matrix rebuilt from its dense `k × k` weights.
fn from_dense(cm: &PyReadonlyArray2<'_, f64>) -> PyResult<ConfusionMatrix> {
    let k = cm.shape()[0];
    if cm.shape()[1] != k {
        return Err(PyValueError::new_err("the confusion matrix must be square"));
    }
    let cells = matrix(cm, "cm")?;
    let mut m = ConfusionMatrix::new(k).map_err(errors::metrics)?;
    for (i, &w) in cells.iter().enumerate() {
        if w != 0.0 {
            m.add(i / k, i % k, w).map_err(errors::metrics)?;
        }
    }
    Ok(m)
}

/// scikit-learn's `average`: `None` (per class) or one of binary, micro, macro, weighted.
fn average(name: Option<&str>, pos: usize) -> PyResult<Option<Average>> {
    Ok(match name {
        None => None,
        Some("binary") => Some(Average::Binary { positive: pos }),
        Some("micro") => Some(Average::Micro),
        Some("macro") => Some(Average::Macro),
        Some("weighted") => Some(Average::Weighted),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "average={other:?}: expected None, 'binary', 'micro', 'macro' or 'weighted'"
            )))
        }
    })
}

/// Precision, recall, F-beta and support of a confusion matrix, per class (`average=None`:
/// arrays) or averaged (floats, support `None`), with the ratios that had a zero denominator
/// (`zero_division`: messages for scikit-learn's warning).
#[pyfunction]
#[pyo3(signature = (cm, beta, average_name=None, pos=0))]
pub fn precision_recall_fscore<'py>(
    py: Python<'py>,
    cm: PyReadonlyArray2<'_, f64>,
    beta: f64,
    average_name: Option<&str>,
    pos: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let m = from_dense(&cm)?;
    let out = PyDict::new(py);
    match average(average_name, pos)? {
        None => {
            let s = per_class_scores(&m, beta).map_err(errors::metrics)?;
            out.set_item("precision", PyArray1::from_vec(py, s.precision))?;
            out.set_item("recall", PyArray1::from_vec(py, s.recall))?;
            out.set_item("fscore", PyArray1::from_vec(py, s.f_score))?;
            out.set_item("support", PyArray1::from_vec(py, s.support))?;
            let zd: Vec<String> = s.zero_division.iter().map(|z| z.to_string()).collect();
            out.set_item("zero_division", zd)?;
        }
        Some(a) => {
            let s = averaged_scores(&m, beta, a).map_err(errors::metrics)?;
            out.set_item("precision", s.precision)?;
            out.set_item("recall", s.recall)?;
            out.set_item("fscore", s.f_score)?;
            out.set_item("support", py.None())?;
            let zd: Vec<String> = s.zero_division.iter().map(|z| z.to_string()).collect();
            out.set_item("zero_division", zd)?;
        }
    }
    Ok(out)
}

/// The Jaccard index of a confusion matrix: per class (`average=None`) or averaged.
#[pyfunction]
#[pyo3(signature = (cm, average_name=None, pos=0))]
pub fn jaccard<'py>(
    py: Python<'py>,
    cm: PyReadonlyArray2<'_, f64>,
    average_name: Option<&str>,
    pos: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let m = from_dense(&cm)?;
    Ok(match average(average_name, pos)? {
        None => {
            let per: Vec<f64> = (0..m.n_classes())
                .map(|c| kestrel_metrics::jaccard(&m, Average::Binary { positive: c }))
                .collect::<Result<_, _>>()
                .map_err(errors::metrics)?;
            PyArray1::from_vec(py, per).into_any()
        }
        Some(a) => kestrel_metrics::jaccard(&m, a)
            .map_err(errors::metrics)?
            .into_pyobject(py)?
            .into_any(),
    })
}
