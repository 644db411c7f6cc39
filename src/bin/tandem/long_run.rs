//! Long runs of `tandem train`: checkpoints (`--checkpoint`, `--checkpoint-every`),
//! resuming one (`--resume`), the step log continued across a resume, and
//! SIGINT/SIGTERM: the first finishes the submission in flight, writes the
//! checkpoint and exits with status 130; a second exits at once.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tandem::{History, Model};

/// Exit status of a run stopped by a signal (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED: i32 = 130;

/// `tandem train`'s long-run flags.
#[derive(Debug, Clone, Default)]
pub struct LongRun {
    /// `--checkpoint`: where to write the run's checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// `--checkpoint-every`: epochs between checkpoints.
    pub every: usize,
    /// `--resume`: the checkpoint to continue.
    pub resume: Option<PathBuf>,
}

/// Set by the first SIGINT or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe calls here: an atomic swap, and _exit.
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe; it ends the process without
        // running destructors, so a checkpoint being written is left as a
        // hidden temporary file and the previous one stays intact.
        unsafe { libc::_exit(INTERRUPTED) };
    }
}

/// Installs the SIGINT and SIGTERM handlers; returns the flag the first sets.
pub fn stop_on_signals() -> &'static AtomicBool {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only touches an atomic and calls _exit.
        unsafe { libc::signal(sig, handler) };
    }
    &STOP
}

/// The command that resumes an interrupted run.
pub fn resume_command(
    config: &Path,
    ckpt: &Path,
    out: Option<&Path>,
    log: Option<&Path>,
) -> String {
    let q = |p: &Path| {
        let s = p.display().to_string();
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
        {
            s
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut cmd = format!(
        "tandem train {} --resume {} --checkpoint {}",
        q(config),
        q(ckpt),
        q(ckpt)
    );
    if let Some(o) = out {
        cmd.push_str(&format!(" --out {}", q(o)));
    }
    if let Some(l) = log {
        cmd.push_str(&format!(" --log {}", q(l)));
    }
    cmd
}

/// `--log`: `step,epoch,loss,<task>_loss...`, one row per optimizer step,
/// numbered by global step. A resumed run keeps the rows of `existing` (the
/// log as the interrupted run left it) before its resume point and appends
/// its own, so the file equals the log of a run never interrupted.
pub fn step_log(model: &Model, history: &History, existing: Option<&str>) -> String {
    let mut text = String::from("step,epoch,loss");
    for t in &model.spec.tasks {
        text.push_str(&format!(",{}_loss", t.name));
    }
    text.push('\n');
    let resumed = history.resumed_at_step;
    if let Some(old) = existing.filter(|_| resumed > 0) {
        let rows = old.lines().skip(1).filter(|row| {
            let step = row.split(',').next().and_then(|s| s.parse::<u64>().ok());
            step.is_some_and(|s| s < resumed)
        });
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
    }
    let spe = history.steps_per_epoch as u64;
    let done = history.epochs.iter().map(|e| (e.epoch, &e.steps));
    let cut = history.interrupted.iter().map(|i| (i.epoch, &i.steps));
    for (epoch, steps) in done.chain(cut) {
        for (i, s) in steps.iter().enumerate() {
            let k = epoch as u64 * spe + i as u64;
            if k < resumed {
                continue;
            }
            text.push_str(&format!("{k},{epoch},{}", s.total));
            for l in &s.tasks {
                text.push_str(&format!(",{l}"));
            }
            text.push('\n');
        }
    }
    text
}

/// The log file a resumed run continues (None when there is none yet).
pub fn existing_log(log: Option<&Path>, resuming: bool) -> Result<Option<String>> {
    match log.filter(|_| resuming) {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--log {}: reading the log to continue", p.display()))?;
            Ok(Some(text))
        }
        _ => Ok(None),
    }
}
