//! The library's front door: choose a backend, `fit` a model, `evaluate` it,
//! `predict` with it. The seed's program in Rust is: load a config (or build a
//! `ModelSpec`), `fit`, print the metrics (see examples/multitask.rs).

use super::checkpoint::{data_keys, BestEpoch, Checkpoint, CheckpointPolicy};
use super::collective::{self, Collective};
use super::config::{EarlyStopping, TrainConfig};
use super::distributed::{check_same_data, check_same_weights, valid::Validator};
use super::feed::Decision;
use super::metrics::TaskMetrics;
use super::predict::{task_losses, task_metrics, weighted_loss, Outputs};
use super::step::counts::weighted_mean;
use super::trainer::{check_data, check_source, StepLoss, TrainRows, Trainer};
use super::valid::ValidPass;
pub use super::valid::ValidRows;
use crate::backend::Backend;
use crate::data::source::read_all;
use crate::data::{DataSource, Dataset, DatasetRef};
use crate::model::Model;
use crate::{Error, NonFiniteIn, Result};
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `fit` reports as it goes.
pub enum Event<'a> {
    /// `done` of `total` steps of epoch `epoch` (0-based) were submitted.
    Progress {
        epoch: usize,
        done: usize,
        total: usize,
    },
    /// An epoch finished.
    EpochEnd(&'a EpochReport),
}

/// One epoch's losses and validation metrics.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// 0-based.
    pub epoch: usize,
    pub epochs: usize,
    /// Every step's losses, in order.
    pub steps: Vec<StepLoss>,
    /// Mean of the steps' objective, each weighted by its batch's rows.
    pub loss: f32,
    /// Per-task metrics on the validation rows (empty without validation data).
    pub valid: Vec<(String, TaskMetrics)>,
    /// Per-task mean losses on the validation rows (empty without validation data).
    pub valid_task_losses: Vec<f32>,
    /// Σ_j w_j L_j over the validation rows with the configured task weights
    /// w_j (fixed across epochs, so epochs compare under any weighting).
    pub valid_loss: Option<f32>,
    /// λ_j as the epoch's last step used them.
    pub task_weights: Vec<f32>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub epochs: Vec<EpochReport>,
    /// The backend it ran on.
    pub backend: String,
    /// With early stopping: the epoch (0-based) of the lowest validation loss.
    pub best_epoch: Option<usize>,
    /// With early stopping: true when it ended training before `epochs`.
    pub stopped_early: bool,
    /// With early stopping and `restore_best`: true when the returned model
    /// holds the best epoch's weights rather than the last epoch's.
    pub restored_best: bool,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    /// The global step the run resumed at (0 for a fresh run): `epochs`
    /// starts with the resumed epoch, whose steps before it were done already.
    pub resumed_at_step: u64,
    /// Set when a stop request cut the run short (see [`FitOptions::stop`]).
    pub interrupted: Option<Interrupted>,
}

/// Where a stop request cut a run short.
#[derive(Debug, Clone)]
pub struct Interrupted {
    /// The epoch (0-based) it stopped in, or before when no step of it was done.
    pub epoch: usize,
    /// The losses of that epoch's steps done (by this run or before it resumed).
    pub steps: Vec<StepLoss>,
}

/// What [`fit_with`] adds to [`fit`]: checkpoints, resuming, stopping.
#[derive(Default)]
pub struct FitOptions<'a> {
    /// Write checkpoints there, this often (and at the end, and when stopped).
    pub checkpoint: Option<CheckpointPolicy>,
    /// Continue this checkpoint (with its path, for errors) instead of
    /// starting afresh: it must be of the same model, config (but for
    /// `train.epochs` and early stopping's patience) and data.
    pub resume: Option<(&'a Checkpoint, &'a std::path::Path)>,
    /// Checked after every submission: once true, training stops after the
    /// submission in flight, writes the checkpoint and returns with
    /// [`History::interrupted`] set.
    pub stop: Option<&'a AtomicBool>,
    /// The job this process is one rank of, for data-parallel training (see
    /// `train::distributed`): every rank calls `fit_with` with the same model,
    /// data and config; rank 0 alone writes the checkpoints, and a stop
    /// request on any rank stops all of them at the same step. None, or a
    /// job of one process: the single process's training.
    pub collective: Option<Rc<dyn Collective>>,
}

