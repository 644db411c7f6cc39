//! Forward-only passes: logits for a feature matrix, on either backend, in
//! chunks of `PREDICT_BATCH` rows (one program prepared once, replayed per chunk).

use crate::backend::{Backend, ProgramId};
use crate::data::Dataset;
use crate::model::network::{MemberOutputs, OutputForm};
use crate::model::{Model, TaskKind, TaskSpec};
use crate::ops::*;
use crate::train::metrics::{self, TaskMetrics};
use crate::train::step::gather::RowSource;
use crate::{Error, Result};

/// Rows per forward chunk.
pub const PREDICT_BATCH: usize = 1024;

/// A forward program over a feature matrix of up to `capacity` rows on the
/// device; [`Predictor::load`] puts the next rows there.
pub struct Predictor {
    program: ProgramId,
    counters: BufId,
    src: BufId,
    idx: BufId,
    capacity: usize,
    inputs: usize,
    logits: Vec<BufId>,
    form: Vec<OutputForm>,
    stacked: Vec<usize>,
    members: Vec<Option<MemberOutputs>>,
    kinds: Vec<TaskKind>,
    outputs: Vec<usize>,
    rows: usize,
    batch: usize,
    /// Gated architectures: the gates' softmax [T, N, E] and E.
    gates: Option<(BufId, usize)>,
}

/// What a forward pass produced, per task, for every row.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The model's output [rows, C]: logits/values, or probabilities (see `form`).
    pub combined: Vec<Vec<f32>>,
    pub form: Vec<OutputForm>,
    /// Ensembles: every member's output after the task's activation, [M][rows, C].
    pub members: Vec<Option<Vec<Vec<f32>>>>,
}

impl Outputs {
    /// Appends the outputs of the rows after these (a later block).
    pub fn append(&mut self, next: Outputs) {
        if self.combined.is_empty() {
            *self = next;
            return;
        }
        for (all, more) in self.combined.iter_mut().zip(next.combined) {
            all.extend(more);
        }
        for (all, more) in self.members.iter_mut().zip(next.members) {
            if let (Some(all), Some(more)) = (all.as_mut(), more) {
                for (a, m) in all.iter_mut().zip(more) {
                    a.extend(m);
                }
            }
        }
    }
}

/// Applies a task's output activation in place: sigmoid (binary), softmax
/// per row (multiclass), nothing (regression).
pub fn activate(kind: TaskKind, z: &mut [f32], c: usize) {
    match kind {
        TaskKind::Binary => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
        TaskKind::Multiclass => softmax_rows(z, c),
        TaskKind::Regression => {}
    }
}

impl Predictor {
    /// Uploads `features` [rows, inputs] and records the forward pass reading
    /// the parameters from `params` (a buffer of `backend`).
    pub fn new(
        backend: &mut dyn Backend,
        model: &Model,
        params: BufId,
        features: &[f32],
        rows: usize,
    ) -> Result<Predictor> {
        let mut p = Predictor::with_capacity(backend, model, params, rows)?;
        p.load(backend, features, rows)?;
        Ok(p)
    }

    /// Records the forward pass over up to `capacity` rows (no rows loaded).
    pub fn with_capacity(
        backend: &mut dyn Backend,
        model: &Model,
        params: BufId,
        capacity: usize,
    ) -> Result<Predictor> {
        let inputs = model.spec.inputs;
        if capacity >= u32::MAX as usize {
            return Err(Error::Invalid(format!(
                "{capacity} rows in one forward pass: at most {} are supported",
                u32::MAX - 1
            )));
        }
        let batch = capacity.clamp(1, PREDICT_BATCH);
        let chunks = capacity.div_ceil(batch).max(1);
        let src = backend.alloc(capacity * inputs, "predict features")?;
        let idx = backend.alloc(chunks * batch, "predict rows")?;
        let counters = backend.alloc(2, "predict counters")?;
        let graph = model
            .network
            .graph(backend, &model.spec, batch, false, params, None)?;
        let rows_in = RowSource {
            batch,
            src_rows: capacity,
            order_len: chunks * batch,
            order: idx,
            counters,
        };
        let mut ops = vec![rows_in.gather(src, inputs, 0, graph.x)];
        ops.extend(graph.forward.iter().cloned());
        let program = backend.prepare(&ops)?;
        Ok(Predictor {
            program,
            counters,
            src,
            idx,
            capacity,
            inputs,
            logits: graph.logits.clone(),
            form: graph.form.clone(),
            stacked: graph.stacked.clone(),
            members: graph.members.clone(),
            kinds: model.spec.tasks.iter().map(|t| t.kind).collect(),
            outputs: model.spec.tasks.iter().map(|t| t.outputs).collect(),
            rows: 0,
            batch,
            gates: graph.gates,
        })
    }

