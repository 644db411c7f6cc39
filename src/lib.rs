//! # tandem
//!
//! Multi-task models and ensembles of collaborating models, trained through
//! WGSL compute shaders on any GPU wgpu reaches (Vulkan, Metal, DX12, GL), with
//! a CPU reference for every kernel.
//!
//! Shape letters used in comments throughout: N batch rows, I inputs,
//! O outputs, C classes/outputs of a task, T tasks, E experts, M members.
//!
//! Layout: `kernel` (the list of kernels), `ops` (one kernel invocation),
//! `cpu` (reference twins, same stems as `shaders/`), `gpu` (wgpu host),
//! `backend` (the trait both implement, and choosing one), `data` (the
//! in-memory dataset), `model` (spec, parameters, graphs), `train` (the
//! trainer, evaluation, prediction), `io` (configs, files, weights).

// Shapes and indices are written `[N, O]`, `y[n, o]` in doc comments, which
// rustdoc would read as links to items called `N` or `o`.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod cpu;
pub mod data;
pub mod error;
pub mod gpu;
pub mod io;
pub mod kernel;
pub mod model;
pub mod ops;
pub mod train;

pub use backend::select::{open_backend, BackendChoice};
pub use backend::{Backend, Counters, ProgramId};
pub use data::Dataset;
pub use error::{Error, Result};
pub use io::{Config, TrainConfig};
pub use model::{Model, ModelSpec, TaskKind, TaskSpec};
pub use train::{evaluate, fit, predict, EpochReport, Event, History, Predictions};
