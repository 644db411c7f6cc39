//! Loading a config's data into memory: features and one label tensor per task, split into a
//! training and a validation part (seeded) before any statistic is computed.
//!
//! Two sources:
//! - npy: a features file [N, I] and one file per task [N, label_width]; NaN = missing label.
//! - a table, CSV or Parquet (a file, a folder of part files or a pattern): named columns,
//!   encoded by a [`Preprocess`] fitted on the training rows. Rows with a missing feature are
//!   dropped (one warning counts them); missing labels are NaN.
//!
//! [`load_split`] holds the data in memory; [`open_table_split`] reads a table in blocks, for
//! data larger than memory, and gives the same rows, statistics and encodings.

mod streamed;

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::io::config::{Config, FeatureSource, TargetSource};
use crate::io::npy;
use crate::io::preprocess::Preprocess;
use crate::io::table::{is_missing, Table};
use crate::io::table_blocks::read_table;
use crate::model::spec::{TaskKind, TaskSpec};
pub use streamed::{open_table_split, open_table_split_with, TableSplit};

/// Loads the data of `config`, split by `data.validation` with the seed `train.seed`.
///
/// Fills `config.model.inputs` when it is 0 and a multiclass task's `outputs` when it is 0
/// (CSV); a given `inputs` that disagrees with the data is an error naming both.
pub fn load_split(config: &mut Config) -> Result<Split> {
    match config.data.features.clone() {
        FeatureSource::Npy(path) => npy_split(config, &path),
        FeatureSource::Columns(columns) => csv_split(config, &columns),
    }
}

/// Loads every row of `config`'s data (for `eval`), without a split. CSV data is encoded with
/// `preprocess` (the one stored with the model), which must then be given; npy data ignores it.
pub fn load_all(config: &mut Config, preprocess: Option<&Preprocess>) -> Result<Dataset> {
    match config.data.features.clone() {
        FeatureSource::Npy(path) => load_npy(config, &path),
        FeatureSource::Columns(columns) => {
            let csv = csv_path(config);
            let pre = preprocess.ok_or_else(|| {
                Error::data(
                    &csv,
                    "a CSV data source needs the preprocessing stored with the model",
                )
            })?;
            csv_all(config, &columns, pre)
        }
    }
}

