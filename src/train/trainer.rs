//! The trainer, written once for both backends. The dataset is uploaded once;
//! each epoch the host writes a (seeded) row order, then every step —
//! gather, forward, masked losses, the weighted sum, backward, optimizer — is
//! one recorded program, replayed `STEPS_PER_SUBMIT` steps per submit. Per-step
//! losses accumulate in a device buffer read once per epoch.

use super::bagging;
use super::weighting::{GradnormBufs, Weighter};
use crate::backend::{Backend, ProgramId};
use crate::data::Dataset;
use crate::io::{OptimizerKind, TrainConfig};
use crate::model::network::OutputForm;
use crate::model::{Model, TaskKind};
use crate::ops::*;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Steps recorded into one command submission.
pub const STEPS_PER_SUBMIT: u32 = 32;

/// Losses of one optimizer step, computed on its batch before its update.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLoss {
    /// The objective: Σ λ_j L_j (plus Σ s_j/2 under uncertainty weighting).
    pub total: f32,
    /// Each task's unweighted masked mean loss L_j.
    pub tasks: Vec<f32>,
}

/// Device buffers of one training run.
struct Buffers {
    params: BufId,
    grads: BufId,
    /// Adam's first moment, or SGD's velocity.
    m: BufId,
    /// Adam's second moment (unused by SGD).
    v: BufId,
    counters: BufId,
    idx: BufId,
    log: BufId,
    /// λ_j of the step.
    lambda: BufId,
    /// GradNorm's L_j(0).
    initial: BufId,
}

/// Trains one model on one backend.
pub struct Trainer {
    backend: Box<dyn Backend>,
    bufs: Buffers,
    step: ProgramId,
    rows: usize,
    batch: usize,
    steps_per_epoch: usize,
    tasks: usize,
    shuffle: bool,
    rng: ChaCha8Rng,
    epoch: usize,
    global_step: u64,
    flops_per_step: u64,
    weighter: Weighter,
    /// The λ the host last wrote (fixed, DWA).
    host_lambda: Option<Vec<f32>>,
    /// Per finished epoch, λ_j as used by its last step.
    lambda_history: Vec<Vec<f32>>,
}

/// Checks that `data` fits `model` before anything is uploaded.
pub fn check_data(model: &Model, data: &Dataset, what: &str) -> Result<()> {
    if data.inputs != model.spec.inputs {
        return Err(Error::Invalid(format!(
            "{what} data has {} features per row, the model takes {}",
            data.inputs, model.spec.inputs
        )));
    }
    if data.targets.len() != model.spec.tasks.len() {
        return Err(Error::Invalid(format!(
            "{what} data has labels for {} tasks, the model has {}",
            data.targets.len(),
            model.spec.tasks.len()
        )));
    }
    for (j, t) in model.spec.tasks.iter().enumerate() {
        if data.targets[j].len() != data.rows * t.label_width() {
            return Err(Error::Invalid(format!(
                "{what} data: task `{}` needs {} label(s) per row, found {} values for {} rows",
                t.name,
                t.label_width(),
                data.targets[j].len(),
                data.rows
            )));
        }
    }
    Ok(())
}

