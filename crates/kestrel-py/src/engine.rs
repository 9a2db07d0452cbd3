//! `kestrel.Engine`: kestrel-runtime on a plan file or on a run's best checkpoint, from numpy.

use crate::errors;
use burn::tensor::Device;
use kestrel_nn::export::{nchw_to_nhwc, nhwc_to_nchw};
use kestrel_runtime::{Engine as RuntimeEngine, EngineOptions, Plan};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

/// The plan in `source`: a plan file, or a run folder (its best checkpoint, exported).
pub fn plan_of(source: &Path) -> PyResult<Plan> {
    if source.is_dir() {
        let best = kestrel_train::run_dir::best_checkpoint(source);
        let ckpt = kestrel_train::Checkpoint::load(&best).map_err(errors::train)?;
        let model = ckpt.load_model(&Device::flex()).map_err(errors::train)?;
        return model
            .to_plan(ckpt.meta.config.resolution)
            .map_err(|e| PyValueError::new_err(format!("{}: {e}", source.display())));
    }
    if !source.exists() {
        return Err(PyOSError::new_err(format!(
            "{}: no such plan file or run folder",
            source.display()
        )));
    }
    Plan::load(source).map_err(errors::runtime)
}

/// A model ready to run: `Engine(path, threads=0)`, then `engine(x)` on `(N, 3, H, W)` float32
/// images gives logits `(N, classes)` (per-pixel scores `(N, classes, H, W)` for an FCN).
#[pyclass(module = "kestrel._kestrel")]
pub struct Engine {
    inner: RuntimeEngine,
    source: PathBuf,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (source, threads=0))]
    fn new(py: Python<'_>, source: PathBuf, threads: usize) -> PyResult<Self> {
        let plan = py.detach(|| plan_of(&source))?;
        let inner = RuntimeEngine::new(
            plan,
            EngineOptions {
                threads,
                ..EngineOptions::default()
            },
        )
        .map_err(errors::runtime)?;
        Ok(Self { inner, source })
    }

    /// The input each image must have: `(3, H, W)`.
    #[getter]
    fn input_shape(&self) -> (usize, usize, usize) {
        let s = self.inner.plan().input_shape();
        (s.c, s.h, s.w)
    }

    /// The output of one image: `(classes,)`, or `(classes, H, W)` for per-pixel scores.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        let s = self.inner.plan().output_shape();
        if s.h == 1 && s.w == 1 {
            vec![s.c]
        } else {
            vec![s.c, s.h, s.w]
        }
    }

    /// Worker threads.
    #[getter]
    fn threads(&self) -> usize {
        self.inner.threads()
    }

    fn __repr__(&self) -> String {
        let (c, h, w) = self.input_shape();
        format!(
            "Engine({:?}, input (N, {c}, {h}, {w}), output {:?}, threads {})",
            self.source.display().to_string(),
            self.output_shape(),
            self.threads()
        )
    }

    /// Runs a batch of NCHW float32 images.
    fn __call__<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let x: PyReadonlyArray4<'py, f32> = x.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "expected a float32 array of shape (N, {}, {}, {}), got {}",
                self.input_shape().0,
                self.input_shape().1,
                self.input_shape().2,
                describe(x)
            ))
        })?;
        let shape = x.shape().to_vec();
        let (c, h, w) = self.input_shape();
        if shape[1..] != [c, h, w] || shape[0] == 0 {
            return Err(PyValueError::new_err(format!(
                "expected images of shape (N, {c}, {h}, {w}) with N ≥ 1, got {shape:?}"
            )));
        }
        let n = shape[0];
        let owned;
        let data = match x.as_slice() {
            Ok(s) => s,
            Err(_) => {
                owned = x.as_array().iter().copied().collect::<Vec<f32>>();
                &owned[..]
            }
        };
        let out_shape = self.inner.plan().output_shape();
        let engine = &mut self.inner;
        let out = py.detach(|| -> PyResult<Vec<f32>> {
            let nhwc = nchw_to_nhwc(data, n, c, h * w);
            let out = engine.run(&nhwc, n).map_err(errors::runtime)?;
            Ok(nhwc_to_nchw(out, n, out_shape.c, out_shape.h * out_shape.w))
        })?;
        let mut dims = vec![n];
        dims.extend(self.output_shape());
        Ok(PyArray1::from_vec(py, out).reshape(dims)?.into_any())
    }
}

/// An object's type (and, for arrays, dtype and shape), for error messages.
pub fn describe(x: &Bound<'_, PyAny>) -> String {
    let dtype = x.getattr("dtype").map(|d| d.to_string()).ok();
    let shape = x.getattr("shape").map(|s| s.to_string()).ok();
    match (dtype, shape) {
        (Some(d), Some(s)) => format!("an array of {d} with shape {s}"),
        _ => x
            .get_type()
            .name()
            .map_or("an object".into(), |n| format!("a {n}")),
    }
}
