//! The library's front door: choose a backend, `fit` a model, `evaluate` it,
//! `predict` with it. The seed's program in Rust is: load a config (or build a
//! `ModelSpec`), `fit`, print the metrics (see examples/multitask.rs).

use super::checkpoint::{BestEpoch, Checkpoint, CheckpointPolicy};
use super::collective::{self, Collective};
use super::config::{EarlyStopping, TrainConfig};
use super::distributed::{check_same_data, check_same_weights, valid::Validator};
use super::metrics::TaskMetrics;
use super::predict::{
    task_losses, task_metrics, to_predictions, weighted_loss, Outputs, Predictions, Predictor,
};
use super::step::counts::weighted_mean;
use super::trainer::{check_data, StepLoss, Trainer};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::Model;
use crate::{Error, NonFiniteIn, Result};
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
    if let Some((ck, path)) = opts.resume {
        ck.check_fits(path, model, cfg, (train, valid))?;
        model.params.clone_from(&ck.state.params);
        model.task_weights.clone_from(&ck.model.task_weights);
    }
    if let Some(v) = valid {
        check_data(model, v, "validation")?;
    }
    if cfg.early_stopping.is_some() && valid.is_none_or(|v| v.rows == 0) {
        return Err(Error::Invalid(
            "early stopping watches the validation loss, but there are no validation rows".into(),
        ));
    }
    let ranks = opts.collective.clone().filter(|c| c.size() > 1);
    if let Some(c) = &ranks {
        check_same_data(c.as_ref(), train, valid)?;
    }
    let mut trainer = Trainer::with_collective(backend, model, train, cfg, ranks.clone())?;
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
        data: (train, valid),
    };
    let stop = || stop_requested(opts.stop, ranks.as_deref());
    let predictor = match valid {
        Some(v) => {
            let params = trainer.params_buffer();
            let c = ranks.as_ref();
            Some(Validator::new(trainer.backend(), model, params, v, c)?)
        }
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
        let (valid_metrics, valid_task_losses) = match (&predictor, valid) {
            (Some(p), Some(v)) => {
                let out = p.run(trainer.backend())?;
                (task_metrics(model, &out, v), task_losses(model, &out, v))
            }
            _ => (Vec::new(), Vec::new()),
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
    data: (&'a Dataset, Option<&'a Dataset>),
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
        let ck = Checkpoint::capture(trainer, model, self.cfg, self.data, best, stopped_early)?;
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

/// A forward program over `features` [rows, inputs], with `model`'s
/// parameters uploaded to `backend`.
fn upload_predictor(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Predictor> {
    let params = backend.alloc(model.params.len(), "params")?;
    backend.write(params, 0, &model.params)?;
    Predictor::new(backend, model, params, features, rows)
}

/// The forward pass of every task for `features` [rows, inputs].
pub fn forward(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Outputs> {
    upload_predictor(model, features, rows, backend)?.run(backend)
}

/// The learned allocation of a gated model: per task, the mean over `rows`
/// of its gate's weight on each expert ([T][E]); None without gates.
pub fn allocation(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Option<Vec<Vec<f32>>>> {
    upload_predictor(model, features, rows, backend)?.mean_gates(backend)
}

/// `model`'s loss on `data`: Σ_j w_j L_j with the configured weights, and the
/// per-task mean losses L_j (what `fit` reports as the validation loss).
pub fn evaluate_loss(
    model: &Model,
    data: &Dataset,
    backend: &mut dyn Backend,
) -> Result<(f32, Vec<f32>)> {
    check_data(model, data, "evaluation")?;
    let out = forward(model, &data.features, data.rows, backend)?;
    let losses = task_losses(model, &out, data);
    Ok((weighted_loss(model, &losses), losses))
}

/// Per-task metrics of `model` on `data`.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    backend: &mut dyn Backend,
) -> Result<Vec<(String, TaskMetrics)>> {
    check_data(model, data, "evaluation")?;
    let out = forward(model, &data.features, data.rows, backend)?;
    Ok(task_metrics(model, &out, data))
}

/// Probabilities / values of every task for `features` [rows, inputs].
pub fn predict(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Predictions> {
    let out = forward(model, features, rows, backend)?;
    Ok(to_predictions(model, out, rows))
}
