//! From calibrated activation ranges to a [`QuantTable`]: one [`ActQuant`] per value (pools keep
//! their input's, so they run on codes unchanged), one symmetric weight scale per output channel.

use super::table::{int8_out_channels, weight_scales, ActQuant, Calibration, QuantTable};
use crate::plan::{ConvKind, Op, Plan};

/// The table for `plan` given each value's calibrated `(lo, hi)` range.
///
/// # Panics
/// If `ranges` does not have one entry per value.
pub fn build_table(plan: &Plan, ranges: &[(f32, f32)], calibration: Calibration) -> QuantTable {
    let g = &plan.graph;
    assert_eq!(ranges.len(), g.values.len(), "one range per value");
    let mut values: Vec<ActQuant> = ranges
        .iter()
        .map(|&(lo, hi)| ActQuant::from_range(lo, hi))
        .collect();
    for op in &g.ops {
        if let Op::MaxPool { input, output, .. } | Op::GlobalAvgPool { input, output } = op {
            values[*output] = values[*input];
        }
    }
    let weight_scales = g
        .ops
        .iter()
        .map(|op| match (int8_out_channels(op), op) {
            (Some(cout), Op::Conv(c)) => {
                let per_tensor = calibration.depthwise_per_tensor && c.kind == ConvKind::Depthwise;
                weight_scales(plan.slice(c.weight), cout, per_tensor)
            }
            (Some(cout), Op::Linear { weight, .. }) => {
                weight_scales(plan.slice(*weight), cout, false)
            }
            _ => Vec::new(),
        })
        .collect();
    QuantTable {
        values,
        weight_scales,
        calibration,
    }
}
