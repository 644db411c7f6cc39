//! One kernel invocation with its arguments and buffers: the unit both
//! backends execute. A training step is a `Vec<Op>` built once from the model
//! (like llm.c's sequence of `_forward`/`_backward` calls); the CPU backend
//! interprets it, the GPU backend turns it into pipelines and bind groups once
//! and replays them every step.
//!
//! The argument structs are `#[repr(C)]` mirrors of the WGSL uniform structs
//! of the same name (all fields 4 bytes, sizes a multiple of 16).

use crate::kernel::Kernel;
use bytemuck::{Pod, Zeroable};

/// A buffer owned by a backend: an index into its buffer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufId(pub usize);

/// Elements per workgroup of the 1-D kernels.
pub const WORKGROUP: u32 = 256;
/// Output tile edge of the dense kernels.
pub const DENSE_TILE: u32 = 64;
/// Index value that pads a short batch (see `batch_gather`).
pub const PAD_INDEX: u32 = u32::MAX;
/// Bits of the NaN that marks a missing label.
pub const MISSING_BITS: u32 = 0x7fc0_0000;

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

/// `ActivationArgs` in shaders/activation.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct ActivationArgs {
    pub len: u32,
    pub act: u32,
    pub x_off: u32,
    pub y_off: u32,
    pub dx_off: u32,
    pub accumulate: u32,
    pub _pad: [u32; 2],
}

/// `ColumnsArgs` in shaders/concat.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct ColumnsArgs {
    pub rows: u32,
    pub width: u32,
    pub wide: u32,
    pub col0: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub accumulate: u32,
    pub _pad: u32,
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

/// `AdamArgs` in shaders/optimizer.wgsl. `style`: 0 Keras, 1 PyTorch.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct AdamArgs {
    pub len: u32,
    pub p_off: u32,
    pub style: u32,
    pub _pad: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
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
    pub _pad: [u32; 2],
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

/// One kernel invocation. Buffer fields are listed in binding order.
#[derive(Debug, Clone)]
pub enum Op {
    /// y = act(x·Wᵀ + b); W, b inside `params`.
    DenseForward {
        args: DenseArgs,
        x: BufId,
        params: BufId,
        y: BufId,
    },
    /// dx (+)= (dy ⊙ act'(y))·W; batch items sharing their input
    /// (`x_bstride` = 0) sum into one dx.
    DenseBackwardInput {
        args: DenseArgs,
        dy: BufId,
        y: BufId,
        params: BufId,
        dx: BufId,
    },
    /// dW (+)= dzᵀ·x, db (+)= Σ_n dz, into `grads` at W's and b's offsets.
    DenseBackwardWeight {
        args: DenseArgs,
        dy: BufId,
        y: BufId,
        x: BufId,
        grads: BufId,
    },
    ActivationForward {
        args: ActivationArgs,
        x: BufId,
        y: BufId,
    },
    ActivationBackward {
        args: ActivationArgs,
        dy: BufId,
        y: BufId,
        dx: BufId,
    },
    ConcatColumns {
        args: ColumnsArgs,
        src: BufId,
        dst: BufId,
    },
    SplitColumns {
        args: ColumnsArgs,
        src: BufId,
        dst: BufId,
    },
    LossBce {
        args: LossArgs,
        z: BufId,
        label: BufId,
        dz: BufId,
        stats: BufId,
    },
    LossSoftmaxCe {
        args: LossArgs,
        z: BufId,
        label: BufId,
        dz: BufId,
        stats: BufId,
    },
    LossMse {
        args: LossArgs,
        z: BufId,
        label: BufId,
        dz: BufId,
        stats: BufId,
    },
    /// BCE on probabilities (an ensemble's averaged sigmoid outputs).
    LossBceProb {
        args: LossArgs,
        z: BufId,
        label: BufId,
        dz: BufId,
        stats: BufId,
    },
    /// Cross-entropy on class probabilities (an ensemble's averaged softmax outputs).
    LossCeProb {
        args: LossArgs,
        z: BufId,
        label: BufId,
        dz: BufId,
        stats: BufId,
    },
    /// out [N, C] = mean over members of src [M, N, C].
    EnsembleMeanForward {
        args: EnsembleArgs,
        src: BufId,
        dst: BufId,
    },
    /// dmembers [M, N, C] = dout [N, C] / M.
    EnsembleMeanBackward {
        args: EnsembleArgs,
        src: BufId,
        dst: BufId,
    },
    /// [M, N, C] → [N, M·C].
    MembersToRows {
        args: EnsembleArgs,
        src: BufId,
        dst: BufId,
    },
    /// [N, M·C] → [M, N, C].
    RowsToMembers {
        args: EnsembleArgs,
        src: BufId,
        dst: BufId,
    },
    MultitaskLossReduce {
        args: ReduceArgs,
        stats: BufId,
        lambda: BufId,
        counters: BufId,
        out: BufId,
        log: BufId,
    },
    LossGradScale {
        args: ScaleArgs,
        out: BufId,
        dz: BufId,
    },
    AdamUpdate {
        args: AdamArgs,
        grads: BufId,
        counters: BufId,
        params: BufId,
        m: BufId,
        v: BufId,
    },
    SgdUpdate {
        args: SgdArgs,
        grads: BufId,
        params: BufId,
        velocity: BufId,
    },
    BatchGather {
        args: GatherArgs,
        src: BufId,
        idx: BufId,
        counters: BufId,
        dst: BufId,
    },
    StepAdvance {
        counters: BufId,
    },
    /// y = softmax(x) per row of E gate logits.
    GateSoftmax {
        args: GateArgs,
        x: BufId,
        y: BufId,
    },
    /// dx (+)= y ⊙ (dy − Σ y·dy) per row.
    GateSoftmaxBackward {
        args: GateArgs,
        dy: BufId,
        y: BufId,
        dx: BufId,
    },
    /// out (+)= Σ_e g[·, e]·ex[e].
    GatedSumForward {
        args: GateArgs,
        g: BufId,
        ex: BufId,
        out: BufId,
    },
    /// dex[e] (+)= g[·, e]·dout.
    GatedSumBackwardExperts {
        args: GateArgs,
        g: BufId,
        dout: BufId,
        dex: BufId,
    },
    /// dg[n, e] (+)= Σ_h dout[n, h]·ex[e, n, h].
    GatedSumBackwardGate {
        args: GateArgs,
        dout: BufId,
        ex: BufId,
        dg: BufId,
    },
    /// λ_j = 1/(2·exp(s_j)) from the learned log-variances.
    UncertaintyWeights {
        args: WeightingArgs,
        params: BufId,
        lambda: BufId,
    },
    /// ∂/∂s_j of the uncertainty objective into `grads`; Σ s_j/2 into the objective.
    UncertaintyFinish {
        args: WeightingArgs,
        params: BufId,
        counters: BufId,
        out: BufId,
        grads: BufId,
        log: BufId,
    },
    /// norms[j] = ||split_j||² (GradNorm's per-task gradient norms, squared).
    GradnormSumsq {
        args: GradnormArgs,
        split: BufId,
        norms: BufId,
    },
    /// λ = T·softmax(p), GradNorm's task weights.
    GradnormWeights {
        args: GradnormArgs,
        params: BufId,
        lambda: BufId,
    },
    /// ∂L_grad/∂p into `grads` (GradNorm's weight update, by the optimizer).
    GradnormUpdate {
        args: GradnormArgs,
        lambda: BufId,
        norms: BufId,
        out: BufId,
        initial: BufId,
        grads: BufId,
    },
}