    /// The most rows one [`Predictor::load`] takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Puts `features` [rows, inputs] (rows ≤ capacity) on the device for
    /// the next run.
    pub fn load(&mut self, backend: &mut dyn Backend, features: &[f32], rows: usize) -> Result<()> {
        let inputs = self.inputs;
        if rows.checked_mul(inputs) != Some(features.len()) || rows > self.capacity {
            return Err(Error::Invalid(format!(
                "features: {} values for {rows} rows of {inputs} inputs",
                features.len()
            )));
        }
        // NaN would pass through the layers (ReLU maps it to 0): refuse it.
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "features: non-finite value {} at row {} (0-based), column {}",
                features[i],
                i / inputs,
                i % inputs
            )));
        }
        backend.write(self.src, 0, features)?;
        let len = backend.len(self.idx);
        let mut order: Vec<u32> = (0..rows as u32).collect();
        order.resize(len, PAD_INDEX);
        backend.write_u32(self.idx, 0, &order)?;
        self.rows = rows;
        Ok(())
    }

    /// Runs the program once per chunk of `batch` rows; after each run,
    /// `read(backend, valid)` reads the chunk's first `valid` rows back.
    fn each_chunk(
        &self,
        backend: &mut dyn Backend,
        mut read: impl FnMut(&mut dyn Backend, usize) -> Result<()>,
    ) -> Result<()> {
        for chunk in 0..self.rows.div_ceil(self.batch) {
            backend.write_u32(self.counters, 0, &[chunk as u32])?;
            backend.run(self.program, 1)?;
            read(backend, (self.rows - chunk * self.batch).min(self.batch))?;
        }
        Ok(())
    }

    /// Per task, the mean over all rows of its gate's weight on each expert
    /// ([T][E]: the learned allocation); None for a model without gates.
    pub fn mean_gates(&self, backend: &mut dyn Backend) -> Result<Option<Vec<Vec<f32>>>> {
        let Some((buf, experts)) = self.gates else {
            return Ok(None);
        };
        let tasks = self.outputs.len();
        let mut sum = vec![vec![0.0f64; experts]; tasks];
        self.each_chunk(backend, |backend, valid| {
            let g = backend.read(buf)?;
            for (j, s) in sum.iter_mut().enumerate() {
                for n in 0..valid {
                    let row = (j * self.batch + n) * experts;
                    for (e, v) in s.iter_mut().enumerate() {
                        *v += g[row + e] as f64;
                    }
                }
            }
            Ok(())
        })?;
        let rows = self.rows.max(1) as f64;
        Ok(Some(
            sum.into_iter()
                .map(|s| s.into_iter().map(|v| (v / rows) as f32).collect())
                .collect(),
        ))
    }

    /// Every task's output for every row (one readback per chunk and buffer).
    pub fn run(&self, backend: &mut dyn Backend) -> Result<Outputs> {
        let tasks = self.outputs.len();
        let mut combined: Vec<Vec<f32>> = vec![Vec::new(); tasks];
        let mut members: Vec<Option<Vec<Vec<f32>>>> = self
            .members
            .iter()
            .map(|m| m.map(|m| vec![Vec::new(); m.members]))
            .collect();
        self.each_chunk(backend, |backend, valid| {
            for j in 0..tasks {
                let c = self.outputs[j];
                if self.stacked[j] == 1 {
                    let z = backend.read(self.logits[j])?;
                    combined[j].extend_from_slice(&z[..valid * c]);
                }
                if let (Some(mo), Some(per)) = (self.members[j], members[j].as_mut()) {
                    let all = backend.read(mo.buf)?;
                    for (m, dst) in per.iter_mut().enumerate() {
                        let start = m * self.batch * c;
                        let mut v = all[start..start + valid * c].to_vec();
                        if mo.logits {
                            activate(self.kinds[j], &mut v, c);
                        }
                        dst.extend(v);
                    }
                }
            }
            Ok(())
        })?;
        let mut form = self.form.clone();
        for j in 0..tasks {
            if self.stacked[j] > 1 {
                // Members trained one by one (`concat`): the model's output is
                // the average of their activated outputs.
                let per = members[j]
                    .as_ref()
                    .expect("stacked outputs come from members");
                let len = self.rows * self.outputs[j];
                combined[j] = (0..len)
                    .map(|i| per.iter().map(|m| m[i]).sum::<f32>() / per.len() as f32)
                    .collect();
                if self.kinds[j] != TaskKind::Regression {
                    form[j] = OutputForm::Probabilities;
                }
            }
        }
        Ok(Outputs {
            combined,
            form,
            members,
        })
    }
}

/// What a model says about a set of rows, per task.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub rows: usize,
    pub tasks: Vec<TaskPrediction>,
}

/// One task's predictions: probabilities (binary: sigmoid per label;
/// multiclass: softmax over classes) or values (regression, in the data's units).
#[derive(Debug, Clone)]
pub struct TaskPrediction {
    pub name: String,
    pub kind: TaskKind,
    /// [rows, C].
    pub values: Vec<f32>,
    pub outputs: usize,
    /// Multiclass: the most probable class per row.
    pub class: Option<Vec<usize>>,
    /// Ensembles: the standard deviation of the member outputs, [rows, C].
    pub spread: Option<Vec<f32>>,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn softmax_rows(z: &mut [f32], c: usize) {
    for row in z.chunks_exact_mut(c) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        for v in row.iter_mut() {
            *v /= s;
        }
    }
}

