//! Checkpoints: one safetensors file from which a run continues exactly.
//!
//! The file is the model as `Model::save` writes it (every tensor under its
//! layout name, the spec, preprocessing and task-weight history in the
//! metadata) plus the rest of the training state:
//!
//! - tensors `checkpoint.adam.m` and `checkpoint.adam.v` (Adam's moments) or
//!   `checkpoint.sgd.velocity`, in the parameters' layout, `[P]`;
//!   `checkpoint.best` `[P]`, early stopping's best weights (with
//!   `restore_best`); `checkpoint.epoch_log` `[steps, T + 1]`, the losses of
//!   the steps done in an epoch cut short;
//! - metadata `checkpoint`, JSON: the epoch, the step within it and the global
//!   step, the shuffle generator's word position (ChaCha8, as a decimal
//!   string), the task weighting's epoch losses and λ (f32 as their bit
//!   patterns, so NaN survives), the λ history, early stopping's best epoch
//!   and loss, bagging's sample seed, the fingerprint of what must not change
//!   (every `train` key but `epochs` and `early_stopping.patience`, and a hash
//!   of the training and validation rows) and a checksum over all of it.
//!
//! A checkpoint is written through a hidden temporary file renamed over the
//! destination, so a crash mid-write leaves the previous one intact.

use super::config::{OptimizerKind, TrainConfig};
use super::trainer::{Trainer, TrainerState};
use crate::data::DataSource;
use crate::model::params::ParamLayout;
use crate::model::weights::{read_tensors, tensor_bytes, write_file};
use crate::model::{Architecture, Model};
use crate::{Error, Result};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of the `checkpoint` metadata written.
const VERSION: u32 = 1;

/// Early stopping's best epoch so far: (epoch, validation loss, its weights
/// when they are to be restored).
pub type BestEpoch = (usize, f32, Option<Vec<f32>>);

/// Where and how often `fit` writes a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointPolicy {
    pub path: PathBuf,
    /// After every `every` epochs (0: only at the end), at the end of the run
    /// and when a stop request cuts it short.
    pub every: usize,
}

/// A run's whole state: the model, the trainer's state, early stopping's.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The model with the parameters of the last step (not the best epoch's).
    pub model: Model,
    pub state: TrainerState,
    pub best: Option<BestEpoch>,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
    /// `train.seed` when an ensemble bags (its members' samples derive from it).
    pub bagging_seed: Option<u64>,
    /// The config keys that must not change, with their values.
    pub config: Vec<(String, String)>,
    /// Hashes of the training and validation rows.
    pub data: Vec<(String, String)>,
}

/// The `checkpoint` metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    version: u32,
    optimizer: String,
    epoch: usize,
    step_in_epoch: usize,
    global_step: u64,
    rng_word_pos: String,
    epoch_losses: Vec<Vec<u32>>,
    host_lambda: Option<Vec<u32>>,
    lambda_history: Vec<Vec<u32>>,
    /// (epoch, loss bits, weights saved).
    best: Option<(usize, u32, bool)>,
    stopped_early: bool,
    bagging_seed: Option<u64>,
    config: Vec<(String, String)>,
    data: Vec<(String, String)>,
    checksum: String,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn floats(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&x| f32::from_bits(x)).collect()
}

/// 64-bit FNV-1a.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn hash_floats(hash: u64, v: &[f32]) -> u64 {
    v.iter().fold(hash, |h, x| fnv(h, &x.to_le_bytes()))
}

