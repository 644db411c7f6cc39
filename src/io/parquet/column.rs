//! Reading rows of one column of one row group as cells, through the parquet crate's column
//! readers (no arrow): nulls become empty cells, values become text as [`CellKind`] says.

use std::fs::File;
use std::sync::Arc;

use ::parquet::basic::Compression;
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::{ByteArray, DataType};
use ::parquet::errors::{ParquetError, Result as PqResult};
use ::parquet::file::metadata::RowGroupMetaData;
use ::parquet::file::reader::{ChunkReader, Length, RowGroupReader};

use super::schema::CellKind;

/// Records decoded per call of the column reader.
const CHUNK: usize = 8192;

/// A Parquet file whose reads are checked against its length before any buffer is sized by an
/// offset or length from the file's metadata (a corrupt one would otherwise ask for gigabytes).
pub struct CheckedFile {
    pub file: File,
    pub len: u64,
}

impl Length for CheckedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for CheckedFile {
    type T = <File as ChunkReader>::T;

    fn get_read(&self, start: u64) -> PqResult<Self::T> {
        if start > self.len {
            return Err(past_end(start, 0, self.len));
        }
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> PqResult<bytes::Bytes> {
        match start.checked_add(length as u64) {
            Some(end) if end <= self.len => self.file.get_bytes(start, length),
            _ => Err(past_end(start, length, self.len)),
        }
    }
}

fn past_end(start: u64, length: usize, len: u64) -> ParquetError {
    ParquetError::EOF(format!(
        "the metadata points at bytes {start}..{} past the end of the {len}-byte file",
        start.saturating_add(length as u64)
    ))
}

/// The codec of a column chunk, when tandem's build cannot read it.
pub fn unreadable_codec(group: &RowGroupMetaData, leaf: usize) -> Option<&'static str> {
    match group.column(leaf).compression() {
        Compression::UNCOMPRESSED
        | Compression::SNAPPY
        | Compression::GZIP(_)
        | Compression::LZ4
        | Compression::LZ4_RAW => None,
        Compression::ZSTD(_) => Some("ZSTD"),
        Compression::BROTLI(_) => Some("BROTLI"),
        Compression::LZO => Some("LZO"),
    }
}

/// What went wrong reading a column: the crate's error, or a cell that is not UTF-8 text at a
/// row (counted from the row group's first row).
pub enum ReadError {
    Parquet(ParquetError),
    NotUtf8 {
        row: usize,
    },
    /// The row group held fewer rows than its metadata says.
    Short {
        expected: usize,
        found: usize,
    },
}

impl From<ParquetError> for ReadError {
    fn from(e: ParquetError) -> Self {
        ReadError::Parquet(e)
    }
}

/// Appends rows `[skip, skip + take)` of leaf column `leaf` of the row group to `out`.
pub fn read_rows(
    group: &dyn RowGroupReader,
    (kind, leaf, max_def): (CellKind, usize, i16),
    skip: usize,
    take: usize,
    out: &mut Vec<String>,
) -> Result<(), ReadError> {
    let reader = group.get_column_reader(leaf)?;
    let span = Span {
        skip,
        take,
        max_def,
    };
    match (reader, kind) {
        (ColumnReader::BoolColumnReader(r), CellKind::Bool) => {
            span.read(r, out, |v| Some(if *v { "1" } else { "0" }.to_string()))
        }
        (ColumnReader::Int32ColumnReader(r), CellKind::Int32 { unsigned }) => {
            span.read(r, out, |v| {
                Some(match unsigned {
                    true => (*v as u32).to_string(),
                    false => v.to_string(),
                })
            })
        }
        (ColumnReader::Int64ColumnReader(r), CellKind::Int64 { unsigned }) => {
            span.read(r, out, |v| {
                Some(match unsigned {
                    true => (*v as u64).to_string(),
                    false => v.to_string(),
                })
            })
        }
        (ColumnReader::FloatColumnReader(r), CellKind::Float) => {
            span.read(r, out, |v| Some(number(f64::from(*v))))
        }
        (ColumnReader::DoubleColumnReader(r), CellKind::Double) => {
            span.read(r, out, |v| Some(number(*v)))
        }
        (ColumnReader::ByteArrayColumnReader(r), CellKind::Utf8) => {
            span.read(r, out, |v: &ByteArray| {
                std::str::from_utf8(v.data()).ok().map(str::to_string)
            })
        }
        _ => Err(ReadError::Parquet(ParquetError::General(
            "the column's physical type differs from its schema".into(),
        ))),
    }
}

/// `v` in the shortest form that reads back as the same f64: plain digits (`39.1`, `181`), or
/// with an exponent (`1e300`, `1e-300`) where plain digits would run long.
fn number(v: f64) -> String {
    let plain = v == 0.0 || !v.is_finite() || (1e-6..1e17).contains(&v.abs());
    match plain {
        true => format!("{v}"),
        false => format!("{v:e}"),
    }
}

/// Rows `[skip, skip + take)` of a column whose maximum definition level is `max_def`.
struct Span {
    skip: usize,
    take: usize,
    max_def: i16,
}

impl Span {
    /// Skips, then reads `take` rows through `cell` (`None`: not UTF-8 text).
    fn read<T: DataType>(
        &self,
        mut reader: ColumnReaderImpl<T>,
        out: &mut Vec<String>,
        cell: impl Fn(&T::T) -> Option<String>,
    ) -> Result<(), ReadError> {
        let skipped = reader.skip_records(self.skip)?;
        if skipped < self.skip {
            return Err(ReadError::Short {
                expected: self.skip + self.take,
                found: skipped,
            });
        }
        let (mut def, mut values) = (Vec::new(), Vec::new());
        let mut done = 0;
        while done < self.take {
            def.clear();
            values.clear();
            let want = (self.take - done).min(CHUNK);
            let (records, _, _) = reader.read_records(want, Some(&mut def), None, &mut values)?;
            if records == 0 {
                return Err(ReadError::Short {
                    expected: self.skip + self.take,
                    found: self.skip + done,
                });
            }
            let mut values = values.iter();
            for r in 0..records {
                let present = self.max_def == 0 || def.get(r) == Some(&self.max_def);
                let text = match (present, present.then(|| values.next()).flatten()) {
                    (false, _) => String::new(),
                    (true, Some(v)) => cell(v).ok_or(ReadError::NotUtf8 {
                        row: self.skip + done + r,
                    })?,
                    (true, None) => {
                        return Err(ReadError::Parquet(ParquetError::General(
                            "fewer values than definition levels".into(),
                        )))
                    }
                };
                out.push(text);
            }
            done += records;
        }
        Ok(())
    }
}

/// The row group reader over `file` for group `group` of the file's metadata.
pub fn group_reader<'a>(
    file: &Arc<CheckedFile>,
    group: &'a RowGroupMetaData,
) -> PqResult<impl RowGroupReader + 'a> {
    let props = Arc::new(::parquet::file::properties::ReaderProperties::builder().build());
    ::parquet::file::serialized_reader::SerializedRowGroupReader::new(
        Arc::clone(file),
        group,
        None,
        props,
    )
}
