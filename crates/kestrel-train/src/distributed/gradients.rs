//! The gradient all-reduce of data-parallel training: after the backward pass, every replica's
//! gradients are summed over the replicas and divided by their number, in buckets, walking the
//! parameters in the model's own order (parameter ids differ between processes; the order does
//! not). Frozen parameters have no gradient on any replica and are skipped alike.

use super::Replicas;
use crate::error::Result;
use crate::param_walk::{walk, OnParam};
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

/// Values per all-reduce call: the gradients go in buckets of this many `f32` (16 MB), so that
/// no single message is the whole model of a large network.
pub(crate) const BUCKET: usize = 4 << 20;

/// Appends every gradient's values to `values`, in parameter order.
struct Gather<'a> {
    grads: &'a GradientsParams,
    values: Vec<f32>,
}

impl OnParam for Gather<'_> {
    fn on<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let data = g.into_data().convert::<f32>();
            self.values
                .extend_from_slice(data.as_slice::<f32>().expect("f32 gradient"));
        }
    }
}

/// Replaces every gradient with the next values of `values`, in parameter order.
struct Scatter<'a> {
    grads: &'a mut GradientsParams,
    values: &'a [f32],
    at: usize,
}

impl OnParam for Scatter<'_> {
    fn on<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let (shape, device) = (g.shape(), g.device());
            let len = shape.num_elements();
            let data = TensorData::new(self.values[self.at..self.at + len].to_vec(), shape);
            self.at += len;
            self.grads
                .register(param.id, Tensor::<D>::from_data(data, &device));
        }
    }
}

/// The mean over the replicas of each replica's `grads` of `model`.
pub(crate) fn average<M: Module>(
    replicas: &Replicas,
    model: &M,
    mut grads: GradientsParams,
) -> Result<GradientsParams> {
    if !replicas.is_distributed() {
        return Ok(grads);
    }
    let mut values = walk(
        model,
        Gather {
            grads: &grads,
            values: Vec::new(),
        },
    )
    .values;
    replicas.check_same(values.len() as f64, "the number of gradient values")?;
    for bucket in values.chunks_mut(BUCKET) {
        replicas.world.sum_f32(bucket, "the gradient all-reduce")?;
    }
    let inv = 1.0 / replicas.world.size() as f32;
    values.iter_mut().for_each(|v| *v *= inv);
    walk(
        model,
        Scatter {
            grads: &mut grads,
            values: &values,
            at: 0,
        },
    );
    Ok(grads)
}