/// The `train` keys a resumed run must share with its checkpoint, with their
/// values: all but `epochs` and `early_stopping.patience`.
pub fn config_keys(cfg: &TrainConfig) -> Vec<(String, String)> {
    let o = &cfg.optimizer;
    let mut keys = vec![
        ("train.batch_size", cfg.batch_size.to_string()),
        ("train.shuffle", cfg.shuffle.to_string()),
        ("train.seed", cfg.seed.to_string()),
        (
            "train.weighting",
            format!("{:?}", cfg.weighting).to_lowercase(),
        ),
        ("train.gradnorm_alpha", format!("{:?}", cfg.gradnorm_alpha)),
        (
            "train.optimizer.kind",
            format!("{:?}", o.kind).to_lowercase(),
        ),
        ("train.optimizer.lr", format!("{:?}", o.lr)),
        ("train.optimizer.beta1", format!("{:?}", o.beta1)),
        ("train.optimizer.beta2", format!("{:?}", o.beta2)),
        ("train.optimizer.eps", format!("{:?}", o.eps)),
        (
            "train.optimizer.style",
            format!("{:?}", o.style).to_lowercase(),
        ),
        ("train.optimizer.momentum", format!("{:?}", o.momentum)),
    ];
    let es = cfg.early_stopping.as_ref();
    keys.push(("train.early_stopping", es.is_some().to_string()));
    if let Some(e) = es {
        keys.push((
            "train.early_stopping.min_delta",
            format!("{:?}", e.min_delta),
        ));
        keys.push((
            "train.early_stopping.restore_best",
            e.restore_best.to_string(),
        ));
    }
    keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Rows hashed per block: the hash does not depend on how the rows are read.
const HASH_BLOCK_ROWS: usize = 65_536;

/// Hashes of the rows a run trains and validates on (one pass over each:
/// every block's features, then its labels task by task).
pub fn data_keys(
    train: &mut dyn DataSource,
    valid: Option<&mut dyn DataSource>,
) -> Result<Vec<(String, String)>> {
    let hash = |d: &mut dyn DataSource| -> Result<String> {
        let n = d.rows();
        let h = fnv(FNV_START, &(n as u64).to_le_bytes());
        let mut h = fnv(h, &(d.inputs() as u64).to_le_bytes());
        let mut at = 0;
        while at < n {
            let block = d.read(at, HASH_BLOCK_ROWS.min(n - at))?;
            h = hash_floats(h, &block.features);
            h = block.targets.iter().fold(h, |h, t| hash_floats(h, t));
            at += block.rows;
        }
        Ok(format!("{n} rows, hash {h:016x}"))
    };
    let mut keys = vec![("data (training rows)".to_string(), hash(train)?)];
    let v = match valid {
        Some(v) => hash(v)?,
        None => "none".to_string(),
    };
    keys.push(("data (validation rows)".to_string(), v));
    Ok(keys)
}

/// The first key whose value differs between two JSON values, as a dotted path.
fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(&join(k), p, q),
                _ => Some(join(k)),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => (x.iter().zip(y))
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&join(&i.to_string()), p, q)),
        _ => (a != b).then(|| path.to_string()),
    }
}

impl Checkpoint {
    /// The state of a run: `trainer` training `model` on `train` (validated on
    /// `valid`) under `cfg`, early stopping's best epoch and decision.
    pub fn capture(
        trainer: &mut Trainer,
        model: &Model,
        cfg: &TrainConfig,
        data_keys: &[(String, String)],
        best: Option<BestEpoch>,
        stopped_early: bool,
    ) -> Result<Checkpoint> {
        let state = trainer.state()?;
        let mut model = model.clone();
        model.params = state.params.clone();
        let bagging = matches!(&model.spec.architecture, Architecture::Ensemble(e) if e.bagging);
        Ok(Checkpoint {
            model,
            state,
            best,
            stopped_early,
            bagging_seed: bagging.then_some(cfg.seed),
            config: config_keys(cfg),
            data: data_keys.to_vec(),
        })
    }

    /// The tensors beyond the model's, in the file's layout after the model's.
    fn layout(&self, kind: OptimizerKind, with_best: bool, log_steps: usize) -> ParamLayout {
        let mut layout = self.model.network.layout.clone();
        let p = vec![layout.len];
        match kind {
            OptimizerKind::Adam => {
                layout.add("checkpoint.adam.m", p.clone());
                layout.add("checkpoint.adam.v", p.clone());
            }
            OptimizerKind::Sgd => {
                layout.add("checkpoint.sgd.velocity", p.clone());
            }
        }
        if with_best {
            layout.add("checkpoint.best", p);
        }
        if log_steps > 0 {
            let t = self.model.spec.tasks.len();
            layout.add("checkpoint.epoch_log", vec![log_steps, t + 1]);
        }
        layout
    }

    fn optimizer_kind(&self) -> OptimizerKind {
        let kind = self
            .config
            .iter()
            .find(|(k, _)| k == "train.optimizer.kind");
        match kind.map(|(_, v)| v.as_str()) {
            Some("sgd") => OptimizerKind::Sgd,
            _ => OptimizerKind::Adam,
        }
    }

