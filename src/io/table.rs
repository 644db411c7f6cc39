//! CSV tables: a header and string cells, read whole (tandem's tables are small).
//!
//! Cells are trimmed. `NA`, an empty cell and `NaN` are missing values. Rows are numbered from 0
//! after the header ("data row r", which is line r + 2 of the file).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A CSV file held column-major: `columns[c][r]` is the cell of data row r, column c.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// Column names from the header, in file order.
    pub header: Vec<String>,
    /// `[header.len()][rows]` trimmed cells.
    pub columns: Vec<Vec<String>>,
    /// Number of data rows (≥ 1).
    pub rows: usize,
}

impl Table {
    /// Reads the CSV at `path`. A missing file is [`Error::Io`]; a file with no header or no data
    /// rows, or a row with the wrong number of cells, is [`Error::Data`].
    pub fn read(path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(file);
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
            return Err(Error::data(
                path,
                "no rows: the file has a header but no data rows",
            ));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            columns,
            rows,
        })
    }

    /// Index of the column called `name`; the error lists the columns there are.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            Error::data(
                &self.path,
                format!(
                    "no column `{name}`; the columns are: {}",
                    self.header.join(", ")
                ),
            )
        })
    }

    /// The cells of column `name`, one per data row.
    pub fn column(&self, name: &str) -> Result<&[String]> {
        Ok(&self.columns[self.column_index(name)?])
    }

    /// A data error about `row` (0-based data row) of column `column`.
    pub fn cell_error(&self, row: usize, column: &str, message: impl std::fmt::Display) -> Error {
        Error::data(
            &self.path,
            format!("{}, column `{column}`: {message}", row_ref(row)),
        )
    }
}

/// The header record, with a UTF-8 byte-order mark removed; an empty file is "no rows".
fn read_header(path: &Path, reader: &mut csv::Reader<File>) -> Result<Vec<String>> {
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
fn csv_error(path: &Path, e: &csv::Error) -> Error {
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
pub fn row_ref(row: usize) -> String {
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
