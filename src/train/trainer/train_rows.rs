//! The rows a trainer trains on ([`TrainRows`]: resident or streamed), the
//! checks that they fit the model, and the feed that puts them on the device.

use crate::backend::Backend;
use crate::data::{DataSource, Dataset};
use crate::model::Model;
use crate::train::feed::{Feed, FeedShape};
use crate::train::step::device_rows::max_chunk_rows;
use crate::train::step::gather;
use crate::train::step::StepShape;
use crate::{Error, Result};

/// The rows a trainer trains on.
pub enum TrainRows<'a> {
    /// Uploaded once, read a block at a time, in chunks that each fit one
    /// buffer binding of the device (`chunk_rows` rows, or as many as fit).
    Resident {
        source: &'a mut dyn DataSource,
        chunk_rows: Option<usize>,
    },
    /// Read again every epoch, `shard_rows` at a time (rounded down to whole
    /// batches); see `train::feed` for the shuffle.
    Streamed {
        source: Box<dyn DataSource>,
        shard_rows: usize,
        chunk_rows: Option<usize>,
    },
}

impl TrainRows<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            TrainRows::Resident { source, .. } => source.rows(),
            TrainRows::Streamed { source, .. } => source.rows(),
        }
    }

    /// The source of the rows.
    pub fn source(&mut self) -> &mut dyn DataSource {
        match self {
            TrainRows::Resident { source, .. } => *source,
            TrainRows::Streamed { source, .. } => source.as_mut(),
        }
    }
}

/// Checks that `source`'s rows fit `model` before anything is uploaded.
pub fn check_source(model: &Model, source: &dyn DataSource, what: &str) -> Result<()> {
    if source.inputs() != model.spec.inputs {
        return Err(Error::Invalid(format!(
            "{what} data ({}) has {} features per row, the model takes {}",
            source.describe(),
            source.inputs(),
            model.spec.inputs
        )));
    }
    let widths = source.label_widths();
    if widths.len() != model.spec.tasks.len() {
        return Err(Error::Invalid(format!(
            "{what} data has labels for {} tasks, the model has {}",
            widths.len(),
            model.spec.tasks.len()
        )));
    }
    for (t, &w) in model.spec.tasks.iter().zip(&widths) {
        if w != t.label_width() {
            return Err(Error::Invalid(format!(
                "{what} data: task `{}` needs {} label(s) per row, found {w}",
                t.name,
                t.label_width()
            )));
        }
    }
    Ok(())
}

/// Checks that `data` fits `model` before anything is uploaded.
pub fn check_data(model: &Model, data: &Dataset, what: &str) -> Result<()> {
    if data.inputs != model.spec.inputs {
        return Err(Error::Invalid(format!(
            "{what} data has {} features per row, the model takes {}",
            data.inputs, model.spec.inputs
        )));
    }
    if data.targets.len() != model.spec.tasks.len() {
        return Err(Error::Invalid(format!(
            "{what} data has labels for {} tasks, the model has {}",
            data.targets.len(),
            model.spec.tasks.len()
        )));
    }
    for (j, t) in model.spec.tasks.iter().enumerate() {
        if data.targets[j].len() != data.rows * t.label_width() {
            return Err(Error::Invalid(format!(
                "{what} data: task `{}` needs {} label(s) per row, found {} values for {} rows",
                t.name,
                t.label_width(),
                data.targets[j].len(),
                data.rows
            )));
        }
    }
    Ok(())
}

/// The feed of `rows` for a step of `shape`: resident chunks uploaded now, or
/// a streamed shard slot. The chunk size is the rows' own or as many rows as
/// one buffer binding holds.
pub(super) fn build_feed(
    b: &mut dyn Backend,
    model: &Model,
    rows: TrainRows,
    shape: &StepShape,
    stacked: &[usize],
    seed: u64,
) -> Result<Feed> {
    let spec = &model.spec;
    let widths = gather::device_label_widths(spec);
    let chunk_rows = match &rows {
        TrainRows::Resident { chunk_rows, .. } | TrainRows::Streamed { chunk_rows, .. } => {
            *chunk_rows
        }
    };
    let chunk_rows = match chunk_rows {
        Some(c) => c,
        None => max_chunk_rows(b.max_buffer_len(), spec.inputs, &widths)?,
    };
    let feed_shape = FeedShape {
        spec,
        stacked,
        batch: shape.batch,
        seed,
        chunk_rows,
    };
    match rows {
        TrainRows::Resident { source, .. } => {
            check_source(model, source, "training")?;
            Feed::resident(b, source, &feed_shape).map_err(|e| match e {
                Error::Gpu(m) | Error::GpuOp { message: m, .. } => Error::Gpu(format!(
                    "{m}; the training rows do not fit the device: stream them \
                     ([data] stream = true, or a smaller memory_budget)"
                )),
                e => e,
            })
        }
        TrainRows::Streamed {
            source, shard_rows, ..
        } => {
            check_source(model, source.as_ref(), "training")?;
            let whole = (shard_rows / shape.batch).max(1) * shape.batch;
            Feed::streamed(b, source, whole, &feed_shape)
        }
    }
}
