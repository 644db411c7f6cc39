//! NumPy `.npy` arrays as f32: what `numpy.save` writes, read into row-major `Vec<f32>`.
//!
//! Accepted dtypes: f32, f64, i32, i64, u8 and bool (all converted to f32), little- or
//! big-endian, C or Fortran order. A 1-D array `[N]` is read as `[N, 1]`.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar, WriterBuilder};

use crate::error::{Error, Result};

/// Reads the array at `path` as f32. Returns (shape, data): shape has ≥ 2 entries (`[N]` becomes
/// `[N, 1]`, a 0-d scalar `[1, 1]`), data is row-major (C order) with `shape.iter().product()`
/// values. A missing file is [`Error::Io`]; a bad header or dtype is [`Error::Data`] naming it.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::data(path, format!("not a readable .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let data = read_values(path, npy)?;
    let shape = match shape.len() {
        0 => vec![1, 1],
        1 => vec![shape[0], 1],
        _ => shape,
    };
    let data = match order {
        Order::C => data,
        Order::Fortran => fortran_to_c(&shape, &data),
    };
    Ok((shape, data))
}

/// Reads every element, converting the file's dtype to f32.
fn read_values(path: &Path, npy: NpyFile<BufReader<File>>) -> Result<Vec<f32>> {
    let dtype = npy.dtype();
    let ty = match &dtype {
        DType::Plain(ty) => ty.clone(),
        _ => return Err(unsupported(path, &dtype)),
    };
    let bad = |e: std::io::Error| Error::data(path, format!("reading the array: {e}"));
    let values = match (ty.type_char(), ty.size_field()) {
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(bad)?,
        (TypeChar::Float, 8) => convert(npy.into_vec::<f64>().map_err(bad)?, |v| v as f32),
        (TypeChar::Int, 4) => convert(npy.into_vec::<i32>().map_err(bad)?, |v| v as f32),
        (TypeChar::Int, 8) => convert(npy.into_vec::<i64>().map_err(bad)?, |v| v as f32),
        (TypeChar::Uint, 1) => convert(npy.into_vec::<u8>().map_err(bad)?, f32::from),
        (TypeChar::Bool, 1) => convert(npy.into_vec::<bool>().map_err(bad)?, |v| {
            if v {
                1.0
            } else {
                0.0
            }
        }),
        _ => return Err(unsupported(path, &dtype)),
    };
    Ok(values)
}

fn convert<T>(v: Vec<T>, f: impl Fn(T) -> f32) -> Vec<f32> {
    v.into_iter().map(f).collect()
}

/// The error for a dtype tandem does not read, naming the file.
pub(crate) fn unsupported(path: &Path, dtype: &DType) -> Error {
    Error::data(
        path,
        format!(
            "unsupported dtype {}: use float32, float64, int32, int64, uint8 or bool",
            dtype.descr()
        ),
    )
}

/// Reorders column-major `data` of `shape` into row-major order.
fn fortran_to_c(shape: &[usize], data: &[f32]) -> Vec<f32> {
    let n = data.len();
    let mut out = vec![0.0; n];
    let mut index = vec![0usize; shape.len()];
    // Walk the C-order output; compute each element's Fortran-order offset.
    for slot in out.iter_mut() {
        let mut offset = 0;
        let mut stride = 1;
        for (i, &dim) in index.iter().zip(shape) {
            offset += i * stride;
            stride *= dim;
        }
        *slot = data[offset];
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Writes `data` (row-major, `shape.iter().product()` values) as a little-endian f32 `.npy`.
/// Panics if the lengths disagree (a caller's bug).
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "write_f32: shape {shape:?} does not hold {} values",
        data.len()
    );
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(|e| Error::io(path, e))?;
    writer
        .extend(data.iter().copied())
        .map_err(|e| Error::io(path, e))?;
    writer.finish().map_err(|e| Error::io(path, e))
}
