//! A config's data as sources read a block at a time (`data::DataSource`),
//! split into training and validation rows exactly as `load_split` splits
//! them, so data larger than memory can be trained on: npy files are read
//! by rows from the files; a table (CSV or Parquet) is read into memory, or,
//! when it is to be streamed, in blocks (`io::dataset::open_table_split`).

use std::path::{Path, PathBuf};

use crate::data::{DataSource, Dataset, Subset};
use crate::error::{Error, Result};
use crate::io::config::StreamMode;
use crate::io::config::{Config, FeatureSource, TargetSource};
use crate::io::dataset::{
    check_finite_rows, check_labels, check_split_size, load_split, open_table_split, set_inputs,
    split_rows,
};
use crate::io::npy_rows::NpyRows;
use crate::io::preprocess::Preprocess;
use crate::model::spec::TaskSpec;

/// Rows read per block while checking the labels.
const CHECK_BLOCK_ROWS: usize = 1 << 20;

/// A config's training and validation rows as sources.
pub struct SourceSplit {
    pub train: Box<dyn DataSource>,
    /// None when `data.validation` is 0.
    pub valid: Option<Box<dyn DataSource>>,
    /// The CSV preprocessing fitted on the training rows; None for npy data.
    pub preprocess: Option<Preprocess>,
}

/// Opens the data of `config` as sources, split by `data.validation` with
/// the seed `train.seed` (the same rows as `load_split`). Fills
/// `config.model.inputs` as `load_split` does. npy data is read from the
/// files block by block; a table is read in blocks when `data.stream` is
/// true, or "auto" and its files take more than a quarter of the memory
/// budget, and loaded into memory otherwise.
pub fn open_split(config: &mut Config) -> Result<SourceSplit> {
    let path = match config.data.features.clone() {
        FeatureSource::Npy(path) => path,
        FeatureSource::Columns(_) if table_streams(config) => {
            let (train, valid, pre) = open_table_split(config)?;
            return Ok(SourceSplit {
                train,
                valid,
                preprocess: Some(pre),
            });
        }
        FeatureSource::Columns(_) => {
            let split = load_split(config)?;
            return Ok(SourceSplit {
                train: Box::new(split.train),
                valid: split.valid.map(|v| Box::new(v) as Box<dyn DataSource>),
                preprocess: split.preprocess,
            });
        }
    };
    let mut all = NpySource::open(config, &path)?;
    set_inputs(config, &path, all.features.cols)?;
    let n = all.features.rows;
    check_split_size(&path, n, config.data.validation)?;
    let (train, valid) = split_rows(n, config.data.validation, config.train.seed);
    if valid.is_empty() {
        all.check_present(None)?;
        return Ok(SourceSplit {
            train: Box::new(all),
            valid: None,
            preprocess: None,
        });
    }
    let as_u32 = |rows: Vec<usize>| rows.into_iter().map(|r| r as u32).collect::<Vec<_>>();
    let (train, valid) = (as_u32(train), as_u32(valid));
    all.check_present(Some(&train))?;
    let again = NpySource::open(config, &path)?;
    Ok(SourceSplit {
        train: Box::new(Subset::new(Box::new(all), train)?),
        valid: Some(Box::new(Subset::new(Box::new(again), valid)?)),
        preprocess: None,
    })
}

/// Whether `config`'s table is read in blocks rather than whole.
fn table_streams(config: &Config) -> bool {
    let plan = &config.data.plan;
    match plan.stream {
        StreamMode::Always => true,
        StreamMode::Never => false,
        StreamMode::Auto => {
            let budget = plan.budget();
            let files = config.data.path.as_deref().map_or(0, table_bytes);
            files > budget / 4
        }
    }
}

/// Bytes on disk of a table path: a file, or every file of a folder or pattern.
fn table_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    match crate::io::parquet::part_files(path) {
        Ok(parts) if crate::io::table_blocks::is_parquet(path) => {
            parts.iter().map(|p| size(p)).sum()
        }
        _ => size(path),
    }
}

/// A features file [N, I] and one labels file per task [N, label_width],
/// read by rows and checked as they are read (finite features, labels valid
/// for their task, rows named in the file's numbering).
pub struct NpySource {
    features: NpyRows,
    labels: Vec<(NpyRows, TaskSpec)>,
}

