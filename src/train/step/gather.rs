//! Step piece 1, the batch gather: each step copies its batch's rows (the
//! epoch's row order, at the step counter) from the rows on the device
//! (`device_rows`: every row, or the shard being streamed) into the graph's
//! input and the label batches.
//!
//! Bagging: every ensemble member's labels sit side by side per row,
//! [N, M·L], masked outside its bootstrap sample, so one gather moves them.

use super::device_rows::Chunk;
use super::{counts, StepShape};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::ModelSpec;
use crate::ops::{BufId, GatherArgs, Op};
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
    /// `order_len`: the row order ring's length.
    pub fn alloc(b: &mut dyn Backend, shape: &StepShape, order_len: usize) -> Result<StepCursor> {
        let counters = b.alloc(super::guard::counters_len(shape.tasks), "counters")?;
        let order = b.alloc(order_len, "row order")?;
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

    /// [`RowSource::gather`] from one chunk of the rows: it writes the
    /// batch's rows that `chunk` holds, and the padding rows unless `skip_pad`.
    pub fn gather_chunk(
        &self,
        src: BufId,
        width: usize,
        pad_bits: u32,
        dst: BufId,
        chunk: &Chunk,
        skip_pad: bool,
    ) -> Op {
        let mut op = self.gather(src, width, pad_bits, dst);
        if let Op::BatchGather { args, .. } = &mut op {
            args.src_rows = chunk.rows as u32;
            args.first_row = chunk.first_row as u32;
            args.skip_pad = u32::from(skip_pad);
        }
        op
    }
}

/// A block of training rows made ready for the device: each task's labels
/// (with bagging, every member's block side by side, masked outside its
/// bootstrap sample) and, per task and row, the label elements present (as
/// the loss counts them): the weights of the epoch means (`counts`).
pub struct DeviceBlock {
    pub labels: Vec<Vec<f32>>,
    pub present: Vec<Vec<u32>>,
}

/// M, the members of a bagging ensemble whose labels sit side by side; None
/// when the model does not bag.
pub fn bagged_members(spec: &ModelSpec) -> Option<usize> {
    spec.ensemble()
        .filter(|e| e.bagging)
        .map(|e| e.members.len())
}

/// Labels per row on the device for each task of `spec`: M·L with bagging
/// over M members, else L.
pub fn device_label_widths(spec: &ModelSpec) -> Vec<usize> {
    let members = bagged_members(spec).unwrap_or(1);
    spec.tasks
        .iter()
        .map(|t| members * t.label_width())
        .collect()
}

/// Bootstrap masks [M][N] of a bagging ensemble over `rows` training rows
/// (drawn from `seed`); None when the model does not bag.
pub fn bag_masks(spec: &ModelSpec, rows: usize, seed: u64) -> Option<Vec<Vec<bool>>> {
    spec.ensemble()
        .filter(|e| e.bagging)
        .map(|e| bagging::bootstrap_masks(rows, e.members.len(), seed))
}

/// `block`'s labels as the device holds them; `first_row` is the block's
/// first row among the training rows (where it reads the bootstrap masks).
pub fn device_block(
    spec: &ModelSpec,
    block: &Dataset,
    masks: Option<&[Vec<bool>]>,
    first_row: usize,
) -> DeviceBlock {
    let (mut labels, mut present) = (Vec::new(), Vec::new());
    for (j, t) in spec.tasks.iter().enumerate() {
        let values = match masks {
            Some(masks) => {
                bagging::bag_labels(&block.targets[j], t.label_width(), masks, first_row)
            }
            None => block.targets[j].clone(),
        };
        let width = values.len().checked_div(block.rows).unwrap_or(1).max(1);
        present.push(
            values
                .chunks_exact(width)
                .map(|r| counts::present(t.kind, t.outputs, r))
                .collect(),
        );
        labels.push(values);
    }
    DeviceBlock { labels, present }
}

/// Per task, the step's labels [batch, M·L].
pub fn alloc_label_batch(
    b: &mut dyn Backend,
    spec: &ModelSpec,
    batch: usize,
    label_widths: &[usize],
) -> Result<Vec<BufId>> {
    spec.tasks
        .iter()
        .zip(label_widths)
        .map(|(t, w)| b.alloc(batch * w, &format!("labels {}", t.name)))
        .collect()
}
