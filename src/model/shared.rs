//! Hard parameter sharing: a trunk, then one head per task.
//!
//! Forward:  h_0 = x;  h_l = act(h_{l−1}·W_lᵀ + b_l)           trunk, [N, H_l]
//!           g_j,0 = h_L;  g_j,k = act(…)   (hidden head layers)
//!           z_j = g_j,K·W_outᵀ + b_out                          logits [N, C_j]
//! Backward: the reverse, with the trunk output's gradient summed over tasks
//! (the first head overwrites it, the others accumulate).

use super::network::{dense_args, Graph, Layer};
use super::params::{DenseSlot, ParamLayout};
use super::spec::{Activation, ModelSpec};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, Op};
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

/// Output and output-gradient buffers of one layer, [N, out] each.
#[derive(Debug, Clone, Copy)]
pub struct LayerBufs {
    pub y: BufId,
    /// None in inference-only graphs.
    pub dy: Option<BufId>,
}

/// Allocates one layer's output (and, for training, its gradient) buffer.
pub fn layer_bufs(
    b: &mut dyn Backend,
    outputs: usize,
    batch: usize,
    name: &str,
    train: bool,
) -> Result<LayerBufs> {
    let n = batch * outputs;
    Ok(LayerBufs {
        y: b.alloc(n, name)?,
        dy: if train {
            Some(b.alloc(n, &format!("d {name}"))?)
        } else {
            None
        },
    })
}

/// Forward ops of a chain of layers starting from `input`; returns the last output.
pub fn chain_forward(
    ops: &mut Vec<Op>,
    layers: &[Layer],
    bufs: &[LayerBufs],
    input: BufId,
    batch: usize,
    params: BufId,
) -> BufId {
    chain_forward_at(ops, layers, bufs, input, 0, batch, params)
}

/// [`chain_forward`] with the input starting at element `input_off` of its buffer.
pub fn chain_forward_at(
    ops: &mut Vec<Op>,
    layers: &[Layer],
    bufs: &[LayerBufs],
    input: BufId,
    input_off: usize,
    batch: usize,
    params: BufId,
) -> BufId {
    let (mut x, mut x_off) = (input, input_off);
    for (l, b) in layers.iter().zip(bufs) {
        let mut args = dense_args(&l.slot, batch, l.act, false);
        args.x_off = x_off as u32;
        ops.push(Op::DenseForward {
            args,
            x,
            params,
            y: b.y,
        });
        (x, x_off) = (b.y, 0);
    }
    x
}

/// Backward ops of a chain of layers fed by `input`: parameter gradients into
/// `grads`, and the input's gradient into `input_grad` when given
/// (accumulating into it when `accumulate_input`).
#[allow(clippy::too_many_arguments)]
pub fn chain_backward(
    ops: &mut Vec<Op>,
    layers: &[Layer],
    bufs: &[LayerBufs],
    input: BufId,
    input_grad: Option<BufId>,
    accumulate_input: bool,
    batch: usize,
    params: BufId,
    grads: BufId,
) {
    let chain = Chain {
        layers,
        bufs,
        batch,
        params,
        grads,
    };
    chain.backward(ops, input, 0, input_grad, accumulate_input);
}

/// A chain of layers of one batch, for [`Chain::backward`].
pub struct Chain<'a> {
    pub layers: &'a [Layer],
    pub bufs: &'a [LayerBufs],
    pub batch: usize,
    pub params: BufId,
    pub grads: BufId,
}

impl Chain<'_> {
    /// Backward ops of the chain fed by `input` at element `input_off`:
    /// parameter gradients into `grads`, and the input's gradient (at the same
    /// offset) into `input_grad` when given, accumulating when asked.
    pub fn backward(
        &self,
        ops: &mut Vec<Op>,
        input: BufId,
        input_off: usize,
        input_grad: Option<BufId>,
        accumulate_input: bool,
    ) {
        let grad = input_grad.map(|g| (g, input_off));
        self.backward_with(ops, input, input_off, grad, accumulate_input)
    }

    /// [`Chain::backward`] with the input's gradient written at its own
    /// buffer and offset (GradNorm keeps each task's apart).
    pub fn backward_with(
        &self,
        ops: &mut Vec<Op>,
        input: BufId,
        input_off: usize,
        input_grad: Option<(BufId, usize)>,
        accumulate_input: bool,
    ) {
        for k in (0..self.layers.len()).rev() {
            let (l, b) = (&self.layers[k], &self.bufs[k]);
            let dy = b.dy.expect("training graph");
            let (x, x_off, dx, acc) = if k > 0 {
                (
                    self.bufs[k - 1].y,
                    0,
                    self.bufs[k - 1].dy.map(|d| (d, 0)),
                    false,
                )
            } else {
                (input, input_off, input_grad, accumulate_input)
            };
            let mut args = dense_args(&l.slot, self.batch, l.act, false);
            args.x_off = x_off as u32;
            ops.push(Op::DenseBackwardWeight {
                args,
                dy,
                y: b.y,
                x,
                grads: self.grads,
            });
            if let Some((dx, dx_off)) = dx {
                let mut args = dense_args(&l.slot, self.batch, l.act, acc);
                args.dx_off = dx_off as u32;
                ops.push(Op::DenseBackwardInput {
                    args,
                    dy,
                    y: b.y,
                    params: self.params,
                    dx,
                });
            }
        }
    }
}

