//! Ensembles of collaborating members. Each member is a full single model
//! (its own trunk, one output layer per task ending in the task's activation);
//! per task a combiner turns the members' outputs into the prediction:
//!
//!   stack:  z = [o_0 … o_{M−1}]·Wᵀ + b          combiner.{task} [C, M·C], logits
//!   mean:   p = (1/M) Σ_m o_m                     soft voting: the members' probabilities averaged
//!   concat: every member output trained against the target (the seed's literal form)
//!   gate:   p = Σ_m g_m·o_m, g = softmax(x·W_gᵀ + b_g)   attention over members, combiner.{task} [M, I]
//!
//! Members of one architecture that sit next to each other in the config form
//! a group whose layers run as ONE dense dispatch over all its members (member
//! index on the grid): per layer, all their weights are one contiguous matrix
//! and all their biases one vector (`ParamLayout::add_dense_group`). Members of different shapes form separate groups in the same step.
//! A frozen group gets no gradient buffers, no backward ops and no optimizer range.
//!
//! Member outputs are sigmoid probabilities for binary tasks and softmax
//! probabilities for multiclass ones (a row softmax after the output layer,
//! `GateSoftmax` over [M·N, C]), except under `concat`, where every member
//! trains on its own logits with the task's usual loss.
//!
//! Buffers for a batch of N: member trunks [G, N, H_l] per group; member
//! outputs [M, N, C] per task (member-major, all groups), and before the
//! softmax the member logits [M, N, C] (multiclass); stack rows [N, M·C].

use super::network::{Graph, Layer, MemberOutputs, OutputForm};
use super::params::ParamLayout;
use super::spec::{Activation, Combine, EnsembleSpec, ModelSpec, TaskKind};
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, EnsembleArgs, GateArgs, Op};
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