impl Trainer {
    /// Uploads `model` and `train` to `backend` and records the training step.
    pub fn new(
        mut backend: Box<dyn Backend>,
        model: &Model,
        train: &Dataset,
        cfg: &TrainConfig,
    ) -> Result<Trainer> {
        check_data(model, train, "training")?;
        let weighter = Weighter::new(
            cfg.weighting,
            cfg.gradnorm_alpha,
            &model.spec,
            &model.network,
        )?;
        if train.rows == 0 {
            return Err(Error::Invalid("the training data has no rows".into()));
        }
        let b = backend.as_mut();
        let net = &model.network;
        let spec = &model.spec;
        let (rows, batch, tasks) = (train.rows, cfg.batch_size, spec.tasks.len());
        let steps_per_epoch = rows.div_ceil(batch);
        let p = net.layout.len;

        // Parameters, gradients, optimizer state: one layout, four buffers.
        let params = b.alloc(p, "params")?;
        b.write(params, 0, &model.params)?;
        let grads = b.alloc(p, "grads")?;
        let m = b.alloc(p, "adam.m")?;
        let v = b.alloc(p, "adam.v")?;
        let counters = b.alloc(2, "counters")?;
        let idx = b.alloc(steps_per_epoch * batch, "row order")?;

        // The dataset, resident for the whole run.
        let features = b.alloc(rows * train.inputs, "dataset features")?;
        b.write(features, 0, &train.features)?;
        // Bagging: every member's labels side by side, masked outside its sample.
        let bagged = spec
            .ensemble
            .as_ref()
            .filter(|e| e.bagging)
            .map(|e| bagging::bootstrap_masks(rows, e.members.len(), cfg.seed));
        let label_members = bagged.as_ref().map_or(1, |m| m.len());
        let mut label_data = Vec::new();
        for (j, t) in spec.tasks.iter().enumerate() {
            let labels = match &bagged {
                Some(masks) => bagging::bag_labels(&train.targets[j], t.label_width(), masks),
                None => train.targets[j].clone(),
            };
            let buf = b.alloc(labels.len(), &format!("dataset labels {}", t.name))?;
            b.write(buf, 0, &labels)?;
            label_data.push(buf);
        }

        // Batch buffers.
        let graph = net.graph(b, spec, batch, true, params, Some(grads))?;
        let mut label_batch = Vec::new();
        for t in &spec.tasks {
            label_batch.push(b.alloc(
                batch * label_members * t.label_width(),
                &format!("labels {}", t.name),
            )?);
        }
        // Rows each loss sees: the batch, or M·batch for members trained one by one.
        let loss_rows = graph.stacked.iter().max().copied().unwrap_or(1) * batch;
        let stats = b.alloc(tasks * loss_rows * 2, "loss stats")?;
        let lambda = b.alloc(tasks, "task weights")?;
        let out = b.alloc(2 * tasks + 1, "task losses")?;
        let log = b.alloc(steps_per_epoch * (tasks + 1), "loss log")?;

        // The step, in order.
        let idx_len = (steps_per_epoch * batch) as u32;
        let mut ops = vec![Op::BatchGather {
            args: GatherArgs {
                batch: batch as u32,
                width: spec.inputs as u32,
                src_rows: rows as u32,
                pad_bits: 0,
                idx_len,
                ..Default::default()
            },
            src: features,
            idx,
            counters,
            dst: graph.x,
        }];
        for (j, t) in spec.tasks.iter().enumerate() {
            ops.push(Op::BatchGather {
                args: GatherArgs {
                    batch: batch as u32,
                    width: (label_members * t.label_width()) as u32,
                    src_rows: rows as u32,
                    pad_bits: MISSING_BITS,
                    idx_len,
                    ..Default::default()
                },
                src: label_data[j],
                idx,
                counters,
                dst: label_batch[j],
            });
        }
        ops.extend(graph.forward.iter().cloned());
        for (j, t) in spec.tasks.iter().enumerate() {
            let stacked = graph.stacked[j];
            let args = LossArgs {
                rows: (stacked * batch) as u32,
                outputs: t.outputs as u32,
                stats_off: (2 * j * loss_rows) as u32,
                label_rows: if stacked > 1 { batch as u32 } else { 0 },
                label_members: if bagged.is_some() {
                    label_members as u32
                } else {
                    0
                },
                ..Default::default()
            };
            let (z, label) = (graph.logits[j], label_batch[j]);
            let dz = graph.logits_grad[j].expect("training graph");
            let probabilities = graph.form[j] == OutputForm::Probabilities;
            ops.push(match t.kind {
                TaskKind::Binary if probabilities => Op::LossBceProb {
                    args,
                    z,
                    label,
                    dz,
                    stats,
                },
                TaskKind::Binary => Op::LossBce {
                    args,
                    z,
                    label,
                    dz,
                    stats,
                },
                TaskKind::Multiclass if probabilities => Op::LossCeProb {
                    args,
                    z,
                    label,
                    dz,
                    stats,
                },
                TaskKind::Multiclass => Op::LossSoftmaxCe {
                    args,
                    z,
                    label,
                    dz,
                    stats,
                },
                TaskKind::Regression => Op::LossMse {
                    args,
                    z,
                    label,
                    dz,
                    stats,
                },
            });
        }
        ops.extend(weighter.before_reduce(params, lambda));
        ops.push(Op::MultitaskLossReduce {
            args: ReduceArgs {
                tasks: tasks as u32,
                rows: loss_rows as u32,
                log_slots: steps_per_epoch as u32,
                _pad: 0,
            },
            stats,
            lambda,
            counters,
            out,
            log,
        });
        ops.extend(weighter.after_reduce(params, counters, out, grads, log, steps_per_epoch));
        for (j, t) in spec.tasks.iter().enumerate() {
            ops.push(Op::LossGradScale {
                args: ScaleArgs {
                    len: (graph.stacked[j] * batch * t.outputs) as u32,
                    scale_index: (tasks + j) as u32,
                    dz_off: 0,
                    _pad: 0,
                },
                out,
                dz: graph.logits_grad[j].expect("training graph"),
            });
        }
        ops.extend(graph.backward.iter().cloned());
        let norms = b.alloc(tasks, "gradnorm norms")?;
        let initial = b.alloc(tasks, "gradnorm initial losses")?;
        ops.extend(weighter.after_backward(
            graph.rep_split,
            GradnormBufs {
                lambda,
                norms,
                out,
                initial,
                grads,
            },
        ));
        let o = &cfg.optimizer;
        for range in net.trainable() {
            let (p_off, len) = (range.start as u32, range.len() as u32);
            ops.push(match o.kind {
                OptimizerKind::Adam => Op::AdamUpdate {
                    args: AdamArgs {
                        len,
                        p_off,
                        style: match o.style {
                            crate::io::AdamStyle::Keras => 0,
                            crate::io::AdamStyle::Torch => 1,
                        },
                        _pad: 0,
                        lr: o.lr,
                        beta1: o.beta1,
                        beta2: o.beta2,
                        eps: o.eps,
                    },
                    grads,
                    counters,
                    params,
                    m,
                    v,
                },
                OptimizerKind::Sgd => Op::SgdUpdate {
                    args: SgdArgs {
                        len,
                        p_off,
                        lr: o.lr,
                        momentum: o.momentum,
                    },
                    grads,
                    params,
                    velocity: m,
                },
            });
        }
        ops.push(Op::StepAdvance { counters });
        let flops_per_step = ops.iter().map(Op::flops).sum();
        let step = b.prepare(&ops)?;
        Ok(Trainer {
            backend,
            bufs: Buffers {
                params,
                grads,
                m,
                v,
                counters,
                idx,
                log,
                lambda,
                initial,
            },
            step,
            rows,
            batch,
            steps_per_epoch,
            tasks,
            shuffle: cfg.shuffle,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            epoch: 0,
            global_step: 0,
            flops_per_step,
            weighter,
            host_lambda: None,
            lambda_history: Vec::new(),
        })
    }

