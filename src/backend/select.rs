//! Choosing a backend: the GPU, the CPU reference, or whichever is there.

use super::Backend;
use crate::cpu::CpuBackend;
use crate::gpu::GpuBackend;
use crate::{Error, Result};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The GPU when an adapter exists (lavapipe counts), else the CPU with a warning.
    #[default]
    Auto,
    /// The GPU, or an error.
    Gpu,
    /// The CPU reference backend.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(Error::Invalid(format!(
                "unknown backend `{s}` (auto, gpu or cpu)"
            ))),
        }
    }
}

/// Opens the chosen backend. `Auto` logs which adapter it uses, or warns once
/// and falls back to the CPU.
pub fn open_backend(choice: BackendChoice) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Gpu => Ok(Box::new(GpuBackend::new()?)),
        BackendChoice::Auto => match GpuBackend::new() {
            Ok(g) => {
                log::info!("using {}", g.describe());
                Ok(Box::new(g))
            }
            Err(e) => {
                log::warn!("no usable GPU ({e}); training on the CPU");
                Ok(Box::new(CpuBackend::new()))
            }
        },
    }
}
