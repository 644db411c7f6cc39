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
    /// Training diverged: a loss or gradient was not finite at a step (the
    /// parameters were left as the step before left them), or early stopping
    /// never saw a finite validation loss. Steps and epochs count from 0, as
    /// in `History` and the `--log` file.
    #[error("{}", non_finite_message(*.what, tasks, *.step, *.epoch, *.last_finite_loss))]
    NonFinite {
        what: NonFiniteIn,
        /// The tasks whose loss was not finite (every task for a gradient or
        /// objective that was not finite while each task's loss was).
        tasks: Vec<String>,
        /// The global step (for the validation loss: the last step of `epoch`).
        step: u64,
        epoch: usize,
        /// The objective of the last step whose update was applied (None
        /// when there was none, or for the validation loss).
        last_finite_loss: Option<f32>,
    },
}

/// What was not finite in an `Error::NonFinite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonFiniteIn {
    /// One or more tasks' training losses L_j.
    Loss,
    /// The objective Σ λ_j L_j (+ the weighting's terms), every L_j finite.
    Objective,
    /// The gradient, every loss finite.
    Gradient,
    /// The validation loss, at every epoch (early stopping had nothing to keep).
    ValidationLoss,
}

fn non_finite_message(
    what: NonFiniteIn,
    tasks: &[String],
    step: u64,
    epoch: usize,
    last: Option<f32>,
) -> String {
    let names = tasks
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = if tasks.len() == 1 { "" } else { "s" };
    let thing = match what {
        NonFiniteIn::Loss => format!("the loss of task{s} {names} is not finite"),
        NonFiniteIn::Objective => format!("the objective (task{s} {names}) is not finite"),
        NonFiniteIn::Gradient => format!("the gradient (task{s} {names}) is not finite"),
        NonFiniteIn::ValidationLoss => {
            return format!(
                "the validation loss (task{s} {names}) was never finite; \
                 early stopping has no weights to keep (first seen after step {step}, epoch {epoch}; \
                 counted from 0)"
            )
        }
    };
    let last = match last {
        Some(l) => format!("the last finite loss was {l}"),
        None => "no step before it".into(),
    };
    format!("training diverged: {thing} at step {step} (epoch {epoch}; counted from 0); {last}")
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