    /// Every value of the file in its layout's order.
    fn values(&self, kind: OptimizerKind) -> Vec<f32> {
        let s = &self.state;
        let mut values = s.params.clone();
        values.extend_from_slice(&s.m);
        if kind == OptimizerKind::Adam {
            values.extend_from_slice(&s.v);
        }
        if let Some((_, _, Some(w))) = &self.best {
            values.extend_from_slice(w);
        }
        values.extend_from_slice(&s.epoch_log);
        values
    }

    fn meta(&self, kind: OptimizerKind) -> Meta {
        let s = &self.state;
        Meta {
            version: VERSION,
            optimizer: format!("{kind:?}").to_lowercase(),
            epoch: s.epoch,
            step_in_epoch: s.step_in_epoch,
            global_step: s.global_step,
            rng_word_pos: s.rng_word_pos.to_string(),
            epoch_losses: s.epoch_losses.iter().map(|l| bits(l)).collect(),
            host_lambda: s.host_lambda.as_deref().map(bits),
            lambda_history: s.lambda_history.iter().map(|l| bits(l)).collect(),
            best: (self.best.as_ref()).map(|(e, l, w)| (*e, l.to_bits(), w.is_some())),
            stopped_early: self.stopped_early,
            bagging_seed: self.bagging_seed,
            config: self.config.clone(),
            data: self.data.clone(),
            checksum: String::new(),
        }
    }

