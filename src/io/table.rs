//! Tables of string cells: a CSV file read whole, or rows of a CSV or Parquet table read as a
//! block (`io::table_blocks`). Preprocessing reads every format through this one type.
//!
//! Cells are trimmed. `NA`, an empty cell and `NaN` are missing values. CSV rows are numbered
//! from 0 after the header ("data row r", which is line r + 2 of the file); Parquet rows from 0
//! in their file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A table held column-major: `columns[c][r]` is the cell of row r, column c.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file (or Parquet folder or pattern) it was read from (named in errors).
    pub path: PathBuf,
    /// Column names, in file order (or in the order a block read asked for them).
    pub header: Vec<String>,
    /// `[header.len()][rows]` trimmed cells.
    pub columns: Vec<Vec<String>>,
    /// Number of rows (≥ 1 for a whole file; a block may hold none).
    pub rows: usize,
    /// Where row 0 is in the file(s), and how messages name a row.
    pub numbering: RowNumbering,
}

/// How a table's rows are named in messages: row r of the table is row `first + r` of what was
/// read, which for CSV is the file (data row, and line) and for Parquet the files in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RowNumbering {
    /// Data row `first + r` of the CSV file, on line `first + r + 2`.
    Csv { first: usize },
    /// Row `first + r` of the Parquet files read in order; `parts` holds each file and the row
    /// it starts at (ascending, the first at 0). Messages name the file and the row in it.
    Parquet {
        first: usize,
        parts: Arc<[(PathBuf, usize)]>,
    },
}

/// One row of a table as messages name it: the file that holds it and its words for the row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRef {
    /// The file holding the row (a Parquet part file, not the folder).
    pub path: PathBuf,
    /// "data row 4 (0-based, line 6 of the file)" or "row 4 (0-based)".
    pub words: String,
}

impl RowRef {
    /// A data error about this row's cell in column `column`.
    pub fn error(&self, column: &str, message: impl std::fmt::Display) -> Error {
        Error::data(
            &self.path,
            format!("{}, column `{column}`: {message}", self.words),
        )
    }
}

impl Table {
    /// Reads the CSV at `path`. A missing file is [`Error::Io`]; a file with no header or no data
    /// rows, or a row with the wrong number of cells, is [`Error::Data`].
    pub fn read(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let mut reader = csv_reader(path)?;
        let header = read_header(path, &mut reader)?;
        let mut columns = vec![Vec::new(); header.len()];
        let mut rows = 0;
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, &e))?;
            for (col, cell) in columns.iter_mut().zip(record.iter()) {
                col.push(cell.to_string());
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(no_rows(path));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            columns,
            rows,
            numbering: RowNumbering::Csv { first: 0 },
        })
    }

    /// Index of the column called `name`; the error lists the columns there are.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        column_index(&self.path, &self.header, name)
    }

    /// The cells of column `name`, one per data row.
    pub fn column(&self, name: &str) -> Result<&[String]> {
        Ok(&self.columns[self.column_index(name)?])
    }

    /// A data error about `row` (0-based row of this table) of column `column`.
    pub fn cell_error(&self, row: usize, column: &str, message: impl std::fmt::Display) -> Error {
        self.row_ref(row).error(column, message)
    }

    /// How messages name `row` (0-based row of this table): its file and its row there.
    pub fn row_ref(&self, row: usize) -> RowRef {
        match &self.numbering {
            RowNumbering::Csv { first } => RowRef {
                path: self.path.clone(),
                words: csv_row_words(first + row),
            },
            RowNumbering::Parquet { first, parts } => {
                let row = first + row;
                let k = parts.partition_point(|(_, start)| *start <= row).max(1) - 1;
                let (path, start) = match parts.get(k) {
                    Some((p, s)) => (p.clone(), *s),
                    None => (self.path.clone(), 0),
                };
                RowRef {
                    path,
                    words: format!("row {} (0-based)", row - start),
                }
            }
        }
    }
}

/// Index of the column called `name` in `header`; the error names `path` and lists the columns.
pub fn column_index(path: &Path, header: &[String], name: &str) -> Result<usize> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        Error::data(
            path,
            format!("no column `{name}`; the columns are: {}", header.join(", ")),
        )
    })
}

/// "no rows": a file with a header (or a schema) but no data rows.
pub fn no_rows(path: &Path) -> Error {
    Error::data(path, "no rows: the file has a header but no data rows")
}

/// A CSV reader of `path` as tandem reads every CSV file: cells trimmed, a header row.
pub(crate) fn csv_reader(path: &Path) -> Result<csv::Reader<File>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file))
}

/// The header record, with a UTF-8 byte-order mark removed; an empty file is "no rows".
pub(crate) fn read_header(path: &Path, reader: &mut csv::Reader<File>) -> Result<Vec<String>> {
    let record = reader.headers().map_err(|e| csv_error(path, &e))?;
    let header: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| match i {
            0 => h.trim_start_matches('\u{feff}').to_string(),
            _ => h.to_string(),
        })
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(Error::data(path, "no rows: the file is empty (no header)"));
    }
    Ok(header)
}

/// A CSV syntax error (e.g. a row with the wrong number of cells), with its line.
pub(crate) fn csv_error(path: &Path, e: &csv::Error) -> Error {
    if let csv::ErrorKind::Io(io) = e.kind() {
        return Error::io(path, std::io::Error::new(io.kind(), io.to_string()));
    }
    let line = e
        .position()
        .map(|p| format!(" at line {}", p.line()))
        .unwrap_or_default();
    Error::data(path, format!("malformed CSV{line}: {e}"))
}

/// "data row r (0-based, line r + 2 of the file)".
fn csv_row_words(row: usize) -> String {
    format!("data row {row} (0-based, line {} of the file)", row + 2)
}

/// Whether `cell` is a missing value: empty, `NA`, or a number that parses as NaN (`NaN`, `nan`).
pub fn is_missing(cell: &str) -> bool {
    cell.is_empty() || cell == "NA" || cell.parse::<f64>().is_ok_and(f64::is_nan)
}

/// `cell` as a number, if it is one (missing cells are not).
pub fn parse_number(cell: &str) -> Option<f64> {
    if is_missing(cell) {
        return None;
    }
    cell.parse::<f64>().ok()
}

/// Whether every non-missing cell of `cells` at `rows` is a number.
pub fn is_numeric(cells: &[String], rows: &[usize]) -> bool {
    rows.iter()
        .map(|&r| cells[r].as_str())
        .filter(|c| !is_missing(c))
        .all(|c| c.parse::<f64>().is_ok())
}
