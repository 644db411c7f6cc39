//! A config's table (CSV or Parquet) split into training and validation rows that are read in
//! blocks: the in-memory split's rows, statistics and encodings, without holding the table.
//!
//! Passes over the table: opening it (a CSV file is indexed: its rows and where each block
//! starts), the rows that have every feature, then the preprocessing fit over the training rows
//! (two passes when a column is standardised: its mean, then the deviations from it). Cells
//! are then read again, a block at a time, by whoever reads the returned sources.

use std::sync::Arc;

use super::{
    check_split_size, check_tasks_have_labels, csv_path, report_dropped, set_inputs, split_rows,
    target_columns,
};
use crate::data::DataSource;
use crate::error::{Error, Result};
use crate::io::config::{Config, FeatureSource};
use crate::io::preprocess::{Preprocess, PreprocessFit};
use crate::io::table::is_missing;
use crate::io::table_blocks::{open_blocks, TableBlocks, BLOCK_ROWS};
use crate::io::table_source::TableSource;

/// The training rows, the validation rows (`None` when `data.validation` is 0) and the
/// preprocessing fitted on the training rows.
pub type TableSplit = (Box<dyn DataSource>, Option<Box<dyn DataSource>>, Preprocess);

/// [`open_table_split_with`] in blocks of [`BLOCK_ROWS`] rows.
pub fn open_table_split(config: &mut Config) -> Result<TableSplit> {
    open_table_split_with(config, BLOCK_ROWS)
}

/// Opens the table of `config` for block reads and splits it as `load_split` does: the rows
/// with every feature, split by `data.validation` with the seed `train.seed`, the
/// preprocessing fitted on the training rows. Reading every row of the returned sources gives
/// `load_split`'s datasets bit for bit. Fills `config.model.inputs` and a multiclass task's
/// `outputs` as `load_split` does. The passes over the table read `block_rows` rows at a time
/// (a CSV index records where each block of that many rows starts).
pub fn open_table_split_with(config: &mut Config, block_rows: usize) -> Result<TableSplit> {
    let FeatureSource::Columns(features) = config.data.features.clone() else {
        return Err(Error::config(
            &config.path,
            "reading in blocks needs table data (data.path with features = [...]); \
             npy data loads whole",
        ));
    };
    let block_rows = block_rows.max(1);
    let targets = target_columns(config)?;
    let mut blocks = open_blocks(&csv_path(config), block_rows)?;
    let columns = distinct(features.iter().chain(&targets));
    blocks.read(0, 0, &columns)?; // every named column is there
    let kept = kept_rows(blocks.as_mut(), &features, block_rows)?;
    let path = blocks.path().to_path_buf();
    report_dropped(&path, blocks.rows(), kept.len())?;
    check_split_size(&path, kept.len(), config.data.validation)?;
    let (train, valid) = split_rows(kept.len(), config.data.validation, config.train.seed);
    let train: Vec<u32> = train.into_iter().map(|i| kept[i]).collect();
    let valid: Vec<u32> = valid.into_iter().map(|i| kept[i]).collect();
    let mut fit = PreprocessFit::new(
        &features,
        &config.data.categorical,
        &config.model.tasks,
        &targets,
    );
    let rows = Rows {
        labels: &kept,
        train: &train,
    };
    fit_in_blocks(&mut fit, blocks.as_mut(), &columns, rows, block_rows)?;
    let present: Vec<bool> = fit.training_labels().iter().map(|&n| n > 0).collect();
    let pre = fit.finish()?;
    for (task, t) in config.model.tasks.iter_mut().zip(&pre.targets) {
        task.outputs = t.outputs;
    }
    set_inputs(config, &path, pre.inputs())?;
    check_tasks_have_labels(config, train.len(), &present)?;
    let shared = Arc::new(pre.clone());
    let train = TableSource::new(blocks.try_clone()?, Arc::clone(&shared), train)?;
    let valid = match valid.is_empty() {
        true => None,
        false => Some(Box::new(TableSource::new(blocks, shared, valid)?) as Box<dyn DataSource>),
    };
    Ok((Box::new(train), valid, pre))
}

/// Each name once, in first-seen order.
fn distinct<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

/// `[start, start + len)` of every block of `rows` rows.
fn block_ranges(rows: usize, block_rows: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..rows)
        .step_by(block_rows)
        .map(move |s| (s, block_rows.min(rows - s)))
}

/// The rows (ascending) whose feature cells are all present.
fn kept_rows(
    blocks: &mut dyn TableBlocks,
    features: &[String],
    block_rows: usize,
) -> Result<Vec<u32>> {
    let rows = blocks.rows();
    if rows > u32::MAX as usize {
        return Err(Error::data(
            blocks.path(),
            format!(
                "{rows} rows: tandem reads at most {} rows of a table",
                u32::MAX
            ),
        ));
    }
    let mut kept = Vec::new();
    for (start, len) in block_ranges(rows, block_rows) {
        let block = blocks.read(start, len, features)?;
        let cells: Vec<&[String]> = block.columns.iter().map(Vec::as_slice).collect();
        for r in 0..len {
            if cells.iter().all(|c| !is_missing(&c[r])) {
                kept.push((start + r) as u32);
            }
        }
    }
    Ok(kept)
}

/// The rows a fit reads: those whose labels count (ascending) and the training rows among them.
#[derive(Clone, Copy)]
struct Rows<'a> {
    labels: &'a [u32],
    train: &'a [u32],
}

/// Feeds `fit` every block that holds one of `rows.labels`, in as many passes as it asks for.
fn fit_in_blocks(
    fit: &mut PreprocessFit,
    blocks: &mut dyn TableBlocks,
    columns: &[String],
    rows: Rows,
    block_rows: usize,
) -> Result<()> {
    loop {
        let (mut labels, mut train) = (rows.labels, rows.train);
        for (start, len) in block_ranges(blocks.rows(), block_rows) {
            let end = (start + len) as u64;
            let in_block = |rows: &[u32]| rows.partition_point(|&r| u64::from(r) < end);
            let (nl, nt) = (in_block(labels), in_block(train));
            let local =
                |rows: &[u32]| -> Vec<usize> { rows.iter().map(|&r| r as usize - start).collect() };
            let (block_labels, block_train) = (local(&labels[..nl]), local(&train[..nt]));
            (labels, train) = (&labels[nl..], &train[nt..]);
            if block_labels.is_empty() && block_train.is_empty() {
                continue;
            }
            let block = blocks.read(start, len, columns)?;
            fit.add(&block, &block_labels, &block_train)?;
        }
        if !fit.end_pass()? {
            return Ok(());
        }
    }
}
