//! Multi-gate mixture of experts (MMoE, Ma et al., KDD 2018; LibMTL's `MMoE`).
//!
//! Forward:  ex_l = act(ex_{l−1}·W_{e,l}ᵀ + b_{e,l})   every expert e at once, [E, N, H_l]
//!           (ex_0 = x, shared by all experts: one batched dense dispatch per layer)
//!           g_j  = softmax(x·G_jᵀ + c_j)               every task's gate at once, [T, N, E]
//!           m_j  = Σ_e g_j[·, e] · ex_L[e]              gated sum per task, [N, H_L]
//!           z_j  = head_j(m_j)                          logits [N, C_j]
//! Backward: heads; then per task the gated sum's two backwards (expert gradients
//! summed over tasks, gate gradients per task); the softmax backward over all
//! gates; the gates' and experts' weight gradients, again one dispatch per layer.
//! The input needs no gradient, so the first expert layer skips dx.
//!
//! Parameters of one expert layer are laid out expert after expert
//! (`experts.{e}.{l}.weight|bias`), so one stride steps from expert to expert;
//! the gates (`gates.{task}.weight|bias`) likewise sit task after task.

use super::network::{dense_args, Graph, Layer};
use super::params::{DenseSlot, ParamLayout};
use super::shared::{chain_backward, chain_forward, layer_bufs, task_heads, LayerBufs};
use super::spec::{Activation, ModelSpec};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, GateArgs, Op};
use crate::Result;

/// E experts of identical dense stacks, one softmax gate and one head per task.
#[derive(Debug, Clone)]
pub struct MmoeNet {
    /// E.
    pub experts: usize,
    /// Per layer: expert 0's slot (the others follow at `slot.len()` strides) and the activation.
    pub layers: Vec<Layer>,
    /// Task 0's gate [E, I]; the other tasks' follow at `gate.len()` strides.
    pub gate: DenseSlot,
    /// Per task: hidden layers, then the output layer (identity).
    pub heads: Vec<Vec<Layer>>,
}

/// One dense layer applied by `batches` experts (or gates) in one dispatch:
/// parameters at `slot.len()` strides, outputs [batches, N, O].
fn batched_args(
    slot: &DenseSlot,
    n: usize,
    act: Activation,
    batches: usize,
    shared_x: bool,
) -> DenseArgs {
    DenseArgs {
        batches: batches as u32,
        x_bstride: if shared_x {
            0
        } else {
            (n * slot.inputs) as u32
        },
        w_bstride: slot.len() as u32,
        b_bstride: slot.len() as u32,
        y_bstride: (n * slot.outputs) as u32,
        ..dense_args(slot, n, act, false)
    }
}

