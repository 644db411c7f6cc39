//! The argument block of every kernel: `#[repr(C)]` mirrors of the WGSL
//! uniform structs of the same name, bound at binding 0 (all fields 4 bytes,
//! sizes a multiple of 16; tests/shaders.rs checks each size against the WGSL).

use bytemuck::{Pod, Zeroable};

/// `DenseArgs` in shaders/dense.wgsl. Offsets and strides are in elements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct DenseArgs {
    pub n: u32,
    pub i: u32,
    pub o: u32,
    pub act: u32,
    pub x_off: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub y_off: u32,
    pub dy_off: u32,
    pub dx_off: u32,
    pub batches: u32,
    pub x_bstride: u32,
    pub w_bstride: u32,
    pub b_bstride: u32,
    pub y_bstride: u32,
    pub accumulate: u32,
}

/// `LossArgs` in shaders/loss.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct LossArgs {
    pub rows: u32,
    pub outputs: u32,
    pub z_off: u32,
    pub label_off: u32,
    pub dz_off: u32,
    pub stats_off: u32,
    /// 0: row r reads label row r; else label row r % label_rows (members
    /// stacked [M·N, C] all trained against one label per row).
    pub label_rows: u32,
    /// 0: as above; M: labels are per member, [N, M, ·], and stacked row
    /// r = m·N + n reads label row n·M + m (bagging).
    pub label_members: u32,
}

/// `EnsembleArgs` in shaders/ensemble.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct EnsembleArgs {
    pub members: u32,
    pub rows: u32,
    pub width: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub _pad: [u32; 3],
}

/// `ReduceArgs` in shaders/multitask.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct ReduceArgs {
    pub tasks: u32,
    pub rows: u32,
    pub log_slots: u32,
    pub _pad: u32,
}

/// `ScaleArgs` in shaders/multitask.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct ScaleArgs {
    pub len: u32,
    pub scale_index: u32,
    pub dz_off: u32,
    pub _pad: u32,
}

/// `AdamArgs` in shaders/optimizer.wgsl. `style`: 0 Keras, 1 PyTorch. The
/// learning rate is not here: it is part of the per-step bias-correction
/// factors the kernel reads from a buffer (`train::step::optimizer::adam_factors`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct AdamArgs {
    pub len: u32,
    pub p_off: u32,
    pub style: u32,
    pub _pad0: u32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub _pad1: u32,
}

/// `SgdArgs` in shaders/optimizer.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct SgdArgs {
    pub len: u32,
    pub p_off: u32,
    pub lr: f32,
    pub momentum: f32,
}

/// `GatherArgs` in shaders/gather.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct GatherArgs {
    pub batch: u32,
    pub width: u32,
    pub src_rows: u32,
    pub pad_bits: u32,
    pub idx_len: u32,
    pub dst_off: u32,
    /// The row of the whole dataset at `src`'s row 0 (a chunk of it).
    pub first_row: u32,
    /// 1: leave padding rows alone (another chunk's gather pads them).
    pub skip_pad: u32,
}

/// `StepArgs` in shaders/gather.wgsl: `step_advance` takes no arguments, but
/// every kernel has a uniform block at binding 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct StepArgs {
    pub _pad: [u32; 4],
}

/// `GateArgs` in shaders/gate.wgsl: g [R, G] at g_off (row stride G = g_stride),
/// ex [E, N, H] at ex_off, out [N, H] at out_off.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct GateArgs {
    pub rows: u32,
    pub experts: u32,
    pub width: u32,
    pub g_stride: u32,
    pub g_off: u32,
    pub ex_off: u32,
    pub out_off: u32,
    pub accumulate: u32,
}

/// `WeightingArgs` in shaders/weighting.wgsl: s_j at params[s_off + j].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct WeightingArgs {
    pub tasks: u32,
    pub s_off: u32,
    pub log_slots: u32,
    pub _pad: u32,
}

/// `GradnormArgs` in shaders/weighting.wgsl: p_j at params[p_off + j].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct GradnormArgs {
    pub tasks: u32,
    pub len: u32,
    pub p_off: u32,
    pub alpha: f32,
}

/// `GuardArgs` in shaders/guard.wgsl: T tasks, `len` gradient elements.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct GuardArgs {
    pub tasks: u32,
    pub len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}
