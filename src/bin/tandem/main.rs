//! The `tandem` command line: train, eval, predict, inspect, info; one file
//! per subcommand.

mod eval;
mod info;
mod inspect;
mod long_run;
mod output;
mod predict;
mod ranks;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "tandem",
    version,
    about = "Multi-task models and ensembles, trained on any GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model a config describes; prints per-task validation metrics each epoch.
    Train {
        /// The run's config (TOML).
        config: PathBuf,
        /// Initial weights (safetensors, tensor names as in the docs) instead of a seeded init:
        /// weights only, training starts afresh (no optimizer state, step count or shuffle
        /// position; to continue a run exactly, use --resume with a checkpoint).
        #[arg(long, conflicts_with = "resume")]
        init: Option<PathBuf>,
        /// Where to save the trained model (safetensors with the spec in its metadata).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Per-step losses as CSV: step,epoch,loss,<task>_loss... (with --resume, the existing
        /// log continues by global step).
        #[arg(long)]
        log: Option<PathBuf>,
        /// auto (GPU when an adapter exists, else CPU), gpu or cpu.
        #[arg(long, default_value = "auto")]
        backend: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Write a checkpoint there (everything needed to continue the run exactly),
        /// atomically, every --checkpoint-every epochs, at the end, and on SIGINT/SIGTERM.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Epochs between checkpoints.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        checkpoint_every: u32,
        /// Continue the run a checkpoint holds, to the config's train.epochs in total.
        /// The config may differ only in train.epochs, early stopping's patience and outputs.
        #[arg(long)]
        resume: Option<PathBuf>,
    },
    /// Per-task metrics of a saved model on a config's data.
    Eval {
        model: PathBuf,
        /// A config whose [data] to evaluate on.
        #[arg(long)]
        data: PathBuf,
        /// Only the config's validation rows (the same seeded split as training).
        #[arg(long)]
        validation: bool,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Predictions of a saved model for a feature file.
    Predict {
        model: PathBuf,
        /// Features: .npy [N, inputs], or .csv / .parquet (a file, folder or part-*.parquet
        /// pattern) with the training columns.
        #[arg(long)]
        features: PathBuf,
        /// Output: .csv (one column per output, class names for multiclass) or .npy [N, Σ outputs].
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// What a saved model learned about its tasks: per task, the mean gate weight on
    /// each expert over a config's data (the allocation), and the task weights by epoch;
    /// writes both as PNG figures.
    Inspect {
        model: PathBuf,
        /// A config whose [data] to compute the allocation on.
        #[arg(long)]
        data: PathBuf,
        /// The allocation heatmap (PNG).
        #[arg(long, default_value = "allocation.png")]
        heatmap: PathBuf,
        /// The task weights over epochs (PNG).
        #[arg(long, default_value = "task_weights.png")]
        weights_plot: PathBuf,
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// GPU adapters, the backend `auto` picks, and its limits.
    Info,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A config's tasks must be the model's (names, kinds, widths, order): labels are
/// matched to outputs by position, so any difference would score the wrong labels.
fn check_tasks(model: &tandem::Model, model_path: &Path, cfg: &tandem::Config) -> Result<()> {
    match model.spec.task_difference(&cfg.model.tasks) {
        Some(diff) => anyhow::bail!(
            "{}: the config's tasks differ from the model's ({}): {diff}",
            cfg.path.display(),
            model_path.display()
        ),
        None => Ok(()),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            init,
            out,
            log,
            backend,
            quiet,
            checkpoint,
            checkpoint_every,
            resume,
        } => {
            let long = long_run::LongRun {
                checkpoint,
                every: checkpoint_every as usize,
                resume,
            };
            // Under an MPI launcher: this process is one rank of the job.
            let ranks = ranks::Ranks::start()?;
            let flags = train::Flags {
                init,
                out,
                log,
                quiet,
            };
            train::train(&config, flags, &backend, long, &ranks).map_err(|e| ranks.fail(e))
        }
        Command::Eval {
            model,
            data,
            validation,
            backend,
        } => eval::eval(&model, &data, validation, &backend),
        Command::Predict {
            model,
            features,
            out,
            backend,
        } => predict::predict(&model, &features, &out, &backend),
        Command::Inspect {
            model,
            data,
            heatmap,
            weights_plot,
            backend,
        } => inspect::inspect(&model, &data, &heatmap, &weights_plot, &backend),
        Command::Info => info::info(),
    }
}
