//! The one list of kernels. Each has one name in three places: the WGSL entry
//! point (`dense_forward` in `shaders/dense.wgsl`), this enum's variant
//! (`Kernel::DenseForward`) and its CPU twin (`cpu::dense::forward`).
//! Adding a kernel = one WGSL function, one variant here (with its bindings),
//! one CPU function, one parity case in `tests/parity.rs`.

/// How a kernel binds one storage buffer. Binding 0 is always the uniform
/// argument block; storage buffers follow at bindings 1, 2, … in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

use Access::{Read, ReadWrite};

/// Every compute kernel tandem dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    DenseForward,
    DenseBackwardInput,
    DenseBackwardWeight,
    ActivationForward,
    ActivationBackward,
    ConcatColumns,
    SplitColumns,
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
}

/// The WGSL sources, one per op family, embedded at compile time.
pub const SHADER_FILES: &[(&str, &str)] = &[
    ("dense.wgsl", include_str!("../shaders/dense.wgsl")),
    (
        "activation.wgsl",
        include_str!("../shaders/activation.wgsl"),
    ),
    ("concat.wgsl", include_str!("../shaders/concat.wgsl")),
    ("loss.wgsl", include_str!("../shaders/loss.wgsl")),
    ("multitask.wgsl", include_str!("../shaders/multitask.wgsl")),
    ("optimizer.wgsl", include_str!("../shaders/optimizer.wgsl")),
    ("gather.wgsl", include_str!("../shaders/gather.wgsl")),
    ("ensemble.wgsl", include_str!("../shaders/ensemble.wgsl")),
    ("gate.wgsl", include_str!("../shaders/gate.wgsl")),
    ("weighting.wgsl", include_str!("../shaders/weighting.wgsl")),
];

