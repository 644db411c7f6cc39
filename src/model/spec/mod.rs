//! The model description: what a config's `[model]`, `[[tasks]]`,
//! `[[members]]` and `[ensemble]` say, validated and ready to build parameters
//! and a training graph from; saved as JSON in a model file's metadata
//! (`legacy.rs` reads the previous format), with the CSV preprocessing
//! (`preprocess.rs`).

pub mod check;
pub mod legacy;
pub mod preprocess;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The activation codes live with the kernels (the dense kernels read them).
pub use crate::kernel::Activation;

/// What a task predicts, which fixes its output activation and loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Logits, sigmoid, BCE with logits; `outputs > 1` is multi-label.
    Binary,
    /// Logits over `outputs` classes, softmax cross-entropy on class indices.
    Multiclass,
    /// Identity output, mean squared error.
    Regression,
}

/// One task: its head and its weight in the total loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub kind: TaskKind,
    /// λ_j in Σ λ_j L_j.
    pub weight: f32,
    /// Hidden sizes of the task's tower before its output layer.
    pub head: Vec<usize>,
    /// Output width: classes for multiclass, labels per row otherwise.
    pub outputs: usize,
}

impl TaskSpec {
    /// Width of the label tensor this task reads per row: 1 class index for
    /// multiclass, `outputs` values otherwise.
    pub fn label_width(&self) -> usize {
        match self.kind {
            TaskKind::Multiclass => 1,
            _ => self.outputs,
        }
    }
}

/// A multi-task model: its input width, its tasks (each with its head), and
/// the architecture between the input and the heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelSpec {
    /// Input features per row.
    pub inputs: usize,
    /// The activation after every hidden layer the model itself places: the
    /// trunk's, the experts' and the task heads' hidden layers (ensemble
    /// members carry their own).
    pub activation: Activation,
    pub tasks: Vec<TaskSpec>,
    pub architecture: Architecture,
    /// Learned uncertainty weights: one `weighting.log_var.{task}` [1] per task
    /// (set by `weighting = "uncertainty"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_vars: bool,
    /// GradNorm's weight logits: one `weighting.gradnorm.{task}` [1] per task
    /// (set by `weighting = "gradnorm"`); training graphs then also keep each
    /// task's gradient of the last shared representation apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradnorm: bool,
}

/// What sits between the input and the task heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Hard parameter sharing: shared dense layers, each followed by the
    /// model's activation, then one head per task.
    Shared { trunk: Vec<usize> },
    /// A multi-gate mixture of experts replacing the trunk.
    Mmoe(ExpertsSpec),
    /// Progressive layered extraction (PLE) replacing the trunk.
    Ple(PleSpec),
    /// An ensemble of members replacing the trunk and heads.
    Ensemble(EnsembleSpec),
}

impl Default for Architecture {
    /// Hard sharing without a trunk: each head reads the input.
    fn default() -> Self {
        Architecture::Shared { trunk: Vec::new() }
    }
}

impl ModelSpec {
    /// The shared trunk's layer sizes (empty for the other architectures).
    pub fn trunk(&self) -> &[usize] {
        match &self.architecture {
            Architecture::Shared { trunk } => trunk,
            _ => &[],
        }
    }

    /// The mixture of experts, for MMoE.
    pub fn experts(&self) -> Option<&ExpertsSpec> {
        match &self.architecture {
            Architecture::Mmoe(e) => Some(e),
            _ => None,
        }
    }

    /// The extraction levels, for PLE.
    pub fn ple(&self) -> Option<&PleSpec> {
        match &self.architecture {
            Architecture::Ple(p) => Some(p),
            _ => None,
        }
    }

    /// The members and their combination, for an ensemble.
    pub fn ensemble(&self) -> Option<&EnsembleSpec> {
        match &self.architecture {
            Architecture::Ensemble(e) => Some(e),
            _ => None,
        }
    }

    /// An ensemble's members (empty for the other architectures).
    pub fn members(&self) -> &[MemberSpec] {
        self.ensemble().map_or(&[], |e| &e.members)
    }
}

/// `experts = E, expert = [...]`: E experts of identical dense stacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpertsSpec {
    /// Number of experts E.
    pub count: usize,
    /// Hidden sizes of each expert's dense stack.
    pub layers: Vec<usize>,
}

/// `shared_experts = S, task_experts = K, expert = [H_1, …, H_L]`: PLE (Tang et
/// al. 2020) with L extraction levels (L = 1 is CGC). Level l has S shared and
/// K per-task experts, each one dense layer of H_l units; per task a gate over
/// its own and the shared experts, and below the last level a shared gate over all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PleSpec {
    /// Shared experts per level, S.
    pub shared: usize,
    /// Experts of each task per level, K.
    pub per_task: usize,
    /// Units of every expert at each level.
    pub levels: Vec<usize>,
}

/// How an ensemble combines its members' outputs, per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Every member output trained against the target (the seed's literal form).
    Concat,
    /// Average of the member outputs (soft voting).
    Mean,
    /// A trainable dense layer [C, M·C] per task over the concatenated member outputs.
    Stack,
    /// A per-task softmax over members computed from the input (attention over members).
    Gate,
}

/// One member of an ensemble: a full single model of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSpec {
    pub name: String,
    /// The member's dense layers, each followed by `activation`.
    pub trunk: Vec<usize>,
    pub activation: Activation,
    /// False = frozen: no gradient, no optimizer update.
    pub trainable: bool,
    /// Pre-trained weights to start from (a config's `weights`, resolved
    /// against its directory): loaded by `Model::from_spec`, not saved.
    #[serde(skip)]
    pub weights: Option<PathBuf>,
}

/// Members and how they are combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    pub combine: Combine,
    pub members: Vec<MemberSpec>,
    /// Each member trains on the distinct rows of its own seeded bootstrap
    /// sample (`combine = "concat"`: every member has its own loss).
    #[serde(default)]
    pub bagging: bool,
}
