//! An ensemble's combiners: per task, the members' outputs o_m [M, N, C]
//! turned into the prediction, each with its backward.
//!
//!   stack:  z = [o_0 … o_{M−1}]·Wᵀ + b          combiner.{task} [C, M·C], logits
//!   mean:   p = (1/M) Σ_m o_m                     soft voting: the members' probabilities averaged
//!   concat: every member output trained against the target (the seed's literal form)
//!   gate:   p = Σ_m g_m·o_m, g = softmax(x·W_gᵀ + b_g)   attention over members, combiner.{task} [M, I]

use crate::backend::Backend;
use crate::model::graph::{Dense, DenseCall, Layer, LayerBufs, OutputForm, Pass};
use crate::model::spec::{Combine, TaskKind, TaskSpec};
use crate::ops::{BufId, EnsembleArgs, GateArgs, Op};
use crate::Result;

/// What a task's combiner gives the loss.
#[derive(Debug, Clone, Copy)]
pub struct Combined {
    pub logits: BufId,
    pub logits_grad: Option<BufId>,
    pub form: OutputForm,
    /// Members stacked in `logits` (concat: M; else 1).
    pub stacked: usize,
}

/// One task's combiner in a pass: its inputs and where its ops go.
pub struct CombinerPass<'a> {
    pub pass: &'a Pass,
    pub task: &'a TaskSpec,
    /// Task index j.
    pub j: usize,
    /// M.
    pub members: usize,
    /// The members' outputs [M, N, C] and their gradient.
    pub outs: LayerBufs,
    pub forward: &'a mut Vec<Op>,
    pub backward: &'a mut Vec<Op>,
}

impl CombinerPass<'_> {
    /// Records the `combine` combiner of this task (`layer`: its dense layer,
    /// for stack and gate; `x`: the batch input; `gates`: every task's gate
    /// weights [T, N, M], for gate).
    pub fn combine(
        &mut self,
        b: &mut dyn Backend,
        combine: Combine,
        layer: Option<Layer>,
        x: BufId,
        gates: Option<LayerBufs>,
    ) -> Result<Combined> {
        let probabilities = if self.task.kind == TaskKind::Regression {
            OutputForm::Logits
        } else {
            OutputForm::Probabilities
        };
        Ok(match combine {
            Combine::Stack => self.stack(b, layer.expect("stack has a combiner per task"))?,
            Combine::Mean => self.mean(b, probabilities)?,
            Combine::Concat => Combined {
                logits: self.outs.y,
                logits_grad: self.outs.dy,
                form: OutputForm::Logits,
                stacked: self.members,
            },
            Combine::Gate => {
                let layer = layer.expect("gate has a combiner per task");
                self.gate(b, layer, x, gates.expect("gate buffers"), probabilities)?
            }
        })
    }

    fn members_args(&self) -> EnsembleArgs {
        EnsembleArgs {
            members: self.members as u32,
            rows: self.pass.n as u32,
            width: self.task.outputs as u32,
            ..Default::default()
        }
    }

    /// z = [o_0 … o_{M−1}]·Wᵀ + b over the members' outputs side by side.
    fn stack(&mut self, b: &mut dyn Backend, layer: Layer) -> Result<Combined> {
        let (m, c, name) = (self.members, self.task.outputs, &self.task.name);
        let rows = self.pass.bufs(b, m * c, &format!("stacked rows {name}"))?;
        let z = self.pass.bufs(b, c, &format!("combined {name}"))?;
        let ea = self.members_args();
        self.forward.push(Op::MembersToRows {
            args: ea,
            src: self.outs.y,
            dst: rows.y,
        });
        let dense = Dense {
            args: DenseCall::new(&layer.slot, self.pass.n, layer.act)
                .grouped(1)
                .args(),
            x: rows.y,
            y: z,
        };
        dense.forward(self.forward, self.pass.params);
        if let Some(grads) = self.pass.backward() {
            dense.backward_weight(self.backward, grads);
            dense.backward_input(self.backward, dense.args, self.pass.params, rows.d());
            self.backward.push(Op::RowsToMembers {
                args: ea,
                src: rows.d(),
                dst: self.outs.d(),
            });
        }
        Ok(Combined {
            logits: z.y,
            logits_grad: z.dy,
            form: OutputForm::Logits,
            stacked: 1,
        })
    }

    /// p = (1/M) Σ_m o_m.
    fn mean(&mut self, b: &mut dyn Backend, form: OutputForm) -> Result<Combined> {
        let name = &self.task.name;
        let out = self
            .pass
            .bufs(b, self.task.outputs, &format!("combined {name}"))?;
        let ea = self.members_args();
        self.forward.push(Op::EnsembleMeanForward {
            args: ea,
            src: self.outs.y,
            dst: out.y,
        });
        if self.pass.backward().is_some() {
            self.backward.push(Op::EnsembleMeanBackward {
                args: ea,
                src: out.d(),
                dst: self.outs.d(),
            });
        }
        Ok(Combined {
            logits: out.y,
            logits_grad: out.dy,
            form,
            stacked: 1,
        })
    }

    /// g = softmax(x·W_gᵀ + b_g) [N, M] into this task's rows of `gates`;
    /// out[n, c] = Σ_m g[n, m]·o_m[n, c].
    fn gate(
        &mut self,
        b: &mut dyn Backend,
        layer: Layer,
        x: BufId,
        gates: LayerBufs,
        form: OutputForm,
    ) -> Result<Combined> {
        let (m, n, name) = (self.members, self.pass.n, &self.task.name);
        let glog = self.pass.bufs(b, m, &format!("gate logits {name}"))?;
        let out = self
            .pass
            .bufs(b, self.task.outputs, &format!("combined {name}"))?;
        let logits = Dense {
            args: DenseCall::new(&layer.slot, n, layer.act).grouped(1).args(),
            x,
            y: glog,
        };
        // This task's rows of the gates: g[j, n, m] at g_off.
        let ga = GateArgs {
            rows: n as u32,
            experts: m as u32,
            width: self.task.outputs as u32,
            g_stride: m as u32,
            g_off: (self.j * n * m) as u32,
            ..Default::default()
        };
        logits.forward(self.forward, self.pass.params);
        // Reads the logits at 0, writes the task's gate rows.
        self.forward.push(Op::GateSoftmax {
            args: GateArgs {
                g_off: 0,
                out_off: ga.g_off,
                ..ga
            },
            x: glog.y,
            y: gates.y,
        });
        let sum = crate::model::blocks::gate::GatedSum {
            args: ga,
            g: gates,
            ex: self.outs,
            out,
        };
        sum.forward(self.forward);
        if let Some(grads) = self.pass.backward() {
            sum.backward(self.backward, ga, self.outs.d());
            self.backward.push(Op::GateSoftmaxBackward {
                args: ga,
                dy: gates.d(),
                y: gates.y,
                dx: glog.d(),
            });
            logits.backward_weight(self.backward, grads);
        }
        Ok(Combined {
            logits: out.y,
            logits_grad: out.dy,
            form,
            stacked: 1,
        })
    }
}