impl MmoeNet {
    /// Places `experts.{e}.{l}`, `gates.{task}` and `heads.{task}.{i}` in `layout`.
    pub fn new(spec: &ModelSpec, layout: &mut ParamLayout) -> MmoeNet {
        let ex = spec.experts.as_ref().expect("an MMoE spec has experts");
        let mut width = spec.inputs;
        let mut layers = Vec::new();
        for (l, &h) in ex.layers.iter().enumerate() {
            let mut first = None;
            for e in 0..ex.count {
                let slot = layout.add_dense(&format!("experts.{e}.{l}"), width, h);
                first.get_or_insert(slot);
            }
            layers.push(Layer {
                slot: first.expect("at least one expert"),
                act: spec.activation,
            });
            width = h;
        }
        let mut gate = None;
        for t in &spec.tasks {
            let slot = layout.add_dense(&format!("gates.{}", t.name), spec.inputs, ex.count);
            gate.get_or_insert(slot);
        }
        let heads = task_heads(spec, layout, width);
        MmoeNet {
            experts: ex.count,
            layers,
            gate: gate.expect("at least one task"),
            heads,
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
        let (e_n, t_n, n) = (self.experts, spec.tasks.len(), batch);
        let x = b.alloc(n * spec.inputs, "x")?;
        // ex_l [E, N, H_l] and its gradient.
        let mut ex = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            ex.push(layer_bufs(
                b,
                e_n * layer.slot.outputs,
                n,
                &format!("experts.{l}"),
                train,
            )?);
        }
        let h_last = self
            .layers
            .last()
            .expect("at least one expert layer")
            .slot
            .outputs;
        // Gate logits and softmax [T, N, E].
        let gz = layer_bufs(b, t_n * e_n, n, "gate logits", train)?;
        let g = layer_bufs(b, t_n * e_n, n, "gates", train)?;
        let mut mix = Vec::new();
        let mut heads = Vec::new();
        for (j, h) in self.heads.iter().enumerate() {
            mix.push(layer_bufs(b, h_last, n, &format!("mixture.{j}"), train)?);
            let mut v = Vec::new();
            for (i, l) in h.iter().enumerate() {
                v.push(layer_bufs(
                    b,
                    l.slot.outputs,
                    n,
                    &format!("heads.{j}.{i}"),
                    train,
                )?);
            }
            heads.push(v);
        }

        let mut forward = Vec::new();
        let mut input = x;
        for (l, (layer, bufs)) in self.layers.iter().zip(&ex).enumerate() {
            forward.push(Op::DenseForward {
                args: batched_args(&layer.slot, n, layer.act, e_n, l == 0),
                x: input,
                params,
                y: bufs.y,
            });
            input = bufs.y;
        }
        let gate_args = batched_args(&self.gate, n, Activation::Identity, t_n, true);
        forward.push(Op::DenseForward {
            args: gate_args,
            x,
            params,
            y: gz.y,
        });
        let softmax = GateArgs {
            rows: (t_n * n) as u32,
            experts: e_n as u32,
            width: 1,
            g_stride: e_n as u32,
            ..Default::default()
        };
        forward.push(Op::GateSoftmax {
            args: softmax,
            x: gz.y,
            y: g.y,
        });
        let sum_args = |j: usize, accumulate: bool| GateArgs {
            rows: n as u32,
            experts: e_n as u32,
            width: h_last as u32,
            g_stride: e_n as u32,
            g_off: (j * n * e_n) as u32,
            accumulate: accumulate as u32,
            ..Default::default()
        };
        let ex_last = ex.last().expect("at least one expert layer");
        for (j, (layers, bufs)) in self.heads.iter().zip(&heads).enumerate() {
            forward.push(Op::GatedSumForward {
                args: sum_args(j, false),
                g: g.y,
                ex: ex_last.y,
                out: mix[j].y,
            });
            chain_forward(&mut forward, layers, bufs, mix[j].y, n, params);
        }

        let mut backward = Vec::new();
        let mut rep_split = None;
        if let (true, Some(grads)) = (train, grads) {
            let d = |l: &LayerBufs| l.dy.expect("training graph");
            // GradNorm: each task's gradient of the last expert outputs [E, N, H] apart.
            let ex_len = e_n * n * h_last;
            let split = if spec.gradnorm {
                Some((
                    b.alloc(t_n * ex_len, "per-task expert gradients")?,
                    super::network::ones(b, e_n * n * t_n)?,
                ))
            } else {
                None
            };
            for (j, (layers, bufs)) in self.heads.iter().zip(&heads).enumerate() {
                chain_backward(
                    &mut backward,
                    layers,
                    bufs,
                    mix[j].y,
                    mix[j].dy,
                    false,
                    n,
                    params,
                    grads,
                );
                let (args, dex) = match split {
                    Some((buf, _)) => (
                        GateArgs {
                            ex_off: (j * ex_len) as u32,
                            ..sum_args(j, false)
                        },
                        buf,
                    ),
                    None => (sum_args(j, j > 0), d(ex_last)),
                };
                backward.push(Op::GatedSumBackwardExperts {
                    args,
                    g: g.y,
                    dout: d(&mix[j]),
                    dex,
                });
                backward.push(Op::GatedSumBackwardGate {
                    args: sum_args(j, false),
                    dout: d(&mix[j]),
                    ex: ex_last.y,
                    dg: d(&g),
                });
            }
            if let Some((buf, ones)) = split {
                super::network::sum_over_tasks(
                    &mut backward,
                    buf,
                    ones,
                    d(ex_last),
                    t_n,
                    e_n * n,
                    h_last,
                );
                rep_split = Some((buf, ex_len));
            }
            backward.push(Op::GateSoftmaxBackward {
                args: softmax,
                dy: d(&g),
                y: g.y,
                dx: d(&gz),
            });
            backward.push(Op::DenseBackwardWeight {
                args: gate_args,
                dy: d(&gz),
                y: gz.y,
                x,
                grads,
            });
            for l in (0..self.layers.len()).rev() {
                let layer = &self.layers[l];
                let args = batched_args(&layer.slot, n, layer.act, e_n, l == 0);
                let input = if l == 0 { x } else { ex[l - 1].y };
                backward.push(Op::DenseBackwardWeight {
                    args,
                    dy: d(&ex[l]),
                    y: ex[l].y,
                    x: input,
                    grads,
                });
                if l > 0 {
                    backward.push(Op::DenseBackwardInput {
                        args,
                        dy: d(&ex[l]),
                        y: ex[l].y,
                        params,
                        dx: d(&ex[l - 1]),
                    });
                }
            }
        }
        Ok(Graph {
            gates: Some((g.y, e_n)),
            rep_split,
            ..Graph::with_heads(batch, x, &heads, forward, backward)
        })
    }
}
