//! Task weighting: how the per-task losses L_j become the objective.
//!
//! - `fixed`: Σ λ_j L_j with the configured λ_j (written once).
//! - `uncertainty` (Kendall et al. 2018, LibMTL's `UW`): Σ_j L_j/(2·exp(s_j)) + s_j/2,
//!   with s_j = `weighting.log_var.{task}` in the parameter layout, so the
//!   optimizer updates them with everything else. Per step, on the device:
//!   `uncertainty_weights` writes λ_j = 1/(2·exp(s_j)) before the reduce, and
//!   `uncertainty_finish` after it writes ∂/∂s_j = 1/2 − L_j·λ_j into the
//!   gradients and adds Σ s_j/2 to the logged objective.
//! - `dwa` (Liu et al. 2019, LibMTL's `DWA`): λ_j = T·softmax_j(r_j / 2) with
//!   r_j = L̄_j(e−1)/L̄_j(e−2), the ratio of the task's last two epoch-mean losses;
//!   λ_j = 1 for the first two epochs. The host writes λ at each epoch start from
//!   the losses it already read back: no extra readback, nothing inside an epoch.
//!   An epoch's mean L̄_j weighs each step's L_j by the label elements it
//!   averaged (`step::counts`): Σ_s c_{s,j}·L_{s,j} / Σ_s c_{s,j}, LibMTL's
//!   row-weighted mean when no label is missing, so a short last batch does
//!   not count as a full one.
//! - `gradnorm` (Chen et al. 2018, LibMTL's `GradNorm`, on the representation):
//!   λ = T·softmax(p) with p = `weighting.gradnorm.{task}` learned by the same
//!   optimizer (from equal logits, so λ_j = 1 at first). The training graph keeps
//!   each task's gradient of the last shared representation (hard sharing: the
//!   trunk output; MMoE: the last expert outputs; PLE: the last level's shared
//!   experts) apart; per step `gradnorm_sumsq` takes their norms G_j, and
//!   `gradnorm_update` writes ∂/∂p of Σ_j |G_j − Ḡ·r_j^α| (targets held constant;
//!   r_j = L_j/L_j(0) relative to the mean, L_j(0) = the first epoch's mean loss
//!   (weighted per step as DWA's means),
//!   written by the host when the second epoch starts; no update before).
//!   LibMTL's default takes the norms over the shared parameters; this is its
//!   `rep_grad` form, one sum of squares per task instead of one backward per task.

use super::config::Weighting;
use super::step::counts::weighted_mean;
use super::trainer::StepLoss;
use crate::backend::Backend;
use crate::model::network::Network;
use crate::model::ModelSpec;
use crate::ops::{BufId, GradnormArgs, Op, WeightingArgs};
use crate::{Error, Result};

/// DWA's temperature (the paper's and LibMTL's default).
pub const DWA_TEMPERATURE: f32 = 2.0;
/// GradNorm's α when the config gives none (LibMTL's default).
pub const GRADNORM_ALPHA: f32 = 1.5;

/// The weighting of one training run, and the epoch-mean task losses it has seen.
#[derive(Debug, Clone)]
pub struct Weighter {
    pub kind: Weighting,
    /// The configured λ_j (fixed weighting; the starting point of the others' reports).
    pub fixed: Vec<f32>,
    /// Per finished epoch, each task's mean unweighted loss: its step losses
    /// weighted by their label elements (`step::counts`).
    pub epoch_losses: Vec<Vec<f32>>,
    /// Offset of s_0 in the parameter layout (uncertainty).
    s_off: Option<usize>,
    /// Offset of p_0 in the parameter layout (GradNorm), and α.
    p_off: Option<usize>,
    alpha: f32,
}

impl Weighter {
    /// Checks that `kind` can run on this network.
    pub fn new(
        kind: Weighting,
        alpha: Option<f32>,
        spec: &ModelSpec,
        net: &Network,
    ) -> Result<Weighter> {
        let s_off = net.log_vars;
        let p_off = net.gradnorm;
        match kind {
            Weighting::Uncertainty if s_off.is_none() => {
                return Err(Error::Invalid(
                    "weighting = \"uncertainty\" needs the model's `weighting.log_var.<task>` \
                     parameters: build the spec with `log_vars = true` (a config does this)"
                        .into(),
                ))
            }
            Weighting::GradNorm => net.check_gradnorm()?,
            _ => {}
        }
        Ok(Weighter {
            kind,
            fixed: spec.tasks.iter().map(|t| t.weight).collect(),
            epoch_losses: Vec::new(),
            s_off,
            p_off,
            alpha: alpha.unwrap_or(GRADNORM_ALPHA),
        })
    }

    fn args(&self, log_slots: usize) -> WeightingArgs {
        WeightingArgs {
            tasks: self.fixed.len() as u32,
            s_off: self.s_off.unwrap_or(0) as u32,
            log_slots: log_slots as u32,
            _pad: 0,
        }
    }

    fn gradnorm_args(&self, len: usize) -> GradnormArgs {
        GradnormArgs {
            tasks: self.fixed.len() as u32,
            len: len as u32,
            p_off: self.p_off.unwrap_or(0) as u32,
            alpha: self.alpha,
        }
    }

