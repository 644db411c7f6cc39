//! What turns table cells (CSV or Parquet) into model inputs and labels, fitted on the training
//! rows and stored with the model (as JSON in the weights file's metadata) so `eval` and
//! `predict` apply the very same mapping. The fit is [`PreprocessFit`], fed a table block by
//! block; [`Preprocess::fit`] feeds it one table held whole.
//!
//! - A numeric feature column is standardised: `(x − mean) / std`, population std over the
//!   training rows (std 0 → 1). A missing cell at predict time becomes the mean (0).
//! - Any other feature column is categorical: one-hot over its sorted training categories; an
//!   unknown or missing category becomes all zeros (with a warning).
//! - String labels map to class indices in sorted order (a binary task's two values → 0, 1);
//!   numeric labels are used as they are. Regression labels are standardised like features and
//!   mapped back with [`Preprocess::unscale_regression`].

mod fit;

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::table::{is_missing, RowRef, Table};
use crate::io::table_blocks::read_table;
pub use crate::model::spec::preprocess::{
    FeatureTransform, Preprocess, Standardize, TargetTransform,
};
use crate::model::spec::{TaskKind, TaskSpec};
pub use fit::PreprocessFit;

/// Model inputs encoded from a table by [`Preprocess::apply_features`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Rows (one per data row of the file, none dropped).
    pub rows: usize,
    /// Inputs per row.
    pub inputs: usize,
    /// `[rows, inputs]` row-major.
    pub data: Vec<f32>,
    /// One name per input (`column` or `column=category`).
    pub names: Vec<String>,
}

impl Preprocess {
    /// Fits the preprocessing of `table`.
    ///
    /// - `features`: feature column names; `targets[j]`: the label column of `tasks[j]`.
    /// - `categorical`: feature columns declared categorical (`data.categorical`).
    /// - `train_rows`: data rows whose statistics (means, stds, categories) are used.
    /// - `label_rows`: data rows whose labels define the class lists (train + validation).
    ///
    /// A multiclass task whose `outputs` is 0 gets the number of classes found; a given
    /// `outputs` smaller than that is an error.
    pub fn fit(
        table: &Table,
        features: &[String],
        categorical: &[String],
        tasks: &mut [TaskSpec],
        targets: &[String],
        train_rows: &[usize],
        label_rows: &[usize],
    ) -> Result<Preprocess> {
        let mut fit = PreprocessFit::new(features, categorical, tasks, targets);
        fit_whole(&mut fit, table, label_rows, train_rows)?;
        let pre = fit.finish()?;
        for (task, t) in tasks.iter_mut().zip(&pre.targets) {
            task.outputs = t.outputs;
        }
        Ok(pre)
    }

    /// Encodes the feature columns of `rows` of `table`: `[rows.len(), inputs]` row-major.
    /// Missing numeric cells become 0 (the mean); missing or unknown categories all zeros; both
    /// with one warning per column.
    pub fn encode_features(&self, table: &Table, rows: &[usize]) -> Result<Vec<f32>> {
        let width = self.inputs();
        let mut out = vec![0.0f32; rows.len() * width];
        let mut offset = 0;
        for f in &self.features {
            let cells = table.column(f.column())?;
            match f {
                FeatureTransform::Numeric { column, mean, std } => {
                    let values = encode_numeric(table, column, cells, rows, (*mean, *std))?;
                    for (i, v) in values.into_iter().enumerate() {
                        out[i * width + offset] = v;
                    }
                }
                FeatureTransform::Categorical { column, categories } => {
                    let hot = encode_categorical(table, column, cells, rows, categories);
                    for (i, k) in hot.into_iter().enumerate() {
                        if let Some(k) = k {
                            out[i * width + offset + k] = 1.0;
                        }
                    }
                }
            }
            offset += f.width();
        }
        Ok(out)
    }

    /// Encodes the labels of `rows`: one `Vec` per task of `[rows.len()]` (label width 1);
    /// NaN = missing. Class labels are checked against the classes; regression labels scaled.
    pub fn encode_targets(&self, table: &Table, rows: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.targets
            .iter()
            .map(|t| {
                let cells = table.column(&t.column)?;
                rows.iter()
                    .map(|&r| encode_label(table, t, r, &cells[r]))
                    .collect()
            })
            .collect()
    }

