//! Plain references of the kernels whose CPU twin is a fast path: simple
//! loops in the order of the formulas in each WGSL file's header, for a reader
//! to check and for the parity tests to compare both the GPU and the fast CPU
//! path against (`CpuBackend::reference()` runs them).
//!
//! Every other kernel's CPU twin (src/cpu/{loss, ensemble, gate, gather,
//! multitask, weighting}.rs, `optimizer::sgd_update`) is already a plain loop
//! and is its own reference.

pub mod dense;
pub mod optimizer;
