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

use crate::backend::Backend;
use crate::model::blocks::gate::{softmax_args, GatedSum, Softmax};
use crate::model::blocks::heads::{self, Heads};
use crate::model::graph::{
    elems, ones, sum_over_tasks, At, Dense, DenseCall, Graph, InputGrad, Layer, LayerBufs, Pass,
};
use crate::model::params::{DenseSlot, ParamLayout};
use crate::model::spec::{Activation, ModelSpec, PleSpec};
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

/// `count` copies of `slot`'s layer (placed one after another, from copy
/// `first`) over N rows, sharing one input: outputs [count, N, O] at `y_off`.
fn copies(
    slot: &DenseSlot,
    act: Activation,
    pass: &Pass,
    first: usize,
    count: usize,
    y_off: usize,
) -> DenseCall {
    DenseCall::new(slot, pass.n, act)
        .interleaved(count)
        .from_copy(first)
        .y_dy_at(y_off)
        .stacked_outputs()
}

impl PleNet {
    /// Places every level's experts and gates, then the heads, in `layout`.
    pub fn new(spec: &ModelSpec, p: &PleSpec, layout: &mut ParamLayout) -> PleNet {
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
        PleNet {
            shared: p.shared,
            per_task: p.per_task,
            levels,
            heads: heads::place(spec, layout, width),
        }
    }

    /// Buffers and ops for a batch (see [`Graph`]).
    pub fn graph(&self, b: &mut dyn Backend, spec: &ModelSpec, pass: &Pass) -> Result<Graph> {
        let (s_n, t_n, n) = (self.shared, spec.tasks.len(), pass.n);
        let x = b.alloc(elems("x", &[n, spec.inputs])?, "x")?;
        let input = LayerBufs { y: x, dy: None };
        let mut levels: Vec<LevelPass> = Vec::new();
        for (l, lv) in self.levels.iter().enumerate() {
            let (task_in, shared_in) = match levels.last() {
                None => (vec![input; t_n], input),
                Some(below) => (below.task_out(), below.shared_out()),
            };
            levels.push(LevelPass::alloc(b, pass, self, l, lv, task_in, shared_in)?);
        }
        let heads = Heads::alloc(b, pass, &self.heads, 0)?;
        let top = levels.last().expect("at least one level");

        let mut forward = Vec::new();
        for level in &levels {
            level.forward(&mut forward, pass);
        }
        for j in 0..t_n {
            heads.forward(&mut forward, pass, j, At::start(top.sums[j][0].out.y));
        }

        let mut backward = Vec::new();
        let mut rep_split = None;
        if let Some(grads) = pass.backward() {
            // GradNorm: each task's gradient of the last level's shared experts'
            // outputs [S, N, H] apart (the last level has no shared gate).
            let h_top = top.width;
            let shared_len = s_n * n * h_top;
            let split = if spec.gradnorm {
                Some((
                    b.alloc(
                        elems("per-task shared expert gradients", &[t_n, s_n, n, h_top])?,
                        "per-task shared expert gradients",
                    )?,
                    ones(b, s_n * n * t_n)?,
                ))
            } else {
                None
            };
            for j in 0..t_n {
                let out = top.sums[j][0].out;
                let grad = out.dy.map(InputGrad::write);
                heads.backward(&mut backward, pass, grads, j, At::start(out.y), grad);
            }
            for (l, level) in levels.iter().enumerate().rev() {
                let last_split = split.filter(|_| l == levels.len() - 1);
                level.backward_sums(&mut backward, last_split.map(|(buf, _)| (buf, shared_len)));
                if let Some((buf, ones)) = last_split {
                    let ex = level.ex.d();
                    sum_over_tasks(&mut backward, buf, ones, ex, t_n, s_n * n, h_top);
                    rep_split = Some((buf, shared_len));
                }
                level.backward_gates_and_experts(&mut backward, pass, grads);
            }
        }
        Ok(Graph {
            gates: Some((top.softmax.g.y, self.shared + self.per_task)),
            rep_split,
            ..Graph::with_heads(n, x, &heads.bufs, forward, backward)
        })
    }
}