    /// Reads the CSV or Parquet table at `path` (the same feature columns as in training) and
    /// encodes every row, for `predict`. No row is dropped, so outputs line up with the rows.
    pub fn apply_features(&self, path: impl AsRef<Path>) -> Result<Features> {
        let columns: Vec<String> = self
            .features
            .iter()
            .map(|f| f.column().to_string())
            .collect();
        let table = read_table(path.as_ref(), &columns)?;
        let rows: Vec<usize> = (0..table.rows).collect();
        let data = self.encode_features(&table, &rows)?;
        Ok(Features {
            rows: table.rows,
            inputs: self.inputs(),
            data,
            names: self.feature_names(),
        })
    }
}

/// Runs `fit` over `table` as its one block, in as many passes as it asks for.
pub fn fit_whole(
    fit: &mut PreprocessFit,
    table: &Table,
    label_rows: &[usize],
    train_rows: &[usize],
) -> Result<()> {
    loop {
        fit.add(table, label_rows, train_rows)?;
        if !fit.end_pass()? {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// "a, b, c" (at most 10 shown).
fn preview(values: &[String]) -> String {
    let mut s = values
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > 10 {
        s.push_str(&format!(", … ({} in all)", values.len()));
    }
    s
}

/// "class label v is not an integer in 0..C−1", about the cell at `at`.
fn class_error(at: &RowRef, column: &str, v: f64, outputs: usize) -> Error {
    let range = match outputs {
        0 => "a non-negative integer".to_string(),
        c => format!("an integer in 0..{}", c - 1),
    };
    at.error(column, format!("class label {v} is not {range}"))
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// `(x − mean) / std` of column `column` at each of `rows`; a missing cell becomes 0 (the mean).
fn encode_numeric(
    table: &Table,
    column: &str,
    cells: &[String],
    rows: &[usize],
    (mean, std): (f32, f32),
) -> Result<Vec<f32>> {
    let mut missing = 0;
    let mut out = Vec::with_capacity(rows.len());
    for &r in rows {
        let cell = &cells[r];
        let v = if is_missing(cell) {
            missing += 1;
            mean
        } else {
            match cell.parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                Ok(v) => {
                    return Err(table.cell_error(r, column, format!("non-finite feature {v}")))
                }
                Err(_) => {
                    return Err(table.cell_error(
                        r,
                        column,
                        format!("`{cell}` is not a number (the column was numeric in training)"),
                    ))
                }
            }
        };
        out.push((v - mean) / std);
    }
    if missing > 0 {
        log::warn!(
            "{}: column `{column}`: {missing} missing values replaced by the training mean",
            table.path.display()
        );
    }
    Ok(out)
}

/// The category index of column `column` at each of `rows`; `None` (all zeros) for a missing or
/// unknown category, with one warning.
fn encode_categorical(
    table: &Table,
    column: &str,
    cells: &[String],
    rows: &[usize],
    categories: &[String],
) -> Vec<Option<usize>> {
    let hot: Vec<Option<usize>> = rows
        .iter()
        .map(|&r| categories.binary_search(&cells[r]).ok())
        .collect();
    let unknown = hot.iter().filter(|k| k.is_none()).count();
    if let Some(i) = hot.iter().position(Option::is_none) {
        log::warn!(
            "{}: column `{column}`: {unknown} rows hold a missing or unknown category (e.g. `{}`); \
             encoded as all zeros",
            table.path.display(),
            cells[rows[i]]
        );
    }
    hot
}

/// One label cell → f32 (NaN = missing), checked for the task's kind.
fn encode_label(table: &Table, t: &TargetTransform, row: usize, cell: &str) -> Result<f32> {
    if is_missing(cell) {
        return Ok(f32::NAN);
    }
    if let Some(classes) = &t.classes {
        return match classes.binary_search_by(|c| c.as_str().cmp(cell)) {
            Ok(k) => Ok(k as f32),
            Err(_) => Err(table.cell_error(
                row,
                &t.column,
                format!(
                    "label `{cell}` is not one of the classes {}",
                    preview(classes)
                ),
            )),
        };
    }
    let v = match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        _ => {
            return Err(table.cell_error(
                row,
                &t.column,
                format!("label `{cell}` is not a finite number"),
            ))
        }
    };
    match t.kind {
        TaskKind::Multiclass if v < 0.0 || v.fract() != 0.0 || v >= t.outputs as f64 => {
            Err(class_error(&table.row_ref(row), &t.column, v, t.outputs))
        }
        TaskKind::Binary if v != 0.0 && v != 1.0 => {
            Err(table.cell_error(row, &t.column, format!("binary label {v} must be 0 or 1")))
        }
        _ => Ok(match t.scale {
            Some(s) => ((v - f64::from(s.mean)) / f64::from(s.std)) as f32,
            None => v as f32,
        }),
    }
}
