//! Rows read a block at a time. The trainer and the evaluators read data
//! through [`DataSource`], so the same code trains on an in-memory
//! [`Dataset`] and on files larger than memory (the file readers are in
//! `io::source`): a resident run reads every block once and uploads it; a
//! streamed run reads its shards again every epoch.

use super::Dataset;
use crate::error::{Error, Result};

/// Rows that can be read in blocks, in any order of blocks.
pub trait DataSource: Send {
    /// Rows N.
    fn rows(&self) -> usize;
    /// Inputs per row I.
    fn inputs(&self) -> usize;
    /// Label values per row, one entry per task (0 for a source without labels).
    fn label_widths(&self) -> Vec<usize>;
    /// One name per input column.
    fn feature_names(&self) -> Vec<String>;
    /// What the rows are, for messages ("train.npy, rows 0..2000000").
    fn describe(&self) -> String;
    /// Rows `[start, start + len)` as a [`Dataset`]; `start + len ≤ rows()`.
    /// Errors name the file and the row (counted in the source's own rows).
    fn read(&mut self, start: usize, len: usize) -> Result<Dataset>;

    /// Bytes one resident copy of every row takes (features and labels, f32).
    fn resident_bytes(&self) -> u64 {
        let per_row = self.inputs() + self.label_widths().iter().sum::<usize>();
        self.rows() as u64 * per_row as u64 * 4
    }
}

/// An in-memory dataset is its own source (each read copies the block).
impl DataSource for Dataset {
    fn rows(&self) -> usize {
        self.rows
    }
    fn inputs(&self) -> usize {
        self.inputs
    }
    fn label_widths(&self) -> Vec<usize> {
        (0..self.targets.len())
            .map(|t| self.label_width(t))
            .collect()
    }
    fn feature_names(&self) -> Vec<String> {
        self.feature_names.clone()
    }
    fn describe(&self) -> String {
        format!("{} rows in memory", self.rows)
    }
    fn read(&mut self, start: usize, len: usize) -> Result<Dataset> {
        check_range(self, start, len)?;
        Ok(self.slice(start, len))
    }
}

/// Errors when `[start, start + len)` is not within `source`'s rows.
pub fn check_range(source: &dyn DataSource, start: usize, len: usize) -> Result<()> {
    match start.checked_add(len) {
        Some(end) if end <= source.rows() => Ok(()),
        _ => Err(Error::Invalid(format!(
            "{}: rows {start}..{} asked for, there are {}",
            source.describe(),
            start.saturating_add(len),
            source.rows()
        ))),
    }
}

/// Some rows of another source: `rows` are ascending indices into `inner`
/// (a training or validation split). A block of them is read as the one
/// block of `inner` that spans it, then picked.
pub struct Subset {
    inner: Box<dyn DataSource>,
    rows: Vec<u32>,
}

impl Subset {
    /// `rows` must be ascending and within `inner`.
    pub fn new(inner: Box<dyn DataSource>, rows: Vec<u32>) -> Result<Subset> {
        let sorted = rows.windows(2).all(|w| w[0] < w[1]);
        let inside = rows.last().is_none_or(|&r| (r as usize) < inner.rows());
        if !sorted || !inside {
            return Err(Error::Invalid(format!(
                "{}: a subset's rows must be ascending and within the source",
                inner.describe()
            )));
        }
        Ok(Subset { inner, rows })
    }
}

impl DataSource for Subset {
    fn rows(&self) -> usize {
        self.rows.len()
    }
    fn inputs(&self) -> usize {
        self.inner.inputs()
    }
    fn label_widths(&self) -> Vec<usize> {
        self.inner.label_widths()
    }
    fn feature_names(&self) -> Vec<String> {
        self.inner.feature_names()
    }
    fn describe(&self) -> String {
        format!(
            "{} ({} of its rows)",
            self.inner.describe(),
            self.rows.len()
        )
    }
    fn read(&mut self, start: usize, len: usize) -> Result<Dataset> {
        check_range(self, start, len)?;
        if len == 0 {
            return self.inner.read(0, 0);
        }
        let picked = &self.rows[start..start + len];
        let first = picked[0] as usize;
        let span = picked[len - 1] as usize + 1 - first;
        let block = self.inner.read(first, span)?;
        if span == len {
            return Ok(block);
        }
        let local: Vec<usize> = picked.iter().map(|&r| r as usize - first).collect();
        Ok(block.select(&local))
    }
}

/// Reads every row of `source` into memory.
pub fn read_all(source: &mut dyn DataSource) -> Result<Dataset> {
    source.read(0, source.rows())
}
