//! Progressive layered extraction (PLE, Tang et al., RecSys 2020): customised
//! gate control (CGC) levels stacked. With S shared and K per-task experts
//! per level (E = S + T·K in all), experts ordered shared first, then task 0's
//! K, task 1's K, …:
//!
//! Level l, inputs: task j's a_{l,j} and the shared a_{l,s} (both = x at l = 0):
//!   ex_l[e]  = act(in_e·W_{l,e}ᵀ + b_{l,e})        [E, N, H_l]; in_e = a_{l,s} for
//!              shared experts, a_{l,j} for task j's
//!   g_{l,j}  = softmax(a_{l,j}·G_{l,j}ᵀ + c_{l,j})  [N, S + K]: shared, then task j's
//!   a_{l+1,j} = Σ_{e<S} g_{l,j}[e]·ex_l[e] + Σ_{i<K} g_{l,j}[S+i]·ex_l[S+jK+i]
//!   below the last level also a shared gate over all E experts:
//!   a_{l+1,s} = Σ_e softmax(a_{l,s}·G_{l,s}ᵀ + c_{l,s})[e]·ex_l[e]
//! Task j's head reads a_{L,j}. At l = 0 every expert and every task gate reads
//! x, so each is one batched dispatch; above it, one dispatch per input group.
//! Backward: the reverse; an input feeding several experts (batched dispatches
//! with a shared input would race on dx) gets their gradients one expert at a
//! time, accumulating.
//!
//! Names: `experts.{e}.{l}`, `gates.{task}.{l}` [S + K, in], `shared_gates.{l}`
//! [E, in] (l < L − 1), `heads.{task}.{i}`. One level is CGC.

use super::network::{dense_args, Graph, Layer};
use super::params::{DenseSlot, ParamLayout};
use super::shared::{chain_backward, chain_forward, layer_bufs, task_heads, LayerBufs};
use super::spec::{Activation, ModelSpec};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, GateArgs, Op};
use crate::Result;

/// One extraction level's parameters.
#[derive(Debug, Clone)]
pub struct PleLevel {
    /// Expert 0 (the others follow at `slot.len()` strides) and the activation.
    pub expert: Layer,
    /// Task 0's gate (the others follow at `slot.len()` strides).
    pub task_gate: DenseSlot,
    /// The shared gate, below the last level.
    pub shared_gate: Option<DenseSlot>,
}

/// PLE: levels of shared and task experts, gates, and one head per task.
#[derive(Debug, Clone)]
pub struct PleNet {
    /// S.
    pub shared: usize,
    /// K.
    pub per_task: usize,
    pub levels: Vec<PleLevel>,
    pub heads: Vec<Vec<Layer>>,
}

/// `count` copies of `slot`'s layer (at `slot.len()` strides, from copy `first`)
/// over `n` rows: inputs at `x_off` (shared by all copies), outputs [count, N, O]
/// at `y_off`.
fn group_args(
    slot: &DenseSlot,
    act: Activation,
    n: usize,
    first: usize,
    count: usize,
    y_off: usize,
) -> DenseArgs {
    let stride = slot.len();
    DenseArgs {
        w_off: (slot.w + first * stride) as u32,
        b_off: (slot.b() + first * stride) as u32,
        y_off: y_off as u32,
        dy_off: y_off as u32,
        batches: count as u32,
        x_bstride: 0,
        w_bstride: stride as u32,
        b_bstride: stride as u32,
        y_bstride: (n * slot.outputs) as u32,
        ..dense_args(slot, n, act, false)
    }
}

/// Buffers of one level for a batch.
struct LevelBufs {
    /// Expert outputs [E, N, H].
    ex: LayerBufs,
    /// Task gate logits and softmax [T, N, S + K].
    tz: LayerBufs,
    tg: LayerBufs,
    /// Shared gate logits and softmax [N, E] (below the last level).
    sz: Option<LayerBufs>,
    sg: Option<LayerBufs>,
    /// Outputs a_{l+1,j} [N, H] per task, and a_{l+1,s}.
    task_out: Vec<LayerBufs>,
    shared_out: Option<LayerBufs>,
}

