//! Hard parameter sharing: a trunk, then one head per task.
//!
//! Forward:  h_0 = x;  h_l = act(h_{l−1}·W_lᵀ + b_l)           trunk, [N, H_l]
//!           g_j,0 = h_L;  g_j,k = act(…)   (hidden head layers)
//!           z_j = g_j,K·W_outᵀ + b_out                          logits [N, C_j]
//! Backward: the reverse, with the trunk output's gradient summed over tasks
//! (the first head overwrites it, the others accumulate).

use super::network::{dense_args, Graph, Layer};
use super::params::ParamLayout;
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
    let mut x = input;
    for (l, b) in layers.iter().zip(bufs) {
        ops.push(Op::DenseForward {
            args: dense_args(&l.slot, batch, l.act, false),
            x,
            params,
            y: b.y,
        });
        x = b.y;
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
    chain_backward_at(
        ops,
        layers,
        bufs,
        input,
        input_grad.map(|g| (g, 0)),
        accumulate_input,
        batch,
        params,
        grads,
    )
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
    for k in (0..layers.len()).rev() {
        let (l, b) = (&layers[k], &bufs[k]);
        let dy = b.dy.expect("training graph");
        let (x, dx, acc) = if k > 0 {
            (bufs[k - 1].y, bufs[k - 1].dy.map(|d| (d, 0)), false)
        } else {
            (input, input_grad, accumulate_input)
        };
        ops.push(Op::DenseBackwardWeight {
            args: dense_args(&l.slot, batch, l.act, false),
            dy,
            y: b.y,
            x,
            grads,
        });
        if let Some((dx, dx_off)) = dx {
            ops.push(Op::DenseBackwardInput {
                args: DenseArgs {
                    dx_off: dx_off as u32,
                    ..dense_args(&l.slot, batch, l.act, acc)
                },
                dy,
                y: b.y,
                params,
                dx,
            });
        }
    }
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
        let heads = spec
            .tasks
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
            .collect();
        SharedNet { trunk, heads }
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
        let mut heads = Vec::new();
        for (j, h) in self.heads.iter().enumerate() {
            let mut v = Vec::new();
            for (i, l) in h.iter().enumerate() {
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
        for (layers, bufs) in self.heads.iter().zip(&heads) {
            chain_forward(&mut forward, layers, bufs, trunk_out, batch, params);
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
                    chain_backward(
                        &mut backward,
                        layers,
                        bufs,
                        trunk_out,
                        trunk_out_grad,
                        j > 0,
                        batch,
                        params,
                        grads,
                    );
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
            batch,
            x,
            logits: heads
                .iter()
                .map(|h| h.last().expect("output layer").y)
                .collect(),
            logits_grad: heads
                .iter()
                .map(|h| h.last().expect("output layer").dy)
                .collect(),
            forward,
            backward,
            gates: None,
            rep_split,
        })
    }
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
    let mut layers = Vec::new();
    let mut w = inputs;
    for (i, &h) in hidden.iter().enumerate() {
        let slot = layout.add_dense(&format!("{prefix}.{i}"), w, h);
        layers.push(Layer {
            slot,
            act: hidden_act,
        });
        w = h;
    }
    let slot = layout.add_dense(&format!("{prefix}.{}", hidden.len()), w, outputs);
    layers.push(Layer { slot, act: out_act });
    layers
}
