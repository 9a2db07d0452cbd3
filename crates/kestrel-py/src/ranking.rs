//! Ranking metrics of binary scores (ROC, PR, average precision) and one-vs-rest ROC-AUC: the
//! native halves of `kestrel.metrics`' functions, which check and convert the labels first.

use crate::errors;
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A contiguous 1-D array as a slice.
pub fn slice<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    name: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("`{name}` must be a contiguous 1-D array")))
}

/// The optional sample weights as a slice.
pub fn weights<'a>(w: &'a Option<PyReadonlyArray1<'_, f64>>) -> PyResult<Option<&'a [f64]>> {
    w.as_ref().map(|w| slice(w, "sample_weight")).transpose()
}

/// A contiguous 2-D array as a row-major slice.
pub fn matrix<'a>(a: &'a PyReadonlyArray2<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("`{name}` must be a contiguous 2-D array")))
}

/// The distinct values of `y` in increasing order, at most `limit` of them (a linear scan: the
/// label checks of binary metrics on millions of samples cost no sort).
#[pyfunction]
pub fn distinct_values(
    py: Python<'_>,
    y: PyReadonlyArray1<'_, f64>,
    limit: usize,
) -> PyResult<Vec<f64>> {
    let y = slice(&y, "y_true")?;
    Ok(py.detach(|| distinct(y, limit)))
}

/// See [`distinct_values`]. Once two values are known, the rest is checked against them in
/// blocks (a loop the compiler vectorises); a block with a third value is scanned one by one.
fn distinct(y: &[f64], limit: usize) -> Vec<f64> {
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    let mut seen: Vec<f64> = Vec::new();
    let add = |v: f64, seen: &mut Vec<f64>| {
        if !seen.iter().any(|&s| same(s, v)) {
            seen.push(v);
        }
    };
    let mut rest = y;
    while seen.len() < limit.min(2) {
        let Some((&v, tail)) = rest.split_first() else {
            break;
        };
        add(v, &mut seen);
        rest = tail;
    }
    if let [a, b] = seen[..] {
        for block in rest.chunks(4096) {
            if seen.len() >= limit {
                break;
            }
            if !block.iter().all(|&v| v == a || v == b) {
                for &v in block {
                    add(v, &mut seen);
                    if seen.len() >= limit {
                        break;
                    }
                }
            }
        }
    }
    seen.truncate(limit);
    seen.sort_by(f64::total_cmp);
    seen
}

/// Three arrays: a curve's two coordinates and its thresholds.
pub type Triple<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// The three arrays of a curve.
pub fn triple(py: Python<'_>, a: Vec<f64>, b: Vec<f64>, c: Vec<f64>) -> Triple<'_> {
    (
        PyArray1::from_vec(py, a),
        PyArray1::from_vec(py, b),
        PyArray1::from_vec(py, c),
    )
}

/// The slices of a binary metric's targets, scores and optional weights.
type Binary<'a> = (&'a [bool], &'a [f64], Option<&'a [f64]>);

/// [`Binary`] slices of the arrays.
pub fn binary<'a>(
    y_true: &'a PyReadonlyArray1<'_, bool>,
    y_score: &'a PyReadonlyArray1<'_, f64>,
    sample_weight: &'a Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<Binary<'a>> {
    let w = weights(sample_weight)?;
    Ok((slice(y_true, "y_true")?, slice(y_score, "y_score")?, w))
}

/// Area under the ROC curve of binary targets.
#[pyfunction]
#[pyo3(signature = (y_true, y_score, sample_weight=None))]
pub fn roc_auc(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, bool>,
    y_score: PyReadonlyArray1<'_, f64>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<f64> {
    let (y, s, w) = binary(&y_true, &y_score, &sample_weight)?;
    py.detach(|| kestrel_metrics::roc::roc_auc(y, s, w))
        .map_err(errors::metrics)
}

/// Average precision of binary targets.
#[pyfunction]
#[pyo3(signature = (y_true, y_score, sample_weight=None))]
pub fn average_precision(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, bool>,
    y_score: PyReadonlyArray1<'_, f64>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<f64> {
    let (y, s, w) = binary(&y_true, &y_score, &sample_weight)?;
    py.detach(|| kestrel_metrics::pr::average_precision(y, s, w))
        .map_err(errors::metrics)
}

/// The ROC curve: `(fpr, tpr, thresholds)`.
#[pyfunction]
#[pyo3(signature = (y_true, y_score, sample_weight=None, drop_intermediate=true))]
pub fn roc_curve<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray1<'_, bool>,
    y_score: PyReadonlyArray1<'_, f64>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
    drop_intermediate: bool,
) -> PyResult<Triple<'py>> {
    let (y, s, w) = binary(&y_true, &y_score, &sample_weight)?;
    let c = py
        .detach(|| kestrel_metrics::roc::roc_curve(y, s, w, drop_intermediate))
        .map_err(errors::metrics)?;
    Ok(triple(py, c.fpr, c.tpr, c.thresholds))
}

/// The precision–recall curve: `(precision, recall, thresholds)`.
#[pyfunction]
#[pyo3(signature = (y_true, y_score, sample_weight=None))]
pub fn precision_recall_curve<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray1<'_, bool>,
    y_score: PyReadonlyArray1<'_, f64>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<Triple<'py>> {
    let (y, s, w) = binary(&y_true, &y_score, &sample_weight)?;
    let c = py
        .detach(|| kestrel_metrics::pr::precision_recall_curve(y, s, w))
        .map_err(errors::metrics)?;
    Ok(triple(py, c.precision, c.recall, c.thresholds))
}

/// One-vs-rest ROC-AUC of class indices and a matrix of class probabilities: `average` is
/// `"macro"` or `"weighted"`.
#[pyfunction]
#[pyo3(signature = (y_true, y_score, average, sample_weight=None))]
pub fn roc_auc_ovr(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, i64>,
    y_score: PyReadonlyArray2<'_, f64>,
    average: &str,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<f64> {
    let k = y_score.shape()[1];
    let y = slice(&y_true, "y_true")?;
    let s = matrix(&y_score, "y_score")?;
    let w = weights(&sample_weight)?;
    let auc = py
        .detach(|| kestrel_metrics::ovr::roc_auc_ovr(y, s, k, w))
        .map_err(errors::metrics)?;
    let value = match average {
        "macro" => auc.macro_avg,
        "weighted" => auc.weighted_avg,
        other => {
            return Err(PyValueError::new_err(format!(
                "average={other:?} with multi_class='ovr': expected 'macro' or 'weighted'"
            )))
        }
    };
    value.ok_or_else(|| {
        PyValueError::new_err("ROC-AUC is undefined: a class has no positive or no negative sample")
    })
}