/// Turns a forward pass's outputs into task predictions (see [`TaskPrediction`]).
pub fn to_predictions(model: &Model, out: Outputs, rows: usize) -> Predictions {
    let Outputs {
        combined,
        form,
        members,
    } = out;
    let tasks = model
        .spec
        .tasks
        .iter()
        .zip(combined)
        .zip(form.into_iter().zip(members))
        .enumerate()
        .map(|(j, ((t, mut z), (form, members)))| {
            if form == OutputForm::Logits {
                activate(t.kind, &mut z, t.outputs);
            }
            let unscale = |v: &mut [f32]| {
                if let (TaskKind::Regression, Some(p)) = (t.kind, &model.preprocess) {
                    p.unscale_regression(j, v);
                }
            };
            unscale(&mut z);
            let class = (t.kind == TaskKind::Multiclass).then(|| {
                z.chunks_exact(t.outputs)
                    .map(|r| {
                        (0..t.outputs)
                            .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                            .unwrap_or(0)
                    })
                    .collect()
            });
            let spread = members.map(|mut per| {
                per.iter_mut().for_each(|m| unscale(m));
                let k = per.len() as f32;
                (0..z.len())
                    .map(|i| {
                        let mean = per.iter().map(|m| m[i]).sum::<f32>() / k;
                        (per.iter().map(|m| (m[i] - mean).powi(2)).sum::<f32>() / k).sqrt()
                    })
                    .collect()
            });
            TaskPrediction {
                name: t.name.clone(),
                kind: t.kind,
                values: z,
                outputs: t.outputs,
                class,
                spread,
            }
        })
        .collect();
    Predictions { rows, tasks }
}

/// Per-task mean losses of a forward pass against a dataset's labels, by the
/// training loss kernels' CPU twins: BCE or cross-entropy on logits, or on
/// probabilities where the model outputs those (ensembles), and MSE on the
/// model's scale (standardised CSV targets stay standardised). A task with no
/// labels in `data` has loss 0.
pub fn task_losses(model: &Model, out: &Outputs, data: &Dataset) -> Vec<f32> {
    use crate::cpu::loss;
    per_task(model, data, |j, t, labels| {
        let z = &out.combined[j];
        let a = LossArgs {
            rows: data.rows as u32,
            outputs: t.outputs as u32,
            ..Default::default()
        };
        let mut dz = vec![0.0; z.len()];
        let mut stats = vec![0.0; 2 * data.rows];
        let probabilities = out.form[j] == OutputForm::Probabilities;
        match t.kind {
            TaskKind::Binary if probabilities => loss::bce_prob(&a, z, labels, &mut dz, &mut stats),
            TaskKind::Binary => loss::bce(&a, z, labels, &mut dz, &mut stats),
            TaskKind::Multiclass if probabilities => {
                loss::ce_prob(&a, z, labels, &mut dz, &mut stats)
            }
            TaskKind::Multiclass => loss::softmax_ce(&a, z, labels, &mut dz, &mut stats),
            TaskKind::Regression => loss::mse(&a, z, labels, &mut dz, &mut stats),
        }
        let (total, count) = stats.chunks_exact(2).fold((0.0f64, 0.0f64), |(l, c), s| {
            (l + s[0] as f64, c + s[1] as f64)
        });
        if count > 0.0 {
            (total / count) as f32
        } else {
            0.0
        }
    })
}

/// Σ_j w_j L_j with the configured task weights w_j (see [`task_losses`]).
pub fn weighted_loss(model: &Model, task_losses: &[f32]) -> f32 {
    (model.spec.tasks.iter())
        .zip(task_losses)
        .map(|(t, l)| t.weight * l)
        .sum()
}

/// Per-task metrics of a forward pass against a dataset's labels. Regression
/// metrics are in the data's units (standardised CSV targets are mapped back).
pub fn task_metrics(model: &Model, out: &Outputs, data: &Dataset) -> Vec<(String, TaskMetrics)> {
    per_task(model, data, |j, t, labels| {
        let logits = out.form[j] == OutputForm::Logits;
        let z = &out.combined[j];
        let m = match t.kind {
            TaskKind::Binary => metrics::binary(z, labels, t.outputs, logits),
            TaskKind::Multiclass => metrics::multiclass(z, labels, t.outputs),
            TaskKind::Regression => {
                let (mut p, mut y) = (z.clone(), labels.to_vec());
                if let Some(pre) = &model.preprocess {
                    pre.unscale_regression(j, &mut p);
                    pre.unscale_regression(j, &mut y);
                }
                metrics::regression(&p, &y, t.outputs)
            }
        };
        (t.name.clone(), m)
    })
}

/// `f(j, task, labels)` for each task j of `model`, with its labels in `data`.
fn per_task<T>(
    model: &Model,
    data: &Dataset,
    mut f: impl FnMut(usize, &TaskSpec, &[f32]) -> T,
) -> Vec<T> {
    (model.spec.tasks.iter().zip(&data.targets))
        .enumerate()
        .map(|(j, (t, labels))| f(j, t, labels))
        .collect()
}
