//! The one flat interface both backends implement: buffers, and programs
//! (lists of ops) prepared once and run many times. [`select`] opens one of
//! the two (`open_backend`, `BackendChoice`).

pub mod select;

use crate::ops::{BufId, Op};
use crate::Result;

/// A prepared list of ops: an index into the backend's programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramId(pub usize);

/// Counters a backend keeps about its own work, for the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command submissions to the device queue (0 on the CPU).
    pub submits: u64,
    /// Kernel dispatches (ops executed on the CPU).
    pub dispatches: u64,
    /// Bytes copied from the device back to the host.
    pub bytes_read: u64,
}

/// A place that owns buffers and runs ops: the CPU reference or a GPU adapter.
pub trait Backend {
    /// Human-readable name, e.g. "cpu (2 threads)" or "gpu: llvmpipe (Vulkan)".
    fn describe(&self) -> String;
    /// True for the GPU backend.
    fn is_gpu(&self) -> bool;
    /// A zero-filled buffer of `len` f32 (or u32) elements.
    fn alloc(&mut self, len: usize, label: &str) -> Result<BufId>;
    /// The most elements one buffer may hold (a storage binding's limit on
    /// the GPU); larger data is held in several buffers.
    fn max_buffer_len(&self) -> usize {
        isize::MAX as usize / 4
    }
    /// Number of elements of a buffer.
    fn len(&self, buf: BufId) -> usize;
    /// Writes f32 data at element `offset`.
    fn write(&mut self, buf: BufId, offset: usize, data: &[f32]) -> Result<()>;
    /// Writes u32 data at element `offset` (indices, counters).
    fn write_u32(&mut self, buf: BufId, offset: usize, data: &[u32]) -> Result<()> {
        self.write(buf, offset, bytemuck::cast_slice(data))
    }
    /// Reads a whole buffer back (waits for queued work).
    fn read(&mut self, buf: BufId) -> Result<Vec<f32>>;
    /// Reads a whole buffer back as u32.
    fn read_u32(&mut self, buf: BufId) -> Result<Vec<u32>> {
        Ok(bytemuck::cast_slice(&self.read(buf)?).to_vec())
    }
    /// Prepares a program once: pipelines, uniforms and bind groups on the GPU.
    fn prepare(&mut self, ops: &[Op]) -> Result<ProgramId>;
    /// Runs a program `repeats` times back to back (one submit on the GPU).
    fn run(&mut self, program: ProgramId, repeats: u32) -> Result<()>;
    /// Waits until all submitted work is done.
    fn finish(&mut self) -> Result<()>;
    /// Drops every buffer and program (ids become invalid); pipelines stay cached.
    fn clear(&mut self);
    /// Work counters since creation.
    fn counters(&self) -> Counters;
}
