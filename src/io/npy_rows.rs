//! `.npy` matrices read a block of rows at a time: a C-order array of a
//! plain dtype is read straight from the file at the block's offset, so a
//! file larger than memory can be streamed. Fortran-order arrays are read
//! whole (their rows are not contiguous in the file).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::error::{Error, Result};
use crate::io::npy::{self, unsupported};

/// How the values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl Scalar {
    fn bytes(self) -> usize {
        match self {
            Scalar::F32 | Scalar::I32 => 4,
            Scalar::F64 | Scalar::I64 => 8,
            Scalar::U8 | Scalar::Bool => 1,
        }
    }
}

/// Where a matrix's rows come from.
#[derive(Debug)]
enum Storage {
    /// C order: row r starts at `offset + r · cols · bytes`.
    File {
        file: File,
        offset: u64,
        scalar: Scalar,
        big_endian: bool,
    },
    /// Fortran order: the whole array, row-major, in memory.
    Memory(Vec<f32>),
}

/// A 2-D `.npy` array (a 1-D `[N]` is `[N, 1]`) read by rows as f32.
#[derive(Debug)]
pub struct NpyRows {
    pub path: PathBuf,
    pub rows: usize,
    pub cols: usize,
    storage: Storage,
}

impl NpyRows {
    /// Opens `path` and reads its header; the dtype must be one `io::npy`
    /// accepts. Errors name the file.
    pub fn open(path: &Path) -> Result<NpyRows> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let npy = NpyFile::new(&mut reader)
            .map_err(|e| Error::data(path, format!("not a readable .npy file: {e}")))?;
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let (rows, cols) = match shape.as_slice() {
            [] => (1, 1),
            [n] => (*n, 1),
            [r, c] => (*r, *c),
            _ => {
                return Err(Error::data(
                    path,
                    format!("expected a 2-D array [rows, columns], found shape {shape:?}"),
                ))
            }
        };
        let (scalar, big_endian) = scalar_of(path, &npy.dtype())?;
        if npy.order() == Order::Fortran {
            let (_, data) = npy::read_f32(path)?;
            return Ok(NpyRows {
                path: path.to_path_buf(),
                rows,
                cols,
                storage: Storage::Memory(data),
            });
        }
        drop(npy);
        let mut file = reader.into_inner();
        let offset = data_offset(path, &mut file)?;
        let needed = offset + (rows as u64) * (cols as u64) * scalar.bytes() as u64;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < needed {
            return Err(Error::data(
                path,
                format!("the file is truncated: {len} bytes, its header promises {needed}"),
            ));
        }
        Ok(NpyRows {
            path: path.to_path_buf(),
            rows,
            cols,
            storage: Storage::File {
                file,
                offset,
                scalar,
                big_endian,
            },
        })
    }

    /// Rows `[start, start + len)`, row-major, as f32.
    pub fn read(&mut self, start: usize, len: usize) -> Result<Vec<f32>> {
        let cols = self.cols;
        match &mut self.storage {
            Storage::Memory(all) => Ok(all[start * cols..(start + len) * cols].to_vec()),
            Storage::File {
                file,
                offset,
                scalar,
                big_endian,
            } => {
                let width = scalar.bytes();
                let at = *offset + (start * cols * width) as u64;
                let seek = |file: &mut File| file.seek(SeekFrom::Start(at)).map(|_| ());
                if *scalar == Scalar::F32 && !*big_endian {
                    // The file's bytes are the values: read them in place.
                    let mut values = vec![0f32; len * cols];
                    seek(file)
                        .and_then(|_| file.read_exact(bytemuck::cast_slice_mut(&mut values)))
                        .map_err(|e| Error::io(&self.path, e))?;
                    return Ok(values);
                }
                let mut bytes = vec![0u8; len * cols * width];
                file.seek(SeekFrom::Start(at))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|e| Error::io(&self.path, e))?;
                Ok(decode(&bytes, *scalar, *big_endian))
            }
        }
    }
}

/// The byte offset of the data: after the magic, the version, the header
/// length and the header.
fn data_offset(path: &Path, file: &mut File) -> Result<u64> {
    let mut head = [0u8; 12];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut head))
        .map_err(|e| Error::io(path, e))?;
    match head[6] {
        1 => Ok(10 + u64::from(u16::from_le_bytes([head[8], head[9]]))),
        2 | 3 => Ok(12 + u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]))),
        v => Err(Error::data(
            path,
            format!("unknown .npy format version {v}"),
        )),
    }
}

