//! The one table of kernels: for each, its WGSL file and entry point, its
//! storage bindings and the size of its argument block. A kernel's name is the
//! same in three places: the WGSL entry point (`dense_forward` in
//! `shaders/dense.wgsl`), the `Kernel` variant (`Kernel::DenseForward`) and
//! its CPU twin (`cpu::dense::forward`).
//!
//! Adding a kernel = one WGSL entry point, one `Kernel` variant with its row in
//! `KERNELS`, one `Op` variant (src/ops.rs), one CPU function (src/cpu/: a
//! plain loop, which is its own reference, or a fast path plus its plain
//! reference in src/cpu/reference/), one parity case (tests/parity.rs). The
//! tests catch each omission: tests/shaders.rs checks every row against the
//! WGSL by reflection and finds entry points without a row, `cpu::execute`
//! does not compile without an arm for the op, and tests/parity.rs fails for
//! a kernel without a case.

mod activation;
pub mod args;

pub use activation::Activation;

use args::*;
use std::mem::size_of;

/// How a kernel binds one storage buffer. Binding 0 is always the uniform
/// argument block; storage buffers follow at bindings 1, 2, … in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// Every compute kernel tandem dispatches, in the order of `KERNELS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    DenseForward,
    DenseBackwardInput,
    DenseBackwardWeight,
    LossBce,
    LossSoftmaxCe,
    LossMse,
    LossBceProb,
    LossCeProb,
    EnsembleMeanForward,
    EnsembleMeanBackward,
    MembersToRows,
    RowsToMembers,
    MultitaskLossReduce,
    LossGradScale,
    AdamUpdate,
    SgdUpdate,
    BatchGather,
    StepAdvance,
    GateSoftmax,
    GateSoftmaxBackward,
    GatedSumForward,
    GatedSumBackwardExperts,
    GatedSumBackwardGate,
    UncertaintyWeights,
    UncertaintyFinish,
    GradnormSumsq,
    GradnormWeights,
    GradnormUpdate,
    NonfiniteCheck,
}

/// The facts of one kernel.
#[derive(Debug, Clone, Copy)]
pub struct KernelInfo {
    pub kernel: Kernel,
    /// File under `shaders/` holding the entry point.
    pub file: &'static str,
    /// WGSL entry point.
    pub entry: &'static str,
    /// Storage bindings 1, 2, … in order.
    pub bindings: &'static [Access],
    /// Bytes of the argument block at binding 0 (the size of its `args` struct).
    pub uniform_size: usize,
}

const fn row(
    kernel: Kernel,
    file: &'static str,
    entry: &'static str,
    bindings: &'static [Access],
    uniform_size: usize,
) -> KernelInfo {
    KernelInfo {
        kernel,
        file,
        entry,
        bindings,
        uniform_size,
    }
}

use Access::Read as R;
use Access::ReadWrite as W;
use Kernel::*;

