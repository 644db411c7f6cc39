//! Each raw section validated and turned into what the rest of tandem reads: task specs, the
//! architecture (trunk, experts, PLE, ensemble members), the training config and the data
//! sources.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::raw::{
    RawData, RawEarlyStopping, RawEnsemble, RawFeatures, RawMember, RawModel, RawOptimizer,
    RawTask, RawTrain,
};
use super::validate::{check_columns, check_name, check_range, check_sizes, check_width, Source};
use super::{DataConfig, FeatureSource, TargetSource};
use crate::error::Result;
use crate::model::spec::{
    Activation, Architecture, Combine, EnsembleSpec, ExpertsSpec, MemberSpec, ModelSpec, PleSpec,
    TaskKind, TaskSpec,
};
use crate::train::config::{
    AdamStyle, DataPlan, EarlyStopping, OptimizerConfig, OptimizerKind, StreamMode, TrainConfig,
    Weighting,
};

/// `[[tasks]]` → task specs. `csv`: labels come from CSV columns (multiclass `outputs` may be
/// inferred, stored as 0; binary/regression read one column so `outputs` must be 1).
pub(super) fn tasks_from(src: &Source, raw: &[RawTask], csv: bool) -> Result<Vec<TaskSpec>> {
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
    let outputs = match (t.kind, &t.outputs) {
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
    }?;
    if let Some(o) = &t.outputs {
        let key = format!("tasks.{name}.outputs");
        check_width(src, &key, &Spanned::new(o.span(), [*o.get_ref()]))?;
    }
    Ok(outputs)
}

/// `[model]` → [`ModelSpec`] (`inputs` 0 = unknown until the data is read).
pub(super) fn model_from(
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
        Some(i) => {
            check_width(src, "model.inputs", &Spanned::new(i.span(), [*i.get_ref()]))?;
            *i.get_ref()
        }
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
        activation,
        tasks,
        architecture: Architecture::Shared { trunk },
        ..Default::default()
    })
}

/// `shared_experts` / `task_experts` / `expert` in `[model]` → PLE; all three or none of the
/// first two, and not with `experts`.
pub(super) fn ple_from(src: &Source, m: &RawModel) -> Result<Option<PleSpec>> {
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
    Ok(Some(PleSpec {
        shared: *s.get_ref(),
        per_task: *k.get_ref(),
        levels: x.get_ref().clone(),
    }))
}

/// `experts` / `expert` in `[model]` → [`ExpertsSpec`]; both or neither.
pub(super) fn experts_from(src: &Source, m: &RawModel) -> Result<Option<ExpertsSpec>> {
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
            Ok(Some(ExpertsSpec {
                count: *e.get_ref(),
                layers: x.get_ref().clone(),
            }))
        }
    }
}

/// `[[members]]` → member specs (names unique, weights resolved).
pub(super) fn members_from(src: &Source, raw: &[RawMember], dir: &Path) -> Result<Vec<MemberSpec>> {
    let mut seen = BTreeSet::new();
    raw.iter()
        .map(|m| {
            check_name(src, "member", &m.name, &mut seen)?;
            check_sizes(
                src,
                &format!("members.{}.trunk", m.name.get_ref()),
                &m.trunk,
            )?;
            Ok(MemberSpec {
                name: m.name.get_ref().clone(),
                trunk: m.trunk.get_ref().clone(),
                activation: m.activation,
                trainable: m.trainable,
                weights: m.weights.as_ref().map(|w| dir.join(w)),
            })
        })
        .collect()
}

/// `[ensemble]` with the `members`: required exactly when there are members.
pub(super) fn ensemble_from(
    src: &Source,
    raw: Option<&Spanned<RawEnsemble>>,
    members: Vec<MemberSpec>,
) -> Result<Option<EnsembleSpec>> {
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
            Ok(Some(EnsembleSpec {
                combine: r.combine,
                members,
                bagging: r.bagging,
            }))
        }
        (None, true) => Ok(None),
    }
}

