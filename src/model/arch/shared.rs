//! Hard parameter sharing: a trunk, then one head per task.
//!
//! Forward:  h_0 = x;  h_l = act(h_{l−1}·W_lᵀ + b_l)           trunk, [N, H_l]
//!           g_j,0 = h_L;  g_j,k = act(…)   (hidden head layers)
//!           z_j = g_j,K·W_outᵀ + b_out                          logits [N, C_j]
//! Backward: the reverse, with the trunk output's gradient summed over tasks
//! (the first head overwrites it, the others accumulate).

use crate::backend::Backend;
use crate::model::blocks::heads::{self, Heads};
use crate::model::graph::{
    elems, ones, sum_over_tasks, At, Chain, Dense, DenseCall, Graph, InputGrad, Layer, LayerBufs,
    Pass,
};
use crate::model::params::{DenseSlot, ParamLayout};
use crate::model::spec::ModelSpec;
use crate::ops::{BufId, Op};
use crate::Result;

/// Trunk and heads of a hard-sharing model.
#[derive(Debug, Clone)]
pub struct SharedNet {
    pub trunk: Vec<Layer>,
    /// Per task: hidden layers, then the output layer (identity).
    pub heads: Vec<Vec<Layer>>,
    /// When every task's head starts with a hidden layer of one width, those
    /// first layers are one batched dense over the trunk's output (task index
    /// on the grid; on the CPU one wide product): task 0's slot, the others
    /// per `ParamLayout::add_dense_group`.
    pub fused_first: Option<DenseSlot>,
}

impl SharedNet {
    /// Places `trunk.{i}` and `heads.{task}.{i}` in `layout`.
    pub fn new(spec: &ModelSpec, trunk_sizes: &[usize], layout: &mut ParamLayout) -> SharedNet {
        let mut width = spec.inputs;
        let mut trunk = Vec::new();
        for (i, &h) in trunk_sizes.iter().enumerate() {
            let slot = layout.add_dense(&format!("trunk.{i}"), width, h);
            trunk.push(Layer {
                slot,
                act: spec.activation,
            });
            width = h;
        }
        let first = spec.tasks.first().and_then(|t| t.head.first()).copied();
        // (GradNorm keeps each head's trunk gradient apart: no fusion there.)
        let fusable = spec.tasks.len() > 1
            && !spec.gradnorm
            && first.is_some()
            && spec.tasks.iter().all(|t| t.head.first().copied() == first);
        match (fusable, first) {
            (true, Some(h0)) => {
                let (slot0, heads) = fused_heads(spec, layout, width, h0);
                SharedNet {
                    trunk,
                    heads,
                    fused_first: Some(slot0),
                }
            }
            _ => SharedNet {
                trunk,
                heads: heads::place(spec, layout, width),
                fused_first: None,
            },
        }
    }

    /// Buffers and ops for a batch (see [`Graph`]).
    pub fn graph(&self, b: &mut dyn Backend, spec: &ModelSpec, pass: &Pass) -> Result<Graph> {
        let x = b.alloc(elems("x", &[pass.n, spec.inputs])?, "x")?;
        let trunk_bufs = Chain::alloc(b, pass, &self.trunk, "trunk", 0)?;
        let trunk = Chain {
            layers: &self.trunk,
            bufs: &trunk_bufs,
        };
        let trunk_out = trunk_bufs.last().map_or(x, |l| l.y);
        let fused = match self.fused_first {
            Some(slot) => {
                let layer = Layer {
                    slot,
                    act: spec.activation,
                };
                Some(FusedFirst::alloc(
                    b,
                    pass,
                    layer,
                    self.heads.len(),
                    trunk_out,
                )?)
            }
            None => None,
        };
        let heads = Heads::alloc(b, pass, &self.heads, fused.is_some() as usize)?;

        let mut forward = Vec::new();
        trunk.forward(&mut forward, pass, At::start(x));
        if let Some(f) = &fused {
            f.dense.forward(&mut forward, pass.params);
        }
        for j in 0..self.heads.len() {
            let input = fused.as_ref().map_or(At::start(trunk_out), |f| f.task(j));
            heads.forward(&mut forward, pass, j, input);
        }

        let mut backward = Vec::new();
        let mut rep_split = None;
        if let Some(grads) = pass.backward() {
            let trunk_grad = trunk_bufs.last().and_then(|l| l.dy);
            if spec.gradnorm {
                rep_split = Some(self.gradnorm_backward(
                    b,
                    &mut backward,
                    pass,
                    grads,
                    &heads,
                    trunk_out,
                    trunk_grad,
                )?);
            } else {
                for j in 0..self.heads.len() {
                    let (input, grad) = match &fused {
                        Some(f) => (f.task(j), f.task_grad(j)),
                        None => (
                            At::start(trunk_out),
                            trunk_grad.map(|d| InputGrad {
                                at: At::start(d),
                                accumulate: j > 0,
                            }),
                        ),
                    };
                    heads.backward(&mut backward, pass, grads, j, input, grad);
                }
                if let Some(f) = &fused {
                    f.backward(&mut backward, pass, grads, trunk_grad);
                }
            }
            trunk.backward(&mut backward, pass, grads, At::start(x), None);
        }
        Ok(Graph {
            rep_split,
            ..Graph::with_heads(pass.n, x, &heads.bufs, forward, backward)
        })
    }

