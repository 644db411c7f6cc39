//! Forward-only passes: logits for a feature matrix, on either backend, in
//! chunks of `PREDICT_BATCH` rows (one program prepared once, replayed per chunk).

use crate::backend::{Backend, ProgramId};
use crate::model::{Model, TaskKind};
use crate::ops::*;
use crate::train::metrics::{self, TaskMetrics};
use crate::{Dataset, Error, Result};

/// Rows per forward chunk.
pub const PREDICT_BATCH: usize = 1024;

/// A forward program over a resident feature matrix.
pub struct Predictor {
    program: ProgramId,
    counters: BufId,
    logits: Vec<BufId>,
    outputs: Vec<usize>,
    rows: usize,
    batch: usize,
    /// Gated architectures: the gates' softmax [T, N, E] and E.
    gates: Option<(BufId, usize)>,
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
        let inputs = model.spec.inputs;
        if features.len() != rows * inputs {
            return Err(Error::Invalid(format!(
                "features: {} values for {rows} rows of {inputs} inputs",
                features.len()
            )));
        }
        let batch = rows.clamp(1, PREDICT_BATCH);
        let chunks = rows.div_ceil(batch).max(1);
        let src = backend.alloc(rows * inputs, "predict features")?;
        backend.write(src, 0, features)?;
        let idx = backend.alloc(chunks * batch, "predict rows")?;
        let mut order: Vec<u32> = (0..rows as u32).collect();
        order.resize(chunks * batch, PAD_INDEX);
        backend.write_u32(idx, 0, &order)?;
        let counters = backend.alloc(2, "predict counters")?;
        let graph = model
            .network
            .graph(backend, &model.spec, batch, false, params, None)?;
        let mut ops = vec![Op::BatchGather {
            args: GatherArgs {
                batch: batch as u32,
                width: inputs as u32,
                src_rows: rows as u32,
                pad_bits: 0,
                idx_len: (chunks * batch) as u32,
                ..Default::default()
            },
            src,
            idx,
            counters,
            dst: graph.x,
        }];
        ops.extend(graph.forward.iter().cloned());
        let program = backend.prepare(&ops)?;
        Ok(Predictor {
            program,
            counters,
            logits: graph.logits.clone(),
            outputs: model.spec.tasks.iter().map(|t| t.outputs).collect(),
            rows,
            batch,
            gates: graph.gates,
        })
    }

    /// Per task, the mean over all rows of its gate's weight on each expert
    /// ([T][E]: the learned allocation); None for a model without gates.
    pub fn mean_gates(&self, backend: &mut dyn Backend) -> Result<Option<Vec<Vec<f32>>>> {
        let Some((buf, experts)) = self.gates else {
            return Ok(None);
        };
        let tasks = self.outputs.len();
        let mut sum = vec![vec![0.0f64; experts]; tasks];
        let chunks = self.rows.div_ceil(self.batch);
        for chunk in 0..chunks {
            backend.write_u32(self.counters, 0, &[chunk as u32])?;
            backend.run(self.program, 1)?;
            let valid = (self.rows - chunk * self.batch).min(self.batch);
            let g = backend.read(buf)?;
            for (j, s) in sum.iter_mut().enumerate() {
                for n in 0..valid {
                    let row = (j * self.batch + n) * experts;
                    for (e, v) in s.iter_mut().enumerate() {
                        *v += g[row + e] as f64;
                    }
                }
            }
        }
        let rows = self.rows.max(1) as f64;
        Ok(Some(
            sum.into_iter()
                .map(|s| s.into_iter().map(|v| (v / rows) as f32).collect())
                .collect(),
        ))
    }

    /// Logits of every task, [rows, C_j] each (one readback per chunk and task).
    pub fn logits(&self, backend: &mut dyn Backend) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Vec<f32>> = self
            .outputs
            .iter()
            .map(|c| Vec::with_capacity(self.rows * c))
            .collect();
        let chunks = self.rows.div_ceil(self.batch);
        for chunk in 0..chunks {
            backend.write_u32(self.counters, 0, &[chunk as u32])?;
            backend.run(self.program, 1)?;
            let valid = (self.rows - chunk * self.batch).min(self.batch);
            for (j, &buf) in self.logits.iter().enumerate() {
                let z = backend.read(buf)?;
                out[j].extend_from_slice(&z[..valid * self.outputs[j]]);
            }
        }
        Ok(out)
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

/// Turns logits into task outputs (see [`TaskPrediction`]).
pub fn to_predictions(model: &Model, logits: Vec<Vec<f32>>, rows: usize) -> Predictions {
    let tasks = model
        .spec
        .tasks
        .iter()
        .zip(logits)
        .enumerate()
        .map(|(j, (t, mut z))| {
            let mut class = None;
            match t.kind {
                TaskKind::Binary => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
                TaskKind::Multiclass => {
                    softmax_rows(&mut z, t.outputs);
                    class = Some(
                        z.chunks_exact(t.outputs)
                            .map(|r| {
                                (0..t.outputs)
                                    .max_by(|&a, &b| r[a].total_cmp(&r[b]))
                                    .unwrap_or(0)
                            })
                            .collect(),
                    );
                }
                TaskKind::Regression => {
                    if let Some(p) = &model.preprocess {
                        p.unscale_regression(j, &mut z);
                    }
                }
            }
            TaskPrediction {
                name: t.name.clone(),
                kind: t.kind,
                values: z,
                outputs: t.outputs,
                class,
            }
        })
        .collect();
    Predictions { rows, tasks }
}

/// Per-task metrics of logits against a dataset's labels. Regression metrics
/// are in the data's units (standardised CSV targets are mapped back).
pub fn task_metrics(
    model: &Model,
    logits: &[Vec<f32>],
    data: &Dataset,
) -> Vec<(String, TaskMetrics)> {
    model
        .spec
        .tasks
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let labels = &data.targets[j];
            let m = match t.kind {
                TaskKind::Binary => metrics::binary(&logits[j], labels, t.outputs, true),
                TaskKind::Multiclass => metrics::multiclass(&logits[j], labels, t.outputs),
                TaskKind::Regression => {
                    let (mut p, mut y) = (logits[j].clone(), labels.clone());
                    if let Some(pre) = &model.preprocess {
                        pre.unscale_regression(j, &mut p);
                        pre.unscale_regression(j, &mut y);
                    }
                    metrics::regression(&p, &y, t.outputs)
                }
            };
            (t.name.clone(), m)
        })
        .collect()
}