/// An ensemble's groups and combiners.
#[derive(Debug, Clone)]
pub struct EnsembleNet {
    pub groups: Vec<MemberGroup>,
    pub combine: Combine,
    /// Per task, the stack combiner (None for other combiners).
    pub combiners: Vec<Option<Layer>>,
    pub members: usize,
    /// The combiners' parameters.
    pub combiner_params: Range<usize>,
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

/// A dense layer applied by `batches` members at once (parameters per `add_dense_group`).
fn dense(layer: &Layer, n: usize, batches: usize) -> DenseArgs {
    let (i, o) = (layer.slot.inputs, layer.slot.outputs);
    DenseArgs {
        n: n as u32,
        i: i as u32,
        o: o as u32,
        act: layer.act.code(),
        w_off: layer.slot.w as u32,
        b_off: layer.slot.b() as u32,
        batches: batches as u32,
        w_bstride: (i * o) as u32,
        b_bstride: o as u32,
        ..Default::default()
    }
}

impl EnsembleNet {
    /// Places every member's tensors (`members.{name}.trunk.{i}`,
    /// `members.{name}.heads.{task}.0`) group by group, then the combiners.
    pub fn new(spec: &ModelSpec, e: &EnsembleSpec, layout: &mut ParamLayout) -> EnsembleNet {
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
            let p0 = layout.len;
            let mut trunk = Vec::new();
            let mut width = spec.inputs;
            for (l, &h) in first.trunk.iter().enumerate() {
                let names: Vec<String> = e.members[start..end]
                    .iter()
                    .map(|m| format!("members.{}.trunk.{l}", m.name))
                    .collect();
                let slot = layout.add_dense_group(&names, width, h);
                trunk.push(GroupLayer {
                    layer: Layer {
                        slot,
                        act: first.activation,
                    },
                });
                width = h;
            }
            let mut heads = Vec::new();
            for t in &spec.tasks {
                let names: Vec<String> = e.members[start..end]
                    .iter()
                    .map(|m| format!("members.{}.heads.{}.0", m.name, t.name))
                    .collect();
                let slot = layout.add_dense_group(&names, width, t.outputs);
                heads.push(GroupLayer {
                    layer: Layer {
                        slot,
                        act: member_output_activation(t.kind, e.combine),
                    },
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
        let m = e.members.len();
        let c0 = layout.len;
        let combiners = spec
            .tasks
            .iter()
            .map(|t| match e.combine {
                Combine::Stack => Some(Layer {
                    slot: layout.add_dense(
                        &format!("combiner.{}", t.name),
                        m * t.outputs,
                        t.outputs,
                    ),
                    act: Activation::Identity,
                }),
                // The gate's logits over members, computed from the input.
                Combine::Gate => Some(Layer {
                    slot: layout.add_dense(&format!("combiner.{}", t.name), spec.inputs, m),
                    act: Activation::Identity,
                }),
                _ => None,
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
    pub fn trainable(&self, _len: usize) -> Vec<Range<usize>> {
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
    pub fn graph(
        &self,
        b: &mut dyn Backend,
        spec: &ModelSpec,
        n: usize,
        train: bool,
        params: BufId,
        grads: Option<BufId>,
    ) -> Result<Graph> {
        let m = self.members;
        let x = b.alloc(n * spec.inputs, "x")?;
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        // Member outputs per task [M, N, C] and their gradients; where a
        // softmax follows the output layer, also the logits before it.
        let mut outs = Vec::new();
        let mut douts = Vec::new();
        let mut member_logits = Vec::new();
        for t in &spec.tasks {
            let len = m * n * t.outputs;
            outs.push(b.alloc(len, &format!("member outputs {}", t.name))?);
            douts.push(if train {
                Some(b.alloc(len, &format!("d member outputs {}", t.name))?)
            } else {
                None
            });
            member_logits.push(if member_softmax(t.kind, self.combine) {
                let z = b.alloc(len, &format!("member logits {}", t.name))?;
                let dz = if train {
                    Some(b.alloc(len, &format!("d member logits {}", t.name))?)
                } else {
                    None
                };
                Some((z, dz))
            } else {
                None
            });
        }
        // The head layers write the logits when a softmax follows.
        let head_out = |j: usize| member_logits[j].map_or(outs[j], |(z, _)| z);
        let head_grad = |j: usize| member_logits[j].map_or(douts[j], |(_, dz)| dz);
        // Members, group by group: trunk layers, then one output layer per task.
        let mut group_bufs = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            let gm = g.members.len();
            let with_grads = train && g.trainable;
            let mut ys = Vec::new();
            for (l, gl) in g.trunk.iter().enumerate() {
                let len = gm * n * gl.layer.slot.outputs;
                let y = b.alloc(len, &format!("group {gi} trunk.{l}"))?;
                let dy = if with_grads {
                    Some(b.alloc(len, &format!("d group {gi} trunk.{l}"))?)
                } else {
                    None
                };
                ys.push((y, dy));
            }
            let mut input = x;
            let mut in_stride = 0;
            for (gl, &(y, _)) in g.trunk.iter().zip(&ys) {
                let mut a = dense(&gl.layer, n, gm);
                a.x_bstride = in_stride as u32;
                a.y_bstride = (n * gl.layer.slot.outputs) as u32;
                forward.push(Op::DenseForward {
                    args: a,
                    x: input,
                    params,
                    y,
                });
                input = y;
                in_stride = n * gl.layer.slot.outputs;
            }
            for (j, (gl, t)) in g.heads.iter().zip(&spec.tasks).enumerate() {
                let mut a = dense(&gl.layer, n, gm);
                a.x_bstride = in_stride as u32;
                a.y_off = (g.members.start * n * t.outputs) as u32;
                a.y_bstride = (n * t.outputs) as u32;
                forward.push(Op::DenseForward {
                    args: a,
                    x: input,
                    params,
                    y: head_out(j),
                });
            }
            group_bufs.push((ys, input, in_stride));
        }
        // Multiclass member probabilities: one row softmax over [M·N, C].
        let mut softmax_backward = Vec::new();
        for (j, t) in spec.tasks.iter().enumerate() {
            let Some((z, dz)) = member_logits[j] else {
                continue;
            };
            let sa = GateArgs {
                rows: (m * n) as u32,
                experts: t.outputs as u32,
                g_stride: t.outputs as u32,
                ..Default::default()
            };
            forward.push(Op::GateSoftmax {
                args: sa,
                x: z,
                y: outs[j],
            });
            if let (Some(dy), Some(dx)) = (douts[j], dz) {
                softmax_backward.push(Op::GateSoftmaxBackward {
                    args: sa,
                    dy,
                    y: outs[j],
                    dx,
                });
            }
        }
        // Combiners.
        let mut logits = Vec::new();
        let mut logits_grad = Vec::new();
        let mut form = Vec::new();
        let mut stacked = Vec::new();
        let mut combine_backward = Vec::new();
        // gate: every task's softmax over members in one [T, N, M] buffer (and
        // its gradient), as MMoE's gates are, so `tandem inspect` can read them.
        let tasks = spec.tasks.len();
        let (gates, dgates) = if self.combine == Combine::Gate {
            let g = b.alloc(tasks * n * m, "gates")?;
            let dg = if train {
                Some(b.alloc(tasks * n * m, "d gates")?)
            } else {
                None
            };
            (Some(g), dg)
        } else {
            (None, None)
        };
        for (j, t) in spec.tasks.iter().enumerate() {
            let c = t.outputs;
            let ea = EnsembleArgs {
                members: m as u32,
                rows: n as u32,
                width: c as u32,
                ..Default::default()
            };
            match self.combine {
                Combine::Stack => {
                    let layer = self.combiners[j].expect("stack has a combiner per task");
                    let rows = b.alloc(n * m * c, &format!("stacked rows {}", t.name))?;
                    let z = b.alloc(n * c, &format!("combined {}", t.name))?;
                    forward.push(Op::MembersToRows {
                        args: ea,
                        src: outs[j],
                        dst: rows,
                    });
                    let a = dense(&layer, n, 1);
                    forward.push(Op::DenseForward {
                        args: a,
                        x: rows,
                        params,
                        y: z,
                    });
                    let dz = if train {
                        let dz = b.alloc(n * c, &format!("d combined {}", t.name))?;
                        let drows = b.alloc(n * m * c, &format!("d stacked rows {}", t.name))?;
                        let grads = grads.expect("training graph");
                        combine_backward.push(Op::DenseBackwardWeight {
                            args: a,
                            dy: dz,
                            y: z,
                            x: rows,
                            grads,
                        });
                        combine_backward.push(Op::DenseBackwardInput {
                            args: a,
                            dy: dz,
                            y: z,
                            params,
                            dx: drows,
                        });
                        combine_backward.push(Op::RowsToMembers {
                            args: ea,
                            src: drows,
                            dst: douts[j].expect("training graph"),
                        });
                        Some(dz)
                    } else {
                        None
                    };
                    logits.push(z);
                    logits_grad.push(dz);
                    form.push(OutputForm::Logits);
                    stacked.push(1);
                }
                Combine::Mean => {
                    let out = b.alloc(n * c, &format!("combined {}", t.name))?;
                    forward.push(Op::EnsembleMeanForward {
                        args: ea,
                        src: outs[j],
                        dst: out,
                    });
                    let dz = if train {
                        let dz = b.alloc(n * c, &format!("d combined {}", t.name))?;
                        combine_backward.push(Op::EnsembleMeanBackward {
                            args: ea,
                            src: dz,
                            dst: douts[j].expect("training graph"),
                        });
                        Some(dz)
                    } else {
                        None
                    };
                    logits.push(out);
                    logits_grad.push(dz);
                    form.push(if t.kind == TaskKind::Regression {
                        OutputForm::Logits
                    } else {
                        OutputForm::Probabilities
                    });
                    stacked.push(1);
                }
                Combine::Concat => {
                    logits.push(outs[j]);
                    logits_grad.push(douts[j]);
                    form.push(OutputForm::Logits);
                    stacked.push(m);
                }
                Combine::Gate => {
                    // g = softmax(x·W_gᵀ + b_g) [N, M];  out[n, c] = Σ_m g[n, m]·o_m[n, c]
                    let layer = self.combiners[j].expect("gate has a combiner per task");
                    let glog = b.alloc(n * m, &format!("gate logits {}", t.name))?;
                    let g = gates.expect("gate buffers");
                    let out = b.alloc(n * c, &format!("combined {}", t.name))?;
                    let a = dense(&layer, n, 1);
                    // This task's rows of the gates: g[j, n, m] at g_off.
                    let ga = GateArgs {
                        rows: n as u32,
                        experts: m as u32,
                        width: c as u32,
                        g_stride: m as u32,
                        g_off: (j * n * m) as u32,
                        ..Default::default()
                    };
                    forward.push(Op::DenseForward {
                        args: a,
                        x,
                        params,
                        y: glog,
                    });
                    // Reads the logits at 0, writes the task's gate rows.
                    forward.push(Op::GateSoftmax {
                        args: GateArgs {
                            g_off: 0,
                            out_off: ga.g_off,
                            ..ga
                        },
                        x: glog,
                        y: g,
                    });
                    forward.push(Op::GatedSumForward {
                        args: ga,
                        g,
                        ex: outs[j],
                        out,
                    });
                    let dz = if train {
                        let grads = grads.expect("training graph");
                        let dz = b.alloc(n * c, &format!("d combined {}", t.name))?;
                        let dg = dgates.expect("training graph");
                        let dglog = b.alloc(n * m, &format!("d gate logits {}", t.name))?;
                        let dex = douts[j].expect("training graph");
                        combine_backward.push(Op::GatedSumBackwardExperts {
                            args: ga,
                            g,
                            dout: dz,
                            dex,
                        });
                        combine_backward.push(Op::GatedSumBackwardGate {
                            args: ga,
                            dout: dz,
                            ex: outs[j],
                            dg,
                        });
                        combine_backward.push(Op::GateSoftmaxBackward {
                            args: ga,
                            dy: dg,
                            y: g,
                            dx: dglog,
                        });
                        combine_backward.push(Op::DenseBackwardWeight {
                            args: a,
                            dy: dglog,
                            y: glog,
                            x,
                            grads,
                        });
                        Some(dz)
                    } else {
                        None
                    };
                    logits.push(out);
                    logits_grad.push(dz);
                    form.push(if t.kind == TaskKind::Regression {
                        OutputForm::Logits
                    } else {
                        OutputForm::Probabilities
                    });
                    stacked.push(1);
                }
            }
        }
        // Backward: combiners, then every trainable group's heads and trunk.
        if train {
            let grads = grads.expect("training graph");
            backward.extend(combine_backward);
            backward.extend(softmax_backward);
            for (g, (ys, last, last_stride)) in self.groups.iter().zip(&group_bufs) {
                if !g.trainable {
                    continue;
                }
                let gm = g.members.len();
                let last_grad = ys.last().and_then(|(_, dy)| *dy);
                for (j, (gl, t)) in g.heads.iter().zip(&spec.tasks).enumerate() {
                    let mut a = dense(&gl.layer, n, gm);
                    a.x_bstride = *last_stride as u32;
                    a.y_off = (g.members.start * n * t.outputs) as u32;
                    a.dy_off = a.y_off;
                    a.y_bstride = (n * t.outputs) as u32;
                    let dy = head_grad(j).expect("training graph");
                    backward.push(Op::DenseBackwardWeight {
                        args: a,
                        dy,
                        y: head_out(j),
                        x: *last,
                        grads,
                    });
                    if let Some(dx) = last_grad {
                        a.accumulate = (j > 0) as u32;
                        backward.push(Op::DenseBackwardInput {
                            args: a,
                            dy,
                            y: head_out(j),
                            params,
                            dx,
                        });
                    }
                }
                for l in (0..g.trunk.len()).rev() {
                    let gl = &g.trunk[l];
                    let (y, dy) = ys[l];
                    let dy = dy.expect("trainable group has gradients");
                    let mut a = dense(&gl.layer, n, gm);
                    a.y_bstride = (n * gl.layer.slot.outputs) as u32;
                    let (input, in_stride) = if l > 0 {
                        (ys[l - 1].0, n * g.trunk[l - 1].layer.slot.outputs)
                    } else {
                        (x, 0)
                    };
                    a.x_bstride = in_stride as u32;
                    backward.push(Op::DenseBackwardWeight {
                        args: a,
                        dy,
                        y,
                        x: input,
                        grads,
                    });
                    if l > 0 {
                        let dx = ys[l - 1].1.expect("trainable group has gradients");
                        backward.push(Op::DenseBackwardInput {
                            args: a,
                            dy,
                            y,
                            params,
                            dx,
                        });
                    }
                }
            }
        }
        let members = spec
            .tasks
            .iter()
            .enumerate()
            .map(|(j, _)| {
                Some(MemberOutputs {
                    buf: outs[j],
                    members: m,
                    logits: self.combine == Combine::Concat,
                })
            })
            .collect();
        Ok(Graph {
            batch: n,
            x,
            logits,
            logits_grad,
            forward,
            backward,
            form,
            stacked,
            members,
            gates: gates.map(|g| (g, m)),
            rep_split: None,
        })
    }
}
