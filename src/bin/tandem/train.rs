//! `tandem train`: fit the model a config describes, print each epoch's
//! losses and validation metrics, then save what was asked for.

use super::output::{check_distinct, check_some, Outputs};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use tandem::io::load_split;
use tandem::{BackendChoice, Config, EpochReport, Event, History, Model};

pub fn train(
    config: &Path,
    init: Option<PathBuf>,
    out: Option<PathBuf>,
    log: Option<PathBuf>,
    backend: &str,
    quiet: bool,
) -> Result<()> {
    check_some(&out, "--out")?;
    check_some(&log, "--log")?;
    if let (Some(o), Some(l)) = (&out, &log) {
        check_distinct(&[(o, "--out"), (l, "--log")])?;
    }
    let choice: BackendChoice = backend.parse()?;
    let mut cfg = Config::load(config)?;
    let split = load_split(&mut cfg)?;
    let mut model = Model::from_spec(&cfg.model, cfg.train.seed)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    model.preprocess = split.preprocess.clone();
    if let Some(w) = &init {
        model.load_init(w)?;
    }
    let b = tandem::open_backend(choice)?;
    eprintln!(
        "training {} on {} rows ({} validation) with {}",
        config.display(),
        split.train.rows,
        split.valid.as_ref().map_or(0, |v| v.rows),
        b.describe()
    );
    let bar = progress_bar(quiet);
    let mut header_done = false;
    let mut last_loss = f32::NAN;
    let fitted = tandem::fit(
        &mut model,
        &split.train,
        split.valid.as_ref(),
        &cfg.train,
        b,
        &mut |ev| match ev {
            Event::Progress { epoch, done, total } => {
                bar.set_length(total as u64);
                bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.train.epochs));
                bar.set_message(format!("(last epoch loss {last_loss:.4})"));
                bar.set_position(done as u64);
            }
            Event::EpochEnd(r) => {
                last_loss = r.loss;
                bar.suspend(|| {
                    if !header_done {
                        println!("{}", metric_header(r));
                        header_done = true;
                    }
                    println!("{}", metric_row(r));
                });
            }
        },
    );
    bar.finish_and_clear();
    let history = fitted.map_err(|e| nothing_written(e, &out, &log))?;
    print_early_stopping(&history);
    print_final_metrics(&history);
    save_outputs(&model, &history, out.as_deref(), log.as_deref())
}

/// Writes the model and the log to temporary files, and only once both are
/// written renames them into place: a failed save replaces neither.
fn save_outputs(
    model: &Model,
    history: &History,
    out: Option<&Path>,
    log: Option<&Path>,
) -> Result<()> {
    let mut outputs = Outputs::default();
    if let Some(path) = out {
        outputs.stage_bytes(path, "--out", &model.to_bytes()?)?;
    }
    if let Some(path) = log {
        outputs.stage_bytes(path, "--log", step_log(model, history).as_bytes())?;
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
        let at = &history.epochs[best];
        let stopped = if history.stopped_early {
            format!("early stopping after epoch {}", history.epochs.len())
        } else {
            "early stopping did not trigger".to_string()
        };
        let restored = if history.restored_best {
            "; its weights were restored"
        } else {
            ""
        };
        println!(
            "{stopped}: best validation loss {:.5} at epoch {}{restored}",
            at.valid_loss.unwrap_or(f32::NAN),
            best + 1
        );
    }
}

/// The validation metrics of the weights the model now holds.
fn print_final_metrics(history: &History) {
    let shown = history
        .best_epoch
        .filter(|_| history.restored_best)
        .or(history.epochs.len().checked_sub(1));
    if let Some(e) = shown.map(|e| &history.epochs[e]) {
        if !e.valid.is_empty() {
            println!("\nvalidation metrics after {} epochs:", e.epoch + 1);
            print!("{}", tandem::train::metrics::table(&e.valid));
        }
    }
}

/// `--log`: `step,epoch,loss,<task>_loss...`, one row per optimizer step.
fn step_log(model: &Model, history: &History) -> String {
    let mut text = String::from("step,epoch,loss");
    for t in &model.spec.tasks {
        text.push_str(&format!(",{}_loss", t.name));
    }
    text.push('\n');
    for (k, (epoch, s)) in history.steps().enumerate() {
        text.push_str(&format!("{k},{epoch},{}", s.total));
        for l in &s.tasks {
            text.push_str(&format!(",{l}"));
        }
        text.push('\n');
    }
    text
}