impl History {
    /// Every step's losses with its epoch, in order.
    pub fn steps(&self) -> impl Iterator<Item = (usize, &StepLoss)> {
        self.epochs
            .iter()
            .flat_map(|e| e.steps.iter().map(move |s| (e.epoch, s)))
    }
}

/// Trains `model` in place on `train` for `cfg.epochs` epochs, evaluating on
/// `valid` after each epoch (on the same backend, parameters never leave it).
/// With `cfg.early_stopping` (which needs `valid`) training ends once the
/// validation loss has not improved for `patience` epochs, and the best
/// epoch's weights are put back when `restore_best` says so.
///
/// Errors with `Error::NonFinite` when a step's loss or gradient was not
/// finite (at the end of that epoch; `model` then holds the parameters after
/// the last finite step), or when early stopping never saw a finite
/// validation loss.
pub fn fit(
    model: &mut Model,
    train: &Dataset,
    valid: Option<&Dataset>,
    cfg: &TrainConfig,
    backend: Box<dyn Backend>,
    on_event: &mut dyn FnMut(Event),
) -> Result<History> {
    let opts = FitOptions::default();
    fit_with(model, train, valid, cfg, backend, opts, on_event)
}

/// [`fit`] with checkpoints, resuming from one, and stopping on request
/// (see [`FitOptions`]). A run resumed from a checkpoint of a run of the same
/// config continues it exactly: the same steps, losses and final weights,
/// bit for bit, as the run that was not interrupted.
pub fn fit_with(
    model: &mut Model,
    train: &Dataset,
    valid: Option<&Dataset>,
    cfg: &TrainConfig,
    backend: Box<dyn Backend>,
    opts: FitOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<History> {
    check_data(model, train, "training")?;
    let source = &mut DatasetRef(train);
    let rows = TrainRows::Resident {
        source,
        chunk_rows: None,
    };
    fit_rows(
        model,
        rows,
        valid.map(ValidRows::Resident),
        cfg,
        backend,
        opts,
        on_event,
    )
}

/// [`fit_with`] over rows read from sources, held as `decision` says
/// (see [`crate::train::feed::decide`]); the validation rows are read into
/// memory when the training rows are resident, and streamed with them.
#[allow(clippy::too_many_arguments)]
pub fn fit_source(
    model: &mut Model,
    mut train: Box<dyn DataSource>,
    valid: Option<Box<dyn DataSource>>,
    cfg: &TrainConfig,
    decision: &Decision,
    backend: Box<dyn Backend>,
    opts: FitOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<History> {
    let chunk_rows = Some(decision.chunk_rows);
    let valid_kept;
    let valid = match valid {
        Some(mut v) if decision.shard_rows.is_none() => {
            valid_kept = read_all(v.as_mut())?;
            Some(ValidRows::Resident(&valid_kept))
        }
        Some(v) => Some(ValidRows::Streamed(v)),
        None => None,
    };
    let rows = match decision.shard_rows {
        None => TrainRows::Resident {
            source: train.as_mut(),
            chunk_rows,
        },
        Some(shard_rows) => TrainRows::Streamed {
            source: train,
            shard_rows,
            chunk_rows,
        },
    };
    fit_rows(model, rows, valid, cfg, backend, opts, on_event)
}

/// [`fit_with`] over rows read from sources: resident on the device or
/// streamed ([`TrainRows`]), validation rows in memory or streamed.
pub fn fit_rows(
    model: &mut Model,
    mut train: TrainRows,
    mut valid: Option<ValidRows>,
    cfg: &TrainConfig,
    backend: Box<dyn Backend>,
    opts: FitOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<History> {
    let ranks = opts.collective.clone().filter(|c| c.size() > 1);
    let keys = check_inputs(model, &mut train, &mut valid, cfg, &opts)?;
    if let Some(c) = &ranks {
        check_same_data(c.as_ref(), &keys)?;
    }
    let mut trainer = Trainer::with_rows(backend, model, train, cfg, ranks.clone())?;
    let mut history = History {
        backend: trainer.backend().describe(),
        steps_per_epoch: trainer.steps_per_epoch(),
        ..Default::default()
    };
    let mut watch = cfg.early_stopping.as_ref().map(|rule| EarlyStop {
        rule,
        epochs: cfg.epochs,
        best: None,
    });
    let first = restore(opts.resume, &mut trainer, &mut watch, &mut history, cfg)?;
    let mut saver = Saver {
        policy: (opts.checkpoint.as_ref()).filter(|_| ranks.as_ref().is_none_or(|c| c.rank() == 0)),
        written_at: None,
        cfg,
        data_keys: keys,
    };
    let stop = || stop_requested(opts.stop, ranks.as_deref());
    let mut validation = match valid {
        Some(v) => Some(Validation::new(&mut trainer, model, v, ranks.as_ref())?),
        None => None,
    };
    for epoch in first..cfg.epochs {
        let progress = &mut |done, total| on_event(Event::Progress { epoch, done, total });
        let steps = match stop() {
            true => None,
            false => trainer.train_epoch_or_stop(progress, &stop)?,
        };
        let Some(steps) = steps else {
            let steps = trainer.pending_steps()?;
            history.interrupted = Some(Interrupted { epoch, steps });
            break;
        };
        if let Some(e) = trainer.divergence() {
            trainer.download(model)?;
            return Err(e);
        }
        // Each step weighs by its rows, as Keras' loss tracker weighs its batches.
        let loss = weighted_mean(steps.iter().map(|s| (s.total, s.rows as f32)));
        let (valid_metrics, valid_task_losses) = match &mut validation {
            Some(p) => {
                let (out, v) = p.run(trainer.backend())?;
                (task_metrics(model, &out, v), task_losses(model, &out, v))
            }
            None => (Vec::new(), Vec::new()),
        };
        let valid_loss =
            (!valid_task_losses.is_empty()).then(|| weighted_loss(model, &valid_task_losses));
        let task_weights = trainer.lambda_history().last().cloned().unwrap_or_default();
        model.task_weights.push(task_weights.clone());
        let stop = match (&mut watch, valid_loss) {
            (Some(w), Some(vl)) => w.observe(epoch, vl, &mut trainer, model)?,
            _ => false,
        };
        let report = EpochReport {
            epoch,
            epochs: cfg.epochs,
            steps,
            loss,
            valid: valid_metrics,
            valid_task_losses,
            valid_loss,
            task_weights,
        };
        on_event(Event::EpochEnd(&report));
        history.epochs.push(report);
        if stop {
            history.stopped_early = true;
            break;
        }
        if saver.due(epoch + 1) {
            saver.save(&mut trainer, model, watch.as_ref(), false)?;
        }
    }
    let best = watch.as_ref();
    saver.save(&mut trainer, model, best, history.stopped_early)?;
    trainer.download(model)?;
    if let Some(c) = &ranks {
        check_same_weights(c.as_ref(), &model.params)?;
    }
    if let Some(w) = watch {
        w.finish(&mut history, model, &trainer)?;
    }
    Ok(history)
}

/// True once `stop` is set; with a job of several ranks, on every rank once it
/// is set on any (every rank asks at the same steps, so they stop together).
fn stop_requested(stop: Option<&AtomicBool>, ranks: Option<&dyn Collective>) -> bool {
    let local = stop.is_some_and(|s| s.load(Ordering::SeqCst));
    match ranks {
        // An all-reduce that fails has stopped the job already; stop here too.
        Some(c) => collective::any(c, local).unwrap_or(true),
        None => local,
    }
}

/// Each epoch's validation pass: this process's over every validation row,
/// or, for one rank of several, its share with the outputs assembled from
/// every rank (the rows are then held in memory).
enum Validation<'a> {
    Local(ValidPass<'a>),
    Ranks(Validator, Cow<'a, Dataset>),
}

impl<'a> Validation<'a> {
    fn new(
        trainer: &mut Trainer,
        model: &Model,
        valid: ValidRows<'a>,
        ranks: Option<&Rc<dyn Collective>>,
    ) -> Result<Validation<'a>> {
        let params = trainer.params_buffer();
        let Some(c) = ranks else {
            return Ok(Validation::Local(ValidPass::new(
                trainer.backend(),
                model,
                params,
                valid,
            )?));
        };
        let rows = match valid {
            ValidRows::Resident(d) => Cow::Borrowed(d),
            ValidRows::Streamed(mut s) => Cow::Owned(read_all(s.as_mut())?),
        };
        let v = Validator::new(trainer.backend(), model, params, &rows, Some(c))?;
        Ok(Validation::Ranks(v, rows))
    }

    /// Every validation row's outputs, and the rows' labels.
    fn run(&mut self, b: &mut dyn Backend) -> Result<(Outputs, &Dataset)> {
        match self {
            Validation::Local(p) => p.run(b),
            Validation::Ranks(v, rows) => Ok((v.run(b)?, &**rows)),
        }
    }
}

/// The checks before a run: the validation rows fit the model, early
/// stopping has validation rows, a checkpoint to resume is of this model,
/// config and data (its parameters then go into `model`). Returns the rows'
/// hashes when checkpoints are written or read (one pass over the rows).
fn check_inputs(
    model: &mut Model,
    train: &mut TrainRows,
    valid: &mut Option<ValidRows>,
    cfg: &TrainConfig,
    opts: &FitOptions,
) -> Result<Vec<(String, String)>> {
    // The rows' hashes go into checkpoints, and ranks compare theirs: one
    // pass, only when needed.
    let mut keys = Vec::new();
    let ranks = opts.collective.as_ref().is_some_and(|c| c.size() > 1);
    if opts.checkpoint.is_some() || opts.resume.is_some() || ranks {
        let mut borrowed;
        let v: Option<&mut dyn DataSource> = match valid.as_mut() {
            Some(ValidRows::Resident(d)) => {
                borrowed = DatasetRef(d);
                Some(&mut borrowed)
            }
            Some(ValidRows::Streamed(s)) => Some(s.as_mut()),
            None => None,
        };
        keys = data_keys(train.source(), v)?;
    }
    if let Some((ck, path)) = opts.resume {
        ck.check_fits(path, model, cfg, &keys)?;
        model.params.clone_from(&ck.state.params);
        model.task_weights.clone_from(&ck.model.task_weights);
    }
    match &valid {
        Some(ValidRows::Resident(v)) => check_data(model, v, "validation")?,
        Some(ValidRows::Streamed(v)) => check_source(model, v.as_ref(), "validation")?,
        None => {}
    }
    if cfg.early_stopping.is_some() && valid.as_ref().is_none_or(|v| v.rows() == 0) {
        return Err(Error::Invalid(
            "early stopping watches the validation loss, but there are no validation rows".into(),
        ));
    }
    Ok(keys)
}

/// Puts a checkpoint's state into a fresh `trainer`, early stopping's watch
/// and `history`; returns the epoch to continue with (`cfg.epochs` when
/// early stopping had ended the run).
fn restore(
    resume: Option<(&Checkpoint, &std::path::Path)>,
    trainer: &mut Trainer,
    watch: &mut Option<EarlyStop>,
    history: &mut History,
    cfg: &TrainConfig,
) -> Result<usize> {
    let Some((ck, _)) = resume else {
        return Ok(0);
    };
    trainer.restore(&ck.state)?;
    if let Some(w) = watch {
        w.best.clone_from(&ck.best);
    }
    history.resumed_at_step = ck.state.global_step;
    history.stopped_early = ck.stopped_early;
    Ok(if ck.stopped_early {
        cfg.epochs
    } else {
        trainer.epoch()
    })
}

/// Writes `fit`'s checkpoints.
struct Saver<'a> {
    policy: Option<&'a CheckpointPolicy>,
    /// The global step of the last checkpoint written.
    written_at: Option<u64>,
    cfg: &'a TrainConfig,
    /// The rows' hashes ([`data_keys`]).
    data_keys: Vec<(String, String)>,
}

impl Saver<'_> {
    /// True when a checkpoint is due after `epochs` epochs.
    fn due(&self, epochs: usize) -> bool {
        self.policy
            .is_some_and(|p| p.every > 0 && epochs.is_multiple_of(p.every))
    }

    /// Writes the checkpoint now (unless there is no policy, or this state
    /// was just written).
    fn save(
        &mut self,
        trainer: &mut Trainer,
        model: &Model,
        watch: Option<&EarlyStop>,
        stopped_early: bool,
    ) -> Result<()> {
        let Some(policy) = self.policy else {
            return Ok(());
        };
        let at = (trainer.epoch() * trainer.steps_per_epoch() + trainer.steps_pending()) as u64;
        if self.written_at == Some(at) && !stopped_early {
            return Ok(());
        }
        let best: Option<BestEpoch> = watch.and_then(|w| w.best.clone());
        let ck = Checkpoint::capture(
            trainer,
            model,
            self.cfg,
            &self.data_keys,
            best,
            stopped_early,
        )?;
        ck.save(&policy.path)?;
        self.written_at = Some(at);
        Ok(())
    }
}

/// Early stopping: the epoch with the lowest validation loss so far.
struct EarlyStop<'a> {
    rule: &'a EarlyStopping,
    /// The configured number of epochs (the last one never stops early).
    epochs: usize,
    /// (epoch, validation loss, its weights when they are to be restored).
    best: Option<BestEpoch>,
}

