//! `tandem train`: fit the model a config describes, print each epoch's
//! losses and validation metrics, then save what was asked for.

use super::long_run::{self, LongRun};
use super::output::{check_distinct, check_some, Outputs};
use super::ranks::Ranks;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use tandem::data::DataSource;
use tandem::io::open_split;
use tandem::train::feed::{decide, Decision};
use tandem::train::{fit_source, Checkpoint, CheckpointPolicy, FitOptions};
use tandem::Backend;
use tandem::{BackendChoice, Config, EpochReport, Event, History, Model};

/// The flags of `tandem train` besides the backend and the long-run ones.
pub struct Flags {
    pub init: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub quiet: bool,
}

pub fn train(
    config: &Path,
    flags: Flags,
    backend: &str,
    long: LongRun,
    ranks: &Ranks,
) -> Result<()> {
    let Flags {
        init,
        out,
        log,
        quiet,
    } = flags;
    // Rank 0 alone prints and writes; the other ranks of a job train in silence.
    let root = ranks.is_root();
    let (out, log, quiet) = if root {
        (out, log, quiet)
    } else {
        (None, None, true)
    };
    check_some(&out, "--out")?;
    check_some(&log, "--log")?;
    check_some(&long.checkpoint.clone().filter(|_| root), "--checkpoint")?;
    let named = [
        (&out, "--out"),
        (&log, "--log"),
        (&long.checkpoint, "--checkpoint"),
    ];
    let named: Vec<(&Path, &str)> = (named.iter())
        .filter_map(|(p, f)| p.as_deref().map(|p| (p, *f)))
        .collect();
    check_distinct(&named)?;
    let choice: BackendChoice = backend.parse()?;
    let mut cfg = Config::load(config)?;
    ranks.localize(&mut cfg);
    let split = open_split(&mut cfg)?;
    let mut model = Model::from_spec(&cfg.model, cfg.train.seed)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    model.preprocess = split.preprocess.clone();
    if let Some(w) = &init {
        model.load_init(w)?;
    }
    let resume = match &long.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let existing = long_run::existing_log(log.as_deref(), resume.is_some())?;
    let (b, decision) = open_backend(choice, ranks, &cfg, &model, split.train.as_ref())?;
    if root {
        eprintln!(
            "training {} on {} rows ({} validation) with {}{}; rows {}",
            config.display(),
            split.train.rows(),
            split.valid.as_ref().map_or(0, |v| v.rows()),
            b.describe(),
            match ranks.size() {
                1 => String::new(),
                p => format!(" on each of {p} ranks"),
            },
            decision.why
        );
    }
    let bar = progress_bar(quiet);
    let mut header_done = false;
    let mut last_loss = f32::NAN;
    let opts = FitOptions {
        checkpoint: (long.checkpoint.clone()).map(|path| CheckpointPolicy {
            path,
            every: long.every,
        }),
        resume: resume.as_ref().zip(long.resume.as_deref()),
        stop: Some(long_run::stop_on_signals()),
        collective: ranks.collective(),
    };
    let fitted = fit_source(
        &mut model,
        split.train,
        split.valid,
        &cfg.train,
        &decision,
        b,
        opts,
        &mut |ev| match ev {
            Event::Progress { epoch, done, total } => {
                bar.set_length(total as u64);
                bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.train.epochs));
                bar.set_message(format!("(last epoch loss {last_loss:.4})"));
                bar.set_position(done as u64);
            }
            Event::EpochEnd(r) if root => {
                last_loss = r.loss;
                bar.suspend(|| {
                    if !header_done {
                        println!("{}", metric_header(r));
                        header_done = true;
                    }
                    println!("{}", metric_row(r));
                });
            }
            Event::EpochEnd(_) => {}
        },
    );
    bar.finish_and_clear();
    let history = fitted.map_err(|e| nothing_written(e, &out, &log))?;
    let existing = existing.as_deref();
    if history.interrupted.is_some() {
        // The model is not finished: only the log so far, and the checkpoint fit wrote.
        save_outputs(&model, &history, None, log.as_deref(), existing)?;
        if root {
            interrupted(config, &long, out.as_deref(), log.as_deref());
        }
        ranks.exit(long_run::INTERRUPTED);
    }
    if root {
        print_early_stopping(&history);
        print_final_metrics(&history);
    }
    save_outputs(&model, &history, out.as_deref(), log.as_deref(), existing)
}

/// The backend the run trains on and how it holds the rows. One GPU per
/// rank on a node with several (the rank's index on its node picks it);
/// `auto` picks the GPU only for a job it can hold (resident or streamed).
fn open_backend(
    choice: BackendChoice,
    ranks: &Ranks,
    cfg: &Config,
    model: &Model,
    rows: &dyn DataSource,
) -> Result<(Box<dyn Backend>, Decision)> {
    let adapter = (ranks.size() > 1).then(|| ranks.local_rank());
    let b = tandem::backend::select::open_backend_at(choice, adapter)?;
    let batch = cfg.train.batch_size;
    match decide(&cfg.data.plan, b.as_ref(), &model.spec, rows, batch) {
        Err(e) if matches!(choice, BackendChoice::Auto) && b.is_gpu() => {
            eprintln!("warning: {e}; training on the CPU");
            let b = tandem::open_backend(BackendChoice::Cpu)?;
            let d = decide(&cfg.data.plan, b.as_ref(), &model.spec, rows, batch)?;
            Ok((b, d))
        }
        d => Ok((b, d?)),
    }
}

