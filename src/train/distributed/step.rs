//! The training step of one rank of P > 1: the single process's recorded step
//! cut where its math needs values of the whole global batch, run one step at
//! a time as three programs with an all-reduce between them.
//!
//! 1. **A**: gather (this rank's slots of the global batch), forward, each
//!    task's per-row loss and count into `stats` [T, ⌈b/P⌉·M, 2].
//! 2. *Exchange 1*: each rank reads `stats`, places its rows at their slots
//!    of the global batch in a zeroed [T, b·M, 2] array, and one all-reduce
//!    sums the arrays: every element is one rank's value plus zeros, so every
//!    rank holds the single process's statistics of the global batch, exactly.
//! 3. **B**: the weighting's λ, the single process's reduce over those
//!    statistics (L_j = Σ loss / Σ count, λ_j/count_j, Σ λ_j L_j, logged),
//!    dz scaled by λ_j/count_j of the global batch, backward over this rank's
//!    rows, GradNorm's squared norms of this rank's rows.
//! 4. *Exchange 2*: one all-reduce sums the flat gradient buffer (GradNorm's
//!    norms appended): the gradient of the global batch's objective.
//! 5. **C**: the ops that write gradients from global values (uncertainty's
//!    ∂/∂s_j, GradNorm's ∂/∂p_j: they would be summed P times if they ran
//!    before the exchange), the non-finite guard, the optimizer, the step
//!    advance. Every rank applies the same update to the same weights.

use super::Partition;
use crate::backend::{Backend, ProgramId};
use crate::ops::{BufId, Op};
use crate::train::step::gather::StepCursor;
use crate::train::step::loss::{self, LossBuffers};
use crate::train::step::StepShape;
use crate::train::trainer::StepParts;
use crate::Result;
use std::time::{Duration, Instant};

/// Where the time of the distributed steps went, summed over the steps run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommTimes {
    /// Steps run.
    pub steps: u64,
    /// Running the three programs to completion.
    pub compute: Duration,
    /// Reading the statistics and the gradient back and writing the sums.
    pub transfer: Duration,
    /// Inside the two all-reduces (waiting for the slowest rank included).
    pub all_reduce: Duration,
    /// Bytes each rank passed to the all-reduces.
    pub bytes: u64,
}

/// What the trainer built that the split step needs besides its ops.
pub struct Wiring<'a> {
    /// The global step's shape (batches of b).
    pub shape: &'a StepShape,
    pub cursor: &'a StepCursor,
    /// The loss stage's buffers, sized for this rank's ⌈b/P⌉ slots.
    pub losses: &'a LossBuffers,
    /// Per task, the members trained on it one by one (its loss rows per slot).
    pub stacked: &'a [usize],
    pub grads: BufId,
}

/// The three programs of one rank's step and the buffers its exchanges move.
pub struct DistStep {
    part: Partition,
    programs: [ProgramId; 3],
    /// This rank's per-row statistics, and the global batch's.
    stats: BufId,
    global_stats: BufId,
    stacked: Vec<usize>,
    /// Loss rows per task: this rank's buffer, the global one.
    rows: (usize, usize),
    grads: BufId,
    /// GradNorm's per-task squared norms, summed with the gradient.
    norms: Option<BufId>,
    pub times: CommTimes,
}

