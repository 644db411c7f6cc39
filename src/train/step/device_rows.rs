//! The training rows on the device: features [rows, I] and, per task, labels
//! [rows, M·L], held as chunks, each tensor's chunk within one buffer binding.
//! A dataset larger than one binding then trains exactly as one buffer would:
//! the step gathers from every chunk, and each chunk's gather writes the rows
//! of the batch it holds (see `batch_gather` in shaders/gather.wgsl).

use super::gather::RowSource;
use crate::backend::Backend;
use crate::ops::{BufId, Op, MISSING_BITS};
use crate::{Error, Result};

/// Elements written to the device per call: a bounded staging copy on the GPU.
const WRITE_ELEMS: usize = 4 << 20;

/// Rows `[first_row, first_row + rows)` in their own buffers.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub first_row: usize,
    pub rows: usize,
    /// [rows, I].
    pub features: BufId,
    /// Per task, [rows, label_widths[j]].
    pub labels: Vec<BufId>,
}

/// Device buffers for a number of rows, in chunks.
#[derive(Debug, Clone)]
pub struct DeviceRows {
    pub chunks: Vec<Chunk>,
    /// Rows the chunks hold in all.
    pub rows: usize,
    /// Features per row I.
    pub inputs: usize,
    /// Per task, label values per row on the device (M·L with bagging).
    pub label_widths: Vec<usize>,
}

/// The most rows a chunk can hold when no tensor's chunk may exceed
/// `max_len` elements; an error when one row does not fit.
pub fn max_chunk_rows(max_len: usize, inputs: usize, label_widths: &[usize]) -> Result<usize> {
    let widest = label_widths
        .iter()
        .copied()
        .chain([inputs])
        .max()
        .unwrap_or(1);
    match max_len / widest.max(1) {
        0 => Err(Error::Invalid(format!(
            "one row of {widest} values does not fit the device's largest buffer \
             ({max_len} values)"
        ))),
        rows => Ok(rows),
    }
}

impl DeviceRows {
    /// Zeroed buffers for `rows` rows, cut into chunks of `chunk_rows` rows
    /// (the last may be shorter); `what` names them ("dataset", "shard").
    pub fn alloc(
        b: &mut dyn Backend,
        rows: usize,
        inputs: usize,
        label_widths: &[usize],
        chunk_rows: usize,
        what: &str,
    ) -> Result<DeviceRows> {
        let per = chunk_rows.clamp(1, rows.max(1));
        let count = rows.div_ceil(per).max(1);
        let mut chunks = Vec::with_capacity(count);
        for c in 0..count {
            let first_row = c * per;
            let n = per.min(rows - first_row);
            let name = |t: &str| match count {
                1 => format!("{what} {t}"),
                _ => format!("{what} {t} (chunk {c} of {count})"),
            };
            let features = b.alloc(n * inputs, &name("features"))?;
            let labels = label_widths
                .iter()
                .enumerate()
                .map(|(j, w)| b.alloc(n * w, &name(&format!("labels {j}"))))
                .collect::<Result<Vec<_>>>()?;
            chunks.push(Chunk {
                first_row,
                rows: n,
                features,
                labels,
            });
        }
        Ok(DeviceRows {
            chunks,
            rows,
            inputs,
            label_widths: label_widths.to_vec(),
        })
    }

    /// Writes rows starting at row `at`: `features` [n, I] and per task
    /// `labels[j]` [n, label_widths[j]], across as many chunks as they span.
    pub fn write(
        &self,
        b: &mut dyn Backend,
        at: usize,
        features: &[f32],
        labels: &[Vec<f32>],
    ) -> Result<()> {
        let n = features.len() / self.inputs.max(1);
        if at + n > self.rows || labels.len() != self.label_widths.len() {
            return Err(Error::Invalid(format!(
                "{n} rows at row {at} do not fit the {} rows on the device",
                self.rows
            )));
        }
        for c in &self.chunks {
            let (lo, hi) = (at.max(c.first_row), (at + n).min(c.first_row + c.rows));
            if lo >= hi {
                continue;
            }
            let (src, dst) = (lo - at, lo - c.first_row);
            let rows = hi - lo;
            write_rows(
                b,
                c.features,
                dst,
                self.inputs,
                &features[src * self.inputs..],
                rows,
            )?;
            for (j, &w) in self.label_widths.iter().enumerate() {
                write_rows(b, c.labels[j], dst, w, &labels[j][src * w..], rows)?;
            }
        }
        Ok(())
    }

    /// The step's gathers: features into `x` [batch, I], then each task's
    /// labels into its label batch, one gather per chunk and tensor (padding
    /// rows read as 0 features and missing labels).
    pub fn gather_ops(&self, rows: &RowSource, x: BufId, label_batch: &[BufId]) -> Vec<Op> {
        let mut ops = Vec::new();
        for (k, c) in self.chunks.iter().enumerate() {
            ops.push(rows.gather_chunk(c.features, self.inputs, 0, x, c, k > 0));
        }
        for (j, &w) in self.label_widths.iter().enumerate() {
            for (k, c) in self.chunks.iter().enumerate() {
                let dst = label_batch[j];
                ops.push(rows.gather_chunk(c.labels[j], w, MISSING_BITS, dst, c, k > 0));
            }
        }
        ops
    }
}

/// Writes `rows` rows of `width` from `src` at row `dst_row` of `buf`, in
/// pieces of at most `WRITE_ELEMS` values.
fn write_rows(
    b: &mut dyn Backend,
    buf: BufId,
    dst_row: usize,
    width: usize,
    src: &[f32],
    rows: usize,
) -> Result<()> {
    let values = &src[..rows * width];
    let step = (WRITE_ELEMS / width.max(1)).max(1) * width.max(1);
    for (i, piece) in values.chunks(step).enumerate() {
        b.write(buf, dst_row * width + i * step, piece)?;
    }
    Ok(())
}
