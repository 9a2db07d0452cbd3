//! The learning-rate schedule as a factor of each group's peak learning rate: every group follows
//! the same shape (as a PyTorch scheduler scales every param group alike).

use super::settings::ScheduleKind;
use crate::config::TrainConfig;

/// A schedule over the steps of a run: linear warm-up, then the chosen shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// The shape after warm-up.
    pub kind: ScheduleKind,
    /// Warm-up length in steps (the factor rises linearly to the shape's value at `warmup`).
    pub warmup: usize,
    /// Total steps of the run (cosine reaches 0 there).
    pub total: usize,
    /// Steps per epoch (the step schedule decays on epoch boundaries).
    pub steps_per_epoch: usize,
    /// Step schedule: epochs between decays.
    pub step_size: usize,
    /// Step schedule: the decay factor.
    pub gamma: f64,
}

impl LrSchedule {
    /// The schedule of `cfg` for a run of `steps_per_epoch` × `cfg.epochs` steps.
    pub fn from_config(cfg: &TrainConfig, steps_per_epoch: usize) -> Self {
        Self {
            kind: cfg.schedule,
            warmup: (cfg.warmup_epochs * steps_per_epoch as f64).round() as usize,
            total: steps_per_epoch * cfg.epochs,
            steps_per_epoch: steps_per_epoch.max(1),
            step_size: cfg.step_size.max(1),
            gamma: cfg.gamma,
        }
    }

    /// The factor of step `step` (0-based) in (0, 1] — 0 only at the very end of a cosine run.
    pub fn factor(&self, step: usize) -> f64 {
        match self.kind {
            // The existing schedule of the loop, warm-up included.
            ScheduleKind::Cosine => WarmupCosine {
                peak: 1.0,
                warmup: self.warmup,
                total: self.total,
            }
            .lr(step),
            ScheduleKind::Step | ScheduleKind::Constant => {
                let shape = match self.kind {
                    ScheduleKind::Step => {
                        let epoch = step / self.steps_per_epoch;
                        self.gamma.powi((epoch / self.step_size) as i32)
                    }
                    _ => 1.0,
                };
                if step < self.warmup {
                    shape * (step + 1) as f64 / self.warmup as f64
                } else {
                    shape
                }
            }
        }
    }
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then a cosine decay to 0 at `total` steps
/// (the schedule of most modern image-classification recipes).
#[derive(Clone, Copy, Debug)]
pub struct WarmupCosine {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up length in steps.
    pub warmup: usize,
    /// Total number of steps.
    pub total: usize,
}

impl WarmupCosine {
    /// The learning rate of step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        0.5 * self.peak * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup: usize, spe: usize) -> LrSchedule {
        LrSchedule {
            kind,
            warmup,
            total: 12 * spe,
            steps_per_epoch: spe,
            step_size: 3,
            gamma: 0.1,
        }
    }

    #[test]
    fn step_decays_on_epoch_boundaries() {
        let s = schedule(ScheduleKind::Step, 0, 4);
        // Epochs 0-2 at 1, 3-5 at 0.1, 6-8 at 0.01: every step of an epoch alike.
        for (step, want) in [(0, 1.0), (11, 1.0), (12, 0.1), (23, 0.1), (24, 0.01)] {
            assert!((s.factor(step) - want).abs() < 1e-15, "{step}");
        }
        let w = schedule(ScheduleKind::Step, 4, 4);
        assert_eq!(w.factor(0), 0.25);
        assert_eq!(w.factor(3), 1.0);
        assert_eq!(w.factor(12), s.factor(12));
    }

    #[test]
    fn constant_is_flat_after_warm_up() {
        let s = schedule(ScheduleKind::Constant, 2, 5);
        assert_eq!(s.factor(0), 0.5);
        assert_eq!(s.factor(1), 1.0);
        assert_eq!(s.factor(59), 1.0);
    }

    #[test]
    fn warms_up_then_follows_a_half_cosine() {
        let s = WarmupCosine {
            peak: 1.0,
            warmup: 4,
            total: 104,
        };
        assert!((s.lr(0) - 0.25).abs() < 1e-12);
        assert!((s.lr(3) - 1.0).abs() < 1e-12);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(54) - 0.5).abs() < 1e-12);
        assert!(s.lr(103) < 1e-3);
    }
}
