//! # tandem
//!
//! Multi-task models and ensembles of collaborating models, trained through
//! WGSL compute shaders on any GPU wgpu reaches (Vulkan, Metal, DX12, GL), with
//! a CPU reference for every kernel.
//!
//! Shape letters used in comments throughout: N batch rows, I inputs,
//! O outputs, C classes/outputs of a task, T tasks, E experts, M members.
//!
//! Layout, bottom up (docs/ARCHITECTURE.md has the map): `kernel` (the table
//! of kernels and their argument structs), `ops` (one kernel invocation),
//! `cpu` (the CPU twins, same stems as `shaders/`, with plain references of
//! the fast paths), `gpu` (wgpu host), `backend` (the trait both implement,
//! and choosing one), `model` (spec, parameters, graphs), `data` (the
//! in-memory dataset), `train` (the training step, fit, evaluation,
//! prediction), `io` (configs, data files, plots), `dist` (running as a rank
//! of an MPI job).

// Shapes and indices are written `[N, O]`, `y[n, o]` in doc comments, which
// rustdoc would read as links to items called `N` or `o`.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod cpu;
pub mod data;
pub mod dist;
pub mod error;
pub mod files;
pub mod gpu;
pub mod io;
pub mod kernel;
pub mod model;
pub mod ops;
pub mod train;

pub use backend::select::{open_backend, BackendChoice};
pub use backend::{Backend, Counters, ProgramId};
pub use data::Dataset;
pub use error::{Error, NonFiniteIn, Result};
pub use io::{Config, TrainConfig};
pub use model::{Model, ModelSpec, TaskKind, TaskSpec};
pub use train::{evaluate, fit, predict, EpochReport, Event, History, Predictions};
