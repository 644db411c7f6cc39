//! Step piece 3, the losses: each task's masked mean loss and its gradient
//! dz, the reduce to the objective Σ λ_j L_j (the weighting's hooks go around
//! it), and dz scaled by λ_j / count_j before the backward pass.

use super::gather::StepCursor;
use super::StepShape;
use crate::backend::Backend;
use crate::model::network::{Graph, OutputForm};
use crate::model::{ModelSpec, TaskKind};
use crate::ops::{BufId, LossArgs, LossKind, Op, ReduceArgs, ScaleArgs};
use crate::Result;

/// Buffers of the loss stage.
#[derive(Debug, Clone, Copy)]
pub struct LossBuffers {
    /// Per task and loss row: (loss, 1 if labelled) [T, loss_rows, 2].
    pub stats: BufId,
    /// λ_j of the step [T].
    pub lambda: BufId,
    /// The reduce's output [2T + 1]: L_j…, λ_j/count_j…, Σ λ_j L_j.
    pub out: BufId,
    /// Per step of the epoch: the objective and each L_j [steps, T + 1].
    pub log: BufId,
    /// Rows each loss sees: the batch, or M·batch for members trained one by one.
    pub loss_rows: usize,
}

impl LossBuffers {
    pub fn alloc(b: &mut dyn Backend, shape: &StepShape, graph: &Graph) -> Result<LossBuffers> {
        let tasks = shape.tasks;
        let loss_rows = graph.stacked.iter().max().copied().unwrap_or(1) * shape.batch;
        Ok(LossBuffers {
            stats: b.alloc(tasks * loss_rows * 2, "loss stats")?,
            lambda: b.alloc(tasks, "task weights")?,
            out: b.alloc(2 * tasks + 1, "task losses")?,
            log: b.alloc(shape.steps_per_epoch * (tasks + 1), "loss log")?,
            loss_rows,
        })
    }
}

/// The loss op of one task: BCE (binary), softmax cross-entropy (multiclass)
/// or MSE (regression), on logits, or on probabilities where the model
/// outputs those (an ensemble's averaged members).
pub fn loss_op(
    kind: TaskKind,
    probabilities: bool,
    args: LossArgs,
    z: BufId,
    label: BufId,
    dz: BufId,
    stats: BufId,
) -> Op {
    let kind = match kind {
        TaskKind::Binary if probabilities => LossKind::BceProb,
        TaskKind::Binary => LossKind::Bce,
        TaskKind::Multiclass if probabilities => LossKind::CeProb,
        TaskKind::Multiclass => LossKind::SoftmaxCe,
        TaskKind::Regression => LossKind::Mse,
    };
    Op::Loss {
        kind,
        args,
        z,
        label,
        dz,
        stats,
    }
}

/// Each task's loss op over its logits and label batch. `bagged` = M when
/// the labels hold M members' blocks per row.
pub fn loss_ops(
    spec: &ModelSpec,
    shape: &StepShape,
    graph: &Graph,
    label_batch: &[BufId],
    bagged: Option<usize>,
    bufs: &LossBuffers,
) -> Vec<Op> {
    let batch = shape.batch;
    spec.tasks
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let stacked = graph.stacked[j];
            let args = LossArgs {
                rows: (stacked * batch) as u32,
                outputs: t.outputs as u32,
                stats_off: (2 * j * bufs.loss_rows) as u32,
                label_rows: if stacked > 1 { batch as u32 } else { 0 },
                label_members: bagged.unwrap_or(0) as u32,
                ..Default::default()
            };
            let probabilities = graph.form[j] == OutputForm::Probabilities;
            let dz = graph.logits_grad[j].expect("training graph");
            loss_op(
                t.kind,
                probabilities,
                args,
                graph.logits[j],
                label_batch[j],
                dz,
                bufs.stats,
            )
        })
        .collect()
}

/// out = [L_j…, λ_j/count_j…, Σ λ_j L_j], logged at the step's slot.
pub fn reduce_op(shape: &StepShape, cursor: &StepCursor, bufs: &LossBuffers) -> Op {
    Op::MultitaskLossReduce {
        args: ReduceArgs {
            tasks: shape.tasks as u32,
            rows: bufs.loss_rows as u32,
            log_slots: shape.steps_per_epoch as u32,
            _pad: 0,
        },
        stats: bufs.stats,
        lambda: bufs.lambda,
        counters: cursor.counters,
        out: bufs.out,
        log: bufs.log,
    }
}

/// Each task's dz scaled by its λ_j / count_j from the reduce's output.
pub fn grad_scale_ops(
    spec: &ModelSpec,
    shape: &StepShape,
    graph: &Graph,
    bufs: &LossBuffers,
) -> Vec<Op> {
    let tasks = shape.tasks;
    spec.tasks
        .iter()
        .enumerate()
        .map(|(j, t)| Op::LossGradScale {
            args: ScaleArgs {
                len: (graph.stacked[j] * shape.batch * t.outputs) as u32,
                scale_index: (tasks + j) as u32,
                dz_off: 0,
                _pad: 0,
            },
            out: bufs.out,
            dz: graph.logits_grad[j].expect("training graph"),
        })
        .collect()
}
