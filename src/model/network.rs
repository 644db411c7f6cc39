//! A model's layers placed in the parameter layout, and the graph of one
//! pass, for whichever architecture the spec names (`arch/`). The trainer
//! and the predictor only see a [`Graph`]: an input buffer, per-task logits,
//! and two op lists.

use super::arch::ensemble::EnsembleNet;
use super::arch::mmoe::MmoeNet;
use super::arch::ple::PleNet;
use super::arch::shared::SharedNet;
use super::graph::Pass;
pub use super::graph::{Graph, Layer, MemberOutputs, OutputForm};
use super::params::ParamLayout;
use super::spec::{Architecture, ModelSpec};
use crate::backend::Backend;
use crate::ops::BufId;
use crate::{Error, Result};
use std::ops::Range;

/// The architectures tandem builds.
#[derive(Debug, Clone)]
pub enum Arch {
    /// Trunk + one head per task (hard parameter sharing).
    Shared(SharedNet),
    /// Members with their own trunks and heads, combined per task.
    Ensemble(EnsembleNet),
    /// Experts + one softmax gate and one head per task (MMoE).
    Mmoe(MmoeNet),
    /// Levels of shared and per-task experts with gates (PLE; one level = CGC).
    Ple(PleNet),
}

/// A model's layers, in the parameter layout's order.
#[derive(Debug, Clone)]
pub struct Network {
    pub layout: ParamLayout,
    pub arch: Arch,
    /// Offset of `weighting.log_var.{task}` (one per task, in task order) when
    /// the model learns uncertainty weights.
    pub log_vars: Option<usize>,
    /// Offset of `weighting.gradnorm.{task}` (one per task, in task order).
    pub gradnorm: Option<usize>,
}

impl Network {
    /// GradNorm's precondition, checked once before anything is uploaded: the
    /// model learns the weight logits `weighting.gradnorm.<task>`, and has a
    /// shared representation whose per-task gradients its training graph keeps
    /// apart (a trunk, or experts; ensemble members share none).
    pub fn check_gradnorm(&self) -> Result<()> {
        if self.gradnorm.is_none() {
            return Err(Error::Invalid(
                "weighting = \"gradnorm\" needs the model's `weighting.gradnorm.<task>` \
                 parameters: build the spec with `gradnorm = true` (a config does this)"
                    .into(),
            ));
        }
        match &self.arch {
            Arch::Shared(s) if s.trunk.is_empty() => Err(gradnorm_without_trunk()),
            Arch::Ensemble(_) => Err(Error::Invalid(
                "weighting = \"gradnorm\": this architecture does not expose a shared \
                 representation"
                    .into(),
            )),
            Arch::Shared(_) | Arch::Mmoe(_) | Arch::Ple(_) => Ok(()),
        }
    }

    /// Places every layer of `spec` in a fresh layout: the architecture's
    /// tensors, then the weighting state (`weighting.log_var.{task}`,
    /// `weighting.gradnorm.{task}`).
    pub fn new(spec: &ModelSpec) -> Network {
        let mut layout = ParamLayout::default();
        let arch = match &spec.architecture {
            Architecture::Shared { trunk } => {
                Arch::Shared(SharedNet::new(spec, trunk, &mut layout))
            }
            Architecture::Mmoe(ex) => Arch::Mmoe(MmoeNet::new(spec, ex, &mut layout)),
            Architecture::Ple(p) => Arch::Ple(PleNet::new(spec, p, &mut layout)),
            Architecture::Ensemble(e) => Arch::Ensemble(EnsembleNet::new(spec, e, &mut layout)),
        };
        let log_vars = spec.log_vars.then(|| {
            let first = layout.len;
            for t in &spec.tasks {
                layout.add(&format!("weighting.log_var.{}", t.name), vec![1]);
            }
            first
        });
        let gradnorm = spec.gradnorm.then(|| {
            let first = layout.len;
            for t in &spec.tasks {
                layout.add(&format!("weighting.gradnorm.{}", t.name), vec![1]);
            }
            first
        });
        Network {
            layout,
            arch,
            log_vars,
            gradnorm,
        }
    }

    /// Allocates a pass's buffers on `backend` and records its ops; `train`
    /// adds gradient buffers and the backward ops (gradients into `grads`).
    pub fn graph(
        &self,
        backend: &mut dyn Backend,
        spec: &ModelSpec,
        batch: usize,
        train: bool,
        params: BufId,
        grads: Option<BufId>,
    ) -> Result<Graph> {
        let pass = Pass {
            n: batch,
            train,
            params,
            grads,
        };
        match &self.arch {
            Arch::Shared(net) => net.graph(backend, spec, &pass),
            Arch::Ensemble(net) => net.graph(backend, spec, &pass),
            Arch::Mmoe(net) => net.graph(backend, spec, &pass),
            Arch::Ple(net) => net.graph(backend, spec, &pass),
        }
    }

    /// Ranges of the parameter vector the optimizer updates (frozen members excluded).
    pub fn trainable(&self) -> Vec<Range<usize>> {
        match &self.arch {
            Arch::Ensemble(net) => {
                // Members and combiners, then the weighting state (log-variances,
                // GradNorm's logits), which follows everything else.
                let mut r = net.trainable();
                if let Some(first) = self.log_vars.or(self.gradnorm) {
                    r.push(first..self.layout.len);
                }
                r
            }
            _ => std::iter::once(0..self.layout.len).collect(),
        }
    }
}

/// The error of GradNorm on a model without a trunk (see [`Network::check_gradnorm`]).
pub fn gradnorm_without_trunk() -> Error {
    Error::Invalid("weighting = \"gradnorm\" needs a shared layer: the model has no trunk".into())
}