/// `[train]` → [`TrainConfig`].
pub(super) fn train_from(src: &Source, t: &RawTrain) -> Result<TrainConfig> {
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
pub(super) fn data_from(
    src: &Source,
    d: &RawData,
    tasks: &[TaskSpec],
    dir: &Path,
) -> Result<DataConfig> {
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
        categorical: categorical_from(src, d, &features)?,
        features,
        validation,
        targets,
        plan: plan_from(src, d)?,
    })
}

/// `stream`, `memory_budget` and `shard_rows` → [`DataPlan`].
fn plan_from(src: &Source, d: &RawData) -> Result<DataPlan> {
    let stream = match &d.stream {
        None => StreamMode::Auto,
        Some(v) => match v.get_ref() {
            toml::Value::Boolean(true) => StreamMode::Always,
            toml::Value::Boolean(false) => StreamMode::Never,
            toml::Value::String(s) if s == "auto" => StreamMode::Auto,
            other => {
                return Err(src.err(
                    v.span(),
                    format!("data.stream must be true, false or \"auto\", found {other}"),
                ))
            }
        },
    };
    let memory_budget = match &d.memory_budget {
        None => None,
        Some(v) => {
            let bytes = match v.get_ref() {
                toml::Value::Integer(n) => u64::try_from(*n).map_err(|e| e.to_string()),
                toml::Value::String(s) => s.parse::<bytesize::ByteSize>().map(|b| b.as_u64()),
                other => Err(format!("found {other}")),
            };
            match bytes {
                Ok(b) if b > 0 => Some(b),
                Ok(_) => return Err(src.err(v.span(), "data.memory_budget must be > 0")),
                Err(e) => {
                    return Err(src.err(
                        v.span(),
                        format!(
                            "data.memory_budget must be a size such as \"4GiB\", \"512MB\" \
                             or a number of bytes: {e}"
                        ),
                    ))
                }
            }
        }
    };
    let shard_rows = match &d.shard_rows {
        None => None,
        Some(v) => match usize::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(src.err(v.span(), "data.shard_rows must be ≥ 1")),
        },
    };
    Ok(DataPlan {
        stream,
        memory_budget,
        shard_rows,
        chunk_rows: None,
    })
}

/// `data.categorical`: CSV feature columns only, each listed once.
fn categorical_from(src: &Source, d: &RawData, features: &FeatureSource) -> Result<Vec<String>> {
    let Some(list) = &d.categorical else {
        return Ok(Vec::new());
    };
    let FeatureSource::Columns(columns) = features else {
        return Err(src.err(
            list.span(),
            "data.categorical names CSV columns: it needs data.path and features = [...]",
        ));
    };
    let mut seen = BTreeSet::new();
    for c in list.get_ref() {
        if !columns.contains(c) {
            return Err(src.err(
                list.span(),
                format!(
                    "data.categorical names `{c}`, which is not among data.features ({})",
                    columns.join(", ")
                ),
            ));
        }
        if !seen.insert(c) {
            return Err(src.err(list.span(), format!("data.categorical lists `{c}` twice")));
        }
    }
    Ok(list.get_ref().clone())
}

/// `data.features`: a file name (npy) or column names of `data.path` (CSV or Parquet).
fn features_from(src: &Source, d: &RawData, dir: &Path) -> Result<FeatureSource> {
    let span = d.features.span();
    match (d.features.get_ref(), &d.path) {
        (RawFeatures::File(f), None) if f.ends_with(".csv") || f.ends_with(".parquet") => {
            Err(src.err(
                span,
                format!(
                    "data.features = \"{f}\": a table is written as data.path = \"{f}\" \
                     with features = [\"column\", ...]"
                ),
            ))
        }
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
            "data.features lists columns, so data.path must name the CSV or Parquet data holding them",
        )),
        (RawFeatures::Columns(c), Some(_)) => {
            check_columns(src, span, c)?;
            Ok(FeatureSource::Columns(c.clone()))
        }
    }
}
