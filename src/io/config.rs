//! The run config (TOML, DESIGN.md §3): model, tasks, training, data, ensemble members.
//!
//! Parsing happens in two steps. Raw serde structs with `deny_unknown_fields` mirror the file
//! exactly, so a misspelt key, a wrong type or a syntax error is reported by `toml` with a byte
//! span, which [`Config::parse`] turns into "line N" and the key's dotted path. The raw structs are
//! then validated and turned into the typed [`Config`], whose paths are all resolved relative to
//! the config file's directory. Validation errors on a value also name its line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::model::spec::{Activation, ModelSpec, TaskKind, TaskSpec};

// ---------------------------------------------------------------------------------------------
// Typed config
// ---------------------------------------------------------------------------------------------

/// A validated config file. `model.inputs` is 0 while the data has not been read yet and the
/// config did not say it (`io::dataset::load_split` fills it in); a multiclass task's `outputs`
/// is 0 while it is to be inferred from a CSV column.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file as given to [`Config::load`] / [`Config::parse`].
    pub path: PathBuf,
    /// The directory holding the config; every relative path in it is joined to this.
    pub dir: PathBuf,
    /// `[model]` + `[[tasks]]`. For an ensemble `trunk` is empty (members carry their own);
    /// for a mixture of experts `trunk` is empty and [`Config::experts`] describes the experts.
    pub model: ModelSpec,
    /// `[train]` and `[train.optimizer]`.
    pub train: TrainConfig,
    /// `[data]`.
    pub data: DataConfig,
    /// `[[members]]` of an ensemble, in file order (empty for a single model).
    pub members: Vec<MemberConfig>,
    /// `[ensemble]`: present exactly when `members` is non-empty.
    pub ensemble: Option<EnsembleConfig>,
    /// `experts = E, expert = [...]` in `[model]`: a multi-gate mixture of experts.
    pub experts: Option<ExpertsConfig>,
}

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
    /// Where Adam puts ε and the bias correction (DESIGN.md §2).
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

/// The two published forms of the Adam update (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdamStyle {
    /// `α = lr·√(1−β2ᵗ)/(1−β1ᵗ); p −= α·m/(√v + ε)`.
    #[default]
    Keras,
    /// `p −= lr·m̂/(√v̂ + ε)`.
    Torch,
}

/// `[data]` with every path resolved relative to the config's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// The CSV file (`path = ...`); `None` for npy data.
    pub path: Option<PathBuf>,
    /// Where the feature matrix comes from.
    pub features: FeatureSource,
    /// Seeded hold-out fraction in [0, 1).
    pub validation: f32,
    /// One entry per task, in `model.tasks` order: (task name, where its labels are).
    pub targets: Vec<(String, TargetSource)>,
}

/// Where the feature matrix comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSource {
    /// An npy file of shape [N, inputs] (or [N]).
    Npy(PathBuf),
    /// Columns of the CSV file [`DataConfig::path`], in this order.
    Columns(Vec<String>),
}

/// Where one task's labels come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSource {
    /// An npy file of shape [N, label_width] (or [N]); NaN = missing label.
    Npy(PathBuf),
    /// A column of the CSV file [`DataConfig::path`]; `NA` or empty = missing label.
    Column(String),
}

/// One `[[members]]` entry of an ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberConfig {
    /// Member name (letters, digits, '_' and '-'); tensors live under `members.{name}.`.
    pub name: String,
    /// The member's dense layers.
    pub trunk: Vec<usize>,
    /// Activation after each trunk layer.
    pub activation: Activation,
    /// Pre-trained weights (resolved path), if any.
    pub weights: Option<PathBuf>,
    /// `false` = frozen during training.
    pub trainable: bool,
}

/// `[ensemble]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnsembleConfig {
    /// How member outputs are combined per task.
    pub combine: Combine,
    /// Each member trains on its own seeded bootstrap sample (concat only).
    pub bagging: bool,
}

pub use crate::model::spec::Combine;

