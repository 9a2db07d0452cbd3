//! The `kestrel` Python package's native module, `kestrel._kestrel`: metrics on numpy arrays,
//! the kestrel-runtime inference engine, and runs (train, predict, evaluate). The package's
//! Python layer (`python/kestrel`) gives these scikit-learn's names and keywords.

mod accumulators;
mod counting;
mod engine;
mod errors;
mod ranking;
mod run;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _kestrel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for f in [
        wrap_pyfunction!(ranking::distinct_values, m)?,
        wrap_pyfunction!(ranking::roc_auc, m)?,
        wrap_pyfunction!(ranking::average_precision, m)?,
        wrap_pyfunction!(ranking::roc_curve, m)?,
        wrap_pyfunction!(ranking::precision_recall_curve, m)?,
        wrap_pyfunction!(ranking::roc_auc_ovr, m)?,
        wrap_pyfunction!(counting::confusion_matrix, m)?,
        wrap_pyfunction!(counting::precision_recall_fscore, m)?,
        wrap_pyfunction!(counting::jaccard, m)?,
        wrap_pyfunction!(run::preprocess_imagenet, m)?,
        wrap_pyfunction!(run::info, m)?,
        wrap_pyfunction!(run::train, m)?,
    ] {
        m.add_function(f)?;
    }
    m.add_class::<accumulators::BinaryAccumulator>()?;
    m.add_class::<accumulators::ClassificationAccumulator>()?;
    m.add_class::<accumulators::SegmentationAccumulator>()?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<run::Run>()?;
    Ok(())
}
