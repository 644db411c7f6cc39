//! A hard-parameter-sharing network: the trunk and one head per task as
//! dense layers placed in the parameter layout, plus the ops of its forward
//! and backward passes over a batch.
//!
//! Forward:  h_0 = x;  h_l = act(h_{l−1}·W_lᵀ + b_l)           trunk, [N, H_l]
//!           g_j,0 = h_L;  g_j,k = act(…)   (hidden head layers)
//!           z_j = g_j,K·W_outᵀ + b_out                          logits [N, C_j]
//! Backward: the reverse, with the trunk's output gradient summed over tasks.

use super::params::{DenseSlot, ParamLayout};
use super::spec::{Activation, ModelSpec};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, Op};
use crate::Result;

/// One dense layer of the graph and the activation after it.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub slot: DenseSlot,
    pub act: Activation,
}

/// The layers of a model, in the parameter layout's order.
#[derive(Debug, Clone)]
pub struct Network {
    pub layout: ParamLayout,
    pub trunk: Vec<Layer>,
    /// Per task: hidden layers, then the output layer (identity).
    pub heads: Vec<Vec<Layer>>,
}

impl Network {
    /// Places every layer of `spec` in a fresh layout (names per DESIGN §3).
    pub fn new(spec: &ModelSpec) -> Network {
        let mut layout = ParamLayout::default();
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
        let mut heads = Vec::new();
        for task in &spec.tasks {
            let mut layers = Vec::new();
            let mut w = width;
            for (i, &h) in task.head.iter().enumerate() {
                let slot = layout.add_dense(&format!("heads.{}.{i}", task.name), w, h);
                layers.push(Layer {
                    slot,
                    act: spec.activation,
                });
                w = h;
            }
            let k = task.head.len();
            let slot = layout.add_dense(&format!("heads.{}.{k}", task.name), w, task.outputs);
            layers.push(Layer {
                slot,
                act: Activation::Identity,
            });
            heads.push(layers);
        }
        Network {
            layout,
            trunk,
            heads,
        }
    }
}

/// Output and output-gradient buffers of one layer, [N, out] each.
#[derive(Debug, Clone, Copy)]
pub struct LayerBufs {
    pub y: BufId,
    /// None in inference-only graphs.
    pub dy: Option<BufId>,
}

/// Activation buffers of a network for a batch of `batch` rows.
#[derive(Debug, Clone)]
pub struct Activations {
    pub batch: usize,
    /// The batch input [N, I].
    pub x: BufId,
    pub trunk: Vec<LayerBufs>,
    pub heads: Vec<Vec<LayerBufs>>,
}

impl Activations {
    /// Allocates every activation buffer; `grads` adds the gradient buffers.
    pub fn new(
        backend: &mut dyn Backend,
        net: &Network,
        inputs: usize,
        batch: usize,
        grads: bool,
    ) -> Result<Activations> {
        let x = backend.alloc(batch * inputs, "x")?;
        let layer = |b: &mut dyn Backend, l: &Layer, name: String| -> Result<LayerBufs> {
            let n = batch * l.slot.outputs;
            Ok(LayerBufs {
                y: b.alloc(n, &name)?,
                dy: if grads {
                    Some(b.alloc(n, &format!("d{name}"))?)
                } else {
                    None
                },
            })
        };
        let mut trunk = Vec::new();
        for (i, l) in net.trunk.iter().enumerate() {
            trunk.push(layer(backend, l, format!("trunk.{i}.out"))?);
        }
        let mut heads = Vec::new();
        for (j, h) in net.heads.iter().enumerate() {
            let mut v = Vec::new();
            for (i, l) in h.iter().enumerate() {
                v.push(layer(backend, l, format!("heads.{j}.{i}.out"))?);
            }
            heads.push(v);
        }
        Ok(Activations {
            batch,
            x,
            trunk,
            heads,
        })
    }

    /// The logits buffer of task `j`, [N, C_j].
    pub fn logits(&self, j: usize) -> BufId {
        self.heads[j].last().expect("a head has an output layer").y
    }

    /// The gradient buffer of task `j`'s logits (the loss writes it).
    pub fn logits_grad(&self, j: usize) -> BufId {
        self.heads[j]
            .last()
            .and_then(|l| l.dy)
            .expect("training graph")
    }

    /// Output of the trunk (the heads' input): the last trunk layer, or x.
    fn trunk_out(&self) -> BufId {
        self.trunk.last().map(|l| l.y).unwrap_or(self.x)
    }
}

/// Arguments of one dense layer over `n` rows (one batch item, no offsets into activations).
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

/// Forward ops: x → trunk → every head's logits.
pub fn forward_ops(net: &Network, a: &Activations, params: BufId) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut input = a.x;
    for (l, b) in net.trunk.iter().zip(&a.trunk) {
        ops.push(Op::DenseForward {
            args: dense_args(&l.slot, a.batch, l.act, false),
            x: input,
            params,
            y: b.y,
        });
        input = b.y;
    }
    let trunk_out = a.trunk_out();
    for (layers, bufs) in net.heads.iter().zip(&a.heads) {
        let mut input = trunk_out;
        for (l, b) in layers.iter().zip(bufs) {
            ops.push(Op::DenseForward {
                args: dense_args(&l.slot, a.batch, l.act, false),
                x: input,
                params,
                y: b.y,
            });
            input = b.y;
        }
    }
    ops
}

/// Backward ops, from the (already scaled) logit gradients to every parameter
/// gradient. The trunk output's gradient is the sum over tasks: the first
/// head overwrites it, the others accumulate.
pub fn backward_ops(net: &Network, a: &Activations, params: BufId, grads: BufId) -> Vec<Op> {
    let mut ops = Vec::new();
    let trunk_out = a.trunk_out();
    let trunk_out_grad = a.trunk.last().and_then(|l| l.dy);
    for (j, (layers, bufs)) in net.heads.iter().zip(&a.heads).enumerate() {
        for k in (0..layers.len()).rev() {
            let (l, b) = (&layers[k], &bufs[k]);
            let dy = b.dy.expect("training graph");
            let (x, dx) = if k > 0 {
                (bufs[k - 1].y, bufs[k - 1].dy)
            } else {
                (trunk_out, trunk_out_grad)
            };
            ops.push(Op::DenseBackwardWeight {
                args: dense_args(&l.slot, a.batch, l.act, false),
                dy,
                y: b.y,
                x,
                grads,
            });
            if let Some(dx) = dx {
                let accumulate = k == 0 && j > 0;
                ops.push(Op::DenseBackwardInput {
                    args: dense_args(&l.slot, a.batch, l.act, accumulate),
                    dy,
                    y: b.y,
                    params,
                    dx,
                });
            }
        }
    }
    for k in (0..net.trunk.len()).rev() {
        let (l, b) = (&net.trunk[k], &a.trunk[k]);
        let dy = b.dy.expect("training graph");
        let (x, dx) = if k > 0 {
            (a.trunk[k - 1].y, a.trunk[k - 1].dy)
        } else {
            (a.x, None)
        };
        ops.push(Op::DenseBackwardWeight {
            args: dense_args(&l.slot, a.batch, l.act, false),
            dy,
            y: b.y,
            x,
            grads,
        });
        if let Some(dx) = dx {
            ops.push(Op::DenseBackwardInput {
                args: dense_args(&l.slot, a.batch, l.act, false),
                dy,
                y: b.y,
                params,
                dx,
            });
        }
    }
    ops
}