    /// Optimizer steps in one epoch (the last batch may be partial).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// Floating-point operations of one step's matrix products.
    pub fn flops_per_step(&self) -> u64 {
        self.flops_per_step
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The backend this trainer runs on.
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// The device buffer holding the parameters (for evaluation on the same backend).
    pub fn params_buffer(&self) -> BufId {
        self.bufs.params
    }

    /// The row order of the next epoch: seeded shuffle or file order, padded
    /// to whole batches with `PAD_INDEX`.
    fn row_order(&mut self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.rows as u32).collect();
        if self.shuffle {
            order.shuffle(&mut self.rng);
        }
        order.resize(self.steps_per_epoch * self.batch, PAD_INDEX);
        order
    }

    /// Trains one epoch; `progress(steps_done, steps_total)` is called after
    /// each submission. Returns every step's losses (read back once).
    pub fn train_epoch(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<StepLoss>> {
        let order = self.row_order();
        let b = self.backend.as_mut();
        if let Some(lambda) = self.weighter.epoch_lambda() {
            b.write(self.bufs.lambda, 0, &lambda)?;
            self.host_lambda = Some(lambda);
        }
        if let Some(l0) = self.weighter.initial_losses() {
            b.write(self.bufs.initial, 0, &l0)?;
        }
        b.write_u32(self.bufs.idx, 0, &order)?;
        b.write_u32(self.bufs.counters, 0, &[0, self.global_step as u32])?;
        let mut done = 0;
        while done < self.steps_per_epoch {
            let k = (self.steps_per_epoch - done).min(STEPS_PER_SUBMIT as usize);
            b.run(self.step, k as u32)?;
            done += k;
            progress(done, self.steps_per_epoch);
        }
        let log = b.read(self.bufs.log)?;
        // λ the host wrote is known; only the device-computed kind is read back (T values).
        let lambda = match &self.host_lambda {
            Some(l) if !self.weighter.on_device() => l.clone(),
            _ => b.read(self.bufs.lambda)?,
        };
        self.lambda_history.push(lambda);
        self.epoch += 1;
        self.global_step += self.steps_per_epoch as u64;
        let t = self.tasks;
        let steps: Vec<StepLoss> = log
            .chunks_exact(t + 1)
            .map(|c| StepLoss {
                total: c[0],
                tasks: c[1..].to_vec(),
            })
            .collect();
        let per_task: Vec<Vec<f32>> = steps.iter().map(|s| s.tasks.clone()).collect();
        self.weighter.end_epoch(&per_task);
        Ok(steps)
    }

    /// λ_j per finished epoch, as its last step used them (the configured
    /// weights for `fixed`, DWA's per-epoch weights, 1/(2·exp(s_j)) for uncertainty).
    pub fn lambda_history(&self) -> &[Vec<f32>] {
        &self.lambda_history
    }

    /// Reads the current parameters back into `model`.
    pub fn download(&mut self, model: &mut Model) -> Result<()> {
        model.params = self.backend.read(self.bufs.params)?;
        Ok(())
    }

    /// Optimizer state (first and second moments) and gradients of the last
    /// step, for checkpoints and tests.
    pub fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let b = self.backend.as_mut();
        Ok((
            b.read(self.bufs.m)?,
            b.read(self.bufs.v)?,
            b.read(self.bufs.grads)?,
        ))
    }
}
