//! Step piece 5, the optimizer: the parameters, their gradients and the
//! optimizer state share one layout, and one update op per trainable range
//! (frozen ensemble members are skipped) ends the step.

use super::gather::StepCursor;
use crate::backend::Backend;
use crate::model::Model;
use crate::ops::{AdamArgs, BufId, Op, SgdArgs};
use crate::train::config::{AdamStyle, OptimizerConfig, OptimizerKind};
use crate::Result;

/// Parameters, gradients, optimizer state: one layout, four buffers.
#[derive(Debug, Clone, Copy)]
pub struct ParamBuffers {
    pub params: BufId,
    pub grads: BufId,
    /// Adam's first moment, or SGD's velocity.
    pub m: BufId,
    /// Adam's second moment (unused by SGD).
    pub v: BufId,
}

impl ParamBuffers {
    /// Uploads `model`'s parameters; gradients and state start at zero.
    pub fn upload(b: &mut dyn Backend, model: &Model) -> Result<ParamBuffers> {
        let p = model.network.layout.len;
        let params = b.alloc(p, "params")?;
        b.write(params, 0, &model.params)?;
        Ok(ParamBuffers {
            params,
            grads: b.alloc(p, "grads")?,
            m: b.alloc(p, "adam.m")?,
            v: b.alloc(p, "adam.v")?,
        })
    }
}

/// The `style` code of `adam_update`: 0 Keras' form, 1 PyTorch's (the two
/// formulas head shaders/optimizer.wgsl).
fn adam_style_code(style: AdamStyle) -> u32 {
    match style {
        AdamStyle::Keras => 0,
        AdamStyle::Torch => 1,
    }
}

/// One update per trainable range of `model`, then the step counter advances.
pub fn update_ops(
    model: &Model,
    o: &OptimizerConfig,
    bufs: &ParamBuffers,
    cursor: &StepCursor,
) -> Vec<Op> {
    let mut ops: Vec<Op> = model
        .network
        .trainable()
        .into_iter()
        .map(|range| {
            let (p_off, len) = (range.start as u32, range.len() as u32);
            match o.kind {
                OptimizerKind::Adam => Op::AdamUpdate {
                    args: AdamArgs {
                        len,
                        p_off,
                        style: adam_style_code(o.style),
                        _pad: 0,
                        lr: o.lr,
                        beta1: o.beta1,
                        beta2: o.beta2,
                        eps: o.eps,
                    },
                    grads: bufs.grads,
                    counters: cursor.counters,
                    params: bufs.params,
                    m: bufs.m,
                    v: bufs.v,
                },
                OptimizerKind::Sgd => Op::SgdUpdate {
                    args: SgdArgs {
                        len,
                        p_off,
                        lr: o.lr,
                        momentum: o.momentum,
                    },
                    grads: bufs.grads,
                    params: bufs.params,
                    velocity: bufs.m,
                },
            }
        })
        .collect();
    ops.push(Op::StepAdvance {
        counters: cursor.counters,
    });
    ops
}
