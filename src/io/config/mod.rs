//! The run config (TOML): model, tasks, training, data, ensemble members.
//!
//! Parsing happens in three steps, one file each. `raw` mirrors the file exactly with serde
//! structs (`deny_unknown_fields`), so a misspelt key, a wrong type or a syntax error is reported
//! by `toml` with a byte span, which `validate` turns into "line N" and the key's dotted path.
//! `convert` then validates each section and turns it into the model spec, the training config
//! and the data sources, every path resolved relative to the config file's directory. Validation
//! errors on a value also name its line.

mod convert;
mod raw;
mod validate;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::spec::{Architecture, ModelSpec};
use convert::{
    data_from, ensemble_from, experts_from, members_from, model_from, ple_from, tasks_from,
    train_from,
};
use raw::RawConfig;
use validate::Source;

pub use crate::model::spec::Combine;
pub use crate::train::config::{
    AdamStyle, DataPlan, EarlyStopping, OptimizerConfig, OptimizerKind, StreamMode, TrainConfig,
    Weighting,
};

/// A validated config file. `model.inputs` is 0 while the data has not been read yet and the
/// config did not say it (`io::dataset::load_split` fills it in); a multiclass task's `outputs`
/// is 0 while it is to be inferred from a CSV column.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file as given to [`Config::load`] / [`Config::parse`].
    pub path: PathBuf,
    /// The directory holding the config; every relative path in it is joined to this.
    pub dir: PathBuf,
    /// `[model]` + `[[tasks]]`, and the architecture: `[model] trunk`, `experts`, PLE's
    /// `shared_experts`/`task_experts`, or `[[members]]` with `[ensemble]` (members' `weights`
    /// resolved against the config's directory).
    pub model: ModelSpec,
    /// `[train]` and `[train.optimizer]`.
    pub train: TrainConfig,
    /// `[data]`.
    pub data: DataConfig,
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
    /// CSV feature columns declared categorical (`categorical = [...]`): one-hot
    /// encoded whatever their cells hold. Undeclared columns are numeric when
    /// their cells are numbers, categorical when none is (see `io::preprocess`).
    pub categorical: Vec<String>,
    /// One entry per task, in `model.tasks` order: (task name, where its labels are).
    pub targets: Vec<(String, TargetSource)>,
    /// `stream`, `memory_budget`, `shard_rows`: resident or streamed rows.
    pub plan: DataPlan,
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
        let ensemble = ensemble_from(&src, raw.ensemble.as_ref(), members)?;
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
            ensemble.is_some(),
            experts.is_some() || ple.is_some(),
        )?;
        match (ensemble, ple, experts) {
            (Some(e), _, _) => model.architecture = Architecture::Ensemble(e),
            (None, Some(p), _) => model.architecture = Architecture::Ple(p),
            (None, None, Some(x)) => model.architecture = Architecture::Mmoe(x),
            (None, None, None) => {}
        }
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
        })
    }

    /// Resolves `p` (as written in the config) against the config's directory.
    pub fn resolve(&self, p: impl AsRef<Path>) -> PathBuf {
        self.dir.join(p)
    }
}
