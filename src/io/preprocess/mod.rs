//! What turns CSV cells into model inputs and labels, fitted on the training rows and stored
//! with the model (as JSON in the weights file's metadata) so `eval` and `predict` apply the
//! very same mapping.
//!
//! - A numeric feature column is standardised: `(x − mean) / std`, population std over the
//!   training rows (std 0 → 1). A missing cell at predict time becomes the mean (0).
//! - Any other feature column is categorical: one-hot over its sorted training categories; an
//!   unknown or missing category becomes all zeros (with a warning).
//! - String labels map to class indices in sorted order (a binary task's two values → 0, 1);
//!   numeric labels are used as they are. Regression labels are standardised like features and
//!   mapped back with [`Preprocess::unscale_regression`].

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::table::{is_missing, is_numeric, parse_number, Table};
pub use crate::model::spec::preprocess::{
    FeatureTransform, Preprocess, Standardize, TargetTransform,
};
use crate::model::spec::{TaskKind, TaskSpec};

/// Model inputs encoded from a CSV by [`Preprocess::apply_features`].
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
        assert_eq!(tasks.len(), targets.len(), "one target column per task");
        let features = features
            .iter()
            .map(|c| {
                let declared = categorical.contains(c);
                fit_feature(table, c, declared, train_rows, label_rows)
            })
            .collect::<Result<Vec<_>>>()?;
        let targets = tasks
            .iter_mut()
            .zip(targets)
            .map(|(task, col)| fit_target(table, col, task, train_rows, label_rows))
            .collect::<Result<Vec<_>>>()?;
        Ok(Preprocess { features, targets })
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

    /// Reads the CSV at `path` (the same feature columns as in training) and encodes every row,
    /// for `predict`. No row is dropped, so outputs line up with the file's rows.
    pub fn apply_features(&self, path: impl AsRef<Path>) -> Result<Features> {
        let table = Table::read(path)?;
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

// ---------------------------------------------------------------------------------------------
// Fitting
// ---------------------------------------------------------------------------------------------

/// A column declared categorical, or one where no cell is a number (all text), is one-hot
/// encoded; one whose cells are all numbers is standardised. A number column with a text cell
/// is an error naming the cell: one typo must not turn a measurement into categories.
fn fit_feature(
    table: &Table,
    column: &str,
    declared: bool,
    train_rows: &[usize],
    all_rows: &[usize],
) -> Result<FeatureTransform> {
    let cells = table.column(column)?;
    let present = || all_rows.iter().filter(|&&r| !is_missing(&cells[r]));
    let count = present()
        .filter(|&&r| cells[r].parse::<f64>().is_ok())
        .count();
    if declared || count == 0 && present().next().is_some() {
        return Ok(FeatureTransform::Categorical {
            column: column.to_string(),
            categories: distinct(cells, train_rows),
        });
    }
    if let Some(&r) = present().find(|&&r| cells[r].parse::<f64>().is_err()) {
        return Err(table.cell_error(
            r,
            column,
            format!(
                "`{}` is not a number, but {count} other cells of this column are; fix the \
                 cell, or list the column in data.categorical = [\"{column}\"] to one-hot encode it",
                cells[r]
            ),
        ));
    }
    let values = numbers(table, column, cells, train_rows)?;
    let s = standardize(&values);
    Ok(FeatureTransform::Numeric {
        column: column.to_string(),
        mean: s.mean,
        std: s.std,
    })
}

/// Sorted distinct non-missing cells of `rows`.
fn distinct(cells: &[String], rows: &[usize]) -> Vec<String> {
    let set: BTreeSet<&str> = rows
        .iter()
        .map(|&r| cells[r].as_str())
        .filter(|c| !is_missing(c))
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// The finite numbers of `rows` (missing cells skipped); a non-number or ±inf is an error.
fn numbers(table: &Table, column: &str, cells: &[String], rows: &[usize]) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rows.len());
    for &r in rows {
        if is_missing(&cells[r]) {
            continue;
        }
        match cells[r].parse::<f64>() {
            Ok(v) if v.is_finite() => out.push(v),
            Ok(v) => return Err(table.cell_error(r, column, format!("non-finite value {v}"))),
            Err(_) => {
                return Err(table.cell_error(r, column, format!("`{}` is not a number", cells[r])))
            }
        }
    }
    Ok(out)
}

