//! Choosing a backend: the GPU, the CPU reference, or whichever is there.

use super::Backend;
use crate::cpu::CpuBackend;
use crate::gpu::context::{AdapterChoice, GpuContext};
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
    open_backend_at(choice, None)
}

/// [`open_backend`], taking the `adapter`-th GPU (modulo their number) on a
/// machine with several (see `AdapterChoice::index`): one GPU per rank of a
/// data-parallel job, by the rank's index on its node. None: the adapter the
/// environment asks for.
pub fn open_backend_at(choice: BackendChoice, adapter: Option<usize>) -> Result<Box<dyn Backend>> {
    let gpu = || -> Result<GpuBackend> {
        let choice = AdapterChoice {
            index: adapter,
            ..AdapterChoice::from_env()
        };
        Ok(GpuBackend::with_context(GpuContext::with_choice(&choice)?))
    };
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Gpu => Ok(Box::new(gpu()?)),
        BackendChoice::Auto => match gpu() {
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
