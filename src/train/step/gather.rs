//! Step piece 1, the batch gather: the dataset stays on the device for the
//! whole run, and each step copies its batch's rows (the epoch's row order,
//! at the step counter) into the graph's input and the label batches.
//!
//! Bagging: every ensemble member's labels sit side by side per row,
//! [N, M·L], masked outside its bootstrap sample, so one gather moves them.

use super::{counts, StepShape};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::ModelSpec;
use crate::ops::{BufId, GatherArgs, Op, MISSING_BITS};
use crate::train::bagging;
use crate::Result;

/// The step's position: `counters` [5 + T] = (the step within the epoch,
/// which picks the gather's batch, the loss log's slot and Adam's factors; the
/// global step; then the non-finite guard's record, see `super::guard`), `order` [steps·batch], the epoch's row order, and
/// `adam_factors` [steps, 2], Adam's bias-corrected factors of each step of
/// the epoch (see `super::optimizer::adam_factors`); the host writes the last
/// two at each epoch start.
#[derive(Debug, Clone, Copy)]
pub struct StepCursor {
    pub counters: BufId,
    pub order: BufId,
    pub adam_factors: BufId,
}

impl StepCursor {
    pub fn alloc(b: &mut dyn Backend, shape: &StepShape) -> Result<StepCursor> {
        let counters = b.alloc(super::guard::counters_len(shape.tasks), "counters")?;
        let order = b.alloc(shape.order_len(), "row order")?;
        let adam_factors = b.alloc(2 * shape.steps_per_epoch, "adam factors")?;
        Ok(StepCursor {
            counters,
            order,
            adam_factors,
        })
    }

    /// Where a gather over `src_rows` rows reads its row indices.
    pub fn rows(&self, batch: usize, src_rows: usize, order_len: usize) -> RowSource {
        RowSource {
            batch,
            src_rows,
            order_len,
            order: self.order,
            counters: self.counters,
        }
    }
}

/// The row indices of a gather: batch `counters[0]` of the row order `order`
/// [order_len], indices into a matrix of `src_rows` rows.
#[derive(Debug, Clone, Copy)]
pub struct RowSource {
    pub batch: usize,
    pub src_rows: usize,
    pub order_len: usize,
    pub order: BufId,
    pub counters: BufId,
}

impl RowSource {
    /// dst [batch, width] = the batch's rows of `src` [src_rows, width];
    /// padding rows (`PAD_INDEX`) are filled with `pad_bits`.
    pub fn gather(&self, src: BufId, width: usize, pad_bits: u32, dst: BufId) -> Op {
        Op::BatchGather {
            args: GatherArgs {
                batch: self.batch as u32,
                width: width as u32,
                src_rows: self.src_rows as u32,
                pad_bits,
                idx_len: self.order_len as u32,
                ..Default::default()
            },
            src,
            idx: self.order,
            counters: self.counters,
            dst,
        }
    }
}

/// The training rows on the device.
#[derive(Debug, Clone)]
pub struct ResidentData {
    /// [N, I].
    pub features: BufId,
    /// Per task, [N, M·L] (L = its label width, M = `label_members`).
    pub labels: Vec<BufId>,
    /// Bagging: M, the members whose labels sit side by side; None: one block.
    pub bagged: Option<usize>,
    /// Per task and row, the label elements present (as the loss counts them,
    /// over every member's block): the weights of the epoch means (`counts`).
    pub present: Vec<Vec<u32>>,
}

impl ResidentData {
    /// Uploads `train`; an ensemble that bags gets each member's labels
    /// masked by its bootstrap sample (drawn from `seed`).
    pub fn upload(
        b: &mut dyn Backend,
        spec: &ModelSpec,
        train: &Dataset,
        seed: u64,
    ) -> Result<ResidentData> {
        let features = b.alloc(train.rows * train.inputs, "dataset features")?;
        b.write(features, 0, &train.features)?;
        let masks = spec
            .ensemble()
            .filter(|e| e.bagging)
            .map(|e| bagging::bootstrap_masks(train.rows, e.members.len(), seed));
        let (mut labels, mut present) = (Vec::new(), Vec::new());
        for (j, t) in spec.tasks.iter().enumerate() {
            let values = match &masks {
                Some(masks) => bagging::bag_labels(&train.targets[j], t.label_width(), masks),
                None => train.targets[j].clone(),
            };
            let width = values.len() / train.rows;
            let per_row = values.chunks_exact(width.max(1));
            present.push(
                per_row
                    .map(|r| counts::present(t.kind, t.outputs, r))
                    .collect(),
            );
            let buf = b.alloc(values.len(), &format!("dataset labels {}", t.name))?;
            b.write(buf, 0, &values)?;
            labels.push(buf);
        }
        Ok(ResidentData {
            features,
            labels,
            bagged: masks.map(|m| m.len()),
            present,
        })
    }

    /// Label blocks per row: M with bagging, else 1.
    pub fn label_members(&self) -> usize {
        self.bagged.unwrap_or(1)
    }
}

/// Per task, the step's labels [batch, M·L].
pub fn alloc_label_batch(
    b: &mut dyn Backend,
    spec: &ModelSpec,
    batch: usize,
    data: &ResidentData,
) -> Result<Vec<BufId>> {
    spec.tasks
        .iter()
        .map(|t| {
            b.alloc(
                batch * data.label_members() * t.label_width(),
                &format!("labels {}", t.name),
            )
        })
        .collect()
}

/// The gathers of one step: features into `x` [batch, I], then each task's
/// labels into its label batch (padding rows read as missing labels).
pub fn gather_ops(
    spec: &ModelSpec,
    shape: &StepShape,
    cursor: &StepCursor,
    data: &ResidentData,
    x: BufId,
    label_batch: &[BufId],
) -> Vec<Op> {
    let rows = cursor.rows(shape.batch, shape.rows, shape.order_len());
    let mut ops = vec![rows.gather(data.features, spec.inputs, 0, x)];
    for (j, t) in spec.tasks.iter().enumerate() {
        let width = data.label_members() * t.label_width();
        ops.push(rows.gather(data.labels[j], width, MISSING_BITS, label_batch[j]));
    }
    ops
}