/// Mean and population std (std 0 or no values → 1).
fn standardize(values: &[f64]) -> Standardize {
    if values.is_empty() {
        return Standardize {
            mean: 0.0,
            std: 1.0,
        };
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    Standardize {
        mean: mean as f32,
        std: if std > 0.0 { std as f32 } else { 1.0 },
    }
}

/// Fits one task's label mapping; fills a multiclass `outputs` of 0.
fn fit_target(
    table: &Table,
    column: &str,
    task: &mut TaskSpec,
    train_rows: &[usize],
    label_rows: &[usize],
) -> Result<TargetTransform> {
    let cells = table.column(column)?;
    let numeric = is_numeric(cells, label_rows);
    let mut t = TargetTransform {
        task: task.name.clone(),
        column: column.to_string(),
        kind: task.kind,
        outputs: task.outputs,
        classes: None,
        scale: None,
    };
    match (task.kind, numeric) {
        (TaskKind::Regression, true) => {
            t.scale = Some(standardize(&numbers(table, column, cells, train_rows)?));
        }
        (TaskKind::Regression, false) => {
            numbers(table, column, cells, label_rows)?; // reports the first non-number
        }
        (TaskKind::Binary, true) => {}
        (TaskKind::Binary, false) => {
            t.classes = Some(binary_classes(table, column, cells, label_rows)?)
        }
        (TaskKind::Multiclass, true) => {
            t.outputs = numeric_classes(table, column, cells, task, label_rows)?
        }
        (TaskKind::Multiclass, false) => {
            let classes = distinct(cells, label_rows);
            t.outputs = check_class_count(table, column, task, classes.len(), &classes)?;
            t.classes = Some(classes);
        }
    }
    task.outputs = t.outputs;
    Ok(t)
}

/// A binary task's two string values, sorted (→ 0, 1).
fn binary_classes(
    table: &Table,
    column: &str,
    cells: &[String],
    rows: &[usize],
) -> Result<Vec<String>> {
    let classes = distinct(cells, rows);
    if classes.len() != 2 {
        return Err(Error::data(
            &table.path,
            format!(
                "column `{column}`: a binary task needs exactly two distinct values (or 0/1), found {}: {}",
                classes.len(),
                preview(&classes)
            ),
        ));
    }
    Ok(classes)
}

/// Classes of a multiclass task with numeric labels: max label + 1, checked against `outputs`.
fn numeric_classes(
    table: &Table,
    column: &str,
    cells: &[String],
    task: &TaskSpec,
    rows: &[usize],
) -> Result<usize> {
    let mut max = 0usize;
    for &r in rows {
        let Some(v) = parse_number(&cells[r]) else {
            continue;
        };
        if v < 0.0 || v.fract() != 0.0 || (task.outputs > 0 && v >= task.outputs as f64) {
            return Err(class_error(table, column, r, v, task.outputs));
        }
        max = max.max(v as usize);
    }
    let names: Vec<String> = (0..=max).map(|c| c.to_string()).collect();
    check_class_count(table, column, task, max + 1, &names)
}

/// Fills or checks a multiclass task's `outputs` against the `found` classes.
fn check_class_count(
    table: &Table,
    column: &str,
    task: &TaskSpec,
    found: usize,
    classes: &[String],
) -> Result<usize> {
    if task.outputs == 0 && found < 2 {
        return Err(Error::data(
            &table.path,
            format!(
                "column `{column}` (task `{}`): a multiclass task needs at least 2 classes, found {found}: {}",
                task.name,
                preview(classes)
            ),
        ));
    }
    if task.outputs != 0 && task.outputs < found {
        return Err(Error::data(
            &table.path,
            format!(
                "column `{column}` (task `{}`) has {found} classes ({}) but the config says outputs = {}",
                task.name,
                preview(classes),
                task.outputs
            ),
        ));
    }
    Ok(task.outputs.max(found))
}

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

fn class_error(table: &Table, column: &str, row: usize, v: f64, outputs: usize) -> Error {
    let range = match outputs {
        0 => "a non-negative integer".to_string(),
        c => format!("an integer in 0..{}", c - 1),
    };
    table.cell_error(row, column, format!("class label {v} is not {range}"))
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
            Err(class_error(table, &t.column, row, v, t.outputs))
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
