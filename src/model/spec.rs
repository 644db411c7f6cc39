//! The model description: what a config's `[model]` and `[[tasks]]` say,
//! validated and ready to build parameters and a training graph from.

use serde::{Deserialize, Serialize};

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

/// A multi-task model. Without `experts` or `ensemble` it is hard parameter
/// sharing: `trunk`, then one head per task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelSpec {
    /// Input features per row.
    pub inputs: usize,
    /// Shared dense layers, each followed by `activation`.
    pub trunk: Vec<usize>,
    pub activation: Activation,
    pub tasks: Vec<TaskSpec>,
    /// A multi-gate mixture of experts replacing the trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experts: Option<ExpertsSpec>,
    /// Progressive layered extraction (PLE) replacing the trunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ple: Option<PleSpec>,
    /// Learned uncertainty weights: one `weighting.log_var.{task}` [1] per task
    /// (set by `weighting = "uncertainty"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_vars: bool,
    /// GradNorm's weight logits: one `weighting.gradnorm.{task}` [1] per task
    /// (set by `weighting = "gradnorm"`); training graphs then also keep each
    /// task's gradient of the last shared representation apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradnorm: bool,
    /// An ensemble of members replacing the trunk and heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleSpec>,
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

/// How an ensemble combines its members' outputs, per task (DESIGN §3).
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
