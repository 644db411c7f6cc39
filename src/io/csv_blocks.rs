//! A CSV file read a block of rows at a time: one pass records where every block of `B` rows
//! starts (the csv crate's byte and line position) and checks every row as [`Table::read`]
//! would; a read seeks to the block holding its first row and parses forward from there.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::table::{csv_error, csv_reader, no_rows, read_header, RowNumbering, Table};
use crate::io::table_blocks::{check_block, column_indices, TableBlocks};

/// Where each block of a CSV file starts, from one pass over it.
#[derive(Debug)]
struct CsvIndex {
    header: Vec<String>,
    rows: usize,
    block_rows: usize,
    /// The position of data row `k · block_rows`, for every k with rows there.
    starts: Vec<csv::Position>,
}

/// A CSV file opened for block reads.
pub struct CsvBlocks {
    path: PathBuf,
    index: Arc<CsvIndex>,
    reader: csv::Reader<File>,
    /// The data row the reader is at, after a read (none before the first).
    next: Option<usize>,
}

impl CsvBlocks {
    /// Indexes the CSV at `path` in blocks of `block_rows` rows (at least 1). The errors are
    /// those of [`Table::read`]: a missing file, no header or no rows, a malformed row.
    pub fn open(path: &Path, block_rows: usize) -> Result<CsvBlocks> {
        let block_rows = block_rows.max(1);
        let mut reader = csv_reader(path)?;
        let header = read_header(path, &mut reader)?;
        let mut starts = Vec::new();
        let mut record = csv::StringRecord::new();
        let mut rows = 0usize;
        loop {
            let at = reader.position().clone();
            let more = reader
                .read_record(&mut record)
                .map_err(|e| csv_error(path, &e))?;
            if !more {
                break;
            }
            if rows.is_multiple_of(block_rows) {
                starts.push(at);
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(no_rows(path));
        }
        let index = CsvIndex {
            header,
            rows,
            block_rows,
            starts,
        };
        Ok(CsvBlocks {
            path: path.to_path_buf(),
            index: Arc::new(index),
            reader: csv_reader(path)?,
            next: None,
        })
    }

    /// Puts the reader at data row `start` or before it in its block; returns that row.
    fn go_to(&mut self, start: usize) -> Result<usize> {
        let block = start / self.index.block_rows;
        let first = block * self.index.block_rows;
        if let Some(next) = self.next.filter(|&n| first <= n && n <= start) {
            return Ok(next);
        }
        self.next = None;
        self.reader
            .seek(self.index.starts[block].clone())
            .map_err(|e| csv_error(&self.path, &e))?;
        Ok(first)
    }
}

impl TableBlocks for CsvBlocks {
    fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self) -> &[String] {
        &self.index.header
    }

    fn rows(&self) -> usize {
        self.index.rows
    }

    fn read(&mut self, start: usize, len: usize, columns: &[String]) -> Result<Table> {
        let path = self.path.as_path();
        check_block(path, self.index.rows, start, len)?;
        let picks = column_indices(path, &self.index.header, columns)?;
        let mut cells: Vec<Vec<String>> = vec![Vec::with_capacity(len); picks.len()];
        if len > 0 {
            let from = self.go_to(start)?;
            let path = self.path.as_path();
            let err = |e: csv::Error| csv_error(path, &e);
            let mut record = csv::StringRecord::new();
            for row in from..start + len {
                self.next = None;
                if !self.reader.read_record(&mut record).map_err(err)? {
                    return Err(Error::data(
                        path,
                        format!(
                            "the file changed while being read: it ends before data row {row} \
                             (its index counted {} rows)",
                            self.index.rows
                        ),
                    ));
                }
                self.next = Some(row + 1);
                if row < start {
                    continue;
                }
                for (out, &c) in cells.iter_mut().zip(&picks) {
                    out.push(record.get(c).unwrap_or("").to_string());
                }
            }
        }
        Ok(Table {
            path: self.path.clone(),
            header: columns.to_vec(),
            columns: cells,
            rows: len,
            numbering: RowNumbering::Csv { first: start },
        })
    }

    fn try_clone(&self) -> Result<Box<dyn TableBlocks>> {
        Ok(Box::new(CsvBlocks {
            path: self.path.clone(),
            index: Arc::clone(&self.index),
            reader: csv_reader(&self.path)?,
            next: None,
        }))
    }
}
