//! The recorded step in its named pieces, and the program(s) made of them: one
//! program, replayed many steps per submit, for a single process; three, run
//! one step at a time around two all-reduces, for a rank of a larger job
//! (`train::distributed::step`).

use crate::backend::{Backend, ProgramId};
use crate::ops::Op;
use crate::train::distributed::step::{CommTimes, DistStep, Wiring};
use crate::train::distributed::Partition;
use crate::Result;

/// The ops of one training step, in the single process's order.
pub struct StepParts {
    /// Batch gather, forward, each task's per-row loss and dz.
    pub head: Vec<Op>,
    /// The weighting's ops before the reduce (λ from learned parameters).
    pub before_reduce: Vec<Op>,
    /// The reduce to L_j, λ_j/count_j and Σ λ_j L_j.
    pub reduce: Op,
    /// The weighting's ops after the reduce (uncertainty's ∂/∂s_j).
    pub after_reduce: Vec<Op>,
    /// dz scaled by λ_j/count_j, then the graph's backward.
    pub backward: Vec<Op>,
    /// The weighting's ops after the backward (GradNorm).
    pub after_backward: Vec<Op>,
    /// The non-finite guard, the optimizer, the step advance.
    pub tail: Vec<Op>,
}

impl StepParts {
    /// The whole step as one op list.
    pub fn in_order(&self) -> Vec<Op> {
        let mut ops = self.head.clone();
        ops.extend(self.before_reduce.iter().cloned());
        ops.push(self.reduce.clone());
        ops.extend(self.after_reduce.iter().cloned());
        ops.extend(self.backward.iter().cloned());
        ops.extend(self.after_backward.iter().cloned());
        ops.extend(self.tail.iter().cloned());
        ops
    }
}

/// How the trainer runs its steps.
pub enum StepProgram {
    /// One prepared program per step (the single process).
    Whole(ProgramId),
    /// Three programs and two all-reduces per step (a rank of P > 1).
    Split(Box<DistStep>),
}

impl StepProgram {
    /// Prepares `parts` on `b`: as one program, or split for `partition`.
    pub fn prepare(
        b: &mut dyn Backend,
        parts: StepParts,
        partition: Option<Partition>,
        wiring: Wiring,
    ) -> Result<StepProgram> {
        Ok(match partition {
            None => StepProgram::Whole(b.prepare(&parts.in_order())?),
            Some(p) => StepProgram::Split(Box::new(DistStep::prepare(b, p, parts, wiring)?)),
        })
    }

    /// Runs `steps` steps back to back.
    pub fn run(&mut self, b: &mut dyn Backend, steps: u32) -> Result<()> {
        match self {
            StepProgram::Whole(p) => b.run(*p, steps),
            StepProgram::Split(d) => d.run(b, steps),
        }
    }

    /// Where a distributed step's time went (None for the single process).
    pub fn comm_times(&self) -> Option<CommTimes> {
        match self {
            StepProgram::Whole(_) => None,
            StepProgram::Split(d) => Some(d.times),
        }
    }
}