/// The dtype as a scalar kind and its byte order.
fn scalar_of(path: &Path, dtype: &DType) -> Result<(Scalar, bool)> {
    let DType::Plain(ty) = dtype else {
        return Err(unsupported(path, dtype));
    };
    let scalar = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => Scalar::F32,
        (TypeChar::Float, 8) => Scalar::F64,
        (TypeChar::Int, 4) => Scalar::I32,
        (TypeChar::Int, 8) => Scalar::I64,
        (TypeChar::Uint, 1) => Scalar::U8,
        (TypeChar::Bool, 1) => Scalar::Bool,
        _ => return Err(unsupported(path, dtype)),
    };
    Ok((scalar, ty.endianness() == npyz::Endianness::Big))
}

/// Values of `scalar` in `bytes` as f32.
fn decode(bytes: &[u8], scalar: Scalar, big_endian: bool) -> Vec<f32> {
    fn each<const N: usize>(bytes: &[u8], big: bool, f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a: [u8; N] = c.try_into().expect("chunks of N bytes");
                if big {
                    a.reverse();
                }
                f(a)
            })
            .collect()
    }
    let big = big_endian;
    match scalar {
        Scalar::F32 => each::<4>(bytes, big, f32::from_le_bytes),
        Scalar::F64 => each::<8>(bytes, big, |a| f64::from_le_bytes(a) as f32),
        Scalar::I32 => each::<4>(bytes, big, |a| i32::from_le_bytes(a) as f32),
        Scalar::I64 => each::<8>(bytes, big, |a| i64::from_le_bytes(a) as f32),
        Scalar::U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
        Scalar::Bool => bytes.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `.npy` file of `descr` and `shape` holding `body`'s bytes.
    fn npy_file(
        name: &str,
        descr: &str,
        fortran: bool,
        shape: (usize, usize),
        body: &[u8],
    ) -> PathBuf {
        let f = if fortran { "True" } else { "False" };
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {f}, 'shape': ({}, {}), }}",
            shape.0, shape.1
        )
        .into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header);
        bytes.extend(body);
        let path =
            std::env::temp_dir().join(format!("tandem-npy-rows-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Every dtype, byte order and layout reads by rows as `npy::read_f32` reads it whole.
    #[test]
    fn blocks_of_rows_read_as_the_whole_file_does() {
        let values: Vec<f64> = (0..15).map(|i| i as f64 * 0.5 - 3.0).collect();
        let ints: Vec<i64> = (0..15).map(|i| i - 7).collect();
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            (
                "<f4",
                values
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect(),
                false,
            ),
            (
                ">f4",
                values
                    .iter()
                    .flat_map(|v| (*v as f32).to_be_bytes())
                    .collect(),
                false,
            ),
            (
                "<f8",
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                false,
            ),
            (
                ">f8",
                values.iter().flat_map(|v| v.to_be_bytes()).collect(),
                false,
            ),
            (
                "<i4",
                ints.iter()
                    .flat_map(|v| (*v as i32).to_le_bytes())
                    .collect(),
                false,
            ),
            (
                "<i8",
                ints.iter().flat_map(|v| v.to_le_bytes()).collect(),
                false,
            ),
            ("|u1", (0..15u8).collect(), false),
            ("|b1", (0..15u8).map(|v| v % 2).collect(), false),
            (
                "<f4",
                values
                    .iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect(),
                true,
            ),
        ];
        for (i, (descr, body, fortran)) in cases.into_iter().enumerate() {
            let path = npy_file(&format!("{i}.npy"), descr, fortran, (5, 3), &body);
            let (_, whole) = npy::read_f32(&path).unwrap();
            let mut rows = NpyRows::open(&path).unwrap();
            assert_eq!((rows.rows, rows.cols), (5, 3));
            for (start, len) in [(0, 5), (1, 2), (4, 1), (2, 0)] {
                let got = rows.read(start, len).unwrap();
                assert_eq!(
                    got,
                    whole[start * 3..(start + len) * 3],
                    "{descr} fortran {fortran}"
                );
            }
            std::fs::remove_file(path).ok();
        }
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let path = npy_file("short.npy", "<f4", false, (5, 3), &[0u8; 20]);
        let e = NpyRows::open(&path).unwrap_err().to_string();
        assert!(e.contains("short.npy") && e.contains("truncated"), "{e}");
        std::fs::remove_file(path).ok();
    }
}