/// One level's dispatches in a pass: experts and task gates (one dispatch
/// each at l = 0, per input group above), the task gates' softmax, per task
/// its two gated sums (shared experts, then its own), and below the last
/// level the shared gate's mix.
struct LevelPass {
    /// Expert 0's layer (the others follow at `slot.len()` strides).
    expert: Layer,
    /// H_l.
    width: usize,
    /// Expert outputs [E, N, H].
    ex: LayerBufs,
    /// The shared experts (all experts at l = 0).
    shared_experts: Dense,
    /// Per task, its own experts (none at l = 0).
    task_experts: Vec<Dense>,
    /// Per task, its gate's logits (one dispatch for all at l = 0) into [T, N, S + K].
    task_gates: Vec<Dense>,
    /// The task gates' softmax [T, N, S + K].
    softmax: Softmax,
    /// Per task: [shared part, own part], both into a_{l+1,j} [N, H].
    sums: Vec<[GatedSum; 2]>,
    /// Below the last level: the shared gate, its softmax [N, E] and a_{l+1,s}.
    shared_mix: Option<(Dense, Softmax, GatedSum)>,
    /// Above l = 0: the inputs whose gradients the experts and gates send back.
    inputs: Option<(Vec<LayerBufs>, LayerBufs)>,
    /// S, K, T.
    counts: (usize, usize, usize),
}

/// Level l's sizes and parameters over one pass: S, K, N, H and E = S + T·K.
struct LevelShape<'a> {
    pass: &'a Pass,
    lv: &'a PleLevel,
    s_n: usize,
    k_n: usize,
    n: usize,
    h: usize,
    e_n: usize,
    /// S + K: the width of a task gate.
    g_n: usize,
}

impl LevelShape<'_> {
    /// `count` experts from expert `first`, all reading one input, into [E, N, H].
    fn experts(&self, first: usize, count: usize, x: BufId, ex: LayerBufs) -> Dense {
        let (slot, act) = (&self.lv.expert.slot, self.lv.expert.act);
        Dense {
            args: copies(slot, act, self.pass, first, count, first * self.n * self.h).args(),
            x,
            y: ex,
        }
    }

    /// Task gates `j .. j + count`, all reading one input, into [T, N, S + K].
    fn task_gates(&self, j: usize, count: usize, x: BufId, tz: LayerBufs) -> Dense {
        let (gate, n, g_n) = (&self.lv.task_gate, self.n, self.g_n);
        Dense {
            args: copies(gate, Activation::Identity, self.pass, j, count, j * n * g_n).args(),
            x,
            y: tz,
        }
    }

    /// Task j's gated sum over the shared experts (`shared_part`) or its own,
    /// the own part adding to the shared part's sum in a_{l+1,j}.
    fn task_sum(
        &self,
        j: usize,
        shared_part: bool,
        g: LayerBufs,
        ex: LayerBufs,
        out: LayerBufs,
    ) -> GatedSum {
        let (s_n, k_n, n, h, g_n) = (self.s_n, self.k_n, self.n, self.h, self.g_n);
        let (experts, g_col, ex_off) = if shared_part {
            (s_n, 0, 0)
        } else {
            (k_n, s_n, (s_n + j * k_n) * n * h)
        };
        GatedSum {
            args: GateArgs {
                rows: n as u32,
                experts: experts as u32,
                width: h as u32,
                g_stride: g_n as u32,
                g_off: (j * n * g_n + g_col) as u32,
                ex_off: ex_off as u32,
                out_off: 0,
                accumulate: !shared_part as u32,
            },
            g,
            ex,
            out,
        }
    }

    /// Below the last level: the shared gate over all E experts, its softmax
    /// [N, E] and a_{l+1,s} = Σ_e g[e]·ex[e].
    fn shared_mix(
        &self,
        gate: &DenseSlot,
        x: BufId,
        (sz, sg, out): (LayerBufs, LayerBufs, LayerBufs),
        ex: LayerBufs,
    ) -> (Dense, Softmax, GatedSum) {
        let (n, h, e_n) = (self.n, self.h, self.e_n);
        (
            Dense {
                args: copies(gate, Activation::Identity, self.pass, 0, 1, 0).args(),
                x,
                y: sz,
            },
            Softmax {
                args: softmax_args(n, e_n),
                z: sz,
                g: sg,
            },
            GatedSum {
                args: GateArgs {
                    rows: n as u32,
                    experts: e_n as u32,
                    width: h as u32,
                    g_stride: e_n as u32,
                    ..Default::default()
                },
                g: sg,
                ex,
                out,
            },
        )
    }
}

