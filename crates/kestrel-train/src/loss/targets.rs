//! Class-index targets read to the host, checked, and turned into a gather-safe index tensor
//! and a mask of the elements that count.

use crate::error::{Result, TrainError};
use burn::tensor::{Device, Int, Tensor};

/// Class-index targets after validation.
pub(crate) struct ClassTargets {
    /// Targets with ignored entries replaced by class 0, safe to gather with: `(M, 1)`.
    pub safe: Tensor<2, Int>,
    /// 1 where the target counts, 0 where it equals the ignore index: `(M)`.
    pub valid: Tensor<1>,
    /// The host copy of the safe targets.
    pub safe_host: Vec<usize>,
    /// The host copy of the mask.
    pub valid_host: Vec<bool>,
}

/// Reads `targets` and checks every value is a class in `[0, classes)` or the ignore index.
/// `what` names the loss in error messages.
pub(crate) fn class_targets<const D: usize>(
    targets: Tensor<D, Int>,
    classes: usize,
    ignore_index: Option<i64>,
    what: &str,
    device: &Device,
) -> Result<ClassTargets> {
    let data = targets.into_data().convert::<i64>();
    let values = data
        .try_into_vec::<i64>()
        .map_err(|e| TrainError::Runtime(format!("{what}: cannot read the targets: {e:?}")))?;
    let mut safe_host = Vec::with_capacity(values.len());
    let mut valid_host = Vec::with_capacity(values.len());
    for (i, &t) in values.iter().enumerate() {
        if Some(t) == ignore_index {
            safe_host.push(0);
            valid_host.push(false);
        } else if t >= 0 && (t as u64) < classes as u64 {
            safe_host.push(t as usize);
            valid_host.push(true);
        } else {
            let ignore = match ignore_index {
                Some(v) => format!("the ignore index {v}"),
                None => "no ignore index is set".to_string(),
            };
            return Err(TrainError::BadInput(format!(
                "{what}: target {t} at flat position {i} is not a class in [0, {classes}) and {ignore}"
            )));
        }
    }
    let m = values.len();
    let safe = Tensor::<1, Int>::from_data(
        burn::tensor::TensorData::new(safe_host.iter().map(|&v| v as i64).collect(), [m]),
        device,
    )
    .reshape([m, 1]);
    let valid = Tensor::<1>::from_data(
        burn::tensor::TensorData::new(
            valid_host
                .iter()
                .map(|&v| if v { 1.0f32 } else { 0.0 })
                .collect(),
            [m],
        ),
        device,
    );
    Ok(ClassTargets {
        safe,
        valid,
        safe_host,
        valid_host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_targets_become_class_zero_and_are_masked() {
        let d = Device::flex();
        let t = Tensor::<1, Int>::from_ints([2, 255, 0], &d);
        let ct = class_targets(t, 3, Some(255), "test", &d).unwrap();
        assert_eq!(ct.safe_host, [2, 0, 0]);
        assert_eq!(ct.valid_host, [true, false, true]);
    }

    #[test]
    fn out_of_range_target_is_named() {
        let d = Device::flex();
        let t = Tensor::<1, Int>::from_ints([1, 3], &d);
        let err = class_targets(t, 3, None, "cross-entropy", &d)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("target 3 at flat position 1"), "{err}");
        assert!(err.contains("[0, 3)"), "{err}");
        let t = Tensor::<1, Int>::from_ints([-1], &d);
        assert!(class_targets(t, 3, Some(255), "x", &d).is_err());
    }
}