    /// Ops of the step before `multitask_loss_reduce` (they fill `lambda`).
    pub fn before_reduce(&self, params: BufId, lambda: BufId) -> Vec<Op> {
        match self.kind {
            Weighting::Uncertainty => vec![Op::UncertaintyWeights {
                args: self.args(0),
                params,
                lambda,
            }],
            Weighting::GradNorm => vec![Op::GradnormWeights {
                args: self.gradnorm_args(0),
                params,
                lambda,
            }],
            _ => Vec::new(),
        }
    }

    /// Ops of the step after the graph's backward, before the optimizer
    /// (GradNorm: `split` = the per-task representation gradients [T, len],
    /// which [`Network::check_gradnorm`] made sure the graph has).
    pub fn after_backward(&self, split: Option<(BufId, usize)>, bufs: GradnormBufs) -> Vec<Op> {
        match self.kind {
            Weighting::GradNorm => {
                let (split, len) = split.expect("check_gradnorm: a shared representation");
                vec![
                    Op::GradnormSumsq {
                        args: self.gradnorm_args(len),
                        split,
                        norms: bufs.norms,
                    },
                    Op::GradnormUpdate {
                        args: self.gradnorm_args(len),
                        lambda: bufs.lambda,
                        norms: bufs.norms,
                        out: bufs.out,
                        initial: bufs.initial,
                        grads: bufs.grads,
                    },
                ]
            }
            _ => Vec::new(),
        }
    }

    /// GradNorm's L_j(0), once: when the first epoch has ended.
    pub fn initial_losses(&self) -> Option<Vec<f32>> {
        (self.kind == Weighting::GradNorm && self.epoch_losses.len() == 1)
            .then(|| self.epoch_losses[0].clone())
    }

    /// True when λ is computed on the device (read back once per epoch for the history).
    pub fn on_device(&self) -> bool {
        matches!(self.kind, Weighting::Uncertainty | Weighting::GradNorm)
    }

    /// Ops of the step right after `multitask_loss_reduce`.
    #[allow(clippy::too_many_arguments)]
    pub fn after_reduce(
        &self,
        params: BufId,
        counters: BufId,
        out: BufId,
        grads: BufId,
        log: BufId,
        log_slots: usize,
    ) -> Vec<Op> {
        match self.kind {
            Weighting::Uncertainty => vec![Op::UncertaintyFinish {
                args: self.args(log_slots),
                params,
                counters,
                out,
                grads,
                log,
            }],
            _ => Vec::new(),
        }
    }

    /// λ the host writes at the start of the next epoch, if it changes per epoch.
    pub fn epoch_lambda(&self) -> Option<Vec<f32>> {
        match self.kind {
            Weighting::Fixed => (self.epoch_losses.is_empty()).then(|| self.fixed.clone()),
            Weighting::Dwa => Some(dwa_lambda(&self.epoch_losses, self.fixed.len())),
            _ => None,
        }
    }

    /// Records a finished epoch's task means from its steps: Σ_s c_s·L_s / Σ_s c_s
    /// per task, c_s = the label elements step s averaged over.
    pub fn end_epoch(&mut self, steps: &[StepLoss]) {
        let mean = (0..self.fixed.len())
            .map(|j| weighted_mean(steps.iter().map(|s| (s.tasks[j], s.labels[j]))))
            .collect();
        self.epoch_losses.push(mean);
    }
}

/// Device buffers GradNorm's step ops use.
#[derive(Debug, Clone, Copy)]
pub struct GradnormBufs {
    pub lambda: BufId,
    /// [T] squared gradient norms.
    pub norms: BufId,
    /// The reduce's output: L_j first.
    pub out: BufId,
    /// [T] L_j(0).
    pub initial: BufId,
    pub grads: BufId,
}

impl GradnormBufs {
    /// Allocates GradNorm's own buffers (`norms`, `initial`) next to the
    /// step's λ, reduce output and gradients.
    pub fn alloc(
        b: &mut dyn Backend,
        tasks: usize,
        lambda: BufId,
        out: BufId,
        grads: BufId,
    ) -> Result<GradnormBufs> {
        Ok(GradnormBufs {
            lambda,
            norms: b.alloc(tasks, "gradnorm norms")?,
            out,
            initial: b.alloc(tasks, "gradnorm initial losses")?,
            grads,
        })
    }
}

/// DWA's weights for the next epoch from the epoch-mean losses so far.
pub fn dwa_lambda(epoch_losses: &[Vec<f32>], tasks: usize) -> Vec<f32> {
    let e = epoch_losses.len();
    if e < 2 {
        return vec![1.0; tasks];
    }
    let r: Vec<f32> = (0..tasks)
        .map(|j| {
            let prev = epoch_losses[e - 2][j];
            if prev > 0.0 {
                epoch_losses[e - 1][j] / prev
            } else {
                1.0
            }
        })
        .collect();
    let m = r.iter().copied().fold(f32::MIN, f32::max) / DWA_TEMPERATURE;
    let ex: Vec<f32> = r.iter().map(|v| (v / DWA_TEMPERATURE - m).exp()).collect();
    let s: f32 = ex.iter().sum();
    ex.iter().map(|v| tasks as f32 * v / s).collect()
}
