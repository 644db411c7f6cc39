//! Fitting the preprocessing block by block, so that it can run over a table read in blocks
//! (files larger than memory) as well as over one table held whole (one block).
//!
//! [`PreprocessFit`] is fed every block of the rows in file order, in two passes:
//!
//! 1. counting: which feature columns are numbers, their categories, the sums of the training
//!    rows' numbers, the label classes;
//! 2. deviations: the squared deviations from the means the first pass found (the population
//!    std), only when some column is standardised.
//!
//! Every sum is taken in row order with the same start as `Iterator::sum`, so the statistics are
//! bit for bit those of summing a vector of all the values at once, whatever the block sizes.
//! Errors are kept while blocks are fed (the first offending row of each column) and reported
//! at the end of the first pass in the order a whole-table fit meets them: features in config
//! order, then targets.
mod column;
mod target;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::table::Table;
use crate::model::spec::preprocess::Preprocess;
use crate::model::spec::{TaskKind, TaskSpec};
use column::{FeatureFit, Moments};
use target::TargetFit;

/// A preprocessing fit in progress; see the module's header for the protocol.
pub struct PreprocessFit {
    /// The table's path, from the first block (named in errors about a whole column).
    path: Option<PathBuf>,
    features: Vec<FeatureFit>,
    targets: Vec<TargetFit>,
    pass: Pass,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    Counting,
    Deviations,
    Done,
}

impl PreprocessFit {
    /// A fit of `features` (with `categorical` among them declared categorical) and of
    /// `targets[j]`, the label column of `tasks[j]`.
    pub fn new(
        features: &[String],
        categorical: &[String],
        tasks: &[TaskSpec],
        targets: &[String],
    ) -> PreprocessFit {
        assert_eq!(tasks.len(), targets.len(), "one target column per task");
        let features = features
            .iter()
            .map(|c| FeatureFit::new(c, categorical.contains(c)))
            .collect();
        let targets = tasks
            .iter()
            .zip(targets)
            .map(|(task, c)| TargetFit::new(task, c))
            .collect();
        PreprocessFit {
            path: None,
            features,
            targets,
            pass: Pass::Counting,
        }
    }

    /// Feeds one block: `labels` are its rows whose labels define the class lists (training and
    /// validation rows) and whose cells decide a column's kind; `train` its training rows, whose
    /// statistics (means, stds, categories) are used. Both are indices into `block`, in order.
    /// Blocks come in file order, the same rows in both passes.
    pub fn add(&mut self, block: &Table, labels: &[usize], train: &[usize]) -> Result<()> {
        let feature_cells = self
            .features
            .iter()
            .map(|f| block.column(f.column()))
            .collect::<Result<Vec<_>>>()?;
        let target_cells = self
            .targets
            .iter()
            .map(|t| block.column(t.column()))
            .collect::<Result<Vec<_>>>()?;
        self.path.get_or_insert_with(|| block.path.clone());
        match self.pass {
            Pass::Counting => {
                for (f, cells) in self.features.iter_mut().zip(feature_cells) {
                    f.count(block, cells, labels, train);
                }
                for (t, cells) in self.targets.iter_mut().zip(target_cells) {
                    t.count(block, cells, labels, train);
                }
            }
            Pass::Deviations => {
                let numeric = |m: &mut Moments, cells: &[String]| {
                    train.iter().for_each(|&r| m.deviate(&cells[r]));
                };
                for (f, cells) in self.features.iter_mut().zip(feature_cells) {
                    if f.numeric {
                        numeric(&mut f.moments, cells);
                    }
                }
                for (t, cells) in self.targets.iter_mut().zip(target_cells) {
                    if t.kind == TaskKind::Regression && t.numeric {
                        numeric(&mut t.moments, cells);
                    }
                }
            }
            Pass::Done => {
                return Err(Error::Invalid(
                    "a preprocessing fit was fed after its last pass".into(),
                ))
            }
        }
        Ok(())
    }

    /// Ends a pass over the blocks. After the first pass this reports what is wrong with the
    /// data; `Ok(true)` asks for a second pass over the same rows, `Ok(false)` means the fit
    /// is complete.
    pub fn end_pass(&mut self) -> Result<bool> {
        match self.pass {
            Pass::Counting => {
                let path = self.path.clone().unwrap_or_default();
                for f in &mut self.features {
                    f.decide()?;
                }
                for t in &mut self.targets {
                    t.transform = Some(t.decide(&path)?);
                }
                let standardised = self.features.iter().any(|f| f.numeric && f.moments.n > 0)
                    || self.targets.iter().any(|t| t.numeric && t.moments.n > 0);
                self.pass = if standardised {
                    Pass::Deviations
                } else {
                    Pass::Done
                };
                Ok(standardised)
            }
            Pass::Deviations | Pass::Done => {
                self.pass = Pass::Done;
                Ok(false)
            }
        }
    }

    /// Present labels of each task among the training rows (a task with none cannot train).
    pub fn training_labels(&self) -> Vec<usize> {
        self.targets.iter().map(|t| t.train_labels).collect()
    }

    /// The fitted preprocessing; a multiclass task's `outputs` holds the classes found.
    pub fn finish(self) -> Result<Preprocess> {
        if self.pass != Pass::Done {
            return Err(Error::Invalid(
                "a preprocessing fit was finished before its passes ended".into(),
            ));
        }
        let features_seen = self.features.iter().filter(|f| f.numeric);
        let targets_seen = self.targets.iter().filter(|t| t.numeric);
        let mut seen = features_seen
            .map(|f| &f.moments)
            .chain(targets_seen.map(|t| &t.moments));
        if seen.any(|m| m.n != m.seen) {
            return Err(Error::Invalid(
                "a preprocessing fit's two passes saw different rows".into(),
            ));
        }
        let mut targets = Vec::with_capacity(self.targets.len());
        for t in self.targets {
            let Some(mut transform) = t.transform else {
                return Err(Error::Invalid("a target's fit was not decided".into()));
            };
            if t.kind == TaskKind::Regression && t.numeric {
                transform.scale = Some(t.moments.standardize());
            }
            targets.push(transform);
        }
        let features = self
            .features
            .into_iter()
            .map(FeatureFit::transform)
            .collect();
        Ok(Preprocess { features, targets })
    }
}
