//! A model's layers placed in the parameter layout, and the ops of its
//! forward and backward passes over a batch, for whichever architecture the
//! spec describes: hard sharing (`shared.rs`), an ensemble (`ensemble.rs`) or a
//! mixture of experts (`mmoe.rs`). The trainer and the predictor only see a
//! [`Graph`]: an input buffer, per-task logits, and two op lists.

use super::ensemble::EnsembleNet;
use super::mmoe::MmoeNet;
use super::params::{DenseSlot, ParamLayout};
use super::ple::PleNet;
use super::shared::{LayerBufs, SharedNet};
use super::spec::{Activation, ModelSpec};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, Op};
use crate::Result;
use std::ops::Range;

/// One dense layer and the activation after it.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub slot: DenseSlot,
    pub act: Activation,
}

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

/// The buffers and ops of one pass over a batch of `batch` rows.
#[derive(Debug, Clone)]
pub struct Graph {
    pub batch: usize,
    /// The batch input [N, I] (the gather writes it).
    pub x: BufId,
    /// Per task, what its loss reads: logits (binary, multiclass) or values (regression), [N, C_j].
    pub logits: Vec<BufId>,
    /// Per task, the loss's gradient w.r.t. `logits` (training graphs only).
    pub logits_grad: Vec<Option<BufId>>,
    /// x → logits.
    pub forward: Vec<Op>,
    /// logits_grad → every trainable parameter's gradient (empty for inference).
    pub backward: Vec<Op>,
    /// Per task, what `logits` holds.
    pub form: Vec<OutputForm>,
    /// Per task, with how many members `logits` is stacked [M·N, C] (1: [N, C]).
    pub stacked: Vec<usize>,
    /// Per task, every member's output [M, N, C] (ensembles only), with M and
    /// whether the task's activation is still to be applied (`concat` trains
    /// on member logits): the predictor reports their spread.
    pub members: Vec<Option<MemberOutputs>>,
    /// Gated architectures: the gates' softmax output [T, N, E] and E.
    pub gates: Option<(BufId, usize)>,
    /// Training graphs of a `gradnorm` spec: each task's gradient of the last
    /// shared representation, [T, len], and len (summed into the shared gradient
    /// by the backward ops).
    pub rep_split: Option<(BufId, usize)>,
}

/// A buffer of `len` ones (the gate of a plain sum over tasks).
pub fn ones(b: &mut dyn Backend, len: usize) -> Result<BufId> {
    let buf = b.alloc(len, "ones")?;
    b.write(buf, 0, &vec![1.0; len])?;
    Ok(buf)
}

/// out [rows, width] (+)= Σ_j split[j, rows, width]: the per-task gradients of a
/// shared representation summed, as a gated sum with a gate of ones [rows, T].
pub fn sum_over_tasks(
    ops: &mut Vec<Op>,
    split: BufId,
    ones: BufId,
    out: BufId,
    tasks: usize,
    rows: usize,
    width: usize,
) {
    ops.push(Op::GatedSumForward {
        args: crate::ops::GateArgs {
            rows: rows as u32,
            experts: tasks as u32,
            width: width as u32,
            g_stride: tasks as u32,
            ..Default::default()
        },
        g: ones,
        ex: split,
        out,
    });
}

impl Graph {
    /// The graph of a model whose tasks each end in their own output layer
    /// (hard sharing, MMoE, PLE): logits are those layers' outputs, one row
    /// per batch row; no members, no gates, no GradNorm split (set them with
    /// struct update syntax where the architecture has them).
    pub fn with_heads(
        batch: usize,
        x: BufId,
        heads: &[Vec<LayerBufs>],
        forward: Vec<Op>,
        backward: Vec<Op>,
    ) -> Graph {
        let out = |h: &Vec<LayerBufs>| *h.last().expect("a head has an output layer");
        let tasks = heads.len();
        Graph {
            batch,
            x,
            logits: heads.iter().map(|h| out(h).y).collect(),
            logits_grad: heads.iter().map(|h| out(h).dy).collect(),
            forward,
            backward,
            form: vec![OutputForm::Logits; tasks],
            stacked: vec![1; tasks],
            members: vec![None; tasks],
            gates: None,
            rep_split: None,
        }
    }
}

/// Every member's output for one task, [M, N, C].
#[derive(Debug, Clone, Copy)]
pub struct MemberOutputs {
    pub buf: BufId,
    pub members: usize,
    /// True when the buffer holds logits (apply the task's activation first).
    pub logits: bool,
}

/// What a task's output buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputForm {
    /// Logits (binary, multiclass) or values (regression).
    Logits,
    /// Probabilities already (an ensemble's averaged sigmoid outputs).
    Probabilities,
}

/// Arguments of one dense layer over `n` rows (one batch item, activations at offset 0).
pub fn dense_args(slot: &DenseSlot, n: usize, act: Activation, accumulate: bool) -> DenseArgs {
    DenseArgs {
        n: n as u32,
        i: slot.inputs as u32,
        o: slot.outputs as u32,
        act: act.code(),
        w_off: slot.w as u32,
        b_off: slot.b() as u32,
        batches: 1,
        accumulate: accumulate as u32,
        ..Default::default()
    }
}

impl Network {
    /// Places every layer of `spec` in a fresh layout (names per DESIGN §3).
    pub fn new(spec: &ModelSpec) -> Network {
        let mut layout = ParamLayout::default();
        let arch = if let Some(e) = &spec.ensemble {
            Arch::Ensemble(EnsembleNet::new(spec, e, &mut layout))
        } else if spec.ple.is_some() {
            Arch::Ple(PleNet::new(spec, &mut layout))
        } else if spec.experts.is_some() {
            Arch::Mmoe(MmoeNet::new(spec, &mut layout))
        } else {
            Arch::Shared(SharedNet::new(spec, &mut layout))
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
        match &self.arch {
            Arch::Shared(net) => net.graph(backend, spec, batch, train, params, grads),
            Arch::Ensemble(net) => net.graph(backend, spec, batch, train, params, grads),
            Arch::Mmoe(net) => net.graph(backend, spec, batch, train, params, grads),
            Arch::Ple(net) => net.graph(backend, spec, batch, train, params, grads),
        }
    }

    /// Ranges of the parameter vector the optimizer updates (frozen members excluded).
    pub fn trainable(&self) -> Vec<Range<usize>> {
        match &self.arch {
            Arch::Ensemble(net) => {
                // Members and combiners, then the weighting state (log-variances,
                // GradNorm's logits), which follows everything else.
                let mut r = net.trainable(self.layout.len);
                if let Some(first) = self.log_vars.or(self.gradnorm) {
                    r.push(first..self.layout.len);
                }
                r
            }
            _ => std::iter::once(0..self.layout.len).collect(),
        }
    }
}
