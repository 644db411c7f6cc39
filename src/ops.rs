//! One kernel invocation with its arguments and buffers: the unit both
//! backends execute. A training step is a `Vec<Op>` built once from the model
//! (like llm.c's sequence of `_forward`/`_backward` calls); the CPU backend
//! interprets it, the GPU backend turns it into pipelines and bind groups once
//! and replays them every step.
//!
//! The argument structs (`DenseArgs`, `LossArgs`, …) live with the kernel
//! table in `kernel::args` and are re-exported here.

pub use crate::kernel::args::*;
use crate::kernel::Kernel;

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
    /// A masked per-row loss and its raw gradient: z [N, C], label [N, C]
    /// (class losses: [N, 1] class index), NaN = missing; dz [N, C];
    /// stats [N, 2] = (loss sum, valid count). `kind` picks the kernel.
    Loss {
        kind: LossKind,
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
        /// Per step of the epoch, the bias-corrected factors [steps, 2] (read at counters[0]).
        factors: BufId,
        params: BufId,
        m: BufId,
        v: BufId,
    },
    SgdUpdate {
        args: SgdArgs,
        grads: BufId,
        /// The step's counters: the update is skipped once the guard at [2] is set.
        counters: BufId,
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
    /// The non-finite guard: records in counters[2..] the first step whose
    /// L_j, objective or gradient is not finite (the optimizers then skip).
    NonfiniteCheck {
        args: GuardArgs,
        out: BufId,
        grads: BufId,
        counters: BufId,
    },
}

/// The loss an `Op::Loss` computes; each has its own kernel in shaders/loss.wgsl.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// BCE with logits, element-wise (binary and multi-label tasks).
    Bce,
    /// Softmax cross-entropy on logits against class indices.
    SoftmaxCe,
    /// Squared error, element-wise.
    Mse,
    /// BCE on probabilities (an ensemble's averaged sigmoid outputs).
    BceProb,
    /// Cross-entropy on class probabilities (an ensemble's averaged softmax outputs).
    CeProb,
}

impl LossKind {
    /// The kernel computing this loss.
    pub fn kernel(self) -> Kernel {
        match self {
            LossKind::Bce => Kernel::LossBce,
            LossKind::SoftmaxCe => Kernel::LossSoftmaxCe,
            LossKind::Mse => Kernel::LossMse,
            LossKind::BceProb => Kernel::LossBceProb,
            LossKind::CeProb => Kernel::LossCeProb,
        }
    }
}

/// The argument block of `step_advance`, which reads none.
const NO_ARGS: StepArgs = StepArgs { _pad: [0; 4] };

fn tiles(rows: u32, cols: u32) -> u32 {
    rows.div_ceil(DENSE_TILE) * cols.div_ceil(DENSE_TILE)
}

/// Workgroups of a 1-D kernel over `len` elements.
fn flat(len: u32) -> u32 {
    len.div_ceil(WORKGROUP)
}

impl Op {
    /// The kernel this op runs.
    pub fn kernel(&self) -> Kernel {
        match self {
            Op::DenseForward { .. } => Kernel::DenseForward,
            Op::DenseBackwardInput { .. } => Kernel::DenseBackwardInput,
            Op::DenseBackwardWeight { .. } => Kernel::DenseBackwardWeight,
            Op::Loss { kind, .. } => kind.kernel(),
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
            Op::NonfiniteCheck { .. } => Kernel::NonfiniteCheck,
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
            Op::Loss {
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
                factors,
                params,
                m,
                v,
                ..
            } => vec![grads, counters, factors, params, m, v],
            Op::SgdUpdate {
                grads,
                counters,
                params,
                velocity,
                ..
            } => vec![grads, counters, params, velocity],
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
            Op::NonfiniteCheck {
                out,
                grads,
                counters,
                ..
            } => vec![out, grads, counters],
        }
    }

    /// The uniform block's bytes (binding 0).
    pub fn uniform(&self) -> Vec<u8> {
        use bytemuck::bytes_of;
        let bytes: &[u8] = match self {
            Op::DenseForward { args, .. }
            | Op::DenseBackwardInput { args, .. }
            | Op::DenseBackwardWeight { args, .. } => bytes_of(args),
            Op::Loss { args, .. } => bytes_of(args),
            Op::EnsembleMeanForward { args, .. }
            | Op::EnsembleMeanBackward { args, .. }
            | Op::MembersToRows { args, .. }
            | Op::RowsToMembers { args, .. } => bytes_of(args),
            Op::MultitaskLossReduce { args, .. } => bytes_of(args),
            Op::LossGradScale { args, .. } => bytes_of(args),
            Op::AdamUpdate { args, .. } => bytes_of(args),
            Op::SgdUpdate { args, .. } => bytes_of(args),
            Op::BatchGather { args, .. } => bytes_of(args),
            Op::StepAdvance { .. } => bytes_of(&NO_ARGS),
            Op::GateSoftmax { args, .. }
            | Op::GateSoftmaxBackward { args, .. }
            | Op::GatedSumForward { args, .. }
            | Op::GatedSumBackwardExperts { args, .. }
            | Op::GatedSumBackwardGate { args, .. } => bytes_of(args),
            Op::UncertaintyWeights { args, .. } | Op::UncertaintyFinish { args, .. } => {
                bytes_of(args)
            }
            Op::GradnormSumsq { args, .. }
            | Op::GradnormWeights { args, .. }
            | Op::GradnormUpdate { args, .. } => bytes_of(args),
            Op::NonfiniteCheck { args, .. } => bytes_of(args),
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
            Op::Loss { args, .. } => flat(args.rows),
            Op::EnsembleMeanForward { args, .. } => flat(args.rows * args.width),
            Op::EnsembleMeanBackward { args, .. }
            | Op::MembersToRows { args, .. }
            | Op::RowsToMembers { args, .. } => flat(args.members * args.rows * args.width),
            Op::MultitaskLossReduce { .. } => 1,
            Op::LossGradScale { args, .. } => flat(args.len),
            Op::AdamUpdate { args, .. } => flat(args.len),
            Op::SgdUpdate { args, .. } => flat(args.len),
            Op::BatchGather { args, .. } => flat(args.batch * args.width),
            Op::StepAdvance { .. } => 1,
            Op::GateSoftmax { args, .. } | Op::GateSoftmaxBackward { args, .. } => flat(args.rows),
            Op::GatedSumForward { args, .. } => flat(args.rows * args.width),
            Op::GatedSumBackwardExperts { args, .. } => flat(args.experts * args.rows * args.width),
            Op::GatedSumBackwardGate { args, .. } => flat(args.rows * args.experts),
            Op::UncertaintyWeights { args, .. } => args.tasks.div_ceil(64),
            Op::UncertaintyFinish { .. } => 1,
            Op::GradnormSumsq { args, .. } => args.tasks,
            Op::GradnormWeights { .. } | Op::GradnormUpdate { .. } => 1,
            Op::NonfiniteCheck { args, .. } => flat(args.len.max(1)),
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