/// [`chain_backward`] writing the input's gradient at element `input_grad.1`
/// of buffer `input_grad.0`.
#[allow(clippy::too_many_arguments)]
pub fn chain_backward_at(
    ops: &mut Vec<Op>,
    layers: &[Layer],
    bufs: &[LayerBufs],
    input: BufId,
    input_grad: Option<(BufId, usize)>,
    accumulate_input: bool,
    batch: usize,
    params: BufId,
    grads: BufId,
) {
    let chain = Chain {
        layers,
        bufs,
        batch,
        params,
        grads,
    };
    chain.backward_with(ops, input, 0, input_grad, accumulate_input);
}

impl SharedNet {
    /// Places `trunk.{i}` and `heads.{task}.{i}` in `layout`.
    pub fn new(spec: &ModelSpec, layout: &mut ParamLayout) -> SharedNet {
        let mut width = spec.inputs;
        let mut trunk = Vec::new();
        for (i, &h) in spec.trunk.iter().enumerate() {
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
        let mut fused_first = None;
        let heads = if let (true, Some(h0)) = (fusable, first) {
            let names: Vec<String> = spec
                .tasks
                .iter()
                .map(|t| format!("heads.{}.0", t.name))
                .collect();
            let slot0 = layout.add_dense_group(&names, width, h0);
            fused_first = Some(slot0);
            spec.tasks
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
                    layers.extend(head_layers_from(
                        layout,
                        &format!("heads.{}", task.name),
                        1,
                        h0,
                        &task.head[1..],
                        task.outputs,
                        spec.activation,
                        Activation::Identity,
                    ));
                    layers
                })
                .collect()
        } else {
            task_heads(spec, layout, width)
        };
        SharedNet {
            trunk,
            heads,
            fused_first,
        }
    }

    /// Buffers and ops for a batch (see [`Graph`]).
    pub fn graph(
        &self,
        b: &mut dyn Backend,
        spec: &ModelSpec,
        batch: usize,
        train: bool,
        params: BufId,
        grads: Option<BufId>,
    ) -> Result<Graph> {
        let x = b.alloc(batch * spec.inputs, "x")?;
        let mut trunk = Vec::new();
        for (i, l) in self.trunk.iter().enumerate() {
            trunk.push(layer_bufs(
                b,
                l.slot.outputs,
                batch,
                &format!("trunk.{i}"),
                train,
            )?);
        }
        // With fused first head layers, the heads' first outputs share one
        // buffer [T, N, H0] and each task's chain starts at its slice.
        let skip = self.fused_first.is_some() as usize;
        let fused = match &self.fused_first {
            Some(s) => Some(layer_bufs(
                b,
                self.heads.len() * s.outputs,
                batch,
                "heads.*.0",
                train,
            )?),
            None => None,
        };
        let mut heads = Vec::new();
        for (j, h) in self.heads.iter().enumerate() {
            let mut v = Vec::new();
            for (i, l) in h.iter().enumerate().skip(skip) {
                v.push(layer_bufs(
                    b,
                    l.slot.outputs,
                    batch,
                    &format!("heads.{j}.{i}"),
                    train,
                )?);
            }
            heads.push(v);
        }
        let mut forward = Vec::new();
        let trunk_out = chain_forward(&mut forward, &self.trunk, &trunk, x, batch, params);
        let first = |slot: &DenseSlot, acc: bool| DenseArgs {
            batches: self.heads.len() as u32,
            x_bstride: 0,
            w_bstride: (slot.inputs * slot.outputs) as u32,
            b_bstride: slot.outputs as u32,
            y_bstride: (batch * slot.outputs) as u32,
            ..dense_args(slot, batch, spec.activation, acc)
        };
        if let (Some(slot), Some(f)) = (&self.fused_first, &fused) {
            forward.push(Op::DenseForward {
                args: first(slot, false),
                x: trunk_out,
                params,
                y: f.y,
            });
        }
        for (j, (layers, bufs)) in self.heads.iter().zip(&heads).enumerate() {
            match (&self.fused_first, &fused) {
                (Some(s), Some(f)) => chain_forward_at(
                    &mut forward,
                    &layers[1..],
                    bufs,
                    f.y,
                    j * batch * s.outputs,
                    batch,
                    params,
                ),
                _ => chain_forward(&mut forward, layers, bufs, trunk_out, batch, params),
            };
        }
        let mut backward = Vec::new();
        let mut rep_split = None;
        if let (true, Some(grads)) = (train, grads) {
            let trunk_out_grad = trunk.last().and_then(|l| l.dy);
            let t_n = self.heads.len();
            let width = self.trunk.last().map_or(0, |l| l.slot.outputs);
            if spec.gradnorm {
                // GradNorm: each head's gradient of the trunk output apart, then summed.
                let Some(dtrunk) = trunk_out_grad else {
                    return Err(crate::Error::Invalid(
                        "weighting = \"gradnorm\" needs a shared layer: the model has no trunk"
                            .into(),
                    ));
                };
                let split = b.alloc(t_n * batch * width, "per-task trunk gradients")?;
                let ones = super::network::ones(b, batch * t_n)?;
                for (j, (layers, bufs)) in self.heads.iter().zip(&heads).enumerate() {
                    chain_backward_at(
                        &mut backward,
                        layers,
                        bufs,
                        trunk_out,
                        Some((split, j * batch * width)),
                        false,
                        batch,
                        params,
                        grads,
                    );
                }
                super::network::sum_over_tasks(
                    &mut backward,
                    split,
                    ones,
                    dtrunk,
                    t_n,
                    batch,
                    width,
                );
                rep_split = Some((split, batch * width));
            } else {
                for (j, (layers, bufs)) in self.heads.iter().zip(&heads).enumerate() {
                    let chain = Chain {
                        layers: &layers[skip..],
                        bufs,
                        batch,
                        params,
                        grads,
                    };
                    match (&self.fused_first, &fused) {
                        (Some(s), Some(f)) => {
                            chain.backward(&mut backward, f.y, j * batch * s.outputs, f.dy, false)
                        }
                        _ => chain.backward(&mut backward, trunk_out, 0, trunk_out_grad, j > 0),
                    }
                }
                if let (Some(slot), Some(f)) = (&self.fused_first, &fused) {
                    let dy = f.dy.expect("training graph");
                    backward.push(Op::DenseBackwardWeight {
                        args: first(slot, false),
                        dy,
                        y: f.y,
                        x: trunk_out,
                        grads,
                    });
                    if let Some(dx) = trunk_out_grad {
                        // Summed over tasks: the trunk's output feeds every head.
                        backward.push(Op::DenseBackwardInput {
                            args: first(slot, false),
                            dy,
                            y: f.y,
                            params,
                            dx,
                        });
                    }
                }
            }
            chain_backward(
                &mut backward,
                &self.trunk,
                &trunk,
                x,
                None,
                false,
                batch,
                params,
                grads,
            );
        }
        Ok(Graph {
            rep_split,
            ..Graph::with_heads(batch, x, &heads, forward, backward)
        })
    }
}

