//! Ensembles of collaborating members. Each member is a full single model
//! (its own trunk, one output layer per task ending in the task's activation);
//! per task a combiner turns the members' outputs into the prediction
//! (`blocks/combiner.rs`). Members of one shape form groups that run as one
//! dispatch per layer (`blocks/members.rs`); members of different shapes form
//! separate groups in the same step.
//!
//! Member outputs are sigmoid probabilities for binary tasks and softmax
//! probabilities for multiclass ones (a row softmax after the output layer,
//! `GateSoftmax` over [M·N, C]), except under `concat`, where every member
//! trains on its own logits with the task's usual loss.
//!
//! Buffers for a batch of N: member trunks [G, N, H_l] per group; member
//! outputs [M, N, C] per task (member-major, all groups), and before the
//! softmax the member logits [M, N, C] (multiclass); stack rows [N, M·C].
//!
//! Forward: groups, member softmaxes, combiners. Backward: combiners, member
//! softmaxes, then every trainable group.

use crate::backend::Backend;
use crate::model::blocks::combiner::CombinerPass;
use crate::model::blocks::members::{
    member_softmax, place_groups, GroupPass, MemberGroup, TaskOutputs,
};
use crate::model::graph::{elems, Graph, Layer, MemberOutputs, Pass};
use crate::model::params::ParamLayout;
use crate::model::spec::{Activation, Combine, EnsembleSpec, ModelSpec};
use crate::Result;
use std::ops::Range;

/// An ensemble's groups and combiners.
#[derive(Debug, Clone)]
pub struct EnsembleNet {
    pub groups: Vec<MemberGroup>,
    pub combine: Combine,
    /// Per task, the stack or gate combiner's dense layer (None for the others).
    pub combiners: Vec<Option<Layer>>,
    pub members: usize,
    /// The combiners' parameters.
    pub combiner_params: Range<usize>,
}

impl EnsembleNet {
    /// Places every member's tensors group by group, then the combiners
    /// (`combiner.{task}`).
    pub fn new(spec: &ModelSpec, e: &EnsembleSpec, layout: &mut ParamLayout) -> EnsembleNet {
        let groups = place_groups(spec, e, layout);
        let m = e.members.len();
        let c0 = layout.len;
        let combiners = spec
            .tasks
            .iter()
            .map(|t| {
                let (inputs, outputs) = match e.combine {
                    Combine::Stack => (m * t.outputs, t.outputs),
                    // The gate's logits over members, computed from the input.
                    Combine::Gate => (spec.inputs, m),
                    Combine::Mean | Combine::Concat => return None,
                };
                Some(Layer {
                    slot: layout.add_dense(&format!("combiner.{}", t.name), inputs, outputs),
                    act: Activation::Identity,
                })
            })
            .collect();
        EnsembleNet {
            groups,
            combine: e.combine,
            combiners,
            members: m,
            combiner_params: c0..layout.len,
        }
    }

    /// Trainable groups and the combiners.
    pub fn trainable(&self) -> Vec<Range<usize>> {
        let mut r: Vec<Range<usize>> = self
            .groups
            .iter()
            .filter(|g| g.trainable)
            .map(|g| g.params.clone())
            .collect();
        if !self.combiner_params.is_empty() {
            r.push(self.combiner_params.clone());
        }
        r
    }

    /// Buffers and ops for a batch (see the module docs).
    pub fn graph(&self, b: &mut dyn Backend, spec: &ModelSpec, pass: &Pass) -> Result<Graph> {
        let (m, n) = (self.members, pass.n);
        let x = b.alloc(elems("x", &[n, spec.inputs])?, "x")?;
        let outs = spec
            .tasks
            .iter()
            .map(|t| TaskOutputs::alloc(b, pass, t, m, member_softmax(t.kind, self.combine)))
            .collect::<Result<Vec<_>>>()?;
        let groups = self
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| GroupPass::alloc(b, pass, gi, g, x, &outs))
            .collect::<Result<Vec<_>>>()?;
        let mut forward = Vec::new();
        for g in &groups {
            g.forward(&mut forward, pass.params);
        }
        for o in &outs {
            o.forward(&mut forward);
        }
        // gate: every task's softmax over members in one [T, N, M] buffer (and
        // its gradient), as MMoE's gates are, so `tandem inspect` can read them.
        let tasks = spec.tasks.len();
        let gates = pass.bufs_if(self.combine == Combine::Gate, b, tasks * m, "gates")?;
        let mut backward = Vec::new();
        let mut combined = Vec::new();
        for (j, t) in spec.tasks.iter().enumerate() {
            let mut c = CombinerPass {
                pass,
                task: t,
                j,
                members: m,
                outs: outs[j].out,
                forward: &mut forward,
                backward: &mut backward,
            };
            combined.push(c.combine(b, self.combine, self.combiners[j], x, gates)?);
        }
        if let Some(grads) = pass.backward() {
            for o in &outs {
                o.backward(&mut backward);
            }
            for g in &groups {
                g.backward(&mut backward, pass.params, grads);
            }
        }
        Ok(Graph {
            batch: n,
            x,
            logits: combined.iter().map(|c| c.logits).collect(),
            logits_grad: combined.iter().map(|c| c.logits_grad).collect(),
            forward,
            backward,
            form: combined.iter().map(|c| c.form).collect(),
            stacked: combined.iter().map(|c| c.stacked).collect(),
            members: outs
                .iter()
                .map(|o| {
                    Some(MemberOutputs {
                        buf: o.out.y,
                        members: m,
                        logits: self.combine == Combine::Concat,
                    })
                })
                .collect(),
            gates: gates.map(|g| (g.y, m)),
            rep_split: None,
        })
    }
}
