//! The statistics of one task's label column: numbers or text labels, the classes, and a
//! regression task's moments; and the errors a whole-table fit reports for it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::super::{class_error, preview};
use super::column::{add_distinct, Moments};
use crate::error::{Error, Result};
use crate::io::table::{is_missing, RowRef, Table};
use crate::model::spec::preprocess::TargetTransform;
use crate::model::spec::{TaskKind, TaskSpec};

/// One task's label column.
pub(super) struct TargetFit {
    task: String,
    column: String,
    pub(super) kind: TaskKind,
    /// The config's `outputs` (0 = inferred for multiclass).
    outputs: usize,
    /// The first present label cell that is not a number (the column is then text labels).
    first_text: Option<(RowRef, String)>,
    /// Regression: the first present label cell that is not a finite number, and why.
    first_unusable: Option<(RowRef, String)>,
    /// Binary and multiclass: the distinct present labels.
    classes: BTreeSet<String>,
    /// Multiclass with number labels: the largest, and the first that is not a class index.
    max_class: usize,
    bad_class: Option<(RowRef, f64)>,
    /// Regression: the training labels' numbers.
    pub(super) moments: Moments,
    /// Present labels among the training rows.
    pub(super) train_labels: usize,
    /// Decided at the end of the first pass: the labels are numbers, and their mapping.
    pub(super) numeric: bool,
    pub(super) transform: Option<TargetTransform>,
}

impl TargetFit {
    /// The labels of task `task` (its name, kind and configured outputs) in column `column`.
    pub(super) fn new(task: &TaskSpec, column: &str) -> TargetFit {
        TargetFit {
            task: task.name.clone(),
            column: column.to_string(),
            kind: task.kind,
            outputs: task.outputs,
            first_text: None,
            first_unusable: None,
            classes: BTreeSet::new(),
            max_class: 0,
            bad_class: None,
            moments: Moments::new(),
            train_labels: 0,
            numeric: false,
            transform: None,
        }
    }

    /// The column's name.
    pub(super) fn column(&self) -> &str {
        &self.column
    }

    pub(super) fn count(
        &mut self,
        table: &Table,
        cells: &[String],
        labels: &[usize],
        train: &[usize],
    ) {
        for &r in labels {
            let cell = &cells[r];
            if is_missing(cell) {
                continue;
            }
            let number = cell.parse::<f64>().ok();
            if number.is_none() && self.first_text.is_none() {
                self.first_text = Some((table.row_ref(r), cell.clone()));
            }
            match self.kind {
                TaskKind::Regression => self.check_number(table, r, cell, number),
                TaskKind::Binary => add_distinct(&mut self.classes, cells, &[r]),
                TaskKind::Multiclass => {
                    add_distinct(&mut self.classes, cells, &[r]);
                    if let Some(v) = number {
                        self.class_index(table, r, v);
                    }
                }
            }
        }
        for &r in train.iter().filter(|&&r| !is_missing(&cells[r])) {
            self.train_labels += 1;
            if self.kind == TaskKind::Regression {
                self.moments.count(table, r, &cells[r]);
            }
        }
    }

    /// Regression: records the first label that is not a finite number.
    fn check_number(&mut self, table: &Table, row: usize, cell: &str, number: Option<f64>) {
        if self.first_unusable.is_some() {
            return;
        }
        let why = match number {
            Some(v) if v.is_finite() => return,
            Some(v) => format!("non-finite value {v}"),
            None => format!("`{cell}` is not a number"),
        };
        self.first_unusable = Some((table.row_ref(row), why));
    }

    /// Multiclass with number labels: the largest class, or the first label that is not one.
    fn class_index(&mut self, table: &Table, row: usize, v: f64) {
        if self.bad_class.is_some() {
            return;
        }
        if v < 0.0 || v.fract() != 0.0 || (self.outputs > 0 && v >= self.outputs as f64) {
            self.bad_class = Some((table.row_ref(row), v));
        } else {
            self.max_class = self.max_class.max(v as usize);
        }
    }

    /// The label mapping, or the error a whole-table fit reports first.
    pub(super) fn decide(&mut self, path: &PathBuf) -> Result<TargetTransform> {
        self.numeric = self.first_text.is_none();
        let mut t = TargetTransform {
            task: self.task.clone(),
            column: self.column.clone(),
            kind: self.kind,
            outputs: self.outputs,
            classes: None,
            scale: None,
        };
        let column = &self.column;
        match (self.kind, self.numeric) {
            (TaskKind::Regression, true) => {
                if let Some((at, v)) = &self.moments.non_finite {
                    return Err(at.error(column, format!("non-finite value {v}")));
                }
                self.moments.close_count();
            }
            (TaskKind::Regression, false) => {
                // Reports the first label that is not a finite number (there is one).
                if let Some((at, why)) = &self.first_unusable {
                    return Err(at.error(column, why));
                }
            }
            (TaskKind::Binary, true) => {}
            (TaskKind::Binary, false) => t.classes = Some(self.binary_classes(path)?),
            (TaskKind::Multiclass, true) => {
                if let Some((at, v)) = &self.bad_class {
                    return Err(class_error(at, column, *v, self.outputs));
                }
                let max = self.max_class;
                let names: Vec<String> = (0..=max).map(|c| c.to_string()).collect();
                t.outputs = self.class_count(path, max + 1, &names)?;
            }
            (TaskKind::Multiclass, false) => {
                let classes: Vec<String> = self.classes.iter().cloned().collect();
                t.outputs = self.class_count(path, classes.len(), &classes)?;
                t.classes = Some(classes);
            }
        }
        Ok(t)
    }

    /// A binary task's two string values, sorted (→ 0, 1).
    fn binary_classes(&self, path: &PathBuf) -> Result<Vec<String>> {
        let classes: Vec<String> = self.classes.iter().cloned().collect();
        if classes.len() != 2 {
            return Err(Error::data(
                path,
                format!(
                    "column `{}`: a binary task needs exactly two distinct values (or 0/1), found {}: {}",
                    self.column,
                    classes.len(),
                    preview(&classes)
                ),
            ));
        }
        Ok(classes)
    }

    /// Fills or checks a multiclass task's `outputs` against the `found` classes.
    fn class_count(&self, path: &PathBuf, found: usize, classes: &[String]) -> Result<usize> {
        let (column, task) = (&self.column, &self.task);
        if self.outputs == 0 && found < 2 {
            return Err(Error::data(
                path,
                format!(
                    "column `{column}` (task `{task}`): a multiclass task needs at least 2 classes, found {found}: {}",
                    preview(classes)
                ),
            ));
        }
        if self.outputs != 0 && self.outputs < found {
            return Err(Error::data(
                path,
                format!(
                    "column `{column}` (task `{task}`) has {found} classes ({}) but the config says outputs = {}",
                    preview(classes),
                    self.outputs
                ),
            ));
        }
        Ok(self.outputs.max(found))
    }
}