impl LevelPass {
    /// Allocates level `l`'s buffers (`ple.{l}.…`) over its inputs.
    #[allow(clippy::too_many_arguments)]
    fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        net: &PleNet,
        l: usize,
        lv: &PleLevel,
        task_in: Vec<LayerBufs>,
        shared_in: LayerBufs,
    ) -> Result<LevelPass> {
        let (s_n, k_n, t_n) = (net.shared, net.per_task, task_in.len());
        let shape = LevelShape {
            pass,
            lv,
            s_n,
            k_n,
            n: pass.n,
            h: lv.expert.slot.outputs,
            e_n: s_n + t_n * k_n,
            g_n: s_n + k_n,
        };
        let (h, e_n, g_n) = (shape.h, shape.e_n, shape.g_n);
        let below_last = lv.shared_gate.is_some();
        let mut task_out = Vec::new();
        for j in 0..t_n {
            task_out.push(pass.bufs(b, h, &format!("ple.{l}.task.{j}"))?);
        }
        let ex = pass.bufs(b, e_n * h, &format!("ple.{l}.experts"))?;
        let tz = pass.bufs(b, t_n * g_n, &format!("ple.{l}.gate logits"))?;
        let tg = pass.bufs(b, t_n * g_n, &format!("ple.{l}.gates"))?;
        let sz = pass.bufs_if(below_last, b, e_n, &format!("ple.{l}.shared gate logits"))?;
        let sg = pass.bufs_if(below_last, b, e_n, &format!("ple.{l}.shared gate"))?;
        let shared_out = pass.bufs_if(below_last, b, h, &format!("ple.{l}.shared"))?;

        // At l = 0 every expert and task gate reads x: one dispatch each.
        let (shared_experts, task_experts, task_gates) = if l == 0 {
            let all = shape.experts(0, e_n, shared_in.y, ex);
            (
                all,
                Vec::new(),
                vec![shape.task_gates(0, t_n, shared_in.y, tz)],
            )
        } else {
            let own = |j: usize| shape.experts(s_n + j * k_n, k_n, task_in[j].y, ex);
            let gate = |j: usize| shape.task_gates(j, 1, task_in[j].y, tz);
            (
                shape.experts(0, s_n, shared_in.y, ex),
                (0..t_n).map(own).collect(),
                (0..t_n).map(gate).collect(),
            )
        };
        let sums = (0..t_n)
            .map(|j| [true, false].map(|sp| shape.task_sum(j, sp, tg, ex, task_out[j])))
            .collect();
        let shared_mix = match (&lv.shared_gate, sz, sg, shared_out) {
            (Some(gate), Some(sz), Some(sg), Some(so)) => {
                Some(shape.shared_mix(gate, shared_in.y, (sz, sg, so), ex))
            }
            _ => None,
        };
        Ok(LevelPass {
            expert: lv.expert,
            width: h,
            ex,
            shared_experts,
            task_experts,
            task_gates,
            softmax: Softmax {
                args: softmax_args(t_n * shape.n, g_n),
                z: tz,
                g: tg,
            },
            sums,
            shared_mix,
            inputs: (l > 0).then_some((task_in, shared_in)),
            counts: (s_n, k_n, t_n),
        })
    }

    /// a_{l+1,j} per task (what the next level's task experts, or the heads, read).
    fn task_out(&self) -> Vec<LayerBufs> {
        self.sums.iter().map(|s| s[0].out).collect()
    }

    /// a_{l+1,s} (what the next level's shared experts read).
    fn shared_out(&self) -> LayerBufs {
        self.shared_mix
            .as_ref()
            .expect("a shared output below the last level")
            .2
            .out
    }

    /// The dense dispatches in order: shared experts, then per task its
    /// experts and its gate (at l = 0: all experts, all gates).
    fn dense_ops(&self) -> Vec<&Dense> {
        let mut v = vec![&self.shared_experts];
        for j in 0..self.task_gates.len() {
            v.extend(self.task_experts.get(j));
            v.push(&self.task_gates[j]);
        }
        v
    }

    fn forward(&self, ops: &mut Vec<Op>, pass: &Pass) {
        for d in self.dense_ops() {
            d.forward(ops, pass.params);
        }
        self.softmax.forward(ops);
        for s in self.sums.iter().flatten() {
            s.forward(ops);
        }
        if let Some((logits, softmax, sum)) = &self.shared_mix {
            logits.forward(ops, pass.params);
            softmax.forward(ops);
            sum.forward(ops);
        }
    }

    /// The gated sums' backward: the shared gate's sum writes every
    /// expert's output gradient first, the task sums then accumulate (at the
    /// last level the first task's shared part writes). With `split` =
    /// (buffer, per-task length), the last level's shared parts send each
    /// task's gradient apart instead.
    fn backward_sums(&self, ops: &mut Vec<Op>, split: Option<(BufId, usize)>) {
        let below_last = self.shared_mix.is_some();
        if let Some((_, _, sum)) = &self.shared_mix {
            sum.backward(ops, sum.args, self.ex.d());
        }
        for (j, pair) in self.sums.iter().enumerate() {
            for (sum, shared_part) in pair.iter().zip([true, false]) {
                let (args, dex) = match split {
                    Some((buf, len)) if shared_part => (
                        GateArgs {
                            ex_off: (j * len) as u32,
                            accumulate: 0,
                            ..sum.args
                        },
                        buf,
                    ),
                    _ => (
                        GateArgs {
                            accumulate: (below_last || (shared_part && j > 0)) as u32,
                            ..sum.args
                        },
                        self.ex.d(),
                    ),
                };
                sum.backward(ops, args, dex);
            }
        }
    }

    /// The softmaxes' backward, the weight gradients of every expert and
    /// gate, then (above l = 0) the inputs' gradients, one expert at a time
    /// per input.
    fn backward_gates_and_experts(&self, ops: &mut Vec<Op>, pass: &Pass, grads: BufId) {
        self.softmax.backward(ops);
        if let Some((_, softmax, _)) = &self.shared_mix {
            softmax.backward(ops);
        }
        for d in self.dense_ops() {
            d.backward_weight(ops, grads);
        }
        if let Some((logits, _, _)) = &self.shared_mix {
            logits.backward_weight(ops, grads);
        }
        let Some((task_in, shared_in)) = &self.inputs else {
            return;
        };
        let (s_n, k_n, _) = self.counts;
        let added = |d: &Dense| DenseArgs {
            accumulate: 1,
            ..d.args
        };
        for (j, input) in task_in.iter().enumerate() {
            for i in 0..k_n {
                self.expert_input_grad(ops, pass, s_n + j * k_n + i, i > 0, input.d());
            }
            let gate = &self.task_gates[j];
            gate.backward_input(ops, added(gate), pass.params, input.d());
        }
        for e in 0..s_n {
            self.expert_input_grad(ops, pass, e, e > 0, shared_in.d());
        }
        if let Some((logits, _, _)) = &self.shared_mix {
            logits.backward_input(ops, added(logits), pass.params, shared_in.d());
        }
    }

    /// Expert `e`'s input gradient into `dx` (adding to it when `accumulate`).
    fn expert_input_grad(
        &self,
        ops: &mut Vec<Op>,
        pass: &Pass,
        e: usize,
        accumulate: bool,
        dx: BufId,
    ) {
        let (slot, act) = (&self.expert.slot, self.expert.act);
        let args = copies(slot, act, pass, e, 1, e * pass.n * self.width)
            .accumulate(accumulate)
            .args();
        ops.push(Op::DenseBackwardInput {
            args,
            dy: self.ex.d(),
            y: self.ex.y,
            params: pass.params,
            dx,
        });
    }
}
