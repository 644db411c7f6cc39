//! Parquet tables: a `.parquet` file, a folder of them or a pattern (see `files`), read into
//! the same string-cell [`Table`] as CSV so that preprocessing is shared. Only the named
//! columns and the row groups a block overlaps are read, through the parquet crate's column
//! readers.
//!
//! Cells: integers in decimal, floats and doubles as their f64 value's shortest form (which
//! reads back exactly), booleans `1`/`0`, UTF-8 strings as they are, nulls as empty (missing)
//! cells. Other types are errors naming the file, the column and the type. The parquet crate
//! is not trusted to fail cleanly on a corrupt file: its panics are caught and reported as an
//! error naming the file.

mod column;
mod files;
mod schema;

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use ::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};

use crate::error::{Error, Result};
use crate::io::table::{column_index, RowNumbering, Table};
use crate::io::table_blocks::{check_block, TableBlocks};
use column::{group_reader, read_rows, unreadable_codec, CheckedFile, ReadError};
pub use files::{is_parquet, part_files};
use schema::{CellKind, Column};

/// One part file: its metadata and where its rows start among all parts.
struct Part {
    path: PathBuf,
    meta: Arc<ParquetMetaData>,
    columns: Vec<Column>,
    /// Its first row among all parts.
    first: usize,
    /// The first row (in this file) and the rows of each row group.
    groups: Vec<(usize, usize)>,
}

impl Part {
    fn rows(&self) -> usize {
        self.groups.last().map_or(0, |(s, n)| s + n)
    }
}

/// What opening the table learned, shared by every reader of it.
struct Shared {
    path: PathBuf,
    header: Vec<String>,
    rows: usize,
    parts: Vec<Part>,
    numbering: Arc<[(PathBuf, usize)]>,
}

/// Parquet files opened for block reads.
pub struct ParquetBlocks {
    shared: Arc<Shared>,
    /// Each part's open file, opened at its first read.
    files: Vec<Option<Arc<CheckedFile>>>,
}

impl ParquetBlocks {
    /// Opens the Parquet data at `path` (file, folder or pattern): reads every part's metadata
    /// and checks that the parts have the same columns and at least one row among them.
    pub fn open(path: &Path) -> Result<ParquetBlocks> {
        let mut parts = Vec::new();
        let mut first = 0usize;
        for file in part_files(path)? {
            let part = open_part(&file, first)?;
            if let Some(p0) = parts.first() {
                same_columns(p0, &part)?;
            }
            first = first.checked_add(part.rows()).ok_or_else(|| {
                Error::data(
                    &file,
                    "the parts hold more rows than this machine can count",
                )
            })?;
            parts.push(part);
        }
        if first == 0 {
            let what = match parts.len() {
                1 => "the file has columns but no rows".to_string(),
                n => format!("its {n} files have columns but no rows"),
            };
            return Err(Error::data(path, format!("no rows: {what}")));
        }
        let header = parts[0].columns.iter().map(|c| c.name.clone()).collect();
        let numbering = parts.iter().map(|p| (p.path.clone(), p.first)).collect();
        let files = parts.iter().map(|_| None).collect();
        Ok(ParquetBlocks {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                header,
                rows: first,
                parts,
                numbering,
            }),
            files,
        })
    }

    /// Part `k`'s open file.
    fn file(&mut self, k: usize) -> Result<Arc<CheckedFile>> {
        if let Some(f) = &self.files[k] {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(open_checked(&self.shared.parts[k].path)?);
        self.files[k] = Some(Arc::clone(&f));
        Ok(f)
    }

    /// Appends rows `[from, to)` of part `k` (rows of that file) of column `name` to `out`.
    fn read_part(
        &mut self,
        k: usize,
        (from, to): (usize, usize),
        name: &str,
        out: &mut Vec<String>,
    ) -> Result<()> {
        let file = self.file(k)?;
        let part = &self.shared.parts[k];
        let Some(col) = part.columns.iter().find(|c| c.name == name) else {
            return Err(Error::data(
                &part.path,
                format!("no column `{name}` in this file"),
            ));
        };
        let Some(how) = col.read else {
            return Err(col.unsupported(&part.path));
        };
        for (g, &(start, rows)) in part.groups.iter().enumerate() {
            let (lo, hi) = (from.max(start), to.min(start + rows));
            if lo >= hi {
                continue;
            }
            let group = part.meta.row_group(g);
            let rows = (lo - start, hi - lo);
            contain(&part.path, || {
                read_group(&part.path, (&file, group, g, start), (name, how), rows, out)
            })?;
        }
        Ok(())
    }
}

impl TableBlocks for ParquetBlocks {
    fn path(&self) -> &Path {
        &self.shared.path
    }

    fn header(&self) -> &[String] {
        &self.shared.header
    }

    fn rows(&self) -> usize {
        self.shared.rows
    }

