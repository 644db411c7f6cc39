//! A table read in blocks and encoded by a fitted preprocessing, as a [`DataSource`]: the rows
//! of a CSV or Parquet file that a split kept, read a block at a time, so training can read
//! data larger than memory. A block of the source is read as the one block of the table that
//! spans its rows, then encoded row by row as the in-memory path encodes them.

use std::sync::Arc;

use crate::data::source::check_range;
use crate::data::{DataSource, Dataset};
use crate::error::{Error, Result};
use crate::io::preprocess::Preprocess;
use crate::io::table_blocks::TableBlocks;

/// Rows of a table (ascending row numbers in the file or files), encoded by `preprocess`.
pub struct TableSource {
    blocks: Box<dyn TableBlocks>,
    preprocess: Arc<Preprocess>,
    /// The feature and label columns the preprocessing reads, each once.
    columns: Vec<String>,
    rows: Vec<u32>,
}

impl TableSource {
    /// The rows `rows` (ascending, within the table) of `blocks`, encoded by `preprocess`.
    pub fn new(
        blocks: Box<dyn TableBlocks>,
        preprocess: Arc<Preprocess>,
        rows: Vec<u32>,
    ) -> Result<TableSource> {
        let sorted = rows.windows(2).all(|w| w[0] < w[1]);
        let inside = rows.last().is_none_or(|&r| (r as usize) < blocks.rows());
        if !sorted || !inside {
            return Err(Error::Invalid(format!(
                "{}: a table source's rows must be ascending and within the table",
                blocks.path().display()
            )));
        }
        let mut columns: Vec<String> = Vec::new();
        let wanted = preprocess.features.iter().map(|f| f.column());
        for c in wanted.chain(preprocess.targets.iter().map(|t| t.column.as_str())) {
            if !columns.iter().any(|have| have == c) {
                columns.push(c.to_string());
            }
        }
        Ok(TableSource {
            blocks,
            preprocess,
            columns,
            rows,
        })
    }

    /// The table's row numbers of this source's rows.
    pub fn table_rows(&self) -> &[u32] {
        &self.rows
    }
}

impl DataSource for TableSource {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn inputs(&self) -> usize {
        self.preprocess.inputs()
    }

    fn label_widths(&self) -> Vec<usize> {
        vec![1; self.preprocess.targets.len()]
    }

    fn feature_names(&self) -> Vec<String> {
        self.preprocess.feature_names()
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} of its {} rows",
            self.blocks.path().display(),
            self.rows.len(),
            self.blocks.rows()
        )
    }

    fn read(&mut self, start: usize, len: usize) -> Result<Dataset> {
        check_range(self, start, len)?;
        let pre = Arc::clone(&self.preprocess);
        if len == 0 {
            return Ok(Dataset {
                rows: 0,
                inputs: pre.inputs(),
                features: Vec::new(),
                targets: vec![Vec::new(); pre.targets.len()],
                feature_names: pre.feature_names(),
            });
        }
        let picked = &self.rows[start..start + len];
        let first = picked[0] as usize;
        let span = picked[len - 1] as usize + 1 - first;
        let table = self.blocks.read(first, span, &self.columns)?;
        let local: Vec<usize> = picked.iter().map(|&r| r as usize - first).collect();
        Ok(Dataset {
            rows: len,
            inputs: pre.inputs(),
            features: pre.encode_features(&table, &local)?,
            targets: pre.encode_targets(&table, &local)?,
            feature_names: pre.feature_names(),
        })
    }
}
