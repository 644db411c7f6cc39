//! The one error type of the library. Every variant carries enough context
//! (file, field, row, tensor name, shapes, kernel) for a user to fix the input
//! without reading the source. Binaries wrap it in `anyhow`.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in tandem, with context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written. The OS message is part of this
    /// error's text, so the `std::io::Error` is a plain field, not its
    /// `source()`: a caller printing the chain (`{:#}` in anyhow) would print
    /// the message twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A config file is malformed: TOML syntax, unknown key, wrong type, bad value.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A data file (npy/csv) is malformed or disagrees with the config.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    /// A weights file is malformed or disagrees with the model.
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// No usable GPU adapter, or the adapter lacks what tandem needs.
    #[error("GPU: {0}")]
    Gpu(String),
    /// A GPU validation, out-of-memory or device-lost error, with the op that caused it.
    #[error("GPU error in {op}: {message}")]
    GpuOp { op: String, message: String },
    /// A caller asked for something the model or backend cannot do.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an `std::io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
    /// A config error about `path`.
    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }
    /// A data error about `path`.
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }
    /// A weights error about `path`.
    pub fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.into(),
            message: message.into(),
        }
    }
}