    fn read(&mut self, start: usize, len: usize, columns: &[String]) -> Result<Table> {
        let shared = Arc::clone(&self.shared);
        check_block(&shared.path, shared.rows, start, len)?;
        for name in columns {
            column_index(&shared.parts[0].path, &shared.header, name)?;
        }
        let end = start + len;
        let mut cells: Vec<Vec<String>> = vec![Vec::with_capacity(len); columns.len()];
        for (out, name) in cells.iter_mut().zip(columns) {
            for (k, part) in shared.parts.iter().enumerate() {
                let (lo, hi) = (start.max(part.first), end.min(part.first + part.rows()));
                if lo < hi {
                    self.read_part(k, (lo - part.first, hi - part.first), name, out)?;
                }
            }
        }
        Ok(Table {
            path: shared.path.clone(),
            header: columns.to_vec(),
            columns: cells,
            rows: len,
            numbering: RowNumbering::Parquet {
                first: start,
                parts: Arc::clone(&shared.numbering),
            },
        })
    }

    fn try_clone(&self) -> Result<Box<dyn TableBlocks>> {
        Ok(Box::new(ParquetBlocks {
            shared: Arc::clone(&self.shared),
            files: self.files.iter().map(|_| None).collect(),
        }))
    }
}

/// The file at `path`, with its length.
fn open_checked(path: &Path) -> Result<CheckedFile> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok(CheckedFile { file, len })
}

/// Reads the metadata of the part file `path`, whose rows start at `first`.
fn open_part(path: &Path, first: usize) -> Result<Part> {
    let file = open_checked(path)?;
    let meta = contain(path, || {
        ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .map_err(|e| Error::data(path, format!("not a readable Parquet file: {e}")))
    })?;
    let columns = schema::columns(meta.file_metadata().schema_descr());
    let mut groups = Vec::with_capacity(meta.num_row_groups());
    let mut at = 0usize;
    for (g, group) in meta.row_groups().iter().enumerate() {
        let rows = usize::try_from(group.num_rows()).map_err(|_| {
            Error::data(
                path,
                format!("corrupt file: row group {g} has {} rows", group.num_rows()),
            )
        })?;
        groups.push((at, rows));
        at = at
            .checked_add(rows)
            .ok_or_else(|| Error::data(path, "corrupt file: its row groups' rows overflow"))?;
    }
    Ok(Part {
        path: path.to_path_buf(),
        meta: Arc::new(meta),
        columns,
        first,
        groups,
    })
}

/// Part files must hold the same columns, stored alike: the error names the part that differs
/// and the column.
fn same_columns(first: &Part, part: &Part) -> Result<()> {
    let named = |p: &Part, n: &str| p.columns.iter().find(|c| c.name == n).cloned();
    for c in &first.columns {
        match named(part, &c.name) {
            None => {
                return Err(Error::data(
                    &part.path,
                    format!(
                        "column `{}` of {} is not in this file (part files must have the same columns)",
                        c.name,
                        first.path.display()
                    ),
                ))
            }
            Some(other) if other.stored != c.stored => {
                return Err(Error::data(
                    &part.path,
                    format!(
                        "column `{}` is {} here but {} in {} (part files must store their columns alike)",
                        c.name,
                        other.stored,
                        c.stored,
                        first.path.display()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = part
        .columns
        .iter()
        .find(|c| named(first, &c.name).is_none())
    {
        return Err(Error::data(
            &part.path,
            format!(
                "column `{}` is not in {} (part files must have the same columns)",
                extra.name,
                first.path.display()
            ),
        ));
    }
    Ok(())
}

/// Appends rows `[skip, skip + take)` of column `name` (read as `how`) of row group `g` of the
/// part file at `path`, whose first row is row `first` of the file, to `out`.
fn read_group(
    path: &Path,
    (file, group, g, first): (&Arc<CheckedFile>, &RowGroupMetaData, usize, usize),
    (name, how): (&str, (CellKind, usize, i16)),
    (skip, take): (usize, usize),
    out: &mut Vec<String>,
) -> Result<()> {
    if let Some(codec) = unreadable_codec(group, how.1) {
        return Err(Error::data(
            path,
            format!(
                "column `{name}` is compressed with {codec}, which this build of tandem does \
                 not read (it reads SNAPPY, GZIP, LZ4 and uncompressed files); write the file \
                 with another codec, e.g. pyarrow's compression=\"snappy\""
            ),
        ));
    }
    let reader = group_reader(file, group).map_err(|e| corrupt(path, g, name, &e.to_string()))?;
    read_rows(&reader, how, skip, take, out).map_err(|e| match e {
        ReadError::Parquet(e) => corrupt(path, g, name, &e.to_string()),
        ReadError::NotUtf8 { row } => Error::data(
            path,
            format!(
                "row {} (0-based), column `{name}`: the text is not UTF-8",
                first + row
            ),
        ),
        ReadError::Short { expected, found } => corrupt(
            path,
            g,
            name,
            &format!("its pages hold {found} rows, its metadata {expected} or more"),
        ),
    })
}

/// A read of row group `group`, column `column` that the parquet crate could not finish.
fn corrupt(path: &Path, group: usize, column: &str, why: &str) -> Error {
    Error::data(
        path,
        format!("corrupt file: row group {group}, column `{column}`: {why}"),
    )
}

thread_local! {
    /// Set while this thread runs a call that [`contain`] guards.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic inside it (the parquet crate on some corrupt inputs) into an error
/// naming `path`. The panic hook stays silent for such panics; others print as usual.
fn contain<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINED.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    result.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader failed".to_string());
        Err(Error::data(
            path,
            format!("corrupt Parquet file: the reader failed ({why})"),
        ))
    })
}
