//! Gradient health: per-parameter gradient L2 norms, alarms for vanishing, exploding or
//! non-finite gradients naming the parameter, and clipping by the global norm as
//! `torch.nn.utils.clip_grad_norm_` does it.
//!
//! Norms are accumulated in f64 on the host from the f32 gradients, so a large gradient reads
//! as large (not as an f32 overflow to ∞) and the global norm √(Σ‖g_i‖²) is exact to f64.
//! Parameters without a gradient (frozen, or not on the loss's graph) and buffers are skipped,
//! as PyTorch skips parameters whose `.grad` is `None`.

use crate::error::{Result, TrainError};
use crate::param_walk::{walk, OnParam};
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::fmt;

/// The gradient norm of one parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGradNorm {
    /// Dotted module path of the parameter (e.g. `features.3.conv.weight`).
    pub path: String,
    /// L2 norm of its gradient (NaN or ∞ if the gradient holds such values).
    pub norm: f64,
    /// Number of elements.
    pub numel: usize,
}

/// L2 norm of a tensor's values, accumulated in f64.
fn l2_norm<const D: usize>(t: Tensor<D>) -> (f64, usize) {
    let data = t.into_data().convert::<f32>();
    let v = data.as_slice::<f32>().unwrap_or(&[]);
    let ss: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    (ss.sqrt(), v.len())
}

/// Collects the norms of the gradients present in `grads`.
struct CollectNorms<'a> {
    grads: &'a GradientsParams,
    out: Vec<ParamGradNorm>,
}

impl OnParam for CollectNorms<'_> {
    fn on<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let (norm, numel) = l2_norm(g);
            self.out.push(ParamGradNorm {
                path: path.to_string(),
                norm,
                numel,
            });
        }
    }
}

/// The gradient L2 norm of every parameter of `model` that has a gradient in `grads`, in the
/// model's visiting order.
pub fn grad_norms<M: Module>(model: &M, grads: &GradientsParams) -> Vec<ParamGradNorm> {
    walk(
        model,
        CollectNorms {
            grads,
            out: Vec::new(),
        },
    )
    .out
}

/// Collects the norms of the parameter values.
struct CollectValueNorms {
    out: Vec<(String, f64)>,
}

impl OnParam for CollectValueNorms {
    fn on<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        self.out.push((path.to_string(), l2_norm(param.val()).0));
    }
}

/// The parameter of `model` most likely to have caused a blow-up: the first whose values are not
/// all finite, else the one of largest L2 norm; `None` for a model without parameters.
pub fn worst_param<M: Module>(model: &M) -> Option<(String, f64)> {
    let norms = walk(model, CollectValueNorms { out: Vec::new() }).out;
    if let Some(bad) = norms.iter().find(|(_, n)| !n.is_finite()) {
        return Some(bad.clone());
    }
    norms.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Every parameter's path and L2 norm (NaN or ∞ when its values are not all finite).
pub fn param_norms<M: Module>(model: &M) -> Vec<(String, f64)> {
    walk(model, CollectValueNorms { out: Vec::new() }).out
}

/// The first parameter whose L2 norm changed by more than `limit` (or became non-finite) between
/// `before` and `after` (both from [`param_norms`] of the same model, before and after an
/// optimiser step), as an [`GradAlarmKind::ExplodingUpdate`] alarm.
pub fn check_update(
    before: &[(String, f64)],
    after: &[(String, f64)],
    limit: f64,
) -> Option<GradAlarm> {
    before.iter().zip(after).find_map(|((path, a), (_, b))| {
        let jump = (b - a).abs();
        (a.is_finite() && (jump.is_nan() || jump > limit)).then(|| GradAlarm {
            path: path.clone(),
            norm: *b,
            kind: GradAlarmKind::ExplodingUpdate,
            threshold: limit,
        })
    })
}

/// The global L2 norm √(Σ‖g_i‖²) of per-parameter norms (torch's `total_norm`, norm_type 2).
pub fn global_norm(norms: &[ParamGradNorm]) -> f64 {
    norms.iter().map(|n| n.norm * n.norm).sum::<f64>().sqrt()
}

/// Limits beyond which a parameter's gradient norm raises an alarm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradThresholds {
    /// A norm below this is vanishing (default 1e-7).
    pub vanishing_below: f64,
    /// A norm above this is exploding (default 1e3).
    pub exploding_above: f64,
}

