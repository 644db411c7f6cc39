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

use crate::backend::Backend;
use crate::model::blocks::experts::{self, ExpertStack};
use crate::model::blocks::gate::{softmax_args, GatedSum, Softmax};
use crate::model::blocks::heads::{self, Heads};
use crate::model::graph::{elems, ones, sum_over_tasks, At, Dense, Graph, InputGrad, Layer, Pass};
use crate::model::params::{DenseSlot, ParamLayout};
use crate::model::spec::{Activation, ExpertsSpec, ModelSpec};
use crate::ops::{BufId, GateArgs, Op};
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

impl MmoeNet {
    /// Places `experts.{e}.{l}`, `gates.{task}` and `heads.{task}.{i}` in `layout`.
    pub fn new(spec: &ModelSpec, ex: &ExpertsSpec, layout: &mut ParamLayout) -> MmoeNet {
        let layers = experts::place(layout, ex.count, spec.inputs, &ex.layers, spec.activation);
        let width = layers.last().map_or(spec.inputs, |l| l.slot.outputs);
        let mut gate = None;
        for t in &spec.tasks {
            let slot = layout.add_dense(&format!("gates.{}", t.name), spec.inputs, ex.count);
            gate.get_or_insert(slot);
        }
        MmoeNet {
            experts: ex.count,
            layers,
            gate: gate.expect("at least one task"),
            heads: heads::place(spec, layout, width),
        }
    }

    /// Buffers and ops for a batch (see [`Graph`]).
    pub fn graph(&self, b: &mut dyn Backend, spec: &ModelSpec, pass: &Pass) -> Result<Graph> {
        let (e_n, t_n, n) = (self.experts, spec.tasks.len(), pass.n);
        let x = b.alloc(elems("x", &[n, spec.inputs])?, "x")?;
        let experts = ExpertStack::alloc(b, pass, &self.layers, e_n, x)?;
        let mix = self.alloc_mix(b, pass, t_n, &experts, x)?;
        let heads = Heads::alloc(b, pass, &self.heads, 0)?;

        let mut forward = Vec::new();
        experts.forward(&mut forward, pass);
        mix.forward(&mut forward, pass.params);
        for (j, sum) in mix.sums.iter().enumerate() {
            sum.forward(&mut forward);
            heads.forward(&mut forward, pass, j, At::start(sum.out.y));
        }

        let mut backward = Vec::new();
        let mut rep_split = None;
        if let Some(grads) = pass.backward() {
            let ex_out = experts.out();
            // GradNorm: each task's gradient of the last expert outputs [E, N, H] apart.
            let h_last = self.layers.last().expect("an expert layer").slot.outputs;
            let ex_len = e_n * n * h_last;
            let split = if spec.gradnorm {
                Some((
                    b.alloc(
                        elems("per-task expert gradients", &[t_n, e_n, n, h_last])?,
                        "per-task expert gradients",
                    )?,
                    ones(b, e_n * n * t_n)?,
                ))
            } else {
                None
            };
            for (j, sum) in mix.sums.iter().enumerate() {
                let grad = sum.out.dy.map(InputGrad::write);
                heads.backward(&mut backward, pass, grads, j, At::start(sum.out.y), grad);
                let (args, dex) = match split {
                    Some((buf, _)) => (
                        GateArgs {
                            ex_off: (j * ex_len) as u32,
                            ..sum.args
                        },
                        buf,
                    ),
                    None => (
                        GateArgs {
                            accumulate: (j > 0) as u32,
                            ..sum.args
                        },
                        ex_out.d(),
                    ),
                };
                sum.backward(&mut backward, args, dex);
            }
            if let Some((buf, ones)) = split {
                sum_over_tasks(&mut backward, buf, ones, ex_out.d(), t_n, e_n * n, h_last);
                rep_split = Some((buf, ex_len));
            }
            mix.backward(&mut backward, grads);
            experts.backward(&mut backward, pass, grads);
        }
        Ok(Graph {
            gates: Some((mix.softmax.g.y, e_n)),
            rep_split,
            ..Graph::with_heads(n, x, &heads.bufs, forward, backward)
        })
    }

    /// Every task's gate over `x` (one dispatch), the softmax over all gates
    /// [T, N, E], and per task the gated sum of the last expert outputs.
    fn alloc_mix(
        &self,
        b: &mut dyn Backend,
        pass: &Pass,
        t_n: usize,
        experts: &ExpertStack,
        x: BufId,
    ) -> Result<Gates> {
        let (e_n, n) = (self.experts, pass.n);
        let gz = pass.bufs(b, t_n * e_n, "gate logits")?;
        let g = pass.bufs(b, t_n * e_n, "gates")?;
        let gate_layer = Layer {
            slot: self.gate,
            act: Activation::Identity,
        };
        let ex = experts.out();
        let h_last = self.layers.last().expect("an expert layer").slot.outputs;
        let sums = (0..t_n)
            .map(|j| {
                Ok(GatedSum {
                    args: GateArgs {
                        rows: n as u32,
                        experts: e_n as u32,
                        width: h_last as u32,
                        g_stride: e_n as u32,
                        g_off: (j * n * e_n) as u32,
                        ..Default::default()
                    },
                    g,
                    ex,
                    out: pass.bufs(b, h_last, &format!("mixture.{j}"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Gates {
            logits: Dense {
                args: experts::copies_args(&gate_layer, n, t_n, false),
                x,
                y: gz,
            },
            softmax: Softmax {
                args: softmax_args(t_n * n, e_n),
                z: gz,
                g,
            },
            sums,
        })
    }
}

/// MMoE's gated mix: the gates' logits (every task's gate in one dispatch),
/// their softmax, and one gated sum per task.
struct Gates {
    logits: Dense,
    softmax: Softmax,
    sums: Vec<GatedSum>,
}

impl Gates {
    /// The gates' logits and softmax (the sums run per task, before each head).
    fn forward(&self, ops: &mut Vec<Op>, params: BufId) {
        self.logits.forward(ops, params);
        self.softmax.forward(ops);
    }

    /// The softmax's backward and the gates' weight gradients (after every
    /// task's sum backward has written its gate rows).
    fn backward(&self, ops: &mut Vec<Op>, grads: BufId) {
        self.softmax.backward(ops);
        self.logits.backward_weight(ops, grads);
    }
}
