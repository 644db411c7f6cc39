//! The trainer, written once for both backends. The training rows reach the
//! device through a [`Feed`] (uploaded once, or streamed shard by shard);
//! each epoch the host writes a (seeded) row order, then every step —
//! gather, forward, masked losses, the weighted sum, backward, optimizer — is
//! one recorded program, replayed `STEPS_PER_SUBMIT` steps per submit. Per-step
//! losses accumulate in a device buffer read once per epoch. As one rank of a
//! data-parallel job the same ops, built for the rank's part of each batch,
//! run as three programs around two all-reduces (`super::distributed`).

use super::collective::Collective;
use super::config::{OptimizerConfig, OptimizerKind, TrainConfig};
use super::distributed::step::{CommTimes, Wiring};
use super::distributed::Partition;
use super::feed::Feed;
use super::step::counts::StepCounts;
use super::step::gather::{self, StepCursor};
use super::step::guard::{self, Divergence};
use super::step::loss::{self, LossBuffers};
use super::step::optimizer::{self, ParamBuffers};
use super::step::StepShape;
use super::weighting::{GradnormBufs, Weighter};
use crate::backend::Backend;
use crate::data::{Dataset, DatasetRef};
use crate::model::Model;
use crate::ops::{BufId, Op};
use crate::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::rc::Rc;

mod program;
mod state;
mod train_rows;
pub use program::{StepParts, StepProgram};
pub use state::TrainerState;
pub use train_rows::{check_data, check_source, TrainRows};

/// Steps recorded into one command submission.
pub const STEPS_PER_SUBMIT: u32 = 32;

/// Losses of one optimizer step, computed on its batch before its update.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLoss {
    /// The objective: Σ λ_j L_j (plus Σ s_j/2 under uncertainty weighting).
    pub total: f32,
    /// Each task's unweighted masked mean loss L_j.
    pub tasks: Vec<f32>,
    /// The batch's rows (the last batch of an epoch may be short).
    pub rows: usize,
    /// Per task, the label elements L_j averages over (its present labels,
    /// over every member trained on them): the step's weight in the task's
    /// epoch mean (see `step::counts`).
    pub labels: Vec<f32>,
}

/// Device buffers the trainer touches between steps.
struct Buffers {
    /// Parameters, gradients, optimizer state.
    state: ParamBuffers,
    cursor: StepCursor,
    /// The loss log [steps, T + 1].
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
    step: StepProgram,
    /// This rank's part of each global batch (None: a single process).
    partition: Option<Partition>,
    /// The global step's shape (the device's batches are a rank's part of it).
    shape: StepShape,
    shuffle: bool,
    rng: ChaCha8Rng,
    epoch: usize,
    global_step: u64,
    flops_per_step: u64,
    optimizer: OptimizerConfig,
    weighter: Weighter,
    /// The λ the host last wrote (fixed, DWA).
    host_lambda: Option<Vec<f32>>,
    /// Per finished epoch, λ_j as used by its last step.
    lambda_history: Vec<Vec<f32>>,
    /// The training rows: on the device, or streamed shard by shard.
    feed: Feed,
    /// Length of the row order ring.
    order_len: usize,
    /// Task names, for the non-finite guard's error.
    task_names: Vec<String>,
    /// The objective of the last step whose update was applied.
    last_finite: Option<f32>,
    /// The first step that was not finite, and the objective before it.
    diverged: Option<(Divergence, Option<f32>)>,
    /// An epoch cut short by a stop request (see `state`).
    pending: Option<state::Pending>,
}

impl Trainer {
    /// Uploads `model` and `train` to `backend` and records the training
    /// step: gather, forward, losses and their weighting, backward, optimizer
    /// (the pieces are in `step`).
    pub fn new(
        backend: Box<dyn Backend>,
        model: &Model,
        train: &Dataset,
        cfg: &TrainConfig,
    ) -> Result<Trainer> {
        check_data(model, train, "training")?;
        let source = &mut DatasetRef(train);
        let rows = TrainRows::Resident {
            source,
            chunk_rows: None,
        };
        Trainer::with_rows(backend, model, rows, cfg, None)
    }