    /// GradNorm: each head's gradient of the trunk output kept apart
    /// [T, N, W], then summed into the trunk output's gradient. Returns the
    /// split buffer and its per-task length.
    #[allow(clippy::too_many_arguments)]
    fn gradnorm_backward(
        &self,
        b: &mut dyn Backend,
        ops: &mut Vec<Op>,
        pass: &Pass,
        grads: BufId,
        heads: &Heads,
        trunk_out: BufId,
        trunk_grad: Option<BufId>,
    ) -> Result<(BufId, usize)> {
        let (t_n, n) = (self.heads.len(), pass.n);
        let width = self.trunk.last().map_or(0, |l| l.slot.outputs);
        let Some(dtrunk) = trunk_grad else {
            return Err(crate::model::network::gradnorm_without_trunk());
        };
        let split = b.alloc(
            elems("per-task trunk gradients", &[t_n, n, width])?,
            "per-task trunk gradients",
        )?;
        let ones = ones(b, n * t_n)?;
        for j in 0..t_n {
            let grad = InputGrad {
                at: At {
                    buf: split,
                    off: j * n * width,
                },
                accumulate: false,
            };
            heads.backward(ops, pass, grads, j, At::start(trunk_out), Some(grad));
        }
        sum_over_tasks(ops, split, ones, dtrunk, t_n, n, width);
        Ok((split, n * width))
    }
}

/// Places heads whose first hidden layers (all `h0` wide) form one dense
/// group `heads.{task}.0`; returns the group's first slot and every head.
fn fused_heads(
    spec: &ModelSpec,
    layout: &mut ParamLayout,
    width: usize,
    h0: usize,
) -> (DenseSlot, Vec<Vec<Layer>>) {
    let names: Vec<String> = spec
        .tasks
        .iter()
        .map(|t| format!("heads.{}.0", t.name))
        .collect();
    let slot0 = layout.add_dense_group(&names, width, h0);
    let heads = spec
        .tasks
        .iter()
        .enumerate()
        .map(|(j, task)| {
            let slot = DenseSlot {
                w: slot0.w + j * width * h0,
                bias: slot0.bias + j * h0,
                ..slot0
            };
            let mut layers = vec![Layer {
                slot,
                act: spec.activation,
            }];
            layers.extend(heads::place_head(
                layout,
                &format!("heads.{}", task.name),
                1,
                h0,
                &task.head[1..],
                task.outputs,
                spec.activation,
            ));
            layers
        })
        .collect();
    (slot0, heads)
}

/// The heads' first layers as one batched dense over the trunk's output:
/// outputs [T, N, H0], task j's chain continuing from its slice.
struct FusedFirst {
    dense: Dense,
    /// Elements of one task's slice, N·H0.
    slice: usize,
}

impl FusedFirst {
    fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        layer: Layer,
        tasks: usize,
        input: BufId,
    ) -> Result<FusedFirst> {
        let y: LayerBufs = pass.bufs(b, tasks * layer.slot.outputs, "heads.*.0")?;
        let args = DenseCall::new(&layer.slot, pass.n, layer.act)
            .grouped(tasks)
            .stacked_outputs()
            .args();
        Ok(FusedFirst {
            dense: Dense { args, x: input, y },
            slice: pass.n * layer.slot.outputs,
        })
    }

    /// Task j's slice of the output: where its head continues.
    fn task(&self, j: usize) -> At {
        At {
            buf: self.dense.y.y,
            off: j * self.slice,
        }
    }

    /// Task j's slice of the output's gradient (each head writes its own).
    fn task_grad(&self, j: usize) -> Option<InputGrad> {
        self.dense.y.dy.map(|d| InputGrad {
            at: At {
                buf: d,
                off: j * self.slice,
            },
            accumulate: false,
        })
    }

    /// The group's weight gradients, and the trunk output's gradient summed
    /// over tasks (the trunk's output feeds every head).
    fn backward(&self, ops: &mut Vec<Op>, pass: &Pass, grads: BufId, trunk_grad: Option<BufId>) {
        self.dense.backward_weight(ops, grads);
        if let Some(dx) = trunk_grad {
            self.dense
                .backward_input(ops, self.dense.args, pass.params, dx);
        }
    }
}