fn tiles(rows: u32, cols: u32) -> u32 {
    rows.div_ceil(DENSE_TILE) * cols.div_ceil(DENSE_TILE)
}

impl Op {
    /// The kernel this op runs.
    pub fn kernel(&self) -> Kernel {
        match self {
            Op::DenseForward { .. } => Kernel::DenseForward,
            Op::DenseBackwardInput { .. } => Kernel::DenseBackwardInput,
            Op::DenseBackwardWeight { .. } => Kernel::DenseBackwardWeight,
            Op::ActivationForward { .. } => Kernel::ActivationForward,
            Op::ActivationBackward { .. } => Kernel::ActivationBackward,
            Op::ConcatColumns { .. } => Kernel::ConcatColumns,
            Op::SplitColumns { .. } => Kernel::SplitColumns,
            Op::LossBce { .. } => Kernel::LossBce,
            Op::LossSoftmaxCe { .. } => Kernel::LossSoftmaxCe,
            Op::LossMse { .. } => Kernel::LossMse,
            Op::LossBceProb { .. } => Kernel::LossBceProb,
            Op::LossCeProb { .. } => Kernel::LossCeProb,
            Op::EnsembleMeanForward { .. } => Kernel::EnsembleMeanForward,
            Op::EnsembleMeanBackward { .. } => Kernel::EnsembleMeanBackward,
            Op::MembersToRows { .. } => Kernel::MembersToRows,
            Op::RowsToMembers { .. } => Kernel::RowsToMembers,
            Op::MultitaskLossReduce { .. } => Kernel::MultitaskLossReduce,
            Op::LossGradScale { .. } => Kernel::LossGradScale,
            Op::AdamUpdate { .. } => Kernel::AdamUpdate,
            Op::SgdUpdate { .. } => Kernel::SgdUpdate,
            Op::BatchGather { .. } => Kernel::BatchGather,
            Op::StepAdvance { .. } => Kernel::StepAdvance,
            Op::GateSoftmax { .. } => Kernel::GateSoftmax,
            Op::GateSoftmaxBackward { .. } => Kernel::GateSoftmaxBackward,
            Op::GatedSumForward { .. } => Kernel::GatedSumForward,
            Op::GatedSumBackwardExperts { .. } => Kernel::GatedSumBackwardExperts,
            Op::GatedSumBackwardGate { .. } => Kernel::GatedSumBackwardGate,
            Op::UncertaintyWeights { .. } => Kernel::UncertaintyWeights,
            Op::UncertaintyFinish { .. } => Kernel::UncertaintyFinish,
            Op::GradnormSumsq { .. } => Kernel::GradnormSumsq,
            Op::GradnormWeights { .. } => Kernel::GradnormWeights,
            Op::GradnormUpdate { .. } => Kernel::GradnormUpdate,
        }
    }

