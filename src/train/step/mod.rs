//! The pieces of the recorded training step. `Trainer::new` allocates their
//! buffers and appends their ops in this order, once per run:
//!
//! 1. [`gather`]: the batch's feature rows and label rows, from the dataset
//!    resident on the device, in the epoch's row order;
//! 2. the model's forward ops (its graph);
//! 3. [`loss`]: each task's masked loss and its gradient dz; the weighting's
//!    hooks (`super::weighting`) around the reduce to Σ λ_j L_j; dz scaled by
//!    λ_j / count_j;
//! 4. the model's backward ops, then GradNorm's update of its weight logits,
//!    then the [`guard`] against a non-finite loss or gradient;
//! 5. [`optimizer`]: Adam or SGD over every trainable range, then the step
//!    counter advances.
//!
//! [`counts`] is host-side only: each step's rows and present labels, the
//! weights of the epoch means (DWA, GradNorm's L(0), the reported loss).

pub mod counts;
pub mod device_rows;
pub mod gather;
pub mod guard;
pub mod loss;
pub mod optimizer;

use crate::{Error, Result};

/// The sizes every piece of the step is built from.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    /// Training rows N.
    pub rows: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Tasks T.
    pub tasks: usize,
    /// Optimizer steps per epoch (the last batch may be partial).
    pub steps_per_epoch: usize,
}

impl StepShape {
    /// The shape of a run over `rows` training rows; no rows is an error. A
    /// batch larger than the rows is clamped to them (with a warning): buffers
    /// are sized by the batch, and one padded batch trains as one exact batch.
    pub fn new(rows: usize, batch: usize, tasks: usize) -> Result<StepShape> {
        if rows == 0 {
            return Err(Error::Invalid("the training data has no rows".into()));
        }
        // Row indices are u32 on the device, u32::MAX marking padding.
        if rows >= u32::MAX as usize {
            return Err(Error::Invalid(format!(
                "{rows} training rows: at most {} are supported",
                u32::MAX - 1
            )));
        }
        let batch = clamp_batch(batch, rows);
        Ok(StepShape {
            rows,
            batch,
            tasks,
            steps_per_epoch: rows.div_ceil(batch),
        })
    }

    /// Length of an epoch's row order: whole batches (padded with `PAD_INDEX`).
    pub fn order_len(&self) -> usize {
        self.steps_per_epoch * self.batch
    }
}

/// `batch` limited to `rows` (≥ 1), warning when it was larger.
fn clamp_batch(batch: usize, rows: usize) -> usize {
    if batch > rows {
        log::warn!(
            "train.batch_size = {batch} is larger than the {rows} training rows: \
             using batch_size = {rows}"
        );
    }
    batch.clamp(1, rows)
}
