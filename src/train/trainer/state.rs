//! A trainer's whole state, for checkpoints: what the device holds
//! (parameters, optimizer state, the loss log of an unfinished epoch) and
//! what the host holds (epoch and step counters, the shuffle generator's
//! position, the task weighting's epoch losses and λ). Restoring it into a
//! trainer built from the same model, data and config continues the run
//! bit for bit: every later step sees the same inputs as in a run that never
//! stopped.

use super::{step_losses, StepLoss, Trainer};
use crate::train::config::{OptimizerKind, Weighting};
use crate::train::feed::EpochPlan;
use crate::train::step::counts::StepCounts;
use crate::{Error, Result};

/// An epoch under way (put aside by a stop request): its plan, the steps
/// done, the shuffle generator's position before the plan was drawn, and the
/// label counts of the steps of the segments made so far.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub plan: EpochPlan,
    pub done: usize,
    pub rng_pos: u128,
    pub counts: Vec<StepCounts>,
}

/// Everything a [`Trainer`] needs to continue where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    /// Finished epochs.
    pub epoch: usize,
    /// Steps done in the unfinished epoch (0 at an epoch boundary).
    pub step_in_epoch: usize,
    /// Optimizer steps done in all (`epoch · steps_per_epoch + step_in_epoch`).
    pub global_step: u64,
    /// The shuffle generator's word position at the start of the unfinished
    /// epoch, before its row order was drawn (ChaCha8, seeded by `train.seed`).
    pub rng_word_pos: u128,
    /// Parameters, in the model's layout.
    pub params: Vec<f32>,
    /// Adam's first moment or SGD's velocity, in the same layout.
    pub m: Vec<f32>,
    /// Adam's second moment (zeros under SGD).
    pub v: Vec<f32>,
    /// The loss log of the unfinished epoch's steps done, [step_in_epoch, T + 1].
    pub epoch_log: Vec<f32>,
    /// Per finished epoch, each task's mean loss (DWA's ratios, GradNorm's L(0)).
    pub epoch_losses: Vec<Vec<f32>>,
    /// The λ the host last wrote (fixed weights, DWA).
    pub host_lambda: Option<Vec<f32>>,
    /// Per finished epoch, λ as its last step used them.
    pub lambda_history: Vec<Vec<f32>>,
}

impl Trainer {
    /// The trainer's whole state (reads the parameters, the optimizer state
    /// and an unfinished epoch's loss log back from the device).
    pub fn state(&mut self) -> Result<TrainerState> {
        let (done, rng_pos) = match &self.pending {
            Some(p) => (p.done, p.rng_pos),
            None => (0, self.rng.get_word_pos()),
        };
        let b = self.backend.as_mut();
        let s = &self.bufs.state;
        let (params, m, v) = (b.read(s.params)?, b.read(s.m)?, b.read(s.v)?);
        let mut epoch_log = Vec::new();
        if done > 0 {
            epoch_log = b.read(self.bufs.log)?;
            epoch_log.truncate(done * (self.shape.tasks + 1));
        }
        Ok(TrainerState {
            epoch: self.epoch,
            step_in_epoch: done,
            global_step: self.global_step + done as u64,
            rng_word_pos: rng_pos,
            params,
            m,
            v,
            epoch_log,
            epoch_losses: self.weighter.epoch_losses.clone(),
            host_lambda: self.host_lambda.clone(),
            lambda_history: self.lambda_history.clone(),
        })
    }

