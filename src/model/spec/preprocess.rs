//! The fitted preprocessing of a CSV data source, as stored with a model (JSON
//! in the weights file's metadata) so `eval` and `predict` apply the very
//! same mapping: the data types and what reading them needs. Fitting them to
//! a table and encoding cells live in `io::preprocess`.

use serde::{Deserialize, Serialize};

use super::TaskKind;
use crate::error::{Error, Result};

/// The fitted preprocessing of a CSV data source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// One transform per feature column, in config order; their widths sum to the model's inputs.
    pub features: Vec<FeatureTransform>,
    /// One transform per task, in `ModelSpec.tasks` order.
    pub targets: Vec<TargetTransform>,
}

/// How one feature column becomes model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureTransform {
    /// One input `(x − mean) / std`.
    Numeric {
        /// CSV column name.
        column: String,
        /// Mean over the training rows.
        mean: f32,
        /// Population std over the training rows (1 where it was 0).
        std: f32,
    },
    /// One input per category (one-hot), categories sorted.
    Categorical {
        /// CSV column name.
        column: String,
        /// Sorted distinct training values.
        categories: Vec<String>,
    },
}

impl FeatureTransform {
    /// The CSV column this transform reads.
    pub fn column(&self) -> &str {
        match self {
            FeatureTransform::Numeric { column, .. } => column,
            FeatureTransform::Categorical { column, .. } => column,
        }
    }

    /// Number of model inputs it produces.
    pub fn width(&self) -> usize {
        match self {
            FeatureTransform::Numeric { .. } => 1,
            FeatureTransform::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// How one CSV column becomes a task's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTransform {
    /// Task name.
    pub task: String,
    /// CSV column name.
    pub column: String,
    /// The task's kind.
    pub kind: TaskKind,
    /// The task's output width (classes for multiclass).
    pub outputs: usize,
    /// String labels → class index (position in this sorted list); `None` = numeric labels.
    pub classes: Option<Vec<String>>,
    /// Regression label standardisation; `None` = labels used as they are.
    pub scale: Option<Standardize>,
}

/// `(y − mean) / std`, undone by `y·std + mean`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardize {
    /// Mean over the training rows.
    pub mean: f32,
    /// Population std over the training rows (1 where it was 0).
    pub std: f32,
}

impl Preprocess {
    /// Model inputs per row.
    pub fn inputs(&self) -> usize {
        self.features.iter().map(FeatureTransform::width).sum()
    }

    /// One name per model input: `column` or `column=category`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.inputs());
        for f in &self.features {
            match f {
                FeatureTransform::Numeric { column, .. } => names.push(column.clone()),
                FeatureTransform::Categorical { column, categories } => {
                    names.extend(categories.iter().map(|c| format!("{column}={c}")));
                }
            }
        }
        names
    }

    /// The class names of task `task` (index in `ModelSpec.tasks`) when its labels were strings.
    pub fn class_names(&self, task: usize) -> Option<&[String]> {
        self.targets.get(task)?.classes.as_deref()
    }

    /// Maps standardised predictions of regression task `task` back to label units, in place.
    /// A task without a scale is left as it is.
    pub fn unscale_regression(&self, task: usize, values: &mut [f32]) {
        if let Some(s) = self.targets.get(task).and_then(|t| t.scale) {
            values.iter_mut().for_each(|v| *v = *v * s.std + s.mean);
        }
    }

    /// Checks a stored preprocessing against its model's `spec`: one target per
    /// task in order, the spec's input width, finite statistics with std > 0
    /// (a crafted file would otherwise turn every input into NaN or ±inf).
    pub fn check(&self, spec: &super::ModelSpec) -> std::result::Result<(), String> {
        if self.inputs() != spec.inputs {
            return Err(format!(
                "its features make {} inputs, the model spec says inputs = {}",
                self.inputs(),
                spec.inputs
            ));
        }
        let tasks: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
        let targets: Vec<&str> = self.targets.iter().map(|t| t.task.as_str()).collect();
        if tasks != targets {
            return Err(format!(
                "its targets ({}) are not the model's tasks ({})",
                targets.join(", "),
                tasks.join(", ")
            ));
        }
        let ok = |s: &Standardize| s.mean.is_finite() && s.std.is_finite() && s.std > 0.0;
        for f in &self.features {
            if let FeatureTransform::Numeric { column, mean, std } = f {
                if !ok(&Standardize {
                    mean: *mean,
                    std: *std,
                }) {
                    return Err(format!(
                        "column `{column}`: mean {mean} and std {std} must be finite, std > 0"
                    ));
                }
            }
        }
        match self
            .targets
            .iter()
            .find(|t| t.scale.as_ref().is_some_and(|s| !ok(s)))
        {
            Some(t) => Err(format!(
                "task `{}`: its label scale must be finite with std > 0",
                t.task
            )),
            None => Ok(()),
        }
    }

    /// JSON for the model file's metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("Preprocess always serialises")
    }

    /// Parses [`Preprocess::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Preprocess> {
        serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("preprocessing metadata is not valid: {e}")))
    }
}
