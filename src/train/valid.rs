//! Forward passes over many rows, a block at a time: each epoch's validation
//! pass (rows in memory, or read from their source every epoch) and
//! `forward` on a feature matrix larger than one buffer binding.

use super::predict::{to_predictions, Outputs, Predictions, Predictor};
use crate::backend::Backend;
use crate::data::{DataSource, Dataset};
use crate::model::Model;
use crate::ops::BufId;
use crate::Result;

/// Rows of a streamed validation block.
const VALID_BLOCK_ROWS: usize = 65_536;

/// A run's validation rows.
pub enum ValidRows<'a> {
    /// In memory.
    Resident(&'a Dataset),
    /// Read a block at a time every epoch (only their labels stay in memory).
    Streamed(Box<dyn DataSource>),
}

impl ValidRows<'_> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            ValidRows::Resident(d) => d.rows,
            ValidRows::Streamed(s) => s.rows(),
        }
    }
}

/// The validation pass of each epoch, on the trainer's backend and parameters.
pub struct ValidPass<'a> {
    predictor: Predictor,
    rows: ValidRows<'a>,
    /// Streamed rows: their labels, kept from the first pass.
    labels: Option<Dataset>,
    /// Every row is on the device already.
    loaded: bool,
}

/// The most rows one forward program takes for `inputs` features: within one
/// buffer binding of `b`, and `cap`.
fn capacity(b: &dyn Backend, inputs: usize, rows: usize, cap: usize) -> usize {
    let binding = b.max_buffer_len() / inputs.max(1);
    rows.min(binding).min(cap).max(1)
}

impl<'a> ValidPass<'a> {
    /// Records the forward pass over `rows` with the parameters in `params`.
    pub fn new(
        b: &mut dyn Backend,
        model: &Model,
        params: BufId,
        rows: ValidRows<'a>,
    ) -> Result<ValidPass<'a>> {
        let n = rows.rows();
        let cap = match rows {
            ValidRows::Resident(_) => usize::MAX,
            ValidRows::Streamed(_) => VALID_BLOCK_ROWS,
        };
        let capacity = capacity(b, model.spec.inputs, n, cap);
        let predictor = Predictor::with_capacity(b, model, params, capacity)?;
        Ok(ValidPass {
            predictor,
            rows,
            labels: None,
            loaded: false,
        })
    }

    /// Every validation row's outputs, and the rows' labels.
    pub fn run(&mut self, b: &mut dyn Backend) -> Result<(Outputs, &Dataset)> {
        let p = &mut self.predictor;
        match &mut self.rows {
            ValidRows::Resident(d) => {
                let out = if d.rows <= p.capacity() {
                    if !self.loaded {
                        p.load(b, &d.features, d.rows)?;
                        self.loaded = true;
                    }
                    p.run(b)?
                } else {
                    let inputs = d.inputs;
                    forward_in_blocks(b, p, d.rows, |start, len| {
                        Ok(d.features[start * inputs..(start + len) * inputs].to_vec())
                    })?
                };
                Ok((out, *d))
            }
            ValidRows::Streamed(source) => {
                let keep = self.labels.is_none();
                let mut labels = Vec::new();
                let out = forward_in_blocks(b, p, source.rows(), |start, len| {
                    let mut block = source.read(start, len)?;
                    let x = std::mem::take(&mut block.features);
                    if keep {
                        labels.push(block);
                    }
                    Ok(x)
                })?;
                if keep {
                    self.labels = Some(join_labels(source.as_ref(), labels));
                }
                Ok((out, self.labels.as_ref().expect("labels kept above")))
            }
        }
    }
}

/// Runs `p` over rows `[0, n)`, `p.capacity()` at a time; `features(start,
/// len)` gives each block's features.
pub fn forward_in_blocks(
    b: &mut dyn Backend,
    p: &mut Predictor,
    n: usize,
    mut features: impl FnMut(usize, usize) -> Result<Vec<f32>>,
) -> Result<Outputs> {
    let mut out = Outputs::default();
    let mut at = 0;
    while at < n {
        let len = p.capacity().min(n - at);
        let x = features(at, len)?;
        p.load(b, &x, len)?;
        out.append(p.run(b)?);
        at += len;
    }
    Ok(out)
}

/// The forward pass of every task for `features` [rows, inputs], in blocks
/// that fit the device.
pub fn forward_features(
    model: &Model,
    features: &[f32],
    rows: usize,
    b: &mut dyn Backend,
) -> Result<Outputs> {
    let inputs = model.spec.inputs;
    if rows.checked_mul(inputs) != Some(features.len()) {
        return Err(crate::Error::Invalid(format!(
            "features: {} values for {rows} rows of {inputs} inputs",
            features.len()
        )));
    }
    let params = b.alloc(model.params.len(), "params")?;
    b.write(params, 0, &model.params)?;
    let cap = capacity(b, inputs, rows, usize::MAX);
    let mut p = Predictor::with_capacity(b, model, params, cap)?;
    forward_in_blocks(b, &mut p, rows, |start, len| {
        Ok(features[start * inputs..(start + len) * inputs].to_vec())
    })
}

/// The labels of consecutive blocks as one dataset without features.
fn join_labels(source: &dyn DataSource, blocks: Vec<Dataset>) -> Dataset {
    let tasks = source.label_widths().len();
    let mut targets = vec![Vec::new(); tasks];
    let mut rows = 0;
    for block in blocks {
        rows += block.rows;
        for (all, t) in targets.iter_mut().zip(block.targets) {
            all.extend(t);
        }
    }
    Dataset {
        rows,
        inputs: source.inputs(),
        features: Vec::new(),
        targets,
        feature_names: source.feature_names(),
    }
}

/// Predictions for rows given a block at a time (a feature file larger than
/// memory): the model is uploaded and its forward pass recorded once.
pub struct BlockPredictor {
    predictor: Predictor,
}

impl BlockPredictor {
    /// A forward pass over blocks of up to `rows` rows (fewer when one
    /// buffer binding holds fewer).
    pub fn new(model: &Model, b: &mut dyn Backend, rows: usize) -> Result<BlockPredictor> {
        let params = b.alloc(model.params.len(), "params")?;
        b.write(params, 0, &model.params)?;
        let cap = capacity(b, model.spec.inputs, rows, usize::MAX);
        Ok(BlockPredictor {
            predictor: Predictor::with_capacity(b, model, params, cap)?,
        })
    }

    /// The most rows one block may have.
    pub fn capacity(&self) -> usize {
        self.predictor.capacity()
    }

    /// Predictions for `features` [rows, inputs], rows ≤ capacity.
    pub fn predict(
        &mut self,
        model: &Model,
        b: &mut dyn Backend,
        features: &[f32],
        rows: usize,
    ) -> Result<Predictions> {
        self.predictor.load(b, features, rows)?;
        Ok(to_predictions(model, self.predictor.run(b)?, rows))
    }
}
