//! Gated mixes: a row softmax turning gate logits into weights, and a gated
//! sum Σ_e g[·, e]·ex[e] of expert (or member) outputs, each with its
//! backward beside it.
//!
//! Forward:  g = softmax(z) per row;  out[n] = Σ_e g[n, e]·ex[e, n]
//! Backward: dex[e, n] (+)= g[n, e]·dout[n];  dg[n, e] = ⟨dout[n], ex[e, n]⟩;
//!           dz = g ⊙ (dg − ⟨dg, g⟩) per row

use crate::model::graph::LayerBufs;
use crate::ops::{BufId, GateArgs, Op};

/// Arguments of a row softmax over `experts` values in each of `rows` rows.
pub fn softmax_args(rows: usize, experts: usize) -> GateArgs {
    GateArgs {
        rows: rows as u32,
        experts: experts as u32,
        width: 1,
        g_stride: experts as u32,
        ..Default::default()
    }
}

/// A row softmax: gate logits `z` → gate weights `g`.
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    pub args: GateArgs,
    pub z: LayerBufs,
    pub g: LayerBufs,
}

impl Softmax {
    pub fn forward(&self, ops: &mut Vec<Op>) {
        ops.push(Op::GateSoftmax {
            args: self.args,
            x: self.z.y,
            y: self.g.y,
        });
    }

    pub fn backward(&self, ops: &mut Vec<Op>) {
        ops.push(Op::GateSoftmaxBackward {
            args: self.args,
            dy: self.g.d(),
            y: self.g.y,
            dx: self.z.d(),
        });
    }
}

/// A gated sum: `out` = Σ_e g[·, e]·ex[e] (offsets and accumulation in `args`).
#[derive(Debug, Clone, Copy)]
pub struct GatedSum {
    pub args: GateArgs,
    pub g: LayerBufs,
    pub ex: LayerBufs,
    pub out: LayerBufs,
}

impl GatedSum {
    pub fn forward(&self, ops: &mut Vec<Op>) {
        ops.push(Op::GatedSumForward {
            args: self.args,
            g: self.g.y,
            ex: self.ex.y,
            out: self.out.y,
        });
    }

    /// The experts' gradient into `dex` with `ex_args` (where several sums
    /// read one expert output, all but the first accumulate; GradNorm sends
    /// each task's apart), then the gate's gradient (which overwrites: each
    /// sum owns its gate columns).
    pub fn backward(&self, ops: &mut Vec<Op>, ex_args: GateArgs, dex: BufId) {
        ops.push(Op::GatedSumBackwardExperts {
            args: ex_args,
            g: self.g.y,
            dout: self.out.d(),
            dex,
        });
        ops.push(Op::GatedSumBackwardGate {
            args: GateArgs {
                accumulate: 0,
                ..self.args
            },
            dout: self.out.d(),
            ex: self.ex.y,
            dg: self.g.d(),
        });
    }
}
