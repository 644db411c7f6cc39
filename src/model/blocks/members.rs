//! An ensemble's members, group by group. Members of one architecture (and
//! trainability) that sit next to each other form a group whose layers run
//! as ONE dense dispatch over all its members (member index on the grid):
//! per layer all their weights are one contiguous matrix and all their biases
//! one vector (`ParamLayout::add_dense_group`). Each member is a full single
//! model: its trunk, then one output layer per task writing the member's rows
//! of the task's member outputs [M, N, C] (member-major, all groups).
//!
//! Forward:  h_{m,l} = act(h_{m,l−1}·W_{m,l}ᵀ + b_{m,l})   every member m of a group at once
//!           o_m = out_act(h_{m,L}·V_{m,j}ᵀ + c_{m,j})      per task j
//! Backward: per trainable group, every task's output layer (the last trunk
//! output's gradient summed over tasks), then the trunk from the top.
//! A frozen group gets no gradient buffers and no backward ops.

use crate::backend::Backend;
use crate::model::graph::{layer_bufs, Dense, DenseCall, Layer, LayerBufs, Pass};
use crate::model::params::ParamLayout;
use crate::model::spec::{Activation, Combine, EnsembleSpec, ModelSpec, TaskKind};
use crate::ops::{BufId, DenseArgs, Op};
use crate::Result;
use std::ops::Range;

/// One layer of a group: the first member's slot; member k's W is `k·in·out`
/// and its b `k·out` further (`ParamLayout::add_dense_group`).
#[derive(Debug, Clone, Copy)]
pub struct GroupLayer {
    pub layer: Layer,
}

/// Consecutive members of one architecture and trainability.
#[derive(Debug, Clone)]
pub struct MemberGroup {
    /// Member indices (config order).
    pub members: Range<usize>,
    pub trunk: Vec<GroupLayer>,
    /// Per task, the output layer.
    pub heads: Vec<GroupLayer>,
    pub trainable: bool,
    /// The group's parameters in the flat layout.
    pub params: Range<usize>,
}

/// The element-wise activation fused into a member's output layer for a task kind.
pub fn member_output_activation(kind: TaskKind, combine: Combine) -> Activation {
    match (kind, combine) {
        // concat trains each member's logits with the task's own loss.
        (_, Combine::Concat) => Activation::Identity,
        (TaskKind::Binary, _) => Activation::Sigmoid,
        // Multiclass: a row softmax follows (see `member_softmax`).
        (TaskKind::Multiclass, _) | (TaskKind::Regression, _) => Activation::Identity,
    }
}

/// True when a member's output layer is followed by a row softmax: multiclass
/// tasks under every combiner but `concat`.
pub fn member_softmax(kind: TaskKind, combine: Combine) -> bool {
    kind == TaskKind::Multiclass && combine != Combine::Concat
}

/// Places every member's tensors (`members.{name}.trunk.{i}`,
/// `members.{name}.heads.{task}.0`) group by group.
pub fn place_groups(
    spec: &ModelSpec,
    e: &EnsembleSpec,
    layout: &mut ParamLayout,
) -> Vec<MemberGroup> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < e.members.len() {
        let first = &e.members[start];
        let mut end = start + 1;
        while end < e.members.len()
            && e.members[end].trunk == first.trunk
            && e.members[end].activation == first.activation
            && e.members[end].trainable == first.trainable
        {
            end += 1;
        }
        let names = |suffix: &str| -> Vec<String> {
            e.members[start..end]
                .iter()
                .map(|m| format!("members.{}.{suffix}", m.name))
                .collect()
        };
        let p0 = layout.len;
        let mut trunk = Vec::new();
        let mut width = spec.inputs;
        for (l, &h) in first.trunk.iter().enumerate() {
            let slot = layout.add_dense_group(&names(&format!("trunk.{l}")), width, h);
            let act = first.activation;
            trunk.push(GroupLayer {
                layer: Layer { slot, act },
            });
            width = h;
        }
        let mut heads = Vec::new();
        for t in &spec.tasks {
            let slot =
                layout.add_dense_group(&names(&format!("heads.{}.0", t.name)), width, t.outputs);
            let act = member_output_activation(t.kind, e.combine);
            heads.push(GroupLayer {
                layer: Layer { slot, act },
            });
        }
        groups.push(MemberGroup {
            members: start..end,
            trunk,
            heads,
            trainable: first.trainable,
            params: p0..layout.len,
        });
        start = end;
    }
    groups
}

/// Per task, every member's output [M, N, C] and, where a row softmax follows
/// the output layers (multiclass but under `concat`), the logits before it.
#[derive(Debug, Clone, Copy)]
pub struct TaskOutputs {
    pub out: LayerBufs,
    pub logits: Option<LayerBufs>,
    /// The softmax's arguments over [M·N, C].
    softmax: crate::ops::GateArgs,
}

