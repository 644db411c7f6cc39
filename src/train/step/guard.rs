//! Step piece 4½, the non-finite guard: after the backward pass (and the
//! weighting's gradients), before the optimizer, `nonfinite_check` records in
//! the step counters the first step whose task loss, objective or gradient is
//! not finite; the optimizers skip every step from then on, so the parameters
//! and optimizer state stay as the last finite step left them. The host reads
//! the counters with the epoch's loss log ([`Divergence::read`]): nothing is
//! read back inside an epoch, and a finite run computes exactly what it did
//! without the guard.

use super::StepShape;
use crate::error::NonFiniteIn;
use crate::ops::{BufId, GuardArgs, Op};
use crate::Error;

/// Elements of the counters buffer: the step within the epoch, the global
/// step, then the guard's record (see shaders/guard.wgsl) for `tasks` tasks.
pub fn counters_len(tasks: usize) -> usize {
    5 + tasks
}

/// The guard op over the step's reduce output `out` and gradient `grads`.
pub fn check_op(
    shape: &StepShape,
    grads_len: usize,
    out: BufId,
    grads: BufId,
    counters: BufId,
) -> Op {
    Op::NonfiniteCheck {
        args: GuardArgs {
            tasks: shape.tasks as u32,
            len: grads_len as u32,
            ..Default::default()
        },
        out,
        grads,
        counters,
    }
}

/// The first step that was not finite, as the counters recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub what: NonFiniteIn,
    /// Indices of the tasks to name.
    pub tasks: Vec<usize>,
    /// The global step (0-based).
    pub step: u64,
    /// Its index within its epoch.
    pub slot: usize,
}

impl Divergence {
    /// Decodes the counters read back at an epoch's end; None while every step was finite.
    pub fn read(counters: &[u32], tasks: usize) -> Option<Divergence> {
        let mark = *counters.get(2)?;
        if mark == 0 {
            return None;
        }
        let flags = counters.get(4).copied().unwrap_or(0);
        let lossy: Vec<usize> = (0..tasks)
            .filter(|&j| counters.get(5 + j).is_some_and(|&f| f != 0))
            .collect();
        let (what, tasks) = if !lossy.is_empty() {
            (NonFiniteIn::Loss, lossy)
        } else if flags & 2 != 0 {
            (NonFiniteIn::Objective, (0..tasks).collect())
        } else {
            (NonFiniteIn::Gradient, (0..tasks).collect())
        };
        Some(Divergence {
            what,
            tasks,
            step: mark as u64 - 1,
            slot: counters.get(3).copied().unwrap_or(0) as usize,
        })
    }

    /// The library's error, with the task names, the epoch and the last finite objective.
    pub fn error(&self, names: &[String], steps_per_epoch: usize, last: Option<f32>) -> Error {
        Error::NonFinite {
            what: self.what,
            tasks: self
                .tasks
                .iter()
                .filter_map(|&j| names.get(j).cloned())
                .collect(),
            step: self.step,
            epoch: (self.step / steps_per_epoch.max(1) as u64) as usize,
            last_finite_loss: last,
        }
    }
}