impl Default for GradThresholds {
    fn default() -> Self {
        Self {
            vanishing_below: 1e-7,
            exploding_above: 1e3,
        }
    }
}

/// What is wrong with a gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradAlarmKind {
    /// Norm below [`GradThresholds::vanishing_below`].
    Vanishing,
    /// Norm above [`GradThresholds::exploding_above`].
    Exploding,
    /// The gradient holds NaN or ∞.
    NonFinite,
    /// One optimiser step changed the parameter's L2 norm by more than
    /// [`GradThresholds::exploding_above`]: the effective gradient step (learning rate times the
    /// update direction) exploded, even where BatchNorm and saturating activations keep the raw
    /// gradient small. `norm` is the norm after the step.
    ExplodingUpdate,
}

/// An unhealthy gradient, naming its parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct GradAlarm {
    /// The parameter's path.
    pub path: String,
    /// Its gradient norm.
    pub norm: f64,
    /// What is wrong.
    pub kind: GradAlarmKind,
    /// The threshold crossed (NaN for [`GradAlarmKind::NonFinite`]).
    pub threshold: f64,
}

impl fmt::Display for GradAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            GradAlarmKind::Vanishing => write!(
                f,
                "vanishing gradient at {}: L2 norm {:.3e} < {:.1e}",
                self.path, self.norm, self.threshold
            ),
            GradAlarmKind::Exploding => write!(
                f,
                "exploding gradient at {}: L2 norm {:.3e} > {:.1e}",
                self.path, self.norm, self.threshold
            ),
            GradAlarmKind::NonFinite => {
                write!(
                    f,
                    "non-finite gradient at {}: L2 norm {}",
                    self.path, self.norm
                )
            }
            GradAlarmKind::ExplodingUpdate => write!(
                f,
                "exploding gradient step at {}: one update moved its L2 norm to {:.3e}, by more than {:.1e}",
                self.path, self.norm, self.threshold
            ),
        }
    }
}

/// The alarms raised by `norms` under `thresholds`, in the order of `norms`.
pub fn check_grads(norms: &[ParamGradNorm], thresholds: &GradThresholds) -> Vec<GradAlarm> {
    norms
        .iter()
        .filter_map(|n| {
            let (kind, threshold) = if !n.norm.is_finite() {
                (GradAlarmKind::NonFinite, f64::NAN)
            } else if n.norm < thresholds.vanishing_below {
                (GradAlarmKind::Vanishing, thresholds.vanishing_below)
            } else if n.norm > thresholds.exploding_above {
                (GradAlarmKind::Exploding, thresholds.exploding_above)
            } else {
                return None;
            };
            Some(GradAlarm {
                path: n.path.clone(),
                norm: n.norm,
                kind,
                threshold,
            })
        })
        .collect()
}

/// Multiplies every gradient present by a factor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl OnParam for Scale<'_> {
    fn on<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// Clips the gradients of `model` by their global L2 norm, as `torch.nn.utils.clip_grad_norm_`:
/// with total = √(Σ‖g_i‖²) and scale = max_norm / (total + 1e-6), every gradient is multiplied
/// by scale when scale < 1 and left alone otherwise. Returns the gradients and the total norm
/// before clipping. A non-finite total leaves the gradients unchanged (PyTorch would scale them
/// by NaN): check `total.is_finite()` and skip the step. `max_norm` must be finite and > 0.
pub fn clip_grad_norm<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> Result<(GradientsParams, f64)> {
    if !max_norm.is_finite() || max_norm <= 0.0 {
        return Err(TrainError::BadInput(format!(
            "gradient clipping: max norm is {max_norm}; expected a finite value > 0"
        )));
    }
    let total = global_norm(&grad_norms(model, &grads));
    let factor = max_norm / (total + 1e-6);
    if total.is_finite() && factor < 1.0 {
        walk(
            model,
            Scale {
                grads: &mut grads,
                factor,
            },
        );
    }
    Ok((grads, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_that_moves_a_norm_past_the_limit_is_exploding() {
        let n = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(p, x)| (p.to_string(), *x)).collect()
        };
        let before = n(&[("a.weight", 3.0), ("b.weight", 0.0), ("c.bias", 1.0)]);
        // Ordinary steps, even growing a zero-initialised tensor, stay quiet.
        assert_eq!(
            check_update(
                &before,
                &n(&[("a.weight", 3.5), ("b.weight", 2.0), ("c.bias", 0.9)]),
                1e4
            ),
            None
        );
        let a = check_update(
            &before,
            &n(&[("a.weight", 3.5), ("b.weight", 2.0e4), ("c.bias", 1.0)]),
            1e4,
        )
        .unwrap();
        assert_eq!(
            (a.path.as_str(), a.kind),
            ("b.weight", GradAlarmKind::ExplodingUpdate)
        );
        assert!(
            a.to_string()
                .contains("exploding gradient step at b.weight"),
            "{a}"
        );
        // A step to NaN is caught too; a tensor already non-finite before is not blamed again.
        let a = check_update(
            &before,
            &n(&[("a.weight", f64::NAN), ("b.weight", 0.0), ("c.bias", 1.0)]),
            1e4,
        )
        .unwrap();
        assert_eq!(a.path, "a.weight");
        let bad = n(&[("a.weight", f64::INFINITY)]);
        assert_eq!(check_update(&bad, &n(&[("a.weight", f64::NAN)]), 1e4), None);
    }
    use crate::loss::fixtures::{self, floats, values};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Two {
        a: Linear,
        b: Linear,
    }

    fn two(device: &Device) -> Two {
        Two {
            a: LinearConfig::new(3, 2).init(device),
            b: LinearConfig::new(3, 4).init(device),
        }
    }

    fn input(device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0, 0.0, -1.0], [2, 3]),
            device,
        )
    }

    /// loss = Σ b(x) + 0·Σ a(x): a's gradients are exactly zero.
    #[test]
    fn a_zeroed_layer_raises_the_vanishing_alarm_naming_it() {
        let device = Device::flex().autodiff();
        let m = two(&device);
        let x = input(&device);
        let loss =
            m.b.forward(x.clone())
                .sum()
                .add(m.a.forward(x).sum().mul_scalar(0.0));
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let norms = grad_norms(&m, &grads);
        let paths: Vec<_> = norms.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["a.weight", "a.bias", "b.weight", "b.bias"]);
        let alarms = check_grads(&norms, &GradThresholds::default());
        let named: Vec<_> = alarms.iter().map(|a| (a.path.as_str(), a.kind)).collect();
        assert_eq!(
            named,
            [
                ("a.weight", GradAlarmKind::Vanishing),
                ("a.bias", GradAlarmKind::Vanishing)
            ]
        );
        assert!(alarms[0]
            .to_string()
            .contains("vanishing gradient at a.weight"));
    }

    /// d/dW Σ(xW + b) = xᵀ·1: column j of the gradient is Σ_rows x, for every output;
    /// d/db = N per output. With x rows (1, −2, 0.5), (3, 0, −1): Σ = (4, −2, −0.5),
    /// ‖∇W_b‖ = √(4 · 20.25) = 9, ‖∇b_b‖ = √(4 · 4) = 4.
    #[test]
    fn norms_match_hand_computation_and_exploding_is_flagged() {
        let device = Device::flex().autodiff();
        let m = two(&device);
        let loss = m.b.forward(input(&device)).sum().mul_scalar(1000.0);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let norms = grad_norms(&m, &grads);
        // `a` is not on the graph: it has no gradient and is skipped.
        assert_eq!(norms.len(), 2);
        assert_eq!(norms[0].path, "b.weight");
        assert!((norms[0].norm - 9000.0).abs() < 1e-3, "{:?}", norms[0]);
        assert!((norms[1].norm - 4000.0).abs() < 1e-3, "{:?}", norms[1]);
        assert_eq!(norms[0].numel, 12);
        assert!((global_norm(&norms) - 97_000_000f64.sqrt()).abs() < 1e-3);
        let t = GradThresholds {
            vanishing_below: 1e-7,
            exploding_above: 5000.0,
        };
        let alarms = check_grads(&norms, &t);
        assert_eq!(alarms.len(), 1);
        assert_eq!(
            (alarms[0].path.as_str(), alarms[0].kind),
            ("b.weight", GradAlarmKind::Exploding)
        );
    }

    #[test]
    fn non_finite_gradient_is_flagged_and_not_clipped() {
        let device = Device::flex();
        let m = two(&device);
        let mut grads = GradientsParams::new();
        grads.register(
            m.a.weight.id,
            Tensor::<2>::from_floats([[1.0, f32::NAN], [0.0, 0.0], [0.0, 0.0]], &device),
        );
        let norms = grad_norms(&m, &grads);
        let alarms = check_grads(&norms, &GradThresholds::default());
        assert_eq!(alarms[0].kind, GradAlarmKind::NonFinite);
        let (grads, total) = clip_grad_norm(&m, grads, 1.0).unwrap();
        assert!(total.is_nan());
        assert_eq!(values(grads.get::<2>(m.a.weight.id).unwrap())[0], 1.0);
    }

    #[derive(Module, Debug)]
    struct Three {
        a: Param<Tensor<2>>,
        b: Param<Tensor<1>>,
        c: Param<Tensor<3>>,
    }

    #[test]
    fn clipping_matches_torch_clip_grad_norm() {
        let device = Device::flex();
        let m = Three {
            a: Param::from_tensor(Tensor::zeros([3, 4], &device)),
            b: Param::from_tensor(Tensor::zeros([4], &device)),
            c: Param::from_tensor(Tensor::zeros([2, 2, 3], &device)),
        };
        let cases = fixtures::section("clip");
        assert_eq!(cases.len(), 3);
        for case in &cases {
            let g: Vec<Vec<f64>> = serde_json::from_value(case.0["grads"].clone()).unwrap();
            let want: Vec<Vec<f64>> = serde_json::from_value(case.0["clipped"].clone()).unwrap();
            let mut grads = GradientsParams::new();
            grads.register(m.a.id, floats(&g[0], &device).reshape([3, 4]));
            grads.register(m.b.id, floats(&g[1], &device));
            grads.register(m.c.id, floats(&g[2], &device).reshape([2, 2, 3]));
            let (grads, total) = clip_grad_norm(&m, grads, case.f64("max_norm")).unwrap();
            let want_total = case.f64("total_norm");
            assert!(
                (total - want_total).abs() < 1e-9 * want_total,
                "{total} vs {want_total}"
            );
            let got = [
                values(grads.get::<2>(m.a.id).unwrap()),
                values(grads.get::<1>(m.b.id).unwrap()),
                values(grads.get::<3>(m.c.id).unwrap()),
            ];
            for (k, (got, want)) in got.iter().zip(&want).enumerate() {
                fixtures::assert_close(&format!("{} tensor {k}", case.name("clip")), got, want);
            }
        }
    }

    #[test]
    fn the_worst_parameter_is_the_non_finite_or_the_largest() {
        let device = Device::flex();
        let m = Three {
            a: Param::from_tensor(Tensor::from_floats([[3.0, 4.0]], &device)),
            b: Param::from_tensor(Tensor::from_floats([12.0], &device)),
            c: Param::from_tensor(Tensor::zeros([1, 1, 2], &device)),
        };
        assert_eq!(worst_param(&m), Some(("b".to_string(), 12.0)));
        let m = Three {
            c: Param::from_tensor(Tensor::from_floats([[[1.0, f32::INFINITY]]], &device)),
            ..m
        };
        let (name, norm) = worst_param(&m).unwrap();
        assert_eq!((name.as_str(), norm), ("c", f64::INFINITY));
    }

    #[test]
    fn bad_max_norm_is_reported() {
        let device = Device::flex();
        let m = two(&device);
        let e = clip_grad_norm(&m, GradientsParams::new(), 0.0).unwrap_err();
        assert!(e.to_string().contains("max norm is 0"), "{e}");
    }
}
