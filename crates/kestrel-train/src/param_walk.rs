//! Visiting a model's parameters with their dotted module paths (`features.3.conv.weight`), the
//! names gradient health, regularisation and the logs use. Buffers (BatchNorm running
//! statistics) are skipped.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use kestrel_nn::layers::params::is_buffer;

/// Walks the parameters (buffers skipped) with their dotted paths.
struct Walk<F> {
    path: Vec<String>,
    f: F,
}

/// What to do with each parameter during a walk.
pub(crate) trait OnParam {
    /// Called with the parameter's dotted path.
    fn on<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>);
}

impl<F: OnParam> ModuleVisitor for Walk<F> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if !is_buffer(&path) {
            self.f.on(&path, param);
        }
    }
}

/// Calls `f.on` for each parameter of `model` (buffers skipped); returns `f`.
pub(crate) fn walk<M: Module, F: OnParam>(model: &M, f: F) -> F {
    let mut w = Walk {
        path: Vec::new(),
        f,
    };
    model.visit(&mut w);
    w.f
}