    /// Storage buffers in binding order (bindings 1, 2, …).
    pub fn buffers(&self) -> Vec<BufId> {
        match *self {
            Op::DenseForward { x, params, y, .. } => vec![x, params, y],
            Op::DenseBackwardInput {
                dy, y, params, dx, ..
            } => vec![dy, y, params, dx],
            Op::DenseBackwardWeight {
                dy, y, x, grads, ..
            } => vec![dy, y, x, grads],
            Op::ActivationForward { x, y, .. } => vec![x, y],
            Op::ActivationBackward { dy, y, dx, .. } => vec![dy, y, dx],
            Op::ConcatColumns { src, dst, .. } | Op::SplitColumns { src, dst, .. } => {
                vec![src, dst]
            }
            Op::LossBce {
                z,
                label,
                dz,
                stats,
                ..
            }
            | Op::LossSoftmaxCe {
                z,
                label,
                dz,
                stats,
                ..
            }
            | Op::LossMse {
                z,
                label,
                dz,
                stats,
                ..
            }
            | Op::LossBceProb {
                z,
                label,
                dz,
                stats,
                ..
            }
            | Op::LossCeProb {
                z,
                label,
                dz,
                stats,
                ..
            } => vec![z, label, dz, stats],
            Op::EnsembleMeanForward { src, dst, .. }
            | Op::EnsembleMeanBackward { src, dst, .. }
            | Op::MembersToRows { src, dst, .. }
            | Op::RowsToMembers { src, dst, .. } => vec![src, dst],
            Op::MultitaskLossReduce {
                stats,
                lambda,
                counters,
                out,
                log,
                ..
            } => vec![stats, lambda, counters, out, log],
            Op::LossGradScale { out, dz, .. } => vec![out, dz],
            Op::AdamUpdate {
                grads,
                counters,
                params,
                m,
                v,
                ..
            } => vec![grads, counters, params, m, v],
            Op::SgdUpdate {
                grads,
                params,
                velocity,
                ..
            } => vec![grads, params, velocity],
            Op::BatchGather {
                src,
                idx,
                counters,
                dst,
                ..
            } => vec![src, idx, counters, dst],
            Op::StepAdvance { counters } => vec![counters],
            Op::GateSoftmax { x, y, .. } => vec![x, y],
            Op::GateSoftmaxBackward { dy, y, dx, .. } => vec![dy, y, dx],
            Op::GatedSumForward { g, ex, out, .. } => vec![g, ex, out],
            Op::GatedSumBackwardExperts { g, dout, dex, .. } => vec![g, dout, dex],
            Op::GatedSumBackwardGate { dout, ex, dg, .. } => vec![dout, ex, dg],
            Op::UncertaintyWeights { params, lambda, .. } => vec![params, lambda],
            Op::UncertaintyFinish {
                params,
                counters,
                out,
                grads,
                log,
                ..
            } => vec![params, counters, out, grads, log],
            Op::GradnormSumsq { split, norms, .. } => vec![split, norms],
            Op::GradnormWeights { params, lambda, .. } => vec![params, lambda],
            Op::GradnormUpdate {
                lambda,
                norms,
                out,
                initial,
                grads,
                ..
            } => vec![lambda, norms, out, initial, grads],
        }
    }