/// Splits rows 0..n into (train, valid) index lists, each ascending (file order).
///
/// `round(validation · n)` rows, at least 1 and at most n − 1 when `validation > 0`, are drawn
/// for validation by a shuffle with `ChaCha8Rng::seed_from_u64(seed)`; `validation = 0` keeps
/// every row for training without touching the RNG. Needs n ≥ 2 when `validation > 0`.
pub fn split_rows(n: usize, validation: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    if validation <= 0.0 {
        return ((0..n).collect(), Vec::new());
    }
    assert!(
        n >= 2,
        "split_rows: a validation split needs at least 2 rows"
    );
    let n_valid = ((f64::from(validation) * n as f64).round() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut valid = order[..n_valid].to_vec();
    let mut train = order[n_valid..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    (train, valid)
}

/// Checks a split is possible for `n` rows.
pub(crate) fn check_split_size(path: &Path, n: usize, validation: f32) -> Result<()> {
    if validation > 0.0 && n < 2 {
        return Err(Error::data(
            path,
            format!("validation = {validation} needs at least 2 rows, found {n}"),
        ));
    }
    Ok(())
}

/// Fills `config.model.inputs` from the data's width, or checks it against it.
pub(crate) fn set_inputs(config: &mut Config, path: &Path, width: usize) -> Result<()> {
    match config.model.inputs {
        0 => config.model.inputs = width,
        given if given != width => {
            return Err(Error::data(
                path,
                format!(
                    "the data has {width} features per row but [model] inputs = {given} in {}",
                    config.path.display()
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// npy
// ---------------------------------------------------------------------------------------------

/// Every task has at least one present label among the training rows: a task whose
/// labels are all missing would train with a loss of 0 and learn nothing.
fn check_labels_present(config: &Config, train: &Dataset) -> Result<()> {
    let present: Vec<bool> = (train.targets.iter())
        .map(|labels| labels.iter().any(|v| !v.is_nan()))
        .collect();
    check_tasks_have_labels(config, train.rows, &present)
}

/// [`check_labels_present`] given, for each task, whether its `rows` training rows hold a label.
fn check_tasks_have_labels(config: &Config, rows: usize, present: &[bool]) -> Result<()> {
    for ((task, source), &present) in config.data.targets.iter().zip(present) {
        if present {
            continue;
        }
        let (path, what) = match source {
            TargetSource::Npy(p) => (p.clone(), String::new()),
            TargetSource::Column(c) => (csv_path(config), format!(" (column `{c}`)")),
        };
        return Err(Error::data(
            path,
            format!(
                "task `{task}`{what}: no label is present in the {} training rows \
                 (all are missing), so the task cannot be trained",
                rows
            ),
        ));
    }
    Ok(())
}

fn npy_split(config: &mut Config, path: &Path) -> Result<Split> {
    let all = load_npy(config, path)?;
    check_split_size(path, all.rows, config.data.validation)?;
    let (train, valid) = split_rows(all.rows, config.data.validation, config.train.seed);
    if valid.is_empty() {
        check_labels_present(config, &all)?;
        return Ok(Split {
            train: all,
            valid: None,
            preprocess: None,
        });
    }
    let train = all.select(&train);
    check_labels_present(config, &train)?;
    Ok(Split {
        train,
        valid: Some(all.select(&valid)),
        preprocess: None,
    })
}

/// Reads the features file and one labels file per task, all validated.
fn load_npy(config: &mut Config, path: &Path) -> Result<Dataset> {
    let (rows, width, features) = read_features_npy(path)?;
    set_inputs(config, path, width)?;
    let targets = config
        .data
        .targets
        .iter()
        .zip(&config.model.tasks)
        .map(|((_, source), task)| match source {
            TargetSource::Npy(p) => read_target_npy(p, task, rows, path),
            TargetSource::Column(c) => Err(Error::config(
                &config.path,
                format!(
                    "task `{}`: column `{c}` needs data.path to name a CSV file",
                    task.name
                ),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Dataset {
        rows,
        inputs: width,
        features,
        targets,
        feature_names: (0..width).map(|i| format!("x{i}")).collect(),
    })
}

/// `[N, I]` finite features; returns (N, I, data).
fn read_features_npy(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let (shape, data) = npy::read_f32(path)?;
    let (rows, width) = matrix_shape(path, &shape)?;
    if rows == 0 || width == 0 {
        return Err(Error::data(
            path,
            format!("no rows: the features have shape {shape:?}"),
        ));
    }
    check_finite_features(path, &data, width)?;
    Ok((rows, width, data))
}

/// Features `[N, width]` read from `path` are all finite: NaN or ±inf is an error naming the
/// row and column (a NaN feature would otherwise pass through ReLU as 0, silently).
pub fn check_finite_features(path: &Path, data: &[f32], width: usize) -> Result<()> {
    check_finite_rows(path, data, width, 0)
}

/// [`check_finite_features`] for rows that start at row `first_row` of the file.
pub fn check_finite_rows(path: &Path, data: &[f32], width: usize, first_row: usize) -> Result<()> {
    let Some(i) = data.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let width = width.max(1);
    Err(Error::data(
        path,
        format!(
            "non-finite feature {} at row {} (0-based), column {}",
            data[i],
            first_row + i / width,
            i % width
        ),
    ))
}

/// A 2-D shape as (rows, columns); more dimensions are an error.
fn matrix_shape(path: &Path, shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [r, c] => Ok((*r, *c)),
        _ => Err(Error::data(
            path,
            format!("expected a 2-D array [rows, columns], found shape {shape:?}"),
        )),
    }
}

/// `[N, label_width]` labels of `task`, checked against its kind; `features` names the
/// features file in a row-count error.
fn read_target_npy(path: &Path, task: &TaskSpec, rows: usize, features: &Path) -> Result<Vec<f32>> {
    let (shape, data) = npy::read_f32(path)?;
    let (n, width) = matrix_shape(path, &shape)?;
    if n != rows {
        return Err(Error::data(
            path,
            format!(
                "task `{}` has {n} label rows but the features file {} has {rows} rows",
                task.name,
                features.display()
            ),
        ));
    }
    if width != task.label_width() {
        return Err(Error::data(
            path,
            format!(
                "task `{}` ({:?}, outputs = {}) expects {} label columns per row, found {width}",
                task.name,
                task.kind,
                task.outputs,
                task.label_width()
            ),
        ));
    }
    check_labels(path, task, &data, width, 0)?;
    Ok(data)
}

/// Every label is NaN (missing) or valid for the task's kind; `data` holds
/// rows from row `first_row` of the file on.
pub(crate) fn check_labels(
    path: &Path,
    task: &TaskSpec,
    data: &[f32],
    width: usize,
    first_row: usize,
) -> Result<()> {
    let bad = data.iter().position(|&v| !v.is_nan() && !label_ok(task, v));
    let Some(i) = bad else { return Ok(()) };
    let v = data[i];
    let rule = match task.kind {
        TaskKind::Multiclass => format!("an integer in 0..{} (or NaN = missing)", task.outputs - 1),
        TaskKind::Binary => "0 or 1 (or NaN = missing)".to_string(),
        TaskKind::Regression => "finite (or NaN = missing)".to_string(),
    };
    Err(Error::data(
        path,
        format!(
            "task `{}`: label {v} at row {} (0-based), column {} must be {rule}",
            task.name,
            first_row + i / width,
            i % width
        ),
    ))
}

/// Whether a non-NaN label `v` is valid for `task`.
fn label_ok(task: &TaskSpec, v: f32) -> bool {
    match task.kind {
        TaskKind::Multiclass => v >= 0.0 && v.fract() == 0.0 && (v as usize) < task.outputs,
        TaskKind::Binary => v == 0.0 || v == 1.0,
        TaskKind::Regression => v.is_finite(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tables (CSV, Parquet)
// ---------------------------------------------------------------------------------------------

/// The table (CSV or Parquet) of a config whose features are columns.
fn csv_path(config: &Config) -> std::path::PathBuf {
    config
        .data
        .path
        .clone()
        .unwrap_or_else(|| config.path.clone())
}

/// The label column of each task, in task order.
fn target_columns(config: &Config) -> Result<Vec<String>> {
    config
        .data
        .targets
        .iter()
        .map(|(task, source)| match source {
            TargetSource::Column(c) => Ok(c.clone()),
            TargetSource::Npy(p) => Err(Error::config(
                &config.path,
                format!(
                    "task `{task}`: with CSV features its target must be a column, found file {}",
                    p.display()
                ),
            )),
        })
        .collect()
}

/// Reads the table (CSV, or the named Parquet columns), checks every named column exists, and
/// returns it with the data rows that have every feature (the others are dropped with one
/// warning).
fn read_csv(
    config: &Config,
    features: &[String],
    targets: &[String],
) -> Result<(Table, Vec<usize>)> {
    let columns: Vec<String> = features.iter().chain(targets).cloned().collect();
    let table = read_table(&csv_path(config), &columns)?;
    for column in &columns {
        table.column_index(column)?;
    }
    let feature_cells: Vec<&[String]> = features
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<_>>()?;
    let kept: Vec<usize> = (0..table.rows)
        .filter(|&r| feature_cells.iter().all(|cells| !is_missing(&cells[r])))
        .collect();
    report_dropped(&table.path, table.rows, kept.len())?;
    Ok((table, kept))
}

/// Warns about the rows dropped for a missing feature; none left is an error.
fn report_dropped(path: &Path, rows: usize, kept: usize) -> Result<()> {
    if kept == 0 {
        return Err(Error::data(
            path,
            format!("no rows left: all {rows} rows miss a feature"),
        ));
    }
    if kept < rows {
        log::warn!(
            "{}: dropped {} of {rows} rows with a missing feature",
            path.display(),
            rows - kept
        );
    }
    Ok(())
}

fn csv_split(config: &mut Config, features: &[String]) -> Result<Split> {
    let targets = target_columns(config)?;
    let (table, kept) = read_csv(config, features, &targets)?;
    check_split_size(&table.path, kept.len(), config.data.validation)?;
    let (train, valid) = split_rows(kept.len(), config.data.validation, config.train.seed);
    let train: Vec<usize> = train.into_iter().map(|i| kept[i]).collect();
    let valid: Vec<usize> = valid.into_iter().map(|i| kept[i]).collect();
    let pre = Preprocess::fit(
        &table,
        features,
        &config.data.categorical,
        &mut config.model.tasks,
        &targets,
        &train,
        &kept,
    )?;
    set_inputs(config, &table.path, pre.inputs())?;
    let train_set = encode(&pre, &table, &train)?;
    check_labels_present(config, &train_set)?;
    let valid_set = match valid.is_empty() {
        true => None,
        false => Some(encode(&pre, &table, &valid)?),
    };
    Ok(Split {
        train: train_set,
        valid: valid_set,
        preprocess: Some(pre),
    })
}

fn csv_all(config: &mut Config, features: &[String], pre: &Preprocess) -> Result<Dataset> {
    check_matches(config, pre)?;
    let targets: Vec<String> = pre.targets.iter().map(|t| t.column.clone()).collect();
    let columns: Vec<String> = pre
        .features
        .iter()
        .map(|f| f.column().to_string())
        .collect();
    let (table, kept) = read_csv(config, &columns, &targets)?;
    if columns != features {
        log::warn!(
            "{}: using the model's feature columns ({}) rather than the config's ({})",
            table.path.display(),
            columns.join(", "),
            features.join(", ")
        );
    }
    for (task, t) in config.model.tasks.iter_mut().zip(&pre.targets) {
        if task.outputs == 0 {
            task.outputs = t.outputs;
        }
    }
    set_inputs(config, &table.path, pre.inputs())?;
    encode(pre, &table, &kept)
}

/// The stored preprocessing must describe the config's tasks, in order.
fn check_matches(config: &Config, pre: &Preprocess) -> Result<()> {
    let ours: Vec<&str> = config.model.tasks.iter().map(|t| t.name.as_str()).collect();
    let theirs: Vec<&str> = pre.targets.iter().map(|t| t.task.as_str()).collect();
    if ours != theirs {
        return Err(Error::Invalid(format!(
            "{}: tasks ({}) differ from the model's preprocessing ({})",
            config.path.display(),
            ours.join(", "),
            theirs.join(", ")
        )));
    }
    Ok(())
}

/// Encodes `rows` of `table` into a [`Dataset`].
fn encode(pre: &Preprocess, table: &Table, rows: &[usize]) -> Result<Dataset> {
    Ok(Dataset {
        rows: rows.len(),
        inputs: pre.inputs(),
        features: pre.encode_features(table, rows)?,
        targets: pre.encode_targets(table, rows)?,
        feature_names: pre.feature_names(),
    })
}
