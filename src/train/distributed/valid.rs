//! Validation over the ranks: each rank runs the forward pass on its share
//! [⌊r·n/P⌋, ⌊(r+1)·n/P⌋) of the n validation rows; the outputs are assembled
//! on every rank by one all-reduce of zero-padded arrays (each element is one
//! rank's value plus zeros, so exact), and every rank computes the metrics,
//! the validation loss and early stopping's decision from the same outputs
//! of every row: the same numbers as a single process, on every rank.

use super::share;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::Model;
use crate::ops::BufId;
use crate::train::collective::Collective;
use crate::train::predict::{Outputs, Predictor};
use crate::Result;
use std::rc::Rc;

/// The validation forward pass of one process, or of one rank's share.
pub struct Validator {
    predictor: Predictor,
    shard: Option<Shard>,
}

/// A rank's share of the validation rows.
struct Shard {
    collective: Rc<dyn Collective>,
    rows: usize,
    lo: usize,
    hi: usize,
    /// Per task, its outputs per row C_j.
    widths: Vec<usize>,
}

impl Validator {
    /// The forward program over `v`'s rows (with a collective of P > 1: over
    /// this rank's share), reading the parameters from `params`.
    pub fn new(
        backend: &mut dyn Backend,
        model: &Model,
        params: BufId,
        v: &Dataset,
        collective: Option<&Rc<dyn Collective>>,
    ) -> Result<Validator> {
        let Some(c) = collective.filter(|c| c.size() > 1) else {
            let predictor = Predictor::new(backend, model, params, &v.features, v.rows)?;
            return Ok(Validator {
                predictor,
                shard: None,
            });
        };
        let (lo, hi) = share(v.rows, c.rank(), c.size());
        // A rank without validation rows runs one row and contributes none.
        let (first, count) = if hi > lo { (lo, hi - lo) } else { (0, 1) };
        let inputs = model.spec.inputs;
        let features = &v.features[first * inputs..(first + count) * inputs];
        Ok(Validator {
            predictor: Predictor::new(backend, model, params, features, count)?,
            shard: Some(Shard {
                collective: c.clone(),
                rows: v.rows,
                lo,
                hi,
                widths: model.spec.tasks.iter().map(|t| t.outputs).collect(),
            }),
        })
    }

    /// Every task's output for every validation row.
    pub fn run(&self, backend: &mut dyn Backend) -> Result<Outputs> {
        let out = self.predictor.run(backend)?;
        match &self.shard {
            None => Ok(out),
            Some(s) => s.assemble(out),
        }
    }
}

impl Shard {
    /// Every row's outputs from each rank's share of them.
    fn assemble(&self, mut out: Outputs) -> Result<Outputs> {
        let mut flat = Vec::new();
        for (j, &c) in self.widths.iter().enumerate() {
            self.place(&mut flat, &out.combined[j], c);
            for m in out.members[j].iter().flatten() {
                self.place(&mut flat, m, c);
            }
        }
        self.collective.all_reduce_sum(&mut flat)?;
        let mut rest = &flat[..];
        let mut take = |c: usize| {
            let (head, tail) = rest.split_at(self.rows * c);
            rest = tail;
            head.to_vec()
        };
        for (j, &c) in self.widths.iter().enumerate() {
            out.combined[j] = take(c);
            for m in out.members[j].iter_mut().flatten() {
                *m = take(c);
            }
        }
        Ok(out)
    }

    /// Appends [rows, c] zeros holding this rank's rows of `local` at theirs.
    fn place(&self, flat: &mut Vec<f32>, local: &[f32], c: usize) {
        let start = flat.len();
        flat.resize(start + self.rows * c, 0.0);
        let n = (self.hi - self.lo) * c;
        flat[start + self.lo * c..start + self.lo * c + n].copy_from_slice(&local[..n]);
    }
}
