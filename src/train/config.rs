//! How a model trains: epochs, batching, task weighting, the optimizer and
//! early stopping (a config's `[train]`, validated by `io::config`).

use serde::{Deserialize, Serialize};

/// `[train]`: epochs, batching, task weighting and the optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training rows (≥ 1).
    pub epochs: usize,
    /// Rows per optimizer step (≥ 1); the last batch of an epoch may be partial.
    pub batch_size: usize,
    /// Shuffle the training rows each epoch (seeded); `false` = rows in file order.
    pub shuffle: bool,
    /// Seed of every random choice of a run (shuffles, validation split).
    pub seed: u64,
    /// How the task losses are combined.
    pub weighting: Weighting,
    /// GradNorm's restoring-force α (only with `weighting = "gradnorm"`; `None` = 1.5, LibMTL's default).
    pub gradnorm_alpha: Option<f32>,
    /// `[train.optimizer]`.
    pub optimizer: OptimizerConfig,
    /// `[train.early_stopping]`: stop when the validation loss stops improving.
    pub early_stopping: Option<EarlyStopping>,
}

impl Default for TrainConfig {
    /// Keras's `fit` defaults: one epoch of shuffled batches of 32, Adam at 0.001.
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            weighting: Weighting::Fixed,
            gradnorm_alpha: None,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 0.001,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-7,
                style: AdamStyle::Keras,
                momentum: 0.0,
            },
            early_stopping: None,
        }
    }
}

/// `[train.early_stopping]`: after each epoch the validation loss (Σ λ_j L_j
/// over the validation rows) is compared with the best so far; training stops
/// once it has not improved by more than `min_delta` for `patience` epochs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping (≥ 1).
    pub patience: usize,
    /// The smallest decrease that counts as an improvement (≥ 0, default 0).
    pub min_delta: f32,
    /// Put the best epoch's weights back at the end (default true).
    pub restore_best: bool,
}

/// How the per-task losses L_j are combined into the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Σ λ_j L_j with the configured weights.
    #[default]
    Fixed,
    /// Learned homoscedastic uncertainty weights (Kendall et al. 2018).
    Uncertainty,
    /// Dynamic weight average (Liu et al. 2019).
    Dwa,
    /// GradNorm (Chen et al. 2018).
    GradNorm,
}

/// `[train.optimizer]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    /// Adam or SGD.
    pub kind: OptimizerKind,
    /// Learning rate (> 0).
    pub lr: f32,
    /// Adam β1 in [0, 1) (default 0.9).
    pub beta1: f32,
    /// Adam β2 in [0, 1) (default 0.999).
    pub beta2: f32,
    /// Adam ε (> 0, default 1e-7, Keras's default).
    pub eps: f32,
    /// Where Adam puts ε and the bias correction (see [`AdamStyle`]).
    pub style: AdamStyle,
    /// SGD momentum in [0, 1) (default 0).
    pub momentum: f32,
}

/// The optimizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (style per [`AdamStyle`]).
    Adam,
    /// SGD with optional momentum.
    Sgd,
}

/// The two published forms of the Adam update: Keras folds the bias
/// correction into the step size and adds ε to √v; PyTorch corrects m and v
/// and adds ε to √v̂. They differ by ε's scale, enough to tell them apart in
/// the golden traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdamStyle {
    /// `α = lr·√(1−β2ᵗ)/(1−β1ᵗ); p −= α·m/(√v + ε)`.
    #[default]
    Keras,
    /// `p −= lr·m̂/(√v̂ + ε)`.
    Torch,
}

/// `[data]`'s residency keys: whether the training rows stay on the device
/// for the whole run or are read again every epoch, shard by shard (see
/// `train::feed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataPlan {
    /// `stream = true | false | "auto"`.
    pub stream: StreamMode,
    /// `memory_budget`: the bytes the training rows may take in host memory
    /// (and, streamed, in device memory); `None`: half the memory available
    /// when the run starts.
    pub memory_budget: Option<u64>,
    /// `shard_rows`: rows per streamed shard (rounded down to whole batches);
    /// `None`: a quarter of the budget's worth.
    pub shard_rows: Option<usize>,
    /// Rows per device chunk; `None`: as many as one buffer binding holds.
    /// (Library only: tests force small chunks with it.)
    pub chunk_rows: Option<usize>,
}

/// The budget when `memory_budget` is not set and the available memory
/// cannot be read: 4 GiB.
const FALLBACK_BUDGET: u64 = 4 << 30;

impl DataPlan {
    /// `memory_budget`, or half the memory the system says is available
    /// (Linux), else 4 GiB.
    pub fn budget(&self) -> u64 {
        self.memory_budget.unwrap_or_else(|| {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(FALLBACK_BUDGET, |kib| kib * 1024 / 2)
        })
    }
}

/// When the training rows are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamMode {
    /// Only when they would not fit the memory budget.
    #[default]
    Auto,
    Always,
    Never,
}
