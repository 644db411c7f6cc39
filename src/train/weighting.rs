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
//! - `gradnorm`: not implemented yet (an error says so).

use crate::io::Weighting;
use crate::model::network::Network;
use crate::model::ModelSpec;
use crate::ops::{BufId, Op, WeightingArgs};
use crate::{Error, Result};

/// DWA's temperature (the paper's and LibMTL's default).
pub const DWA_TEMPERATURE: f32 = 2.0;

/// The weighting of one training run, and the epoch-mean task losses it has seen.
#[derive(Debug, Clone)]
pub struct Weighter {
    pub kind: Weighting,
    /// The configured λ_j (fixed weighting; the starting point of the others' reports).
    pub fixed: Vec<f32>,
    /// Per finished epoch, the mean over its steps of each task's unweighted loss.
    pub epoch_losses: Vec<Vec<f32>>,
    /// Offset of s_0 in the parameter layout (uncertainty).
    s_off: Option<usize>,
}

impl Weighter {
    /// Checks that `kind` can run on this network.
    pub fn new(kind: Weighting, spec: &ModelSpec, net: &Network) -> Result<Weighter> {
        let s_off = net.log_vars;
        match kind {
            Weighting::Uncertainty if s_off.is_none() => {
                return Err(Error::Invalid(
                    "weighting = \"uncertainty\" needs the model's `weighting.log_var.<task>` \
                     parameters: build the spec with `log_vars = true` (a config does this)"
                        .into(),
                ))
            }
            Weighting::GradNorm => {
                return Err(Error::Invalid(
                    "weighting = \"gradnorm\" is not implemented yet: it needs per-task gradient \
                     norms at the last shared layer (one extra backward per task) on the device; \
                     use \"fixed\", \"uncertainty\" or \"dwa\""
                        .into(),
                ))
            }
            _ => {}
        }
        Ok(Weighter {
            kind,
            fixed: spec.tasks.iter().map(|t| t.weight).collect(),
            epoch_losses: Vec::new(),
            s_off,
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

    /// Ops of the step before `multitask_loss_reduce` (they fill `lambda`).
    pub fn before_reduce(&self, params: BufId, lambda: BufId) -> Vec<Op> {
        match self.kind {
            Weighting::Uncertainty => vec![Op::UncertaintyWeights {
                args: self.args(0),
                params,
                lambda,
            }],
            _ => Vec::new(),
        }
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

    /// Records a finished epoch's per-step task losses.
    pub fn end_epoch(&mut self, step_losses: &[Vec<f32>]) {
        let t = self.fixed.len();
        let mut mean = vec![0.0f32; t];
        for s in step_losses {
            for j in 0..t {
                mean[j] += s[j];
            }
        }
        let k = step_losses.len().max(1) as f32;
        self.epoch_losses
            .push(mean.into_iter().map(|v| v / k).collect());
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