/// `experts = E` and `expert = [...]` in `[model]`: E experts of identical dense layers, with
/// `model.activation` after each, and one softmax gate per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertsConfig {
    /// Number of experts E (≥ 1).
    pub count: usize,
    /// Hidden sizes of each expert (non-empty).
    pub layers: Vec<usize>,
}

// ---------------------------------------------------------------------------------------------
// Raw serde mirror of the file
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    model: RawModel,
    #[serde(default)]
    tasks: Vec<RawTask>,
    train: RawTrain,
    data: RawData,
    #[serde(default)]
    members: Vec<RawMember>,
    ensemble: Option<Spanned<RawEnsemble>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawModel {
    inputs: Option<Spanned<usize>>,
    trunk: Option<Spanned<Vec<usize>>>,
    activation: Option<Activation>,
    experts: Option<Spanned<usize>>,
    expert: Option<Spanned<Vec<usize>>>,
    shared_experts: Option<Spanned<usize>>,
    task_experts: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Spanned<String>,
    kind: TaskKind,
    weight: Option<Spanned<f32>>,
    head: Option<Spanned<Vec<usize>>>,
    outputs: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrain {
    epochs: Spanned<usize>,
    batch_size: Spanned<usize>,
    #[serde(default = "default_true")]
    shuffle: bool,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    weighting: Weighting,
    gradnorm_alpha: Option<Spanned<f32>>,
    /// Absent: Adam with Keras' defaults.
    #[serde(default)]
    optimizer: RawOptimizer,
    early_stopping: Option<Spanned<RawEarlyStopping>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarlyStopping {
    patience: Spanned<usize>,
    min_delta: Option<Spanned<f32>>,
    #[serde(default = "default_true")]
    restore_best: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOptimizer {
    kind: Option<Spanned<OptimizerKind>>,
    /// Absent: Keras' default for the kind (Adam 0.001, SGD 0.01).
    lr: Option<Spanned<f32>>,
    beta1: Option<Spanned<f32>>,
    beta2: Option<Spanned<f32>>,
    eps: Option<Spanned<f32>>,
    style: Option<Spanned<AdamStyle>>,
    momentum: Option<Spanned<f32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    path: Option<Spanned<String>>,
    features: Spanned<RawFeatures>,
    validation: Option<Spanned<f32>>,
    #[serde(default)]
    targets: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `features = "x.npy"` or `features = ["col", ...]`.
enum RawFeatures {
    File(String),
    Columns(Vec<String>),
}

impl<'de> Deserialize<'de> for RawFeatures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(FeaturesVisitor)
    }
}

/// Reads a string or a list of strings, with an error that says which two forms are accepted.
struct FeaturesVisitor;

impl<'de> serde::de::Visitor<'de> for FeaturesVisitor {
    type Value = RawFeatures;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an npy file name (\"x.npy\") or a list of CSV column names")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawFeatures, E> {
        Ok(RawFeatures::File(v.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<RawFeatures, A::Error> {
        let mut columns = Vec::new();
        while let Some(c) = seq.next_element::<String>()? {
            columns.push(c);
        }
        Ok(RawFeatures::Columns(columns))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: Spanned<String>,
    trunk: Spanned<Vec<usize>>,
    activation: Activation,
    weights: Option<String>,
    #[serde(default = "default_true")]
    trainable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnsemble {
    combine: Combine,
    #[serde(default)]
    bagging: bool,
}

fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------------------------------------
// Loading and error positions
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and validates the config at `path`. A missing file is [`Error::Io`]; anything wrong
    /// inside it is [`Error::Config`] naming the key and its line.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(&text, path)
    }

    /// Parses and validates config `text`; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let src = Source { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let csv = raw.data.path.is_some();
        let tasks = tasks_from(&src, &raw.tasks, csv)?;
        let members = members_from(&src, &raw.members, &dir)?;
        let ensemble = ensemble_from(&src, raw.ensemble.as_ref(), &members)?;
        let ple = ple_from(&src, &raw.model)?;
        let experts = if ple.is_some() {
            None
        } else {
            experts_from(&src, &raw.model)?
        };
        let mut model = model_from(
            &src,
            &raw.model,
            tasks,
            !members.is_empty(),
            experts.is_some() || ple.is_some(),
        )?;
        model.ple = ple;
        model.experts = experts.as_ref().map(|e| crate::model::spec::ExpertsSpec {
            count: e.count,
            layers: e.layers.clone(),
        });
        model.ensemble = ensemble.map(|e| crate::model::spec::EnsembleSpec {
            combine: e.combine,
            bagging: e.bagging,
            members: members
                .iter()
                .map(|m| crate::model::spec::MemberSpec {
                    name: m.name.clone(),
                    trunk: m.trunk.clone(),
                    activation: m.activation,
                    trainable: m.trainable,
                })
                .collect(),
        });
        let train = train_from(&src, &raw.train)?;
        model.log_vars = train.weighting == Weighting::Uncertainty;
        model.gradnorm = train.weighting == Weighting::GradNorm;
        let data = data_from(&src, &raw.data, &model.tasks, &dir)?;
        if let Some(es) = &raw.train.early_stopping {
            if data.validation == 0.0 {
                return Err(src.err(
                    es.span(),
                    "train.early_stopping watches the validation loss: set data.validation > 0",
                ));
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            dir,
            model,
            train,
            data,
            members,
            ensemble,
            experts,
        })
    }

    /// Resolves `p` (as written in the config) against the config's directory.
    pub fn resolve(&self, p: impl AsRef<Path>) -> PathBuf {
        self.dir.join(p)
    }
}

/// The config text and its path, to turn byte spans into "line N" in errors.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    /// 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A config error about the value at `span`: "`message` at line N".
    fn err(&self, span: Range<usize>, message: impl std::fmt::Display) -> Error {
        Error::config(
            self.path,
            format!("{message} at line {}", self.line(span.start)),
        )
    }

    /// A config error with no position (something is absent).
    fn err_plain(&self, message: impl Into<String>) -> Error {
        Error::config(self.path, message)
    }

    /// Converts a `toml` error (syntax, unknown key, wrong type, missing key) into
    /// "<toml's message> (in `a.b`) at line N: `<source line>`".
    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let mut bare = e.clone();
        bare.set_input(None);
        // Without its input, toml renders "<message>\nin `a.b`\n" where it knows the key path.
        let rendered = bare.to_string();
        let key = rendered
            .lines()
            .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
            .map(|k| format!(" (in `{k}`)"))
            .unwrap_or_default();
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let line = self.line(span.start);
                let shown = self.text.lines().nth(line - 1).unwrap_or("").trim();
                Error::config(
                    self.path,
                    format!("{message}{key} at line {line}: `{shown}`"),
                )
            }
            None => Error::config(self.path, format!("{message}{key}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation, one section per function
// ---------------------------------------------------------------------------------------------

/// Letters, digits, '_' and '-', non-empty.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a name's characters and that it was not seen before.
fn check_name(
    src: &Source,
    what: &str,
    name: &Spanned<String>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    if !valid_name(name.get_ref()) {
        return Err(src.err(
            name.span(),
            format!(
                "{what} name `{}` may only hold letters, digits, '_' and '-'",
                name.get_ref()
            ),
        ));
    }
    if !seen.insert(name.get_ref().clone()) {
        return Err(src.err(
            name.span(),
            format!("{what} name `{}` is used twice", name.get_ref()),
        ));
    }
    Ok(())
}

/// Checks every layer size of `sizes` (written as `key`) is > 0.
fn check_sizes(src: &Source, key: &str, sizes: &Spanned<Vec<usize>>) -> Result<()> {
    if sizes.get_ref().contains(&0) {
        return Err(src.err(
            sizes.span(),
            format!(
                "{key} = {:?}: every layer size must be > 0",
                sizes.get_ref()
            ),
        ));
    }
    Ok(())
}

/// Checks `lo ≤ x < hi` (or `lo < x` when `strict_lo`) and finiteness.
fn check_range(
    src: &Source,
    key: &str,
    x: &Spanned<f32>,
    lo: f32,
    strict_lo: bool,
    hi: f32,
) -> Result<f32> {
    let v = *x.get_ref();
    let low_ok = if strict_lo { v > lo } else { v >= lo };
    if !v.is_finite() || !low_ok || v >= hi {
        let lo_s = if strict_lo { "(" } else { "[" };
        return Err(src.err(
            x.span(),
            format!("{key} = {v} must be in {lo_s}{lo}, {hi})"),
        ));
    }
    Ok(v)
}

/// `[[tasks]]` → task specs. `csv`: labels come from CSV columns (multiclass `outputs` may be
/// inferred, stored as 0; binary/regression read one column so `outputs` must be 1).
fn tasks_from(src: &Source, raw: &[RawTask], csv: bool) -> Result<Vec<TaskSpec>> {
    if raw.is_empty() {
        return Err(src.err_plain("no [[tasks]]: a model needs at least one task"));
    }
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|t| {
            check_name(src, "task", &t.name, &mut seen)?;
            task_from(src, t, csv)
        })
        .collect()
}

/// One `[[tasks]]` entry → a [`TaskSpec`].
fn task_from(src: &Source, t: &RawTask, csv: bool) -> Result<TaskSpec> {
    let name = t.name.get_ref().clone();
    let weight = match &t.weight {
        Some(w) => check_range(
            src,
            &format!("tasks.{name}.weight"),
            w,
            0.0,
            false,
            f32::INFINITY,
        )?,
        None => 1.0,
    };
    let head = match &t.head {
        Some(h) => {
            check_sizes(src, &format!("tasks.{name}.head"), h)?;
            h.get_ref().clone()
        }
        None => Vec::new(),
    };
    let outputs = task_outputs(src, t, csv)?;
    Ok(TaskSpec {
        name,
        kind: t.kind,
        weight,
        head,
        outputs,
    })
}

/// A task's `outputs`: given, defaulted (1) or 0 = inferred from a CSV column (multiclass).
fn task_outputs(src: &Source, t: &RawTask, csv: bool) -> Result<usize> {
    let name = t.name.get_ref();
    match (t.kind, &t.outputs) {
        (TaskKind::Multiclass, Some(o)) if *o.get_ref() < 2 => Err(src.err(
            o.span(),
            format!("task `{name}`: a multiclass task needs outputs ≥ 2 classes, found {o}"),
        )),
        (TaskKind::Multiclass, Some(o)) => Ok(*o.get_ref()),
        (TaskKind::Multiclass, None) if csv => Ok(0),
        (TaskKind::Multiclass, None) => Err(src.err(
            t.name.span(),
            format!(
                "task `{name}`: a multiclass task needs `outputs` = its number of classes \
                 (it is only inferred from CSV data)"
            ),
        )),
        (_, Some(o)) if *o.get_ref() == 0 => Err(src.err(
            o.span(),
            format!("task `{name}`: outputs must be > 0"),
        )),
        (_, Some(o)) if csv && *o.get_ref() != 1 => Err(src.err(
            o.span(),
            format!("task `{name}`: a CSV column holds one label per row, so outputs must be 1, found {o}"),
        )),
        (_, Some(o)) => Ok(*o.get_ref()),
        (_, None) => Ok(1),
    }
}

/// `[model]` → [`ModelSpec`] (`inputs` 0 = unknown until the data is read).
fn model_from(
    src: &Source,
    m: &RawModel,
    tasks: Vec<TaskSpec>,
    ensemble: bool,
    experts: bool,
) -> Result<ModelSpec> {
    let inputs = match &m.inputs {
        Some(i) if *i.get_ref() == 0 => {
            return Err(src.err(i.span(), "model.inputs must be > 0"));
        }
        Some(i) => *i.get_ref(),
        None => 0,
    };
    let trunk = match &m.trunk {
        Some(t) => {
            check_sizes(src, "model.trunk", t)?;
            let other = if ensemble {
                Some("[[members]]")
            } else if experts {
                Some("experts")
            } else {
                None
            };
            if let (Some(other), false) = (other, t.get_ref().is_empty()) {
                return Err(src.err(
                    t.span(),
                    format!("model.trunk cannot be combined with {other}, which replace the trunk"),
                ));
            }
            t.get_ref().clone()
        }
        None => Vec::new(),
    };
    let activation = match m.activation {
        Some(a) => a,
        None if !trunk.is_empty() || experts => {
            return Err(
                src.err_plain("model.activation is required when the model has a trunk or experts")
            );
        }
        None => Activation::Identity,
    };
    Ok(ModelSpec {
        inputs,
        trunk,
        activation,
        tasks,
        ..Default::default()
    })
}

/// `shared_experts` / `task_experts` / `expert` in `[model]` → PLE; all three or none of the
/// first two, and not with `experts`.
fn ple_from(src: &Source, m: &RawModel) -> Result<Option<crate::model::PleSpec>> {
    let (s, k) = match (&m.shared_experts, &m.task_experts) {
        (None, None) => return Ok(None),
        (Some(s), Some(k)) => (s, k),
        (Some(x), None) | (None, Some(x)) => {
            return Err(src.err(
                x.span(),
                "PLE needs both model.shared_experts and model.task_experts \
                 (experts per level: shared, and per task)",
            ))
        }
    };
    if let Some(e) = &m.experts {
        return Err(src.err(
            e.span(),
            "model.experts (MMoE) cannot be combined with shared_experts/task_experts (PLE)",
        ));
    }
    for (name, v) in [("model.shared_experts", s), ("model.task_experts", k)] {
        if *v.get_ref() == 0 {
            return Err(src.err(v.span(), format!("{name} must be ≥ 1")));
        }
    }
    let Some(x) = &m.expert else {
        return Err(src.err(
            s.span(),
            "PLE needs model.expert = [units of each expert at each level]",
        ));
    };
    if x.get_ref().is_empty() {
        return Err(src.err(x.span(), "model.expert must list at least one level"));
    }
    check_sizes(src, "model.expert", x)?;
    Ok(Some(crate::model::PleSpec {
        shared: *s.get_ref(),
        per_task: *k.get_ref(),
        levels: x.get_ref().clone(),
    }))
}

/// `experts` / `expert` in `[model]` → [`ExpertsConfig`]; both or neither.
fn experts_from(src: &Source, m: &RawModel) -> Result<Option<ExpertsConfig>> {
    match (&m.experts, &m.expert) {
        (None, None) => Ok(None),
        (Some(e), None) => Err(src.err(
            e.span(),
            "model.experts needs model.expert = [hidden sizes of each expert]",
        )),
        (None, Some(x)) => Err(src.err(
            x.span(),
            "model.expert needs model.experts = number of experts",
        )),
        (Some(e), Some(x)) => {
            if *e.get_ref() == 0 {
                return Err(src.err(e.span(), "model.experts must be ≥ 1"));
            }
            if x.get_ref().is_empty() {
                return Err(src.err(x.span(), "model.expert must list at least one layer size"));
            }
            check_sizes(src, "model.expert", x)?;
            Ok(Some(ExpertsConfig {
                count: *e.get_ref(),
                layers: x.get_ref().clone(),
            }))
        }
    }
}

/// `[[members]]` → member configs (names unique, weights resolved).
fn members_from(src: &Source, raw: &[RawMember], dir: &Path) -> Result<Vec<MemberConfig>> {
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|m| {
            check_name(src, "member", &m.name, &mut seen)?;
            check_sizes(
                src,
                &format!("members.{}.trunk", m.name.get_ref()),
                &m.trunk,
            )?;
            Ok(MemberConfig {
                name: m.name.get_ref().clone(),
                trunk: m.trunk.get_ref().clone(),
                activation: m.activation,
                weights: m.weights.as_ref().map(|w| dir.join(w)),
                trainable: m.trainable,
            })
        })
        .collect()
}

/// `[ensemble]`: required exactly when there are members.
fn ensemble_from(
    src: &Source,
    raw: Option<&Spanned<RawEnsemble>>,
    members: &[MemberConfig],
) -> Result<Option<EnsembleConfig>> {
    match (raw, members.is_empty()) {
        (Some(e), true) => Err(src.err(e.span(), "[ensemble] without any [[members]] to combine")),
        (None, false) => Err(src.err_plain(
            "[[members]] need an [ensemble] section saying how to combine them \
             (combine = \"concat\" | \"mean\" | \"stack\" | \"gate\")",
        )),
        (Some(e), false) => {
            let r = e.get_ref();
            if r.bagging && r.combine != Combine::Concat {
                return Err(src.err(
                    e.span(),
                    "ensemble.bagging trains each member on its own bootstrap sample with its own \
                     loss: it needs combine = \"concat\"",
                ));
            }
            Ok(Some(EnsembleConfig {
                combine: r.combine,
                bagging: r.bagging,
            }))
        }
        (None, true) => Ok(None),
    }
}

/// `[train]` → [`TrainConfig`].
fn train_from(src: &Source, t: &RawTrain) -> Result<TrainConfig> {
    if *t.epochs.get_ref() == 0 {
        return Err(src.err(t.epochs.span(), "train.epochs must be ≥ 1"));
    }
    if *t.batch_size.get_ref() == 0 {
        return Err(src.err(t.batch_size.span(), "train.batch_size must be ≥ 1"));
    }
    let gradnorm_alpha = match &t.gradnorm_alpha {
        Some(a) if t.weighting != Weighting::GradNorm => {
            return Err(src.err(
                a.span(),
                "train.gradnorm_alpha is only used with weighting = \"gradnorm\"",
            ));
        }
        Some(a) => Some(check_range(
            src,
            "train.gradnorm_alpha",
            a,
            0.0,
            false,
            f32::INFINITY,
        )?),
        None => None,
    };
    Ok(TrainConfig {
        epochs: *t.epochs.get_ref(),
        batch_size: *t.batch_size.get_ref(),
        shuffle: t.shuffle,
        seed: t.seed,
        weighting: t.weighting,
        gradnorm_alpha,
        optimizer: optimizer_from(src, &t.optimizer)?,
        early_stopping: match &t.early_stopping {
            Some(es) => Some(early_stopping_from(src, es.get_ref())?),
            None => None,
        },
    })
}

/// `[train.early_stopping]` → [`EarlyStopping`].
fn early_stopping_from(src: &Source, e: &RawEarlyStopping) -> Result<EarlyStopping> {
    if *e.patience.get_ref() == 0 {
        return Err(src.err(
            e.patience.span(),
            "train.early_stopping.patience must be ≥ 1",
        ));
    }
    let min_delta = match &e.min_delta {
        Some(d) => check_range(
            src,
            "train.early_stopping.min_delta",
            d,
            0.0,
            false,
            f32::INFINITY,
        )?,
        None => 0.0,
    };
    Ok(EarlyStopping {
        patience: *e.patience.get_ref(),
        min_delta,
        restore_best: e.restore_best,
    })
}

/// `[train.optimizer]` → [`OptimizerConfig`]; keys of the other optimizer are an error.
fn optimizer_from(src: &Source, o: &RawOptimizer) -> Result<OptimizerConfig> {
    let kind = o
        .kind
        .as_ref()
        .map_or(OptimizerKind::Adam, |k| *k.get_ref());
    let foreign: Vec<(&str, Option<Range<usize>>)> = match kind {
        OptimizerKind::Adam => vec![("momentum", o.momentum.as_ref().map(Spanned::span))],
        OptimizerKind::Sgd => vec![
            ("beta1", o.beta1.as_ref().map(Spanned::span)),
            ("beta2", o.beta2.as_ref().map(Spanned::span)),
            ("eps", o.eps.as_ref().map(Spanned::span)),
            ("style", o.style.as_ref().map(Spanned::span)),
        ],
    };
    if let Some((key, Some(span))) = foreign.into_iter().find(|(_, s)| s.is_some()) {
        return Err(src.err(
            span,
            format!(
                "train.optimizer.{key} does not apply to kind = \"{}\"",
                kind_name(kind)
            ),
        ));
    }
    let opt = |x: &Option<Spanned<f32>>, key: &str, default: f32, strict: bool, hi: f32| {
        x.as_ref()
            .map_or(Ok(default), |x| check_range(src, key, x, 0.0, strict, hi))
    };
    Ok(OptimizerConfig {
        kind,
        lr: match &o.lr {
            Some(lr) => check_range(src, "train.optimizer.lr", lr, 0.0, true, f32::INFINITY)?,
            None if kind == OptimizerKind::Adam => 0.001,
            None => 0.01,
        },
        beta1: opt(&o.beta1, "train.optimizer.beta1", 0.9, false, 1.0)?,
        beta2: opt(&o.beta2, "train.optimizer.beta2", 0.999, false, 1.0)?,
        eps: opt(&o.eps, "train.optimizer.eps", 1e-7, true, f32::INFINITY)?,
        style: o.style.as_ref().map_or(AdamStyle::Keras, |s| *s.get_ref()),
        momentum: opt(&o.momentum, "train.optimizer.momentum", 0.0, false, 1.0)?,
    })
}

fn kind_name(kind: OptimizerKind) -> &'static str {
    match kind {
        OptimizerKind::Adam => "adam",
        OptimizerKind::Sgd => "sgd",
    }
}

/// `[data]` → [`DataConfig`]: sources resolved, one target per task in task order.
fn data_from(src: &Source, d: &RawData, tasks: &[TaskSpec], dir: &Path) -> Result<DataConfig> {
    let path = d.path.as_ref().map(|p| dir.join(p.get_ref()));
    let features = features_from(src, d, dir)?;
    let validation = match &d.validation {
        Some(v) => check_range(src, "data.validation", v, 0.0, false, 1.0)?,
        None => 0.0,
    };
    for name in d.targets.keys() {
        if !tasks.iter().any(|t| &t.name == name.get_ref()) {
            let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
            return Err(src.err(
                name.span(),
                format!(
                    "[data.targets] names task `{}`, which is not among the [[tasks]] ({})",
                    name.get_ref(),
                    known.join(", ")
                ),
            ));
        }
    }
    let targets = tasks
        .iter()
        .map(|t| {
            let value = d.targets.get(t.name.as_str()).ok_or_else(|| {
                src.err_plain(format!(
                    "task `{}` has no entry in [data.targets] saying where its labels are",
                    t.name
                ))
            })?;
            let source = match path {
                Some(_) => TargetSource::Column(value.get_ref().clone()),
                None => TargetSource::Npy(dir.join(value.get_ref())),
            };
            Ok((t.name.clone(), source))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DataConfig {
        path,
        features,
        validation,
        targets,
    })
}

/// `data.features`: a file name (npy) or column names of `data.path` (CSV).
fn features_from(src: &Source, d: &RawData, dir: &Path) -> Result<FeatureSource> {
    let span = d.features.span();
    match (d.features.get_ref(), &d.path) {
        (RawFeatures::File(f), None) if f.ends_with(".csv") => Err(src.err(
            span,
            format!(
                "data.features = \"{f}\": a CSV source is written as data.path = \"{f}\" \
                 with features = [\"column\", ...]"
            ),
        )),
        (RawFeatures::File(f), None) => Ok(FeatureSource::Npy(dir.join(f))),
        (RawFeatures::File(_), Some(p)) => Err(src.err(
            span,
            format!(
                "data.features must list column names of data.path = \"{}\"",
                p.get_ref()
            ),
        )),
        (RawFeatures::Columns(_), None) => Err(src.err(
            span,
            "data.features lists columns, so data.path must name the CSV file holding them",
        )),
        (RawFeatures::Columns(c), Some(_)) => {
            check_columns(src, span, c)?;
            Ok(FeatureSource::Columns(c.clone()))
        }
    }
}

/// Feature columns: at least one, no duplicates.
fn check_columns(src: &Source, span: Range<usize>, cols: &[String]) -> Result<()> {
    if cols.is_empty() {
        return Err(src.err(span, "data.features must list at least one column"));
    }
    let mut seen = BTreeSet::new();
    match cols.iter().find(|c| !seen.insert(c.as_str())) {
        Some(dup) => Err(src.err(span, format!("data.features lists column `{dup}` twice"))),
        None => Ok(()),
    }
}
