//! Step piece 5, the optimizer: the parameters, their gradients and the
//! optimizer state share one layout, and one update op per trainable range
//! (frozen ensemble members are skipped) ends the step.
//!
//! Adam's bias correction is computed here, on the host, in f64 for every
//! step of an epoch ([`adam_factor_table`]) and rounded once to f32: both
//! backends read the same factors, so the correction is exact on each
//! (an f32 `1 − pow(β2, t)` on the device loses up to 1e-4 relative).

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

/// Adam's two factors for global step `t` (1-based), in f64 and rounded once:
/// Keras: (α_t = lr·√(1−β2ᵗ)/(1−β1ᵗ), 1); PyTorch: (lr/(1−β1ᵗ), √(1−β2ᵗ)).
/// lr and β are the configured f32 values, taken exactly.
pub fn adam_factors(o: &OptimizerConfig, t: u64) -> [f32; 2] {
    let (lr, t) = (o.lr as f64, t as f64);
    let bc1 = 1.0 - (o.beta1 as f64).powf(t);
    let bc2 = 1.0 - (o.beta2 as f64).powf(t);
    match o.style {
        AdamStyle::Keras => [(lr * bc2.sqrt() / bc1) as f32, 1.0],
        AdamStyle::Torch => [(lr / bc1) as f32, bc2.sqrt() as f32],
    }
}

/// The factors of `steps` steps from global step `first` (1-based): the
/// `adam_factors` buffer of one epoch, [steps, 2].
pub fn adam_factor_table(o: &OptimizerConfig, first: u64, steps: usize) -> Vec<f32> {
    (0..steps as u64)
        .flat_map(|s| adam_factors(o, first + s))
        .collect()
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
                        beta1: o.beta1,
                        beta2: o.beta2,
                        eps: o.eps,
                        ..Default::default()
                    },
                    grads: bufs.grads,
                    counters: cursor.counters,
                    factors: cursor.adam_factors,
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
                    counters: cursor.counters,
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
