//! The in-memory dataset: features and one label tensor per task, as the
//! trainer uploads them, and a training/validation split of one. Loading them
//! from files is `io::dataset`'s job; reading them a block at a time is
//! [`source`]'s.

use crate::model::spec::preprocess::Preprocess;

pub mod source;
pub use source::{DataSource, Subset};

/// Features and labels of a set of rows, ready for a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Number of rows N.
    pub rows: usize,
    /// Inputs per row I.
    pub inputs: usize,
    /// `[N, I]` row-major.
    pub features: Vec<f32>,
    /// One per task in `ModelSpec.tasks` order, `[N, task.label_width()]` row-major;
    /// NaN = missing label. Multiclass: class indices as f32.
    pub targets: Vec<Vec<f32>>,
    /// One name per input column (`x{i}` for npy data, `column` / `column=category` for CSV).
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// The rows `rows` (indices into this dataset), in that order.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        let pick = |data: &[f32], width: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| data[r * width..(r + 1) * width].iter().copied())
                .collect()
        };
        Dataset {
            rows: rows.len(),
            inputs: self.inputs,
            features: pick(&self.features, self.inputs),
            targets: (0..self.targets.len())
                .map(|t| pick(&self.targets[t], self.label_width(t)))
                .collect(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Rows `[start, start + len)` (which must be within the dataset).
    pub fn slice(&self, start: usize, len: usize) -> Dataset {
        let cut = |data: &[f32], width: usize| data[start * width..(start + len) * width].to_vec();
        Dataset {
            rows: len,
            inputs: self.inputs,
            features: cut(&self.features, self.inputs),
            targets: (0..self.targets.len())
                .map(|t| cut(&self.targets[t], self.label_width(t)))
                .collect(),
            feature_names: self.feature_names.clone(),
        }
    }

    /// Label values per row of task `task` (its `label_width`).
    pub fn label_width(&self, task: usize) -> usize {
        self.targets[task].len().checked_div(self.rows).unwrap_or(0)
    }
}

/// A config's data split into training and validation rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training rows, in file order.
    pub train: Dataset,
    /// Validation rows, in file order; `None` when `data.validation` is 0.
    pub valid: Option<Dataset>,
    /// The CSV preprocessing fitted on `train` (store it with the model); `None` for npy data.
    pub preprocess: Option<Preprocess>,
}