impl EarlyStop<'_> {
    /// Takes epoch `epoch`'s validation loss `vl` (keeping the weights of a
    /// new best when `restore_best`); true when training should stop: no
    /// lower loss (by more than `min_delta`) for `patience` epochs.
    fn observe(
        &mut self,
        epoch: usize,
        vl: f32,
        trainer: &mut Trainer,
        model: &mut Model,
    ) -> Result<bool> {
        let improved = match &self.best {
            None => vl.is_finite(),
            Some((_, b, _)) => vl < b - self.rule.min_delta,
        };
        if improved {
            let weights = if self.rule.restore_best {
                trainer.download(model)?;
                Some(model.params.clone())
            } else {
                None
            };
            self.best = Some((epoch, vl, weights));
            return Ok(false);
        }
        let since = self.best.as_ref().map_or(epoch + 1, |(b, _, _)| epoch - b);
        Ok(since >= self.rule.patience && epoch + 1 < self.epochs)
    }

    /// Records the best epoch in `history`, and puts its weights back into
    /// `model` when they were kept and differ from the last epoch's. A
    /// validation loss that was never finite is an error. The epochs trained
    /// count those before a resume.
    fn finish(self, history: &mut History, model: &mut Model, trainer: &Trainer) -> Result<()> {
        let Some((epoch, _, weights)) = self.best else {
            return Err(never_finite(history, model, trainer.steps_per_epoch()));
        };
        history.best_epoch = Some(epoch);
        if let Some(w) = weights {
            if epoch + 1 != trainer.epoch() {
                model.params = w;
                history.restored_best = true;
            }
        }
        Ok(())
    }
}

/// Early stopping's error when no epoch had a finite validation loss: the
/// tasks whose validation loss was not finite after the first epoch (all of
/// them when only the weighted sum overflowed).
fn never_finite(history: &History, model: &Model, steps_per_epoch: usize) -> Error {
    let names: Vec<String> = model.spec.tasks.iter().map(|t| t.name.clone()).collect();
    let first = history.epochs.first().map(|e| &e.valid_task_losses);
    let bad: Vec<String> = (names.iter().enumerate())
        .filter(|(j, _)| {
            first
                .and_then(|l| l.get(*j))
                .is_some_and(|l| !l.is_finite())
        })
        .map(|(_, n)| n.clone())
        .collect();
    Error::NonFinite {
        what: NonFiniteIn::ValidationLoss,
        tasks: if bad.is_empty() { names } else { bad },
        step: steps_per_epoch.saturating_sub(1) as u64,
        epoch: 0,
        last_finite_loss: None,
    }
}