impl DistStep {
    /// Records the three programs from the step's `parts`.
    pub fn prepare(
        b: &mut dyn Backend,
        part: Partition,
        parts: StepParts,
        w: Wiring,
    ) -> Result<DistStep> {
        let tasks = w.shape.tasks;
        let max_stacked = w.stacked.iter().max().copied().unwrap_or(1);
        let rows = (w.losses.loss_rows, max_stacked * part.batch);
        let global_stats = b.alloc(tasks * rows.1 * 2, "global loss stats")?;
        let global = LossBuffers {
            stats: global_stats,
            loss_rows: rows.1,
            ..*w.losses
        };
        let (sumsq, finish): (Vec<Op>, Vec<Op>) = (parts.after_backward.into_iter())
            .partition(|op| matches!(op, Op::GradnormSumsq { .. }));
        let norms = sumsq.iter().find_map(|op| match op {
            Op::GradnormSumsq { norms, .. } => Some(*norms),
            _ => None,
        });
        let mut second = parts.before_reduce;
        second.push(loss::reduce_op(w.shape, w.cursor, &global));
        second.extend(parts.backward);
        second.extend(sumsq);
        let mut third = parts.after_reduce;
        third.extend(finish);
        third.extend(parts.tail);
        let programs = [
            b.prepare(&parts.head)?,
            b.prepare(&second)?,
            b.prepare(&third)?,
        ];
        Ok(DistStep {
            part,
            programs,
            stats: w.losses.stats,
            global_stats,
            stacked: w.stacked.to_vec(),
            rows,
            grads: w.grads,
            norms,
            times: CommTimes::default(),
        })
    }

    /// Runs `steps` steps, one at a time.
    pub fn run(&mut self, b: &mut dyn Backend, steps: u32) -> Result<()> {
        for _ in 0..steps {
            self.timed_run(b, 0)?;
            self.exchange_stats(b)?;
            self.timed_run(b, 1)?;
            self.exchange_grads(b)?;
            self.timed_run(b, 2)?;
            self.times.steps += 1;
        }
        Ok(())
    }

    fn timed_run(&mut self, b: &mut dyn Backend, k: usize) -> Result<()> {
        let t = Instant::now();
        b.run(self.programs[k], 1)?;
        b.finish()?;
        self.times.compute += t.elapsed();
        Ok(())
    }

    /// Sums `data` across the ranks, timed.
    fn all_reduce(&mut self, data: &mut [f32]) -> Result<()> {
        let t = Instant::now();
        self.part.collective.all_reduce_sum(data)?;
        self.times.all_reduce += t.elapsed();
        self.times.bytes += std::mem::size_of_val(data) as u64;
        Ok(())
    }

    /// Exchange 1: the global batch's per-row statistics on every rank.
    fn exchange_stats(&mut self, b: &mut dyn Backend) -> Result<()> {
        let t = Instant::now();
        let local = b.read(self.stats)?;
        let mut global = self.place_rows(&local);
        self.times.transfer += t.elapsed();
        self.all_reduce(&mut global)?;
        let t = Instant::now();
        b.write(self.global_stats, 0, &global)?;
        self.times.transfer += t.elapsed();
        Ok(())
    }

    /// This rank's statistics [T, rows.0, 2] at their global rows in a zeroed
    /// [T, rows.1, 2]: member m's slot k goes to row m·b + lo + k.
    fn place_rows(&self, local: &[f32]) -> Vec<f32> {
        let (rl, rg) = self.rows;
        let p = &self.part;
        let mut global = vec![0.0f32; self.stacked.len() * rg * 2];
        for (j, &members) in self.stacked.iter().enumerate() {
            for m in 0..members {
                let src = 2 * (j * rl + m * p.local);
                let dst = 2 * (j * rg + m * p.batch + p.lo);
                let n = 2 * (p.hi - p.lo);
                global[dst..dst + n].copy_from_slice(&local[src..src + n]);
            }
        }
        global
    }

    /// Exchange 2: the gradient (and GradNorm's norms) summed over the ranks.
    fn exchange_grads(&mut self, b: &mut dyn Backend) -> Result<()> {
        let t = Instant::now();
        let mut flat = b.read(self.grads)?;
        let len = flat.len();
        if let Some(n) = self.norms {
            flat.extend(b.read(n)?);
        }
        self.times.transfer += t.elapsed();
        self.all_reduce(&mut flat)?;
        let t = Instant::now();
        b.write(self.grads, 0, &flat[..len])?;
        if let Some(n) = self.norms {
            b.write(n, 0, &flat[len..])?;
        }
        self.times.transfer += t.elapsed();
        Ok(())
    }
}