    /// The file's bytes; equal states give equal bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let kind = self.optimizer_kind();
        let with_best = matches!(&self.best, Some((_, _, Some(_))));
        let layout = self.layout(kind, with_best, self.state.step_in_epoch);
        let values = self.values(kind);
        let mut meta = self.meta(kind);
        meta.checksum = checksum(&meta, &values)?;
        let mut map = self.model.metadata()?;
        let json = serde_json::to_string(&meta)
            .map_err(|e| Error::Invalid(format!("serialising the checkpoint: {e}")))?;
        map.insert("checkpoint".to_string(), json);
        tensor_bytes(&layout, &values, map)
    }

    /// Writes the checkpoint to `path` through a hidden temporary file in its
    /// folder, renamed into place once complete.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]. A file that is not
    /// one, is truncated, or whose contents fail the checksum is an error
    /// naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bad = |m: String| Error::weights(path, m);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            bad(format!(
                "not a readable checkpoint (truncated or corrupted?): {e}"
            ))
        })?;
        let json = (header.metadata().as_ref())
            .and_then(|m| m.get("checkpoint"))
            .ok_or_else(|| {
                bad(
                    "not a checkpoint: no `checkpoint` metadata (a model file's weights \
                     load with `--init`)"
                        .into(),
                )
            })?;
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| bad(format!("metadata `checkpoint` (corrupted?): {e}")))?;
        if meta.version != VERSION {
            return Err(bad(format!(
                "checkpoint version {} is not one this tandem reads ({VERSION})",
                meta.version
            )));
        }
        let model = Model::load(path)?;
        let kind = match meta.optimizer.as_str() {
            "adam" => OptimizerKind::Adam,
            "sgd" => OptimizerKind::Sgd,
            o => return Err(bad(format!("unknown optimizer `{o}` in the metadata"))),
        };
        let with_best = matches!(meta.best, Some((_, _, true)));
        // Sizes from the metadata are checked against the file before anything is allocated.
        let t = model.spec.tasks.len();
        let log_len = (meta.step_in_epoch.checked_mul(t + 1)).and_then(|n| n.checked_mul(4));
        if log_len.is_none_or(|n| n > bytes.len()) {
            return Err(bad(format!(
                "metadata `checkpoint`: {} steps in the unfinished epoch do not fit the file",
                meta.step_in_epoch
            )));
        }
        if let Some((best, _, _)) = meta.best {
            if best >= meta.epoch {
                return Err(bad(format!(
                    "metadata `checkpoint`: best epoch {best} of {} epochs done",
                    meta.epoch
                )));
            }
        }
        let mut ck = Checkpoint {
            model,
            state: empty_state(),
            best: None,
            stopped_early: meta.stopped_early,
            bagging_seed: meta.bagging_seed,
            config: meta.config.clone(),
            data: meta.data.clone(),
        };
        let layout = ck.layout(kind, with_best, meta.step_in_epoch);
        let values = read_tensors(path, &layout)?;
        let mut unsummed = meta.clone();
        unsummed.checksum = String::new();
        if checksum(&unsummed, &values)? != meta.checksum {
            return Err(bad(
                "the checksum does not match its contents: the file is corrupted".into(),
            ));
        }
        ck.fill(&meta, kind, &values)
            .map_err(|m| bad(format!("metadata `checkpoint`: {m}")))?;
        Ok(ck)
    }

    /// Splits the file's values into the state, per the metadata.
    fn fill(&mut self, meta: &Meta, kind: OptimizerKind, values: &[f32]) -> Result<(), String> {
        let p = self.model.params.len();
        let mut rest = values.get(p..).ok_or("too few values")?;
        let mut take = |n: usize| -> Result<Vec<f32>, String> {
            let (a, b) = (rest.get(..n), rest.get(n..));
            let (a, b) = a.zip(b).ok_or("too few values")?;
            rest = b;
            Ok(a.to_vec())
        };
        let m = take(p)?;
        let v = match kind {
            OptimizerKind::Adam => take(p)?,
            OptimizerKind::Sgd => vec![0.0; p],
        };
        let best_weights = match meta.best {
            Some((_, _, true)) => Some(take(p)?),
            _ => None,
        };
        let t = self.model.spec.tasks.len();
        let epoch_log = take(meta.step_in_epoch * (t + 1))?;
        let rng_word_pos = meta
            .rng_word_pos
            .parse()
            .map_err(|e| format!("rng_word_pos: {e}"))?;
        self.best = meta
            .best
            .map(|(e, l, _)| (e, f32::from_bits(l), best_weights));
        self.state = TrainerState {
            epoch: meta.epoch,
            step_in_epoch: meta.step_in_epoch,
            global_step: meta.global_step,
            rng_word_pos,
            params: self.model.params.clone(),
            m,
            v,
            epoch_log,
            epoch_losses: meta.epoch_losses.iter().map(|l| floats(l)).collect(),
            host_lambda: meta.host_lambda.as_deref().map(floats),
            lambda_history: meta.lambda_history.iter().map(|l| floats(l)).collect(),
        };
        Ok(())
    }

    /// Checks that a run of `model` under `cfg` on `train`/`valid` continues
    /// this checkpoint: the same architecture, the same config but for
    /// `train.epochs` and early stopping's patience, the same rows, and no
    /// more epochs done than `cfg` asks for. `path` names the checkpoint in
    /// the errors, which name the first key that differs.
    pub fn check_fits(
        &self,
        path: &Path,
        model: &Model,
        cfg: &TrainConfig,
        data_keys: &[(String, String)],
    ) -> Result<()> {
        let bad = |m: String| Err(Error::weights(path, m));
        let json = |m: &Model| serde_json::to_value(&m.spec).unwrap_or_default();
        if let Some(k) = first_difference("model", &json(&self.model), &json(model)) {
            return bad(format!(
                "the checkpoint is of another model: the config differs at `{k}`"
            ));
        }
        let mine = config_keys(cfg)
            .into_iter()
            .chain(data_keys.iter().cloned());
        let theirs: Vec<(String, String)> = self.config.iter().chain(&self.data).cloned().collect();
        for (key, value) in mine {
            let old = theirs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str());
            if old != Some(value.as_str()) {
                return bad(format!(
                    "the config differs from the checkpoint's at `{key}`: {} in the checkpoint, \
                     {value} now (only train.epochs, early stopping's patience and the outputs \
                     may change on resume)",
                    old.unwrap_or("nothing")
                ));
            }
        }
        if self.state.epoch > cfg.epochs {
            return bad(format!(
                "the checkpoint has {} epochs done, more than train.epochs = {}",
                self.state.epoch, cfg.epochs
            ));
        }
        Ok(())
    }
}

fn checksum(meta: &Meta, values: &[f32]) -> Result<String> {
    let json = serde_json::to_vec(meta)
        .map_err(|e| Error::Invalid(format!("serialising the checkpoint: {e}")))?;
    Ok(format!(
        "{:016x}",
        fnv(hash_floats(FNV_START, values), &json)
    ))
}

fn empty_state() -> TrainerState {
    TrainerState {
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        rng_word_pos: 0,
        params: Vec::new(),
        m: Vec::new(),
        v: Vec::new(),
        epoch_log: Vec::new(),
        epoch_losses: Vec::new(),
        host_lambda: None,
        lambda_history: Vec::new(),
    }
}