    /// [`Trainer::new`] over rows read from a source, resident or streamed;
    /// with a `collective` of more than one process, for one rank of a
    /// data-parallel job: this rank trains its part of each global batch of
    /// `cfg.batch_size` rows and the step's sums run across the ranks (see
    /// `train::distributed`). Every rank must pass the same model, rows and
    /// config.
    pub fn with_rows(
        mut backend: Box<dyn Backend>,
        model: &Model,
        rows: TrainRows,
        cfg: &TrainConfig,
        collective: Option<Rc<dyn Collective>>,
    ) -> Result<Trainer> {
        let n = rows.rows();
        let weighter = Weighter::new(
            cfg.weighting,
            cfg.gradnorm_alpha,
            &model.spec,
            &model.network,
        )?;
        let shape = StepShape::new(n, cfg.batch_size, model.spec.tasks.len())?;
        // A rank's device holds batches of its part of the global batch.
        let partition = Partition::new(collective.as_ref(), &shape);
        let dev = partition.as_ref().map_or(shape, |p| p.device_shape(&shape));
        let (b, spec) = (backend.as_mut(), &model.spec);

        // Buffers: parameters and optimizer state, the graph's activations,
        // the training rows and the step's position, the batch's labels, the
        // losses and GradNorm's state.
        let state = ParamBuffers::upload(b, model)?;
        let graph =
            model
                .network
                .graph(b, spec, dev.batch, true, state.params, Some(state.grads))?;
        let widths = gather::device_label_widths(spec);
        let feed = train_rows::build_feed(b, model, rows, &shape, &graph.stacked, cfg.seed)?;
        let order_len = feed.order_len(shape.steps_per_epoch, shape.batch, dev.batch);
        let cursor = StepCursor::alloc(b, &dev, order_len)?;
        let label_batch = gather::alloc_label_batch(b, spec, dev.batch, &widths)?;
        let losses = LossBuffers::alloc(b, &dev, &graph)?;
        let gradnorm = GradnormBufs::alloc(b, shape.tasks, losses.lambda, losses.out, state.grads)?;

        // The step, in order.
        let row_source = cursor.rows(dev.batch, n, order_len);
        let mut head = feed
            .device_rows()
            .gather_ops(&row_source, graph.x, &label_batch);
        head.extend(graph.forward.iter().cloned());
        let bagged = gather::bagged_members(spec);
        head.extend(loss::loss_ops(
            spec,
            &dev,
            &graph,
            &label_batch,
            bagged,
            &losses,
        ));
        let parts = step_parts(
            model, cfg, &weighter, head, &shape, &dev, &graph, &state, &cursor, &losses, gradnorm,
        );

        let flops_per_step = parts.in_order().iter().map(Op::flops).sum();
        let wiring = Wiring {
            shape: &shape,
            cursor: &cursor,
            losses: &losses,
            stacked: &graph.stacked,
            grads: state.grads,
        };
        let step = StepProgram::prepare(b, parts, partition.clone(), wiring)?;
        Ok(Trainer {
            backend,
            bufs: Buffers {
                state,
                cursor,
                log: losses.log,
                lambda: losses.lambda,
                initial: gradnorm.initial,
            },
            step,
            partition,
            shape,
            shuffle: cfg.shuffle,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            epoch: 0,
            global_step: 0,
            flops_per_step,
            optimizer: cfg.optimizer,
            weighter,
            host_lambda: None,
            lambda_history: Vec::new(),
            feed,
            order_len,
            task_names: spec.tasks.iter().map(|t| t.name.clone()).collect(),
            last_finite: None,
            diverged: None,
            pending: None,
        })
    }

    /// Optimizer steps in one epoch (the last batch may be partial).
    pub fn steps_per_epoch(&self) -> usize {
        self.shape.steps_per_epoch
    }