    /// Puts `state` (from [`Trainer::state`] of a trainer of the same model,
    /// data and config) into this fresh trainer. A state that cannot come
    /// from such a trainer is an error saying what disagrees.
    pub fn restore(&mut self, state: &TrainerState) -> Result<()> {
        self.check_state(state)?;
        let b = self.backend.as_mut();
        let bufs = &self.bufs;
        b.write(bufs.state.params, 0, &state.params)?;
        b.write(bufs.state.m, 0, &state.m)?;
        if self.optimizer.kind == OptimizerKind::Adam {
            b.write(bufs.state.v, 0, &state.v)?;
        }
        if let (Some(l), false) = (&state.host_lambda, self.weighter.on_device()) {
            b.write(bufs.lambda, 0, l)?;
        }
        if self.weighter.kind == Weighting::GradNorm {
            if let Some(l0) = state.epoch_losses.first() {
                b.write(bufs.initial, 0, l0)?;
            }
        }
        if !state.epoch_log.is_empty() {
            b.write(bufs.log, 0, &state.epoch_log)?;
        }
        self.epoch = state.epoch;
        self.global_step = state.global_step - state.step_in_epoch as u64;
        self.weighter.epoch_losses = state.epoch_losses.clone();
        self.host_lambda = state.host_lambda.clone();
        self.lambda_history = state.lambda_history.clone();
        self.rng.set_word_pos(state.rng_word_pos);
        self.pending = None;
        if state.step_in_epoch > 0 {
            let (rows, len) = (self.shape.rows, self.shape.order_len());
            let plan = self.feed.plan(rows, len, self.shuffle, &mut self.rng);
            self.pending = Some(Pending {
                plan,
                done: state.step_in_epoch,
                rng_pos: state.rng_word_pos,
                counts: Vec::new(),
            });
        }
        Ok(())
    }

    /// The losses of the steps done in an epoch cut short (empty when none is).
    pub fn pending_steps(&mut self) -> Result<Vec<StepLoss>> {
        let Some(mut p) = self.pending.take() else {
            return Ok(Vec::new());
        };
        // A restored epoch knows no counts yet: make those of the steps done.
        let batch = self.shape.batch;
        let sizes = self.feed.segment_steps(&p.plan, batch);
        let mut first = 0;
        for (i, n) in sizes.into_iter().enumerate() {
            if p.counts.len() >= p.done || first >= p.done {
                break;
            }
            if p.counts.len() < first + n {
                let b = self.backend.as_mut();
                let seg = self.feed.segment(b, &p.plan, i, batch, false)?;
                p.counts.truncate(first);
                p.counts.extend(seg.counts);
            }
            first += n;
        }
        let log = self.backend.read(self.bufs.log)?;
        let mut steps = step_losses(&log, self.shape.tasks, p.counts.clone());
        steps.truncate(p.done);
        self.pending = Some(p);
        Ok(steps)
    }

    /// Steps done in the epoch cut short (0 when none is).
    pub fn steps_pending(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.done)
    }

    fn check_state(&self, s: &TrainerState) -> Result<()> {
        let bad = |what: String| Err(Error::Invalid(format!("training state: {what}")));
        let p = self.backend.len(self.bufs.state.params);
        for (name, v) in [("parameters", &s.params), ("m", &s.m), ("v", &s.v)] {
            if v.len() != p {
                return bad(format!("{name} hold {} values, the model {p}", v.len()));
            }
        }
        let spe = self.shape.steps_per_epoch;
        let expect = (s.epoch as u64)
            .checked_mul(spe as u64)
            .and_then(|n| n.checked_add(s.step_in_epoch as u64));
        if s.step_in_epoch >= spe || expect != Some(s.global_step) {
            return bad(format!(
                "step {} (epoch {}, step {} within it) does not fit {spe} steps per epoch: \
                 the rows or the batch size differ",
                s.global_step, s.epoch, s.step_in_epoch
            ));
        }
        if s.epoch_log.len() != s.step_in_epoch * (self.shape.tasks + 1) {
            return bad(format!(
                "the unfinished epoch's loss log holds {} values, {} steps need {}",
                s.epoch_log.len(),
                s.step_in_epoch,
                s.step_in_epoch * (self.shape.tasks + 1)
            ));
        }
        let t = self.shape.tasks;
        let rows_ok = |rows: &[Vec<f32>]| rows.iter().all(|r| r.len() == t);
        if !rows_ok(&s.epoch_losses)
            || !rows_ok(&s.lambda_history)
            || s.host_lambda.as_ref().is_some_and(|l| l.len() != t)
        {
            return bad(format!("task losses or weights not of {t} tasks"));
        }
        Ok(())
    }
}