/// Says where a run stopped by a signal can resume (the caller exits with status 130).
fn interrupted(config: &Path, long: &LongRun, out: Option<&Path>, log: Option<&Path>) {
    match &long.checkpoint {
        Some(ckpt) => eprintln!(
            "interrupted: checkpoint written to {}; resume with\n  {}",
            ckpt.display(),
            long_run::resume_command(config, ckpt, out, log)
        ),
        None => eprintln!("interrupted; without --checkpoint there is nothing to resume from"),
    }
}

/// Writes the model and the log to temporary files, and only once both are
/// written renames them into place: a failed save replaces neither. A resumed
/// run's log continues `existing`.
fn save_outputs(
    model: &Model,
    history: &History,
    out: Option<&Path>,
    log: Option<&Path>,
    existing: Option<&str>,
) -> Result<()> {
    let mut outputs = Outputs::default();
    if let Some(path) = out {
        outputs.stage_bytes(path, "--out", &model.to_bytes()?)?;
    }
    if let Some(path) = log {
        let text = long_run::step_log(model, history, existing);
        outputs.stage_bytes(path, "--log", text.as_bytes())?;
    }
    outputs.commit()?;
    if let Some(path) = log {
        eprintln!("wrote per-step losses to {}", path.display());
    }
    if let Some(path) = out {
        eprintln!("saved the model to {}", path.display());
    }
    Ok(())
}

/// A run that diverged (or whose validation loss was never finite) saves
/// nothing: `--out` and `--log` stay as they were, and the message says so.
fn nothing_written(
    e: tandem::Error,
    out: &Option<PathBuf>,
    log: &Option<PathBuf>,
) -> anyhow::Error {
    if !matches!(e, tandem::Error::NonFinite { .. }) {
        return e.into();
    }
    let kept: Vec<String> = [("--out", out), ("--log", log)]
        .iter()
        .filter_map(|(flag, p)| p.as_ref().map(|p| format!("{flag} {}", p.display())))
        .collect();
    if kept.is_empty() {
        return e.into();
    }
    anyhow::anyhow!(
        "{e}\nnothing was written: {} left as it was",
        kept.join(" and ")
    )
}

/// The steps-per-epoch bar (hidden with `--quiet`).
fn progress_bar(quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The column names above the first epoch's row.
fn metric_header(r: &EpochReport) -> String {
    let mut h = format!("{:>7} {:>9}", "epoch", "loss");
    if r.valid_loss.is_some() {
        h.push_str(&format!(" {:>9}", "val_loss"));
    }
    for (name, m) in &r.valid {
        for (k, _) in m.values() {
            h.push_str(&format!(" {:>14}", format!("{name}.{k}")));
        }
    }
    h
}

/// One epoch: its loss, validation loss and metrics.
fn metric_row(r: &EpochReport) -> String {
    let mut row = format!(
        "{:>7} {:>9.5}",
        format!("{}/{}", r.epoch + 1, r.epochs),
        r.loss
    );
    if let Some(vl) = r.valid_loss {
        row.push_str(&format!(" {vl:>9.5}"));
    }
    for (_, m) in &r.valid {
        for (_, v) in m.values() {
            row.push_str(&format!(" {:>14.4}", v));
        }
    }
    row
}

/// What early stopping decided, when it was on.
fn print_early_stopping(history: &History) {
    if let Some(best) = history.best_epoch {
        // Before a resume, the best epoch's report is not in this run's history.
        let at = history.epochs.iter().find(|e| e.epoch == best);
        let loss = at.and_then(|e| e.valid_loss).unwrap_or(f32::NAN);
        let trained = history.epochs.last().map_or(0, |e| e.epoch + 1);
        let stopped = if history.stopped_early {
            format!("early stopping after epoch {trained}")
        } else {
            "early stopping did not trigger".to_string()
        };
        let restored = if history.restored_best {
            "; its weights were restored"
        } else {
            ""
        };
        println!(
            "{stopped}: best validation loss {loss:.5} at epoch {}{restored}",
            best + 1
        );
    }
}

/// The validation metrics of the weights the model now holds.
fn print_final_metrics(history: &History) {
    let shown = match history.best_epoch.filter(|_| history.restored_best) {
        Some(best) => history.epochs.iter().find(|e| e.epoch == best),
        None => history.epochs.last(),
    };
    if let Some(e) = shown {
        if !e.valid.is_empty() {
            println!("\nvalidation metrics after {} epochs:", e.epoch + 1);
            print!("{}", tandem::train::metrics::table(&e.valid));
        }
    }
}
