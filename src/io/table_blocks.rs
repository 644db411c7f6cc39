//! Tables read a block of rows at a time, for data larger than memory: a CSV file (seeking to
//! the nearest of the block starts one indexing pass recorded) or Parquet files (reading only
//! the row groups and columns a block needs). Every block is a [`Table`] whose rows are named
//! in errors by their row in the file(s), so a block's row r is row `start + r`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::csv_blocks::CsvBlocks;
use crate::io::parquet::{self, ParquetBlocks};
use crate::io::table::Table;

/// Rows per block of a CSV index, and per block of a streamed pass over a table.
pub const BLOCK_ROWS: usize = 65_536;

/// A table whose rows are read in blocks.
pub trait TableBlocks: Send {
    /// The file, folder or pattern the table was opened from.
    fn path(&self) -> &Path;
    /// Its column names, in file order.
    fn header(&self) -> &[String];
    /// Its rows.
    fn rows(&self) -> usize;
    /// Rows `[start, start + len)` of the columns `columns` (in that order), numbered in
    /// errors from `start`. A column that is not there is an error listing those that are.
    fn read(&mut self, start: usize, len: usize, columns: &[String]) -> Result<Table>;
    /// Another reader of the same table, sharing what opening it learned (the index, the
    /// Parquet metadata), with files of its own.
    fn try_clone(&self) -> Result<Box<dyn TableBlocks>>;
}

/// Whether `path` names Parquet data: a `.parquet` file, a folder, or a pattern with `*` in its
/// final component. Anything else is read as CSV.
pub fn is_parquet(path: &Path) -> bool {
    parquet::is_parquet(path)
}

/// Opens the table at `path` for block reads: Parquet ([`is_parquet`]) or CSV, which is
/// indexed once, recording where each block of `block_rows` rows starts.
pub fn open_blocks(path: &Path, block_rows: usize) -> Result<Box<dyn TableBlocks>> {
    if is_parquet(path) {
        Ok(Box::new(ParquetBlocks::open(path)?))
    } else {
        Ok(Box::new(CsvBlocks::open(path, block_rows)?))
    }
}

/// The whole table at `path`: a CSV file with all its columns, or the Parquet columns
/// `columns` (CSV callers look their columns up in the table, with the same error).
pub fn read_table(path: &Path, columns: &[String]) -> Result<Table> {
    if !is_parquet(path) {
        return Table::read(path);
    }
    let mut blocks = ParquetBlocks::open(path)?;
    let rows = blocks.rows();
    blocks.read(0, rows, columns)
}

/// Errors when `[start, start + len)` is not within `rows` rows of the table at `path`.
pub fn check_block(path: &Path, rows: usize, start: usize, len: usize) -> Result<()> {
    match start.checked_add(len) {
        Some(end) if end <= rows => Ok(()),
        _ => Err(Error::Invalid(format!(
            "{}: rows {start}..{} asked for, the table has {rows}",
            path.display(),
            start.saturating_add(len)
        ))),
    }
}

/// The columns of `header` at which `columns` are, in that order.
pub fn column_indices(path: &Path, header: &[String], columns: &[String]) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|c| crate::io::table::column_index(path, header, c))
        .collect()
}
