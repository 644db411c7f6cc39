//! Resident or streamed: what `[data]`'s plan decides for a source on a
//! backend, and why (the CLI prints it).

use super::super::step::device_rows::max_chunk_rows;
use super::super::step::gather::device_label_widths;
use crate::backend::Backend;
use crate::data::DataSource;
use crate::model::ModelSpec;
use crate::train::config::{DataPlan, StreamMode};
use crate::Result;

/// How a run holds its training rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Streamed in shards of this many rows; None: resident.
    pub shard_rows: Option<usize>,
    /// Rows per device chunk (within one buffer binding).
    pub chunk_rows: usize,
    /// Says which and why, e.g. "resident in 7 chunks (800.0 MB; one binding
    /// holds 128.0 MiB)".
    pub why: String,
}

/// Decides for `source` (training rows of `spec`) on `b` in batches of `batch`.
pub fn decide(
    plan: &DataPlan,
    b: &dyn Backend,
    spec: &ModelSpec,
    source: &dyn DataSource,
    batch: usize,
) -> Result<Decision> {
    let widths = device_label_widths(spec);
    let per_row = 4 * (source.inputs() + widths.iter().sum::<usize>()) as u64;
    let bytes = per_row * source.rows() as u64;
    let budget = plan.budget();
    let said = match plan.memory_budget {
        Some(_) => "memory_budget",
        None => "memory budget (half the available memory)",
    };
    let chunk_rows = match plan.chunk_rows {
        Some(c) => c,
        None => max_chunk_rows(b.max_buffer_len(), source.inputs(), &widths)?,
    };
    let stream = match plan.stream {
        StreamMode::Always => true,
        StreamMode::Never => false,
        StreamMode::Auto => bytes > budget,
    };
    let size = |v: u64| bytesize::ByteSize(v).display().iec().to_string();
    if !stream {
        let chunks = source.rows().div_ceil(chunk_rows).max(1);
        let binding = (b.max_buffer_len() as u64).saturating_mul(4);
        let why = match chunks {
            1 => format!("resident ({})", size(bytes)),
            _ => format!(
                "resident in {chunks} chunks ({}; one buffer binding holds {})",
                size(bytes),
                size(binding)
            ),
        };
        return Ok(Decision {
            shard_rows: None,
            chunk_rows,
            why,
        });
    }
    let batch = batch.clamp(1, source.rows().max(1));
    let shard_rows = match plan.shard_rows {
        Some(s) => s,
        None => (budget / 4 / per_row.max(1)) as usize,
    };
    let shard_rows = (shard_rows / batch).max(1) * batch;
    let reason = match plan.stream {
        StreamMode::Always => "data.stream = true".to_string(),
        _ => format!("{} > {said} {}", size(bytes), size(budget)),
    };
    Ok(Decision {
        shard_rows: Some(shard_rows),
        chunk_rows,
        why: format!("streamed in shards of {shard_rows} rows ({reason})"),
    })
}