impl NpySource {
    /// Opens the files of `config` (whose features are the npy file `path`)
    /// and checks their shapes against each other and the tasks.
    pub fn open(config: &Config, path: &Path) -> Result<NpySource> {
        let features = NpyRows::open(path)?;
        if features.rows == 0 || features.cols == 0 {
            return Err(Error::data(
                path,
                format!(
                    "no rows: the features have shape [{}, {}]",
                    features.rows, features.cols
                ),
            ));
        }
        let mut labels = Vec::new();
        for ((_, source), task) in config.data.targets.iter().zip(&config.model.tasks) {
            let file = match source {
                TargetSource::Npy(p) => p,
                TargetSource::Column(c) => {
                    return Err(Error::config(
                        &config.path,
                        format!(
                            "task `{}`: column `{c}` needs data.path to name a CSV file",
                            task.name
                        ),
                    ))
                }
            };
            let m = NpyRows::open(file)?;
            check_label_shape(&m, task, features.rows, path)?;
            labels.push((m, task.clone()));
        }
        Ok(NpySource { features, labels })
    }

    /// Every task has a present label among `rows` (None: every row): a task
    /// whose labels are all missing would train with a loss of 0. Reads the
    /// labels files only.
    fn check_present(&mut self, rows: Option<&[u32]>) -> Result<()> {
        let n = rows.map_or(self.features.rows, <[u32]>::len);
        for (m, task) in &mut self.labels {
            let mut found = false;
            let mut at = 0;
            while at < n && !found {
                let len = CHECK_BLOCK_ROWS.min(n - at);
                let (first, span) = match rows {
                    Some(r) => (r[at] as usize, (r[at + len - 1] - r[at]) as usize + 1),
                    None => (at, len),
                };
                let values = m.read(first, span)?;
                let w = m.cols.max(1);
                found = match rows {
                    None => values.iter().any(|v| !v.is_nan()),
                    Some(r) => r[at..at + len].iter().any(|&row| {
                        let i = (row as usize - first) * w;
                        values[i..i + w].iter().any(|v| !v.is_nan())
                    }),
                };
                at += len;
            }
            if !found {
                return Err(Error::data(
                    &m.path,
                    format!(
                        "task `{}`: no label is present in the {n} training rows \
                         (all are missing), so the task cannot be trained",
                        task.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The features file.
    pub fn path(&self) -> PathBuf {
        self.features.path.clone()
    }
}

impl DataSource for NpySource {
    fn rows(&self) -> usize {
        self.features.rows
    }
    fn inputs(&self) -> usize {
        self.features.cols
    }
    fn label_widths(&self) -> Vec<usize> {
        self.labels.iter().map(|(m, _)| m.cols).collect()
    }
    fn feature_names(&self) -> Vec<String> {
        (0..self.features.cols).map(|i| format!("x{i}")).collect()
    }
    fn describe(&self) -> String {
        format!("{}", self.features.path.display())
    }
    fn read(&mut self, start: usize, len: usize) -> Result<Dataset> {
        crate::data::source::check_range(self, start, len)?;
        let cols = self.features.cols;
        let features = self.features.read(start, len)?;
        check_finite_rows(&self.features.path, &features, cols, start)?;
        let mut targets = Vec::with_capacity(self.labels.len());
        for (m, task) in &mut self.labels {
            let values = m.read(start, len)?;
            check_labels(&m.path, task, &values, m.cols, start)?;
            targets.push(values);
        }
        Ok(Dataset {
            rows: len,
            inputs: cols,
            features,
            targets,
            feature_names: self.feature_names(),
        })
    }
}

/// A labels file has the features' rows and the task's label width.
fn check_label_shape(m: &NpyRows, task: &TaskSpec, rows: usize, features: &Path) -> Result<()> {
    if m.rows != rows {
        return Err(Error::data(
            &m.path,
            format!(
                "task `{}` has {} label rows but the features file {} has {rows} rows",
                task.name,
                m.rows,
                features.display()
            ),
        ));
    }
    if m.cols != task.label_width() {
        return Err(Error::data(
            &m.path,
            format!(
                "task `{}` ({:?}, outputs = {}) expects {} label columns per row, found {}",
                task.name,
                task.kind,
                task.outputs,
                task.label_width(),
                m.cols
            ),
        ));
    }
    Ok(())
}