impl PleNet {
    /// Places every level's experts and gates, then the heads, in `layout`.
    pub fn new(spec: &ModelSpec, layout: &mut ParamLayout) -> PleNet {
        let p = spec.ple.as_ref().expect("a PLE spec");
        let t_n = spec.tasks.len();
        let e_n = p.shared + t_n * p.per_task;
        let mut width = spec.inputs;
        let mut levels = Vec::new();
        let last = p.levels.len() - 1;
        for (l, &h) in p.levels.iter().enumerate() {
            let mut expert = None;
            for e in 0..e_n {
                let slot = layout.add_dense(&format!("experts.{e}.{l}"), width, h);
                expert.get_or_insert(slot);
            }
            let mut task_gate = None;
            for t in &spec.tasks {
                let slot = layout.add_dense(
                    &format!("gates.{}.{l}", t.name),
                    width,
                    p.shared + p.per_task,
                );
                task_gate.get_or_insert(slot);
            }
            let shared_gate =
                (l < last).then(|| layout.add_dense(&format!("shared_gates.{l}"), width, e_n));
            levels.push(PleLevel {
                expert: Layer {
                    slot: expert.expect("at least one expert"),
                    act: spec.activation,
                },
                task_gate: task_gate.expect("at least one task"),
                shared_gate,
            });
            width = h;
        }
        let heads = task_heads(spec, layout, width);
        PleNet {
            shared: p.shared,
            per_task: p.per_task,
            levels,
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
        let (s_n, k_n, t_n, n) = (self.shared, self.per_task, spec.tasks.len(), batch);
        let e_n = s_n + t_n * k_n;
        let g_n = s_n + k_n;
        let x = b.alloc(n * spec.inputs, "x")?;
        let mut bufs: Vec<LevelBufs> = Vec::new();
        for (l, lv) in self.levels.iter().enumerate() {
            let h = lv.expert.slot.outputs;
            let below_last = lv.shared_gate.is_some();
            let mut task_out = Vec::new();
            for j in 0..t_n {
                task_out.push(layer_bufs(b, h, n, &format!("ple.{l}.task.{j}"), train)?);
            }
            bufs.push(LevelBufs {
                ex: layer_bufs(b, e_n * h, n, &format!("ple.{l}.experts"), train)?,
                tz: layer_bufs(b, t_n * g_n, n, &format!("ple.{l}.gate logits"), train)?,
                tg: layer_bufs(b, t_n * g_n, n, &format!("ple.{l}.gates"), train)?,
                sz: if below_last {
                    Some(layer_bufs(
                        b,
                        e_n,
                        n,
                        &format!("ple.{l}.shared gate logits"),
                        train,
                    )?)
                } else {
                    None
                },
                sg: if below_last {
                    Some(layer_bufs(
                        b,
                        e_n,
                        n,
                        &format!("ple.{l}.shared gate"),
                        train,
                    )?)
                } else {
                    None
                },
                task_out,
                shared_out: if below_last {
                    Some(layer_bufs(b, h, n, &format!("ple.{l}.shared"), train)?)
                } else {
                    None
                },
            });
        }
        let mut heads = Vec::new();
        for (j, hl) in self.heads.iter().enumerate() {
            let mut v = Vec::new();
            for (i, l) in hl.iter().enumerate() {
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
        // Inputs of level l: (task j's, shared).
        let task_in = |l: usize, j: usize| -> LayerBufs {
            if l == 0 {
                LayerBufs { y: x, dy: None }
            } else {
                bufs[l - 1].task_out[j]
            }
        };
        let shared_in = |l: usize| -> LayerBufs {
            if l == 0 {
                LayerBufs { y: x, dy: None }
            } else {
                bufs[l - 1]
                    .shared_out
                    .expect("a shared output below the last level")
            }
        };
        let ex_off = |e: usize, h: usize| e * n * h;
        let task_sum = |j: usize, h: usize, shared_part: bool, accumulate: bool| GateArgs {
            rows: n as u32,
            experts: if shared_part { s_n } else { k_n } as u32,
            width: h as u32,
            g_stride: g_n as u32,
            g_off: (j * n * g_n + if shared_part { 0 } else { s_n }) as u32,
            ex_off: if shared_part {
                0
            } else {
                ex_off(s_n + j * k_n, h)
            } as u32,
            out_off: 0,
            accumulate: accumulate as u32,
        };
        let all_sum = |h: usize, accumulate: bool| GateArgs {
            rows: n as u32,
            experts: e_n as u32,
            width: h as u32,
            g_stride: e_n as u32,
            accumulate: accumulate as u32,
            ..Default::default()
        };
        let softmax = |rows: usize, experts: usize| GateArgs {
            rows: rows as u32,
            experts: experts as u32,
            width: 1,
            g_stride: experts as u32,
            ..Default::default()
        };

        let mut forward = Vec::new();
        for (l, (lv, lb)) in self.levels.iter().zip(&bufs).enumerate() {
            let (slot, act, h) = (&lv.expert.slot, lv.expert.act, lv.expert.slot.outputs);
            if l == 0 {
                forward.push(Op::DenseForward {
                    args: group_args(slot, act, n, 0, e_n, 0),
                    x,
                    params,
                    y: lb.ex.y,
                });
                forward.push(Op::DenseForward {
                    args: group_args(&lv.task_gate, Activation::Identity, n, 0, t_n, 0),
                    x,
                    params,
                    y: lb.tz.y,
                });
            } else {
                forward.push(Op::DenseForward {
                    args: group_args(slot, act, n, 0, s_n, 0),
                    x: shared_in(l).y,
                    params,
                    y: lb.ex.y,
                });
                for j in 0..t_n {
                    let first = s_n + j * k_n;
                    forward.push(Op::DenseForward {
                        args: group_args(slot, act, n, first, k_n, ex_off(first, h)),
                        x: task_in(l, j).y,
                        params,
                        y: lb.ex.y,
                    });
                    forward.push(Op::DenseForward {
                        args: group_args(&lv.task_gate, Activation::Identity, n, j, 1, j * n * g_n),
                        x: task_in(l, j).y,
                        params,
                        y: lb.tz.y,
                    });
                }
            }
            forward.push(Op::GateSoftmax {
                args: softmax(t_n * n, g_n),
                x: lb.tz.y,
                y: lb.tg.y,
            });
            for j in 0..t_n {
                for (shared_part, acc) in [(true, false), (false, true)] {
                    forward.push(Op::GatedSumForward {
                        args: task_sum(j, h, shared_part, acc),
                        g: lb.tg.y,
                        ex: lb.ex.y,
                        out: lb.task_out[j].y,
                    });
                }
            }
            if let (Some(sgate), Some(sz), Some(sg), Some(so)) =
                (&lv.shared_gate, lb.sz, lb.sg, lb.shared_out)
            {
                forward.push(Op::DenseForward {
                    args: group_args(sgate, Activation::Identity, n, 0, 1, 0),
                    x: shared_in(l).y,
                    params,
                    y: sz.y,
                });
                forward.push(Op::GateSoftmax {
                    args: softmax(n, e_n),
                    x: sz.y,
                    y: sg.y,
                });
                forward.push(Op::GatedSumForward {
                    args: all_sum(h, false),
                    g: sg.y,
                    ex: lb.ex.y,
                    out: so.y,
                });
            }
        }
        let top = bufs.last().expect("at least one level");
        for (j, (layers, hb)) in self.heads.iter().zip(&heads).enumerate() {
            chain_forward(&mut forward, layers, hb, top.task_out[j].y, n, params);
        }

        let mut backward = Vec::new();
        let mut rep_split = None;
        if let (true, Some(grads)) = (train, grads) {
            let d = |l: &LayerBufs| l.dy.expect("training graph");
            // GradNorm: each task's gradient of the last level's shared experts'
            // outputs [S, N, H] apart (the last level has no shared gate).
            let h_top = self.levels.last().expect("a level").expert.slot.outputs;
            let shared_len = s_n * n * h_top;
            let split = if spec.gradnorm {
                Some((
                    b.alloc(t_n * shared_len, "per-task shared expert gradients")?,
                    super::network::ones(b, s_n * n * t_n)?,
                ))
            } else {
                None
            };
            let last = self.levels.len() - 1;
            for (j, (layers, hb)) in self.heads.iter().zip(&heads).enumerate() {
                chain_backward(
                    &mut backward,
                    layers,
                    hb,
                    top.task_out[j].y,
                    top.task_out[j].dy,
                    false,
                    n,
                    params,
                    grads,
                );
            }
            for l in (0..self.levels.len()).rev() {
                let (lv, lb) = (&self.levels[l], &bufs[l]);
                let (slot, act, h) = (&lv.expert.slot, lv.expert.act, lv.expert.slot.outputs);
                let below_last = lv.shared_gate.is_some();
                // Expert output gradients: the shared gate's sum writes all of them first.
                if let (Some(sg), Some(so)) = (lb.sg, lb.shared_out) {
                    backward.push(Op::GatedSumBackwardExperts {
                        args: all_sum(h, false),
                        g: sg.y,
                        dout: d(&so),
                        dex: d(&lb.ex),
                    });
                    backward.push(Op::GatedSumBackwardGate {
                        args: all_sum(h, false),
                        dout: d(&so),
                        ex: lb.ex.y,
                        dg: d(&sg),
                    });
                }
                for j in 0..t_n {
                    let to = &lb.task_out[j];
                    for shared_part in [true, false] {
                        let acc = below_last || (shared_part && j > 0);
                        let (args, dex) = match split {
                            Some((buf, _)) if l == last && shared_part => (
                                GateArgs {
                                    ex_off: (j * shared_len) as u32,
                                    accumulate: 0,
                                    ..task_sum(j, h, true, false)
                                },
                                buf,
                            ),
                            _ => (task_sum(j, h, shared_part, acc), d(&lb.ex)),
                        };
                        backward.push(Op::GatedSumBackwardExperts {
                            args,
                            g: lb.tg.y,
                            dout: d(to),
                            dex,
                        });
                        backward.push(Op::GatedSumBackwardGate {
                            args: task_sum(j, h, shared_part, false),
                            dout: d(to),
                            ex: lb.ex.y,
                            dg: d(&lb.tg),
                        });
                    }
                }
                if let (Some((buf, ones)), true) = (split, l == last) {
                    super::network::sum_over_tasks(
                        &mut backward,
                        buf,
                        ones,
                        d(&lb.ex),
                        t_n,
                        s_n * n,
                        h,
                    );
                    rep_split = Some((buf, shared_len));
                }
                backward.push(Op::GateSoftmaxBackward {
                    args: softmax(t_n * n, g_n),
                    dy: d(&lb.tg),
                    y: lb.tg.y,
                    dx: d(&lb.tz),
                });
                if let (Some(sz), Some(sg)) = (lb.sz, lb.sg) {
                    backward.push(Op::GateSoftmaxBackward {
                        args: softmax(n, e_n),
                        dy: d(&sg),
                        y: sg.y,
                        dx: d(&sz),
                    });
                }
                // Weight gradients.
                if l == 0 {
                    backward.push(Op::DenseBackwardWeight {
                        args: group_args(slot, act, n, 0, e_n, 0),
                        dy: d(&lb.ex),
                        y: lb.ex.y,
                        x,
                        grads,
                    });
                    backward.push(Op::DenseBackwardWeight {
                        args: group_args(&lv.task_gate, Activation::Identity, n, 0, t_n, 0),
                        dy: d(&lb.tz),
                        y: lb.tz.y,
                        x,
                        grads,
                    });
                } else {
                    backward.push(Op::DenseBackwardWeight {
                        args: group_args(slot, act, n, 0, s_n, 0),
                        dy: d(&lb.ex),
                        y: lb.ex.y,
                        x: shared_in(l).y,
                        grads,
                    });
                    for j in 0..t_n {
                        let first = s_n + j * k_n;
                        backward.push(Op::DenseBackwardWeight {
                            args: group_args(slot, act, n, first, k_n, ex_off(first, h)),
                            dy: d(&lb.ex),
                            y: lb.ex.y,
                            x: task_in(l, j).y,
                            grads,
                        });
                        backward.push(Op::DenseBackwardWeight {
                            args: group_args(
                                &lv.task_gate,
                                Activation::Identity,
                                n,
                                j,
                                1,
                                j * n * g_n,
                            ),
                            dy: d(&lb.tz),
                            y: lb.tz.y,
                            x: task_in(l, j).y,
                            grads,
                        });
                    }
                }
                if let (Some(sgate), Some(sz)) = (&lv.shared_gate, lb.sz) {
                    backward.push(Op::DenseBackwardWeight {
                        args: group_args(sgate, Activation::Identity, n, 0, 1, 0),
                        dy: d(&sz),
                        y: sz.y,
                        x: shared_in(l).y,
                        grads,
                    });
                }
                // Input gradients (the input x needs none): one expert at a time.
                if l > 0 {
                    for j in 0..t_n {
                        let dx = d(&task_in(l, j));
                        for i in 0..k_n {
                            let e = s_n + j * k_n + i;
                            backward.push(Op::DenseBackwardInput {
                                args: DenseArgs {
                                    accumulate: (i > 0) as u32,
                                    ..group_args(slot, act, n, e, 1, ex_off(e, h))
                                },
                                dy: d(&lb.ex),
                                y: lb.ex.y,
                                params,
                                dx,
                            });
                        }
                        backward.push(Op::DenseBackwardInput {
                            args: DenseArgs {
                                accumulate: 1,
                                ..group_args(
                                    &lv.task_gate,
                                    Activation::Identity,
                                    n,
                                    j,
                                    1,
                                    j * n * g_n,
                                )
                            },
                            dy: d(&lb.tz),
                            y: lb.tz.y,
                            params,
                            dx,
                        });
                    }
                    let dx = d(&shared_in(l));
                    for e in 0..s_n {
                        backward.push(Op::DenseBackwardInput {
                            args: DenseArgs {
                                accumulate: (e > 0) as u32,
                                ..group_args(slot, act, n, e, 1, ex_off(e, h))
                            },
                            dy: d(&lb.ex),
                            y: lb.ex.y,
                            params,
                            dx,
                        });
                    }
                    if let (Some(sgate), Some(sz)) = (&lv.shared_gate, lb.sz) {
                        backward.push(Op::DenseBackwardInput {
                            args: DenseArgs {
                                accumulate: 1,
                                ..group_args(sgate, Activation::Identity, n, 0, 1, 0)
                            },
                            dy: d(&sz),
                            y: sz.y,
                            params,
                            dx,
                        });
                    }
                }
            }
        }
        Ok(Graph {
            gates: Some((top.tg.y, g_n)),
            rep_split,
            ..Graph::with_heads(batch, x, &heads, forward, backward)
        })
    }
}