/// Places every task's head (`heads.{task}.{i}`) on an input of `width`:
/// hidden layers with the model's activation, then an identity output layer.
pub fn task_heads(spec: &ModelSpec, layout: &mut ParamLayout, width: usize) -> Vec<Vec<Layer>> {
    spec.tasks
        .iter()
        .map(|task| {
            head_layers(
                layout,
                &format!("heads.{}", task.name),
                width,
                &task.head,
                task.outputs,
                spec.activation,
                Activation::Identity,
            )
        })
        .collect()
}

/// Places a head: hidden layers with `hidden_act`, then an output layer of
/// `outputs` with `out_act`, named `{prefix}.{i}`.
pub fn head_layers(
    layout: &mut ParamLayout,
    prefix: &str,
    inputs: usize,
    hidden: &[usize],
    outputs: usize,
    hidden_act: Activation,
    out_act: Activation,
) -> Vec<Layer> {
    head_layers_from(
        layout, prefix, 0, inputs, hidden, outputs, hidden_act, out_act,
    )
}

/// [`head_layers`] numbering the layers from `first` (`{prefix}.{first}`, …).
#[allow(clippy::too_many_arguments)]
pub fn head_layers_from(
    layout: &mut ParamLayout,
    prefix: &str,
    first: usize,
    inputs: usize,
    hidden: &[usize],
    outputs: usize,
    hidden_act: Activation,
    out_act: Activation,
) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut w = inputs;
    for (k, &h) in hidden.iter().enumerate() {
        let i = first + k;
        let slot = layout.add_dense(&format!("{prefix}.{i}"), w, h);
        layers.push(Layer {
            slot,
            act: hidden_act,
        });
        w = h;
    }
    let slot = layout.add_dense(&format!("{prefix}.{}", first + hidden.len()), w, outputs);
    layers.push(Layer { slot, act: out_act });
    layers
}