    /// The uniform block's bytes (binding 0).
    pub fn uniform(&self) -> Vec<u8> {
        let bytes: &[u8] = match self {
            Op::DenseForward { args, .. }
            | Op::DenseBackwardInput { args, .. }
            | Op::DenseBackwardWeight { args, .. } => bytemuck::bytes_of(args),
            Op::ActivationForward { args, .. } | Op::ActivationBackward { args, .. } => {
                bytemuck::bytes_of(args)
            }
            Op::ConcatColumns { args, .. } | Op::SplitColumns { args, .. } => {
                bytemuck::bytes_of(args)
            }
            Op::LossBce { args, .. }
            | Op::LossSoftmaxCe { args, .. }
            | Op::LossMse { args, .. }
            | Op::LossBceProb { args, .. }
            | Op::LossCeProb { args, .. } => bytemuck::bytes_of(args),
            Op::EnsembleMeanForward { args, .. }
            | Op::EnsembleMeanBackward { args, .. }
            | Op::MembersToRows { args, .. }
            | Op::RowsToMembers { args, .. } => bytemuck::bytes_of(args),
            Op::MultitaskLossReduce { args, .. } => bytemuck::bytes_of(args),
            Op::LossGradScale { args, .. } => bytemuck::bytes_of(args),
            Op::AdamUpdate { args, .. } => bytemuck::bytes_of(args),
            Op::SgdUpdate { args, .. } => bytemuck::bytes_of(args),
            Op::BatchGather { args, .. } => bytemuck::bytes_of(args),
            Op::StepAdvance { .. } => &[0u8; 16],
            Op::GateSoftmax { args, .. }
            | Op::GateSoftmaxBackward { args, .. }
            | Op::GatedSumForward { args, .. }
            | Op::GatedSumBackwardExperts { args, .. }
            | Op::GatedSumBackwardGate { args, .. } => bytemuck::bytes_of(args),
            Op::UncertaintyWeights { args, .. } | Op::UncertaintyFinish { args, .. } => {
                bytemuck::bytes_of(args)
            }
            Op::GradnormSumsq { args, .. }
            | Op::GradnormWeights { args, .. }
            | Op::GradnormUpdate { args, .. } => bytemuck::bytes_of(args),
        };
        bytes.to_vec()
    }

    /// Workgroups to dispatch, as one flat count (the GPU folds it into a 2-D grid).
    pub fn workgroups(&self) -> u32 {
        match self {
            Op::DenseForward { args, .. } => args.batches * tiles(args.n, args.o),
            Op::DenseBackwardInput { args, .. } if args.x_bstride == 0 => tiles(args.n, args.i),
            Op::DenseBackwardInput { args, .. } => args.batches * tiles(args.n, args.i),
            Op::DenseBackwardWeight { args, .. } => args.batches * tiles(args.o, args.i + 1),
            Op::ActivationForward { args, .. } | Op::ActivationBackward { args, .. } => {
                args.len.div_ceil(WORKGROUP)
            }
            Op::ConcatColumns { args, .. } | Op::SplitColumns { args, .. } => {
                (args.rows * args.width).div_ceil(WORKGROUP)
            }
            Op::LossBce { args, .. }
            | Op::LossSoftmaxCe { args, .. }
            | Op::LossMse { args, .. }
            | Op::LossBceProb { args, .. }
            | Op::LossCeProb { args, .. } => args.rows.div_ceil(WORKGROUP),
            Op::EnsembleMeanForward { args, .. } => (args.rows * args.width).div_ceil(WORKGROUP),
            Op::EnsembleMeanBackward { args, .. }
            | Op::MembersToRows { args, .. }
            | Op::RowsToMembers { args, .. } => {
                (args.members * args.rows * args.width).div_ceil(WORKGROUP)
            }
            Op::MultitaskLossReduce { .. } => 1,
            Op::LossGradScale { args, .. } => args.len.div_ceil(WORKGROUP),
            Op::AdamUpdate { args, .. } => args.len.div_ceil(WORKGROUP),
            Op::SgdUpdate { args, .. } => args.len.div_ceil(WORKGROUP),
            Op::BatchGather { args, .. } => (args.batch * args.width).div_ceil(WORKGROUP),
            Op::StepAdvance { .. } => 1,
            Op::GateSoftmax { args, .. } | Op::GateSoftmaxBackward { args, .. } => {
                args.rows.div_ceil(WORKGROUP)
            }
            Op::GatedSumForward { args, .. } => (args.rows * args.width).div_ceil(WORKGROUP),
            Op::GatedSumBackwardExperts { args, .. } => {
                (args.experts * args.rows * args.width).div_ceil(WORKGROUP)
            }
            Op::GatedSumBackwardGate { args, .. } => (args.rows * args.experts).div_ceil(WORKGROUP),
            Op::UncertaintyWeights { args, .. } => args.tasks.div_ceil(64),
            Op::UncertaintyFinish { .. } => 1,
            Op::GradnormSumsq { args, .. } => args.tasks,
            Op::GradnormWeights { .. } | Op::GradnormUpdate { .. } => 1,
        }
    }

    /// Floating-point operations this op performs (for the benchmark's GFLOP/s).
    pub fn flops(&self) -> u64 {
        match self {
            Op::DenseForward { args, .. }
            | Op::DenseBackwardInput { args, .. }
            | Op::DenseBackwardWeight { args, .. } => {
                2 * args.batches as u64 * args.n as u64 * args.i as u64 * args.o as u64
            }
            _ => 0,
        }
    }
}