/// Every kernel's facts, one row each, in the order of `Kernel`.
/// Bindings: R = `var<storage, read>`, W = `var<storage, read_write>`.
#[rustfmt::skip]
pub const KERNELS: &[KernelInfo] = &[
    row(DenseForward,            "dense.wgsl",     "dense_forward",              &[R, R, W],          size_of::<DenseArgs>()),
    row(DenseBackwardInput,      "dense.wgsl",     "dense_backward_input",       &[R, R, R, W],       size_of::<DenseArgs>()),
    row(DenseBackwardWeight,     "dense.wgsl",     "dense_backward_weight",      &[R, R, R, W],       size_of::<DenseArgs>()),
    row(LossBce,                 "loss.wgsl",      "loss_bce",                   &[R, R, W, W],       size_of::<LossArgs>()),
    row(LossSoftmaxCe,           "loss.wgsl",      "loss_softmax_ce",            &[R, R, W, W],       size_of::<LossArgs>()),
    row(LossMse,                 "loss.wgsl",      "loss_mse",                   &[R, R, W, W],       size_of::<LossArgs>()),
    row(LossBceProb,             "loss.wgsl",      "loss_bce_prob",              &[R, R, W, W],       size_of::<LossArgs>()),
    row(LossCeProb,              "loss.wgsl",      "loss_ce_prob",               &[R, R, W, W],       size_of::<LossArgs>()),
    row(EnsembleMeanForward,     "ensemble.wgsl",  "ensemble_mean_forward",      &[R, W],             size_of::<EnsembleArgs>()),
    row(EnsembleMeanBackward,    "ensemble.wgsl",  "ensemble_mean_backward",     &[R, W],             size_of::<EnsembleArgs>()),
    row(MembersToRows,           "ensemble.wgsl",  "members_to_rows",            &[R, W],             size_of::<EnsembleArgs>()),
    row(RowsToMembers,           "ensemble.wgsl",  "rows_to_members",            &[R, W],             size_of::<EnsembleArgs>()),
    row(MultitaskLossReduce,     "multitask.wgsl", "multitask_loss_reduce",      &[R, R, R, W, W],    size_of::<ReduceArgs>()),
    row(LossGradScale,           "multitask.wgsl", "loss_grad_scale",            &[R, W],             size_of::<ScaleArgs>()),
    row(AdamUpdate,              "optimizer.wgsl", "adam_update",                &[R, R, R, W, W, W], size_of::<AdamArgs>()),
    row(SgdUpdate,               "optimizer.wgsl", "sgd_update",                 &[R, R, W, W],       size_of::<SgdArgs>()),
    row(BatchGather,             "gather.wgsl",    "batch_gather",               &[R, R, R, W],       size_of::<GatherArgs>()),
    row(StepAdvance,             "gather.wgsl",    "step_advance",               &[W],                size_of::<StepArgs>()),
    row(GateSoftmax,             "gate.wgsl",      "gate_softmax",               &[R, W],             size_of::<GateArgs>()),
    row(GateSoftmaxBackward,     "gate.wgsl",      "gate_softmax_backward",      &[R, R, W],          size_of::<GateArgs>()),
    row(GatedSumForward,         "gate.wgsl",      "gated_sum_forward",          &[R, R, W],          size_of::<GateArgs>()),
    row(GatedSumBackwardExperts, "gate.wgsl",      "gated_sum_backward_experts", &[R, R, W],          size_of::<GateArgs>()),
    row(GatedSumBackwardGate,    "gate.wgsl",      "gated_sum_backward_gate",    &[R, R, W],          size_of::<GateArgs>()),
    row(UncertaintyWeights,      "weighting.wgsl", "uncertainty_weights",        &[R, W],             size_of::<WeightingArgs>()),
    row(UncertaintyFinish,       "weighting.wgsl", "uncertainty_finish",         &[R, R, W, W, W],    size_of::<WeightingArgs>()),
    row(GradnormSumsq,           "weighting.wgsl", "gradnorm_sumsq",             &[R, W],             size_of::<GradnormArgs>()),
    row(GradnormWeights,         "weighting.wgsl", "gradnorm_weights",           &[R, W],             size_of::<GradnormArgs>()),
    row(GradnormUpdate,          "weighting.wgsl", "gradnorm_update",            &[R, R, R, R, W],    size_of::<GradnormArgs>()),
    row(NonfiniteCheck,          "guard.wgsl",     "nonfinite_check",            &[R, R, W],          size_of::<GuardArgs>()),
];

// `Kernel::info` indexes `KERNELS` by variant: the rows must follow the enum.
const _: () = {
    let mut k = 0;
    while k < KERNELS.len() {
        assert!(
            KERNELS[k].kernel as usize == k,
            "KERNELS rows must be in the order of the `Kernel` variants"
        );
        k += 1;
    }
};

/// The WGSL sources, one per op family, embedded at compile time.
pub const SHADER_FILES: &[(&str, &str)] = &[
    ("dense.wgsl", include_str!("../../shaders/dense.wgsl")),
    ("loss.wgsl", include_str!("../../shaders/loss.wgsl")),
    (
        "multitask.wgsl",
        include_str!("../../shaders/multitask.wgsl"),
    ),
    (
        "optimizer.wgsl",
        include_str!("../../shaders/optimizer.wgsl"),
    ),
    ("gather.wgsl", include_str!("../../shaders/gather.wgsl")),
    ("ensemble.wgsl", include_str!("../../shaders/ensemble.wgsl")),
    ("gate.wgsl", include_str!("../../shaders/gate.wgsl")),
    (
        "weighting.wgsl",
        include_str!("../../shaders/weighting.wgsl"),
    ),
    ("guard.wgsl", include_str!("../../shaders/guard.wgsl")),
];

impl Kernel {
    /// This kernel's row of `KERNELS`.
    pub fn info(self) -> &'static KernelInfo {
        match KERNELS.get(self as usize) {
            Some(row) => row,
            None => panic!("{self:?} has no row in kernel::KERNELS"),
        }
    }

    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        self.info().entry
    }

    /// The shader file holding the entry point.
    pub fn file(self) -> &'static str {
        self.info().file
    }

    /// Storage bindings after the uniform block, in binding order.
    pub fn bindings(self) -> &'static [Access] {
        self.info().bindings
    }

    /// The WGSL source of this kernel's file.
    pub fn source(self) -> &'static str {
        let file = self.file();
        SHADER_FILES
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, src)| *src)
            .expect("every kernel's file is in SHADER_FILES")
    }
}
