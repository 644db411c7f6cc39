//! The config file mirrored exactly: one serde struct per table, unknown keys denied, values
//! kept with their byte spans (`Spanned`) so later checks can name their line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::model::spec::{Activation, Combine, TaskKind};
use crate::train::config::{AdamStyle, OptimizerKind, Weighting};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) model: RawModel,
    #[serde(default)]
    pub(super) tasks: Vec<RawTask>,
    pub(super) train: RawTrain,
    pub(super) data: RawData,
    #[serde(default)]
    pub(super) members: Vec<RawMember>,
    pub(super) ensemble: Option<Spanned<RawEnsemble>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) inputs: Option<Spanned<usize>>,
    pub(super) trunk: Option<Spanned<Vec<usize>>>,
    pub(super) activation: Option<Activation>,
    pub(super) experts: Option<Spanned<usize>>,
    pub(super) expert: Option<Spanned<Vec<usize>>>,
    pub(super) shared_experts: Option<Spanned<usize>>,
    pub(super) task_experts: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub(super) name: Spanned<String>,
    pub(super) kind: TaskKind,
    pub(super) weight: Option<Spanned<f32>>,
    pub(super) head: Option<Spanned<Vec<usize>>>,
    pub(super) outputs: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrain {
    pub(super) epochs: Spanned<usize>,
    pub(super) batch_size: Spanned<usize>,
    #[serde(default = "default_true")]
    pub(super) shuffle: bool,
    #[serde(default)]
    pub(super) seed: u64,
    #[serde(default)]
    pub(super) weighting: Weighting,
    pub(super) gradnorm_alpha: Option<Spanned<f32>>,
    /// Absent: Adam with Keras' defaults.
    #[serde(default)]
    pub(super) optimizer: RawOptimizer,
    pub(super) early_stopping: Option<Spanned<RawEarlyStopping>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEarlyStopping {
    pub(super) patience: Spanned<usize>,
    pub(super) min_delta: Option<Spanned<f32>>,
    #[serde(default = "default_true")]
    pub(super) restore_best: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOptimizer {
    pub(super) kind: Option<Spanned<OptimizerKind>>,
    /// Absent: Keras' default for the kind (Adam 0.001, SGD 0.01).
    pub(super) lr: Option<Spanned<f32>>,
    pub(super) beta1: Option<Spanned<f32>>,
    pub(super) beta2: Option<Spanned<f32>>,
    pub(super) eps: Option<Spanned<f32>>,
    pub(super) style: Option<Spanned<AdamStyle>>,
    pub(super) momentum: Option<Spanned<f32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) path: Option<Spanned<String>>,
    pub(super) features: Spanned<RawFeatures>,
    pub(super) validation: Option<Spanned<f32>>,
    /// Feature columns to one-hot encode even where their cells are numbers.
    pub(super) categorical: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) targets: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `true`, `false` or `"auto"`.
    pub(super) stream: Option<Spanned<toml::Value>>,
    /// `"4GiB"`, `"512MB"` or a number of bytes.
    pub(super) memory_budget: Option<Spanned<toml::Value>>,
    pub(super) shard_rows: Option<Spanned<i64>>,
}

/// `features = "x.npy"` or `features = ["col", ...]`.
pub(super) enum RawFeatures {
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
pub(super) struct RawMember {
    pub(super) name: Spanned<String>,
    pub(super) trunk: Spanned<Vec<usize>>,
    pub(super) activation: Activation,
    pub(super) weights: Option<String>,
    #[serde(default = "default_true")]
    pub(super) trainable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnsemble {
    pub(super) combine: Combine,
    #[serde(default)]
    pub(super) bagging: bool,
}

pub(super) fn default_true() -> bool {
    true
}
