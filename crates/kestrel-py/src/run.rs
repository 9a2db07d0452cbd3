//! Runs from Python: preprocessing, model descriptions, training, and a trained run's
//! predictions and evaluation. Results that kestrel writes as JSON come back as Python objects.

use crate::errors;
use kestrel_data::image_io::load_rgb;
use kestrel_data::imagenet_preprocess::CenterCropEval;
use kestrel_train::{Progress, RunOptions, Task, TrainConfig};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// A Rust value serialised to JSON and read back as Python objects.
pub fn to_python<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// torchvision's ImageNet evaluation preprocessing of an image file: `(3, 224, 224)` float32.
#[pyfunction]
pub fn preprocess_imagenet<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let x = py.detach(|| -> PyResult<Vec<f32>> {
        let img = load_rgb(&path).map_err(errors::data)?;
        let mut x = Vec::new();
        CenterCropEval::IMAGENET
            .push_chw(&img, &mut x)
            .map_err(errors::data)?;
        Ok(x)
    })?;
    let side = CenterCropEval::IMAGENET.crop as usize;
    Ok(PyArray1::from_vec(py, x)
        .reshape([3, side, side])?
        .into_any())
}

/// A model's layers, parameters and multiply-adds, as `kestrel info --json`.
#[pyfunction]
#[pyo3(signature = (model, width=None, resolution=224, classes=None, upsampler="bilinear", output_stride=32))]
pub fn info<'py>(
    py: Python<'py>,
    model: &str,
    width: Option<f64>,
    resolution: usize,
    classes: Option<usize>,
    upsampler: &str,
    output_stride: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let info = kestrel_nn::info::named::describe_named(
        model,
        width,
        resolution,
        classes,
        upsampler,
        output_stride,
    )
    .map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_python(py, &info)
}

/// The configuration of `settings` (a JSON object of `config.toml` keys) over the defaults of its
/// task.
fn config(settings: &str) -> PyResult<TrainConfig> {
    let bad = |e: String| PyValueError::new_err(format!("bad training settings: {e}"));
    let settings: serde_json::Value =
        serde_json::from_str(settings).map_err(|e| bad(e.to_string()))?;
    let base = match settings.get("task").and_then(|t| t.as_str()) {
        Some("segment") => TrainConfig::segment_default(),
        Some("multitask") => TrainConfig::multitask_default(),
        _ => TrainConfig::default(),
    };
    let mut merged = serde_json::to_value(&base).map_err(|e| bad(e.to_string()))?;
    if let (Some(m), Some(s)) = (merged.as_object_mut(), settings.as_object()) {
        for (k, v) in s {
            m.insert(k.clone(), v.clone());
        }
    }
    let cfg: TrainConfig = serde_json::from_value(merged).map_err(|e| bad(e.to_string()))?;
    cfg.validate().map_err(errors::train)?;
    Ok(cfg)
}

/// Trains as `settings` say (a JSON object of `config.toml` keys) into `out` (default
/// `runs/<model>-<task>-<n>`), with progress on stderr; returns the run folder.
#[pyfunction]
#[pyo3(signature = (settings, out=None, resume=false, progress=true))]
pub fn train(
    py: Python<'_>,
    settings: &str,
    out: Option<PathBuf>,
    resume: bool,
    progress: bool,
) -> PyResult<String> {
    let cfg = config(settings)?;
    let out = out.unwrap_or_else(|| {
        kestrel_train::run_dir::default_run_dir("runs".as_ref(), &cfg.model, cfg.task.name())
    });
    let opts = RunOptions {
        progress: if progress {
            Progress::Lines
        } else {
            Progress::Quiet
        },
        resume,
        stop_after: None,
    };
    py.detach(|| kestrel_train::train_run(&cfg, &out, &opts))
        .map_err(errors::train)?;
    Ok(out.display().to_string())
}

/// A trained run: `load_run(path)`.
#[pyclass(module = "kestrel._kestrel")]
pub struct Run {
    path: PathBuf,
    config: TrainConfig,
    class_names: Vec<String>,
}

#[pymethods]
impl Run {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let best = kestrel_train::run_dir::best_checkpoint(&path);
        let ckpt = py
            .detach(|| kestrel_train::Checkpoint::load(&best))
            .map_err(errors::train)?;
        Ok(Self {
            path,
            config: ckpt.meta.config.clone(),
            class_names: ckpt.meta.class_names.clone(),
        })
    }

    /// The run folder.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// The class names, in index order.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    /// The run's settings (its `config.toml`).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.config)
    }

    /// The task: `classify`, `segment` or `multitask`.
    #[getter]
    fn task(&self) -> &'static str {
        match self.config.task {
            Task::Classify => "classify",
            Task::Segment => "segment",
            Task::Multitask => "multitask",
        }
    }

    /// The best checkpoint's predictions for image files, as `kestrel predict --json`.
    #[pyo3(signature = (images, top_k=3))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        images: Vec<PathBuf>,
        top_k: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = py
            .detach(|| kestrel_train::predict_run(&self.path, &images, top_k))
            .map_err(errors::train)?;
        to_python(py, &p)
    }

    /// The best checkpoint's metrics on the `val` or `test` split, as `kestrel eval --json`.
    #[pyo3(signature = (split="val"))]
    fn evaluate<'py>(&self, py: Python<'py>, split: &str) -> PyResult<Bound<'py, PyAny>> {
        let split = match split {
            "val" => kestrel_train::EvalSplit::Val,
            "test" => kestrel_train::EvalSplit::Test,
            other => {
                return Err(PyValueError::new_err(format!(
                    "split={other:?}: expected 'val' or 'test'"
                )))
            }
        };
        let r = py
            .detach(|| kestrel_train::eval_run(&self.path, split))
            .map_err(errors::train)?;
        let mut value =
            serde_json::to_value(&r).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(m) = value.as_object_mut() {
            m.insert("split".into(), split.name().into());
        }
        to_python(py, &value)
    }

    fn __repr__(&self) -> String {
        format!(
            "Run({:?}, task {}, {} classes)",
            self.path(),
            self.task(),
            self.class_names.len()
        )
    }
}