impl TaskOutputs {
    /// Allocates `member outputs {task}` (and `member logits {task}`) for M members.
    pub fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        task: &crate::model::spec::TaskSpec,
        members: usize,
        softmax: bool,
    ) -> Result<TaskOutputs> {
        let c = task.outputs;
        let out = pass.bufs(b, members * c, &format!("member outputs {}", task.name))?;
        let logits = pass.bufs_if(
            softmax,
            b,
            members * c,
            &format!("member logits {}", task.name),
        )?;
        Ok(TaskOutputs {
            out,
            logits,
            softmax: crate::ops::GateArgs {
                rows: (members * pass.n) as u32,
                experts: c as u32,
                g_stride: c as u32,
                ..Default::default()
            },
        })
    }

    /// What the members' output layers write: the logits when a softmax follows.
    pub fn head_out(&self) -> LayerBufs {
        self.logits.unwrap_or(self.out)
    }

    /// The row softmax over the member logits (multiclass probabilities).
    pub fn forward(&self, ops: &mut Vec<Op>) {
        if let Some(z) = self.logits {
            ops.push(Op::GateSoftmax {
                args: self.softmax,
                x: z.y,
                y: self.out.y,
            });
        }
    }

    pub fn backward(&self, ops: &mut Vec<Op>) {
        if let (Some(z), Some(dy)) = (self.logits, self.out.dy) {
            if let Some(dx) = z.dy {
                ops.push(Op::GateSoftmaxBackward {
                    args: self.softmax,
                    dy,
                    y: self.out.y,
                    dx,
                });
            }
        }
    }
}

/// One group's dispatches in a pass: its trunk layers, then per task its
/// output layer into the group's rows of the task's member outputs.
pub struct GroupPass {
    pub trainable: bool,
    pub trunk: Vec<Dense>,
    pub heads: Vec<Dense>,
}

impl GroupPass {
    /// Allocates group `gi`'s trunk outputs [G, N, H_l] (`group {gi} trunk.{l}`).
    pub fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        gi: usize,
        g: &MemberGroup,
        x: BufId,
        outputs: &[TaskOutputs],
    ) -> Result<GroupPass> {
        let gm = g.members.len();
        let with_grads = pass.train && g.trainable;
        let mut trunk: Vec<Dense> = Vec::new();
        for (l, gl) in g.trunk.iter().enumerate() {
            let name = format!("group {gi} trunk.{l}");
            let y = layer_bufs(b, gm * gl.layer.slot.outputs, pass.n, &name, with_grads)?;
            trunk.push(Dense {
                args: group_call(&gl.layer, pass.n, gm, l > 0).args(),
                x: trunk.last().map_or(x, |d| d.y.y),
                y,
            });
        }
        let last = trunk.last().map(|d| d.y.y);
        let heads = g
            .heads
            .iter()
            .zip(outputs)
            .map(|(gl, o)| {
                let rows = g.members.start * pass.n * gl.layer.slot.outputs;
                Dense {
                    args: group_call(&gl.layer, pass.n, gm, last.is_some())
                        .y_dy_at(rows)
                        .args(),
                    x: last.unwrap_or(x),
                    y: o.head_out(),
                }
            })
            .collect();
        Ok(GroupPass {
            trainable: g.trainable,
            trunk,
            heads,
        })
    }

    pub fn forward(&self, ops: &mut Vec<Op>, params: BufId) {
        for d in self.trunk.iter().chain(&self.heads) {
            d.forward(ops, params);
        }
    }

    /// The group's backward (nothing for a frozen group).
    pub fn backward(&self, ops: &mut Vec<Op>, params: BufId, grads: BufId) {
        if !self.trainable {
            return;
        }
        let last_grad = self.trunk.last().and_then(|d| d.y.dy);
        for (j, d) in self.heads.iter().enumerate() {
            d.backward_weight(ops, grads);
            if let Some(dx) = last_grad {
                let args = DenseArgs {
                    accumulate: (j > 0) as u32,
                    ..d.args
                };
                d.backward_input(ops, args, params, dx);
            }
        }
        for l in (0..self.trunk.len()).rev() {
            let d = &self.trunk[l];
            d.backward_weight(ops, grads);
            if l > 0 {
                let dx = self.trunk[l - 1].y.d();
                d.backward_input(ops, d.args, params, dx);
            }
        }
    }
}

/// A group layer over N rows for its `members` at once: outputs
/// [members, N, O]; each member reads its own input when `own_inputs`.
fn group_call(layer: &Layer, n: usize, members: usize, own_inputs: bool) -> DenseCall {
    DenseCall::new(&layer.slot, n, layer.act)
        .grouped(members)
        .own_inputs(own_inputs)
        .stacked_outputs()
}
