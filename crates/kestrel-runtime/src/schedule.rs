//! Execution schedule of a plan: which ops run fused (MobileNetV2 inverted-residual chains) and
//! which activation buffer holds each value, by liveness, so values whose lifetimes do not overlap
//! share a buffer.

use crate::plan::{ConvKind, Op, Plan, ValueId};

/// Where a value lives during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Slot {
    /// The caller's input.
    Input,
    /// Activation buffer `i` of the worker's arena.
    Buffer(usize),
    /// Inside a fused block: never stored.
    Virtual,
}

/// What the engine executes: a plan op, or a fused inverted-residual block of plan ops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// One plan op.
    Op(usize),
    Block {
        expand: Option<usize>,
        dw: usize,
        project: usize,
    },
}

impl Step {
    /// Values read by this step.
    pub(crate) fn reads(&self, ops: &[Op]) -> Vec<ValueId> {
        match *self {
            Step::Op(i) => ops[i].inputs(),
            Step::Block {
                expand,
                dw,
                project,
            } => {
                let first = expand.unwrap_or(dw);
                let mut r = vec![ops[first].inputs()[0]];
                r.extend(ops[project].inputs().into_iter().skip(1));
                r
            }
        }
    }

    /// The value this step writes.
    pub(crate) fn writes(&self, ops: &[Op]) -> ValueId {
        match *self {
            Step::Op(i) => ops[i].output(),
            Step::Block { project, .. } => ops[project].output(),
        }
    }
}

/// Finds expand (optional: 1×1, or a dense stem) → depthwise → project chains whose intermediate
/// values have no other reader, and returns the execution steps.
pub(crate) fn find_blocks(plan: &Plan) -> Vec<Step> {
    let ops = &plan.graph.ops;
    let mut readers = vec![0usize; plan.graph.values.len()];
    for op in ops {
        for v in op.inputs() {
            readers[v] += 1;
        }
    }
    let private = |v: ValueId| readers[v] == 1 && v != plan.graph.output;
    let conv = |i: usize| match ops.get(i) {
        Some(Op::Conv(c)) => Some(c),
        _ => None,
    };
    let mut steps = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        // Try a block starting at i: [expand at i,] depthwise, project.
        let try_block = |with_expand: bool| -> Option<Step> {
            let (e, d) = if with_expand {
                (Some(i), i + 1)
            } else {
                (None, i)
            };
            let dwc = conv(d).filter(|c| c.kind == ConvKind::Depthwise && c.residual.is_none())?;
            conv(d + 1).filter(|c| c.kind == ConvKind::Pointwise && c.input == dwc.output)?;
            if !private(dwc.output) {
                return None;
            }
            if let Some(e) = e {
                // A 1×1 expansion, or a one-group dense convolution (a stem) computed band by
                // band through im2col rows.
                let ec = conv(e).filter(|c| {
                    c.residual.is_none()
                        && (c.kind == ConvKind::Pointwise
                            || (c.kind == ConvKind::Im2col && c.groups == 1))
                })?;
                if ec.output != dwc.input || !private(ec.output) {
                    return None;
                }
            }
            Some(Step::Block {
                expand: e,
                dw: d,
                project: d + 1,
            })
        };
        match try_block(true).or_else(|| try_block(false)) {
            Some(step @ Step::Block { project, .. }) => {
                steps.push(step);
                i = project + 1;
            }
            _ => {
                steps.push(Step::Op(i));
                i += 1;
            }
        }
    }
    steps
}

/// Assigns every value written by `steps` an activation buffer: the buffer of a value whose last
/// reader has run is reused (best fit). Returns each value's slot and each buffer's floats per
/// image. Values inside fused blocks stay [`Slot::Virtual`].
pub(crate) fn assign_buffers(plan: &Plan, steps: &[Step]) -> (Vec<Slot>, Vec<usize>) {
    // Liveness over steps: the last step reading each value (the output lives forever).
    let mut last_use = vec![None::<usize>; plan.graph.values.len()];
    for (i, st) in steps.iter().enumerate() {
        for v in st.reads(&plan.graph.ops) {
            last_use[v] = Some(i);
        }
    }
    last_use[plan.graph.output] = Some(usize::MAX);
    let mut slots = vec![Slot::Virtual; plan.graph.values.len()];
    slots[0] = Slot::Input;
    let mut per_image: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (i, st) in steps.iter().enumerate() {
        let out = st.writes(&plan.graph.ops);
        let need = plan.graph.values[out].len();
        // Best fit among free buffers: the smallest that is big enough, else the biggest.
        let pick = free
            .iter()
            .enumerate()
            .filter(|(_, &b)| per_image[b] >= need)
            .min_by_key(|(_, &b)| per_image[b])
            .or_else(|| free.iter().enumerate().max_by_key(|(_, &b)| per_image[b]))
            .map(|(k, _)| k);
        let b = match pick {
            Some(k) => free.swap_remove(k),
            None => {
                per_image.push(0);
                per_image.len() - 1
            }
        };
        per_image[b] = per_image[b].max(need);
        slots[out] = Slot::Buffer(b);
        let mut reads = st.reads(&plan.graph.ops);
        reads.dedup();
        for v in reads {
            if let (Slot::Buffer(vb), Some(l)) = (slots[v], last_use[v]) {
                if l == i && !free.contains(&vb) {
                    free.push(vb);
                }
            }
        }
        if last_use[out].is_none() {
            free.push(b);
        }
    }
    (slots, per_image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, ConvParams, PlanBuilder, Shape};

    fn unfused(plan: &Plan) -> Vec<Step> {
        (0..plan.graph.ops.len()).map(Step::Op).collect()
    }

    #[test]
    fn a_chain_ping_pongs_between_two_buffers() {
        let mut b = PlanBuilder::new(Shape { h: 4, w: 4, c: 2 });
        let mut x = b.input();
        for _ in 0..5 {
            x = b.conv(x, &ConvParams::new(&[0.5; 4], None, 2, 1)).unwrap();
        }
        let plan = b.build(x).unwrap();
        let (slots, per_image) = assign_buffers(&plan, &unfused(&plan));
        assert_eq!(per_image, vec![32, 32]);
        assert_eq!(slots[0], Slot::Input);
        // consecutive values alternate buffers
        for v in 1..5 {
            assert_ne!(slots[v], slots[v + 1]);
        }
    }

    #[test]
    fn a_residual_keeps_its_source_alive() {
        let mut b = PlanBuilder::new(Shape { h: 4, w: 4, c: 2 });
        let s = b.conv(0, &ConvParams::new(&[0.5; 4], None, 2, 1)).unwrap();
        let y = b
            .conv(
                s,
                &ConvParams::new(&[0.5; 4], None, 2, 1).act(Activation::Relu),
            )
            .unwrap();
        let y = b.conv(y, &ConvParams::new(&[0.5; 4], None, 2, 1)).unwrap();
        let y = b.add_residual(y, s, Activation::None).unwrap();
        let plan = b.build(y).unwrap();
        let (slots, per_image) = assign_buffers(&plan, &unfused(&plan));
        // s is read by the last op, so the two ops in between cannot use its buffer
        assert_eq!(per_image.len(), 3);
        assert_ne!(slots[s], slots[2]);
        assert_ne!(slots[s], slots[3]);
    }
}