impl Kernel {
    /// All kernels, for registries and the coverage test.
    pub const ALL: &'static [Kernel] = &[
        Kernel::DenseForward,
        Kernel::DenseBackwardInput,
        Kernel::DenseBackwardWeight,
        Kernel::ActivationForward,
        Kernel::ActivationBackward,
        Kernel::ConcatColumns,
        Kernel::SplitColumns,
        Kernel::LossBce,
        Kernel::LossSoftmaxCe,
        Kernel::LossMse,
        Kernel::LossBceProb,
        Kernel::LossCeProb,
        Kernel::EnsembleMeanForward,
        Kernel::EnsembleMeanBackward,
        Kernel::MembersToRows,
        Kernel::RowsToMembers,
        Kernel::MultitaskLossReduce,
        Kernel::LossGradScale,
        Kernel::AdamUpdate,
        Kernel::SgdUpdate,
        Kernel::BatchGather,
        Kernel::StepAdvance,
        Kernel::GateSoftmax,
        Kernel::GateSoftmaxBackward,
        Kernel::GatedSumForward,
        Kernel::GatedSumBackwardExperts,
        Kernel::GatedSumBackwardGate,
        Kernel::UncertaintyWeights,
        Kernel::UncertaintyFinish,
        Kernel::GradnormSumsq,
        Kernel::GradnormWeights,
        Kernel::GradnormUpdate,
    ];

    /// The shader file holding this kernel's entry point.
    pub fn file(self) -> &'static str {
        match self {
            Kernel::DenseForward | Kernel::DenseBackwardInput | Kernel::DenseBackwardWeight => {
                "dense.wgsl"
            }
            Kernel::ActivationForward | Kernel::ActivationBackward => "activation.wgsl",
            Kernel::ConcatColumns | Kernel::SplitColumns => "concat.wgsl",
            Kernel::LossBce
            | Kernel::LossSoftmaxCe
            | Kernel::LossMse
            | Kernel::LossBceProb
            | Kernel::LossCeProb => "loss.wgsl",
            Kernel::EnsembleMeanForward
            | Kernel::EnsembleMeanBackward
            | Kernel::MembersToRows
            | Kernel::RowsToMembers => "ensemble.wgsl",
            Kernel::MultitaskLossReduce | Kernel::LossGradScale => "multitask.wgsl",
            Kernel::AdamUpdate | Kernel::SgdUpdate => "optimizer.wgsl",
            Kernel::BatchGather | Kernel::StepAdvance => "gather.wgsl",
            Kernel::GateSoftmax
            | Kernel::GateSoftmaxBackward
            | Kernel::GatedSumForward
            | Kernel::GatedSumBackwardExperts
            | Kernel::GatedSumBackwardGate => "gate.wgsl",
            Kernel::UncertaintyWeights
            | Kernel::UncertaintyFinish
            | Kernel::GradnormSumsq
            | Kernel::GradnormWeights
            | Kernel::GradnormUpdate => "weighting.wgsl",
        }
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

    /// The WGSL entry point.
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::DenseForward => "dense_forward",
            Kernel::DenseBackwardInput => "dense_backward_input",
            Kernel::DenseBackwardWeight => "dense_backward_weight",
            Kernel::ActivationForward => "activation_forward",
            Kernel::ActivationBackward => "activation_backward",
            Kernel::ConcatColumns => "concat_columns",
            Kernel::SplitColumns => "split_columns",
            Kernel::LossBce => "loss_bce",
            Kernel::LossSoftmaxCe => "loss_softmax_ce",
            Kernel::LossMse => "loss_mse",
            Kernel::LossBceProb => "loss_bce_prob",
            Kernel::LossCeProb => "loss_ce_prob",
            Kernel::EnsembleMeanForward => "ensemble_mean_forward",
            Kernel::EnsembleMeanBackward => "ensemble_mean_backward",
            Kernel::MembersToRows => "members_to_rows",
            Kernel::RowsToMembers => "rows_to_members",
            Kernel::MultitaskLossReduce => "multitask_loss_reduce",
            Kernel::LossGradScale => "loss_grad_scale",
            Kernel::AdamUpdate => "adam_update",
            Kernel::SgdUpdate => "sgd_update",
            Kernel::BatchGather => "batch_gather",
            Kernel::StepAdvance => "step_advance",
            Kernel::GateSoftmax => "gate_softmax",
            Kernel::GateSoftmaxBackward => "gate_softmax_backward",
            Kernel::GatedSumForward => "gated_sum_forward",
            Kernel::GatedSumBackwardExperts => "gated_sum_backward_experts",
            Kernel::GatedSumBackwardGate => "gated_sum_backward_gate",
            Kernel::UncertaintyWeights => "uncertainty_weights",
            Kernel::UncertaintyFinish => "uncertainty_finish",
            Kernel::GradnormSumsq => "gradnorm_sumsq",
            Kernel::GradnormWeights => "gradnorm_weights",
            Kernel::GradnormUpdate => "gradnorm_update",
        }
    }

    /// Storage bindings after the uniform block, in binding order.
    pub fn bindings(self) -> &'static [Access] {
        match self {
            Kernel::DenseForward => &[Read, Read, ReadWrite],
            Kernel::DenseBackwardInput | Kernel::DenseBackwardWeight => {
                &[Read, Read, Read, ReadWrite]
            }
            Kernel::ActivationForward => &[Read, ReadWrite],
            Kernel::ActivationBackward => &[Read, Read, ReadWrite],
            Kernel::ConcatColumns | Kernel::SplitColumns => &[Read, ReadWrite],
            Kernel::EnsembleMeanForward
            | Kernel::EnsembleMeanBackward
            | Kernel::MembersToRows
            | Kernel::RowsToMembers => &[Read, ReadWrite],
            Kernel::LossBce
            | Kernel::LossSoftmaxCe
            | Kernel::LossMse
            | Kernel::LossBceProb
            | Kernel::LossCeProb => &[Read, Read, ReadWrite, ReadWrite],
            Kernel::MultitaskLossReduce => &[Read, Read, Read, ReadWrite, ReadWrite],
            Kernel::LossGradScale => &[Read, ReadWrite],
            Kernel::AdamUpdate => &[Read, Read, ReadWrite, ReadWrite, ReadWrite],
            Kernel::SgdUpdate => &[Read, ReadWrite, ReadWrite],
            Kernel::BatchGather => &[Read, Read, Read, ReadWrite],
            Kernel::StepAdvance => &[ReadWrite],
            Kernel::GateSoftmax => &[Read, ReadWrite],
            Kernel::GateSoftmaxBackward
            | Kernel::GatedSumForward
            | Kernel::GatedSumBackwardExperts
            | Kernel::GatedSumBackwardGate => &[Read, Read, ReadWrite],
            Kernel::UncertaintyWeights => &[Read, ReadWrite],
            Kernel::UncertaintyFinish => &[Read, Read, ReadWrite, ReadWrite, ReadWrite],
            Kernel::GradnormSumsq | Kernel::GradnormWeights => &[Read, ReadWrite],
            Kernel::GradnormUpdate => &[Read, Read, Read, Read, ReadWrite],
        }
    }
}
