//! Replica 0's model values on every replica: every float of the module, parameters and
//! BatchNorm running statistics alike, in the module's own order. At the start this makes the
//! replicas identical whatever each process initialised; before validation it gives every
//! replica replica 0's running statistics (which, without SyncBatchNorm, each replica kept from
//! its own part of the batches), so that the validation shards score the model the `best` and
//! `last` checkpoints hold — what PyTorch's DDP does with `broadcast_buffers`.

use super::Replicas;
use crate::error::Result;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

/// Every float of a module, in order.
struct Floats(Vec<f32>);

impl ModuleVisitor for Floats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data().convert::<f32>();
        self.0
            .extend_from_slice(data.as_slice::<f32>().expect("f32 values"));
    }
}

/// Sets every float of a module from `values`, in order, keeping whether it requires a gradient.
struct SetFloats<'a> {
    values: &'a [f32],
    at: usize,
}

impl ModuleMapper for SetFloats<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let (shape, device, grad) = (t.shape(), t.device(), t.is_require_grad());
            let len = shape.num_elements();
            let data = TensorData::new(self.values[self.at..self.at + len].to_vec(), shape);
            self.at += len;
            Tensor::<D>::from_data(data, &device).set_require_grad(grad)
        })
    }
}

/// `model` with replica 0's values on every replica (unchanged with one process).
pub(crate) fn from_leader<M: Module>(replicas: &Replicas, model: M) -> Result<M> {
    if !replicas.is_distributed() {
        return Ok(model);
    }
    let mut floats = Floats(Vec::new());
    model.visit(&mut floats);
    let mut values = floats.0;
    replicas.check_same(values.len() as f64, "the number of model values")?;
    for bucket in values.chunks_mut(super::gradients::BUCKET) {
        replicas.broadcast_f32(bucket, "replica 0's model")?;
    }
    Ok(model.map(&mut SetFloats {
        values: &values,
        at: 0,
    }))
}