    /// Floating-point operations of one step's matrix products.
    pub fn flops_per_step(&self) -> u64 {
        self.flops_per_step
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Where the distributed steps' time went so far (None for a single process).
    pub fn comm_times(&self) -> Option<CommTimes> {
        self.step.comm_times()
    }

    /// The backend this trainer runs on.
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// The device buffer holding the parameters (for evaluation on the same backend).
    pub fn params_buffer(&self) -> BufId {
        self.bufs.state.params
    }

    /// Trains one epoch; `progress(steps_done, steps_total)` is called after
    /// each submission. Returns every step's losses (read back once, with the
    /// step counters). When a step's loss or gradient was not finite, the
    /// optimizer skipped it and every later step: the losses end with that
    /// step's and [`Trainer::divergence`] says what happened.
    pub fn train_epoch(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<StepLoss>> {
        self.train_epoch_or_stop(progress, &|| false)?
            .ok_or_else(|| Error::Invalid("the epoch was cut short".into()))
    }

    /// [`Trainer::train_epoch`], but when `stop()` says so after a submission
    /// that did not end the epoch, the epoch is put aside (its row order and
    /// the steps done; see [`Trainer::state`]) and None is returned; the next
    /// call continues it where it stopped.
    pub fn train_epoch_or_stop(
        &mut self,
        progress: &mut dyn FnMut(usize, usize),
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<StepLoss>>> {
        let p = match self.pending.take() {
            Some(p) => p,
            None => {
                let rng_pos = self.rng.get_word_pos();
                let (rows, len) = (self.shape.rows, self.shape.order_len());
                let plan = self.feed.plan(rows, len, self.shuffle, &mut self.rng);
                state::Pending {
                    plan,
                    done: 0,
                    rng_pos,
                    counts: Vec::new(),
                }
            }
        };
        let start = p.done;
        let b = self.backend.as_mut();
        if let Some(lambda) = self.weighter.epoch_lambda() {
            b.write(self.bufs.lambda, 0, &lambda)?;
            self.host_lambda = Some(lambda);
        }
        if let Some(l0) = self.weighter.initial_losses() {
            b.write(self.bufs.initial, 0, &l0)?;
        }
        let at = self.global_step + start as u64;
        b.write_u32(self.bufs.cursor.counters, 0, &[start as u32, at as u32])?;
        let steps = self.shape.steps_per_epoch;
        if self.optimizer.kind == OptimizerKind::Adam {
            let factors =
                optimizer::adam_factor_table(&self.optimizer, self.global_step + 1, steps);
            b.write(self.bufs.cursor.adam_factors, 0, &factors)?;
        }
        let Some(p) = self.run_segments(p, progress, stop)? else {
            return Ok(None);
        };
        let b = self.backend.as_mut();
        let log = b.read(self.bufs.log)?;
        let counters = b.read_u32(self.bufs.cursor.counters)?;
        let t = self.shape.tasks;
        if let Some(d) = Divergence::read(&counters, t) {
            return Ok(Some(self.diverge(d, &log, p.counts)));
        }
        // λ the host wrote is known; only the device-computed kind is read back (T values).
        let lambda = match &self.host_lambda {
            Some(l) if !self.weighter.on_device() => l.clone(),
            _ => b.read(self.bufs.lambda)?,
        };
        self.lambda_history.push(lambda);
        self.epoch += 1;
        self.global_step += steps as u64;
        self.last_finite = log.chunks_exact(t + 1).last().map(|c| c[0]);
        let steps = step_losses(&log, t, p.counts);
        self.weighter.end_epoch(&steps);
        Ok(Some(steps))
    }

    /// Runs the epoch's steps from `p.done` on, segment by segment (one when
    /// resident, one per shard when streamed): each segment's rows and row
    /// order are written before its steps. Returns the epoch with every
    /// step's counts, or None when `stop()` put it aside.
    fn run_segments(
        &mut self,
        mut p: state::Pending,
        progress: &mut dyn FnMut(usize, usize),
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<state::Pending>> {
        let (batch, steps) = (self.shape.batch, self.shape.steps_per_epoch);
        let sizes = self.feed.segment_steps(&p.plan, batch);
        let mut first = 0;
        for (i, n) in sizes.into_iter().enumerate() {
            let end = first + n;
            let upload = end > p.done;
            if upload || p.counts.len() < end {
                let b = self.backend.as_mut();
                let seg = self.feed.segment(b, &p.plan, i, batch, upload)?;
                p.counts.truncate(first);
                p.counts.extend(seg.counts);
                if upload {
                    // A rank's part of each batch, at its place in the ring.
                    match &self.partition {
                        Some(p) => self.write_order(first * p.local, &p.local_order(&seg.order))?,
                        None => self.write_order(first * batch, &seg.order)?,
                    }
                }
            }
            while p.done < end {
                let k = (end - p.done).min(STEPS_PER_SUBMIT as usize);
                self.step.run(self.backend.as_mut(), k as u32)?;
                p.done += k;
                progress(p.done, steps);
                if p.done < steps && stop() {
                    self.pending = Some(p);
                    return Ok(None);
                }
            }
            first = end;
        }
        Ok(Some(p))
    }

    /// Writes `order` into the row order ring from position `at` (wrapping).
    fn write_order(&mut self, at: usize, order: &[u32]) -> Result<()> {
        let (buf, len) = (self.bufs.cursor.order, self.order_len);
        let at = at % len;
        let head = order.len().min(len - at);
        self.backend.write_u32(buf, at, &order[..head])?;
        if head < order.len() {
            self.backend.write_u32(buf, 0, &order[head..])?;
        }
        Ok(())
    }

    /// Records the first step that was not finite; returns the epoch's losses
    /// up to and including that step's.
    fn diverge(&mut self, d: Divergence, log: &[f32], counts: Vec<StepCounts>) -> Vec<StepLoss> {
        let t = self.shape.tasks;
        let first = self.global_step;
        let kept = (d.step + 1).saturating_sub(first) as usize;
        let rows: Vec<&[f32]> = log.chunks_exact(t + 1).take(kept).collect();
        let last = match rows.len().checked_sub(2) {
            Some(k) => Some(rows[k][0]),
            None if d.step == first => self.last_finite,
            None => None,
        };
        // A caller that trains on after the error keeps the first record.
        if self.diverged.is_none() {
            self.diverged = Some((d, last));
        }
        self.epoch += 1;
        self.global_step += self.shape.steps_per_epoch as u64;
        let kept = rows.len();
        let mut steps = step_losses(log, t, counts);
        steps.truncate(kept);
        steps
    }

    /// `Error::NonFinite` once a step's loss or gradient was not finite: the
    /// task names, the global step and its epoch, and the last finite
    /// objective. The parameters on the device are those after the step before.
    pub fn divergence(&self) -> Option<Error> {
        let (d, last) = self.diverged.as_ref()?;
        Some(d.error(&self.task_names, self.shape.steps_per_epoch, *last))
    }

    /// λ_j per finished epoch, as its last step used them (the configured
    /// weights for `fixed`, DWA's per-epoch weights, 1/(2·exp(s_j)) for uncertainty).
    pub fn lambda_history(&self) -> &[Vec<f32>] {
        &self.lambda_history
    }

    /// Reads the current parameters back into `model`.
    pub fn download(&mut self, model: &mut Model) -> Result<()> {
        model.params = self.backend.read(self.bufs.state.params)?;
        Ok(())
    }

    /// Optimizer state (first and second moments) and gradients of the last
    /// step, for checkpoints and tests.
    pub fn optimizer_state(&mut self) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (b, p) = (self.backend.as_mut(), &self.bufs.state);
        Ok((b.read(p.m)?, b.read(p.v)?, b.read(p.grads)?))
    }
}

/// The step's ops after the gather, forward and losses (`head`), in the
/// groups a data-parallel step runs apart: the reduce and the weighting
/// around it, the backward pass, then the guard and the optimizer.
#[allow(clippy::too_many_arguments)]
fn step_parts(
    model: &Model,
    cfg: &TrainConfig,
    weighter: &Weighter,
    head: Vec<Op>,
    shape: &StepShape,
    dev: &StepShape,
    graph: &crate::model::graph::Graph,
    state: &ParamBuffers,
    cursor: &StepCursor,
    losses: &LossBuffers,
    gradnorm: GradnormBufs,
) -> StepParts {
    let mut backward = loss::grad_scale_ops(&model.spec, dev, graph, losses);
    backward.extend(graph.backward.iter().cloned());
    let grads_len = model.network.layout.len;
    let mut tail = vec![guard::check_op(
        shape,
        grads_len,
        losses.out,
        state.grads,
        cursor.counters,
    )];
    tail.extend(optimizer::update_ops(model, &cfg.optimizer, state, cursor));
    StepParts {
        head,
        before_reduce: weighter.before_reduce(state.params, losses.lambda),
        reduce: loss::reduce_op(dev, cursor, losses),
        after_reduce: weighter.after_reduce(
            state.params,
            cursor.counters,
            losses.out,
            state.grads,
            losses.log,
            shape.steps_per_epoch,
        ),
        backward,
        after_backward: weighter.after_backward(graph.rep_split, gradnorm),
        tail,
    }
}

/// The steps' losses from the loss log [steps, T + 1], with their counts.
fn step_losses(log: &[f32], tasks: usize, counts: Vec<StepCounts>) -> Vec<StepLoss> {
    (log.chunks_exact(tasks + 1).zip(counts))
        .map(|(c, n)| StepLoss {
            total: c[0],
            tasks: c[1..].to_vec(),
            rows: n.rows,
            labels: n.labels,
        })
        .collect()
}
