//! The statistics of one feature column: its kind (numbers or categories), its categories, and
//! the moments of its training numbers (also those of a regression task's labels).

use std::collections::BTreeSet;

use crate::error::Result;
use crate::io::table::{is_missing, RowRef, Table};
use crate::model::spec::preprocess::{FeatureTransform, Standardize};

/// The numbers of the training rows: their count, Σv, then Σ(v − mean)².
pub(super) struct Moments {
    pub(super) n: usize,
    sum: f64,
    mean: f64,
    pub(super) seen: usize,
    squares: f64,
    /// The first training row holding ±inf (or a number too large for f64).
    pub(super) non_finite: Option<(RowRef, f64)>,
}

/// The start `Iterator::sum` gives an f64 sum, so that adding values one by one from it equals
/// summing them as one vector, bit for bit (signed zeros included).
fn sum_start() -> f64 {
    std::iter::empty::<f64>().sum()
}

impl Moments {
    pub(super) fn new() -> Moments {
        Moments {
            n: 0,
            sum: sum_start(),
            mean: 0.0,
            seen: 0,
            squares: sum_start(),
            non_finite: None,
        }
    }

    /// First pass: one training cell (missing cells and non-numbers are skipped).
    pub(super) fn count(&mut self, table: &Table, row: usize, cell: &str) {
        match cell.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                self.n += 1;
                self.sum += v;
            }
            Ok(v) if self.non_finite.is_none() => self.non_finite = Some((table.row_ref(row), v)),
            _ => {}
        }
    }

    /// Between the passes: the mean of the counted values.
    pub(super) fn close_count(&mut self) {
        if self.n > 0 {
            self.mean = self.sum / self.n as f64;
        }
    }

    /// Second pass: one training cell again.
    pub(super) fn deviate(&mut self, cell: &str) {
        if let Ok(v) = cell.parse::<f64>() {
            if v.is_finite() {
                self.seen += 1;
                self.squares += (v - self.mean) * (v - self.mean);
            }
        }
    }

    /// Mean and population std (std 0 or no values → 1).
    pub(super) fn standardize(&self) -> Standardize {
        if self.n == 0 {
            return Standardize {
                mean: 0.0,
                std: 1.0,
            };
        }
        let std = (self.squares / self.n as f64).sqrt();
        Standardize {
            mean: self.mean as f32,
            std: if std > 0.0 { std as f32 } else { 1.0 },
        }
    }
}
/// One feature column: categorical (declared, or no cell is a number) or numeric.
pub(super) struct FeatureFit {
    column: String,
    declared: bool,
    /// Whether any label row has a cell here.
    present: bool,
    /// Present label-row cells that are numbers.
    numbers: usize,
    /// The first present label-row cell that is not a number.
    first_text: Option<(RowRef, String)>,
    /// The training rows' distinct cells, while the column may still be categorical.
    categories: Option<BTreeSet<String>>,
    pub(super) moments: Moments,
    /// Decided at the end of the first pass.
    pub(super) numeric: bool,
}

impl FeatureFit {
    /// Column `column`, `declared` categorical or not.
    pub(super) fn new(column: &str, declared: bool) -> FeatureFit {
        FeatureFit {
            column: column.to_string(),
            declared,
            present: false,
            numbers: 0,
            first_text: None,
            categories: None,
            moments: Moments::new(),
            numeric: false,
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
            self.present = true;
            if cell.parse::<f64>().is_ok() {
                self.numbers += 1;
            } else if self.first_text.is_none() {
                self.first_text = Some((table.row_ref(r), cell.clone()));
            }
        }
        if self.declared || self.numbers == 0 {
            add_distinct(self.categories.get_or_insert_default(), cells, train);
        } else {
            self.categories = None;
        }
        if !self.declared {
            for &r in train.iter().filter(|&&r| !is_missing(&cells[r])) {
                self.moments.count(table, r, &cells[r]);
            }
        }
    }

    /// A column declared categorical, or one where no cell is a number (all text), is one-hot
    /// encoded; one whose cells are all numbers is standardised. A number column with a text
    /// cell is an error naming the cell: one typo must not turn a measurement into categories.
    pub(super) fn decide(&mut self) -> Result<()> {
        let column = &self.column;
        if self.declared || self.numbers == 0 && self.present {
            return Ok(());
        }
        if let Some((at, cell)) = &self.first_text {
            return Err(at.error(
                column,
                format!(
                    "`{cell}` is not a number, but {} other cells of this column are; fix the \
                     cell, or list the column in data.categorical = [\"{column}\"] to one-hot \
                     encode it",
                    self.numbers
                ),
            ));
        }
        if let Some((at, v)) = &self.moments.non_finite {
            return Err(at.error(column, format!("non-finite value {v}")));
        }
        self.numeric = true;
        self.moments.close_count();
        Ok(())
    }

    pub(super) fn transform(self) -> FeatureTransform {
        if !self.numeric {
            return FeatureTransform::Categorical {
                column: self.column,
                categories: self.categories.unwrap_or_default().into_iter().collect(),
            };
        }
        let s = self.moments.standardize();
        FeatureTransform::Numeric {
            column: self.column,
            mean: s.mean,
            std: s.std,
        }
    }
}

/// Adds the distinct present cells of `rows` to `set`.
pub(super) fn add_distinct(set: &mut BTreeSet<String>, cells: &[String], rows: &[usize]) {
    for &r in rows {
        let cell = &cells[r];
        if !is_missing(cell) && !set.contains(cell) {
            set.insert(cell.clone());
        }
    }
}
