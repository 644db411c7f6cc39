//! The `tandem` command line: train, eval, predict, info.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use tandem::io::{load_all, load_split, npy};
use tandem::EpochReport;
use tandem::{BackendChoice, Config, Event, Model, TaskKind};

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
        /// Initial weights (safetensors, tensor names as in the docs) instead of a seeded init.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Where to save the trained model (safetensors with the spec in its metadata).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Per-step losses as CSV: step,epoch,loss,<task>_loss...
        #[arg(long)]
        log: Option<PathBuf>,
        /// auto (GPU when an adapter exists, else CPU), gpu or cpu.
        #[arg(long, default_value = "auto")]
        backend: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
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
        /// Features: .npy [N, inputs] or .csv with the training columns.
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            init,
            out,
            log,
            backend,
            quiet,
        } => train(&config, init, out, log, &backend, quiet),
        Command::Eval {
            model,
            data,
            validation,
            backend,
        } => eval(&model, &data, validation, &backend),
        Command::Predict {
            model,
            features,
            out,
            backend,
        } => predict(&model, &features, &out, &backend),
        Command::Inspect {
            model,
            data,
            heatmap,
            weights_plot,
            backend,
        } => inspect(&model, &data, &heatmap, &weights_plot, &backend),
        Command::Info => info(),
    }
}

/// Fails before any work when an output's folder does not exist.
fn check_output(path: &Option<PathBuf>, what: &str) -> Result<()> {
    if let Some(p) = path {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            if !d.is_dir() {
                bail!(
                    "{what} {}: folder {} does not exist",
                    p.display(),
                    d.display()
                );
            }
        }
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file, so a failure leaves the old file.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

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

fn train(
    config: &Path,
    init: Option<PathBuf>,
    out: Option<PathBuf>,
    log: Option<PathBuf>,
    backend: &str,
    quiet: bool,
) -> Result<()> {
    check_output(&out, "--out")?;
    check_output(&log, "--log")?;
    let choice: BackendChoice = backend.parse()?;
    let mut cfg = Config::load(config)?;
    let split = load_split(&mut cfg)?;
    let mut model = Model::from_spec(&cfg.model, cfg.train.seed)?;
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
    let mut header_done = false;
    let mut last_loss = f32::NAN;
    let history = tandem::fit(
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
    )?;
    bar.finish_and_clear();
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
    if history.stopped_early && history.best_epoch.is_none() {
        println!(
            "early stopping after epoch {}: the validation loss was never finite",
            history.epochs.len()
        );
    }
    // The metrics of the weights the model now holds.
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
    if let Some(path) = &log {
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
        write_atomic(path, &text)?;
        eprintln!("wrote per-step losses to {}", path.display());
    }
    if let Some(path) = &out {
        model.save(path)?;
        eprintln!("saved the model to {}", path.display());
    }
    Ok(())
}

fn inspect(
    model_path: &Path,
    data: &Path,
    heatmap: &Path,
    weights_plot: &Path,
    backend: &str,
) -> Result<()> {
    check_output(&Some(heatmap.to_path_buf()), "--heatmap")?;
    check_output(&Some(weights_plot.to_path_buf()), "--weights-plot")?;
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let mut cfg = Config::load(data)?;
    let dataset = load_all(&mut cfg, model.preprocess.as_ref())?;
    tandem::train::trainer::check_data(&model, &dataset, "inspection")?;
    let mut b = tandem::open_backend(choice)?;
    let names: Vec<String> = model.spec.tasks.iter().map(|t| t.name.clone()).collect();
    let Some(alloc) =
        tandem::train::allocation(&model, &dataset.features, dataset.rows, b.as_mut())?
    else {
        bail!(
            "{} has no gates: nothing to allocate; train with `experts = E` and \
             `expert = [...]` in [model], or an ensemble with combine = \"gate\"",
            model_path.display()
        );
    };
    let experts = alloc.first().map_or(0, |a| a.len());
    // MMoE: every task gates all experts e0…; PLE: the shared ones s0…, then
    // its own t0…; a gated ensemble: its members, by name.
    let (columns, what): (Vec<String>, &str) = match (model.spec.ple(), model.spec.ensemble()) {
        (Some(p), _) => (
            (0..p.shared)
                .map(|i| format!("s{i}"))
                .chain((0..p.per_task).map(|i| format!("t{i}")))
                .collect(),
            "expert",
        ),
        (None, Some(e)) => (e.members.iter().map(|m| m.name.clone()).collect(), "member"),
        (None, None) => ((0..experts).map(|e| format!("e{e}")).collect(), "expert"),
    };
    println!(
        "allocation: mean gate weight on each {what} over {} rows ({})",
        dataset.rows,
        b.describe()
    );
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
    let mut head = format!("{:<width$}", "task");
    for c in &columns {
        head.push_str(&format!(" {c:>7}"));
    }
    println!("{head}");
    for (name, row) in names.iter().zip(&alloc) {
        let mut line = format!("{name:<width$}");
        for v in row {
            line.push_str(&format!(" {v:>7.4}"));
        }
        println!("{line}");
    }
    println!("\ntask weights by epoch:");
    let mut head = format!("{:>5}", "epoch");
    for n in &names {
        head.push_str(&format!(" {n:>12}"));
    }
    println!("{head}");
    for (e, w) in model.task_weights.iter().enumerate() {
        let mut line = format!("{:>5}", e + 1);
        for v in w {
            line.push_str(&format!(" {v:>12.5}"));
        }
        println!("{line}");
    }
    if model.task_weights.is_empty() {
        println!("(none recorded: the model was saved without a training history)");
    }
    if model.spec.ple().is_some() {
        println!("(PLE: the last level's gates; s = shared experts, t = the task's own)");
    }
    let title = format!("mean gate weight per {what}");
    tandem::io::plot::allocation_heatmap(heatmap, &title, &names, &columns, &alloc)?;
    tandem::io::plot::weights_plot(weights_plot, &names, &model.task_weights)?;
    eprintln!("wrote {} and {}", heatmap.display(), weights_plot.display());
    Ok(())
}

fn eval(model_path: &Path, data: &Path, validation: bool, backend: &str) -> Result<()> {
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let mut cfg = Config::load(data)?;
    let dataset = if validation {
        let split = load_split(&mut cfg)?;
        match split.valid {
            Some(v) if model.preprocess.is_none() => v,
            Some(_) => {
                // CSV data: re-encode the same validation rows with the model's own statistics.
                let all = load_all(&mut cfg, model.preprocess.as_ref())?;
                let (_, valid) =
                    tandem::io::split_rows(all.rows, cfg.data.validation, cfg.train.seed);
                all.select(&valid)
            }
            None => bail!(
                "{}: [data] validation is 0: no validation rows",
                data.display()
            ),
        }
    } else {
        load_all(&mut cfg, model.preprocess.as_ref())?
    };
    let mut b = tandem::open_backend(choice)?;
    let metrics = tandem::evaluate(&model, &dataset, b.as_mut())?;
    let (loss, _) = tandem::train::evaluate_loss(&model, &dataset, b.as_mut())?;
    println!(
        "{} rows, {}; loss {loss:.5} (Σ weight × task loss)",
        dataset.rows,
        b.describe()
    );
    print!("{}", tandem::train::metrics::table(&metrics));
    Ok(())
}

fn predict(model_path: &Path, features: &Path, out: &Path, backend: &str) -> Result<()> {
    check_output(&Some(out.to_path_buf()), "--out")?;
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let is_csv = features.extension().is_some_and(|e| e == "csv");
    let (rows, x) = if is_csv {
        let pre = model.preprocess.as_ref().with_context(|| {
            format!(
                "{} was trained on npy data: give --features as .npy",
                model_path.display()
            )
        })?;
        let f = pre.apply_features(features)?;
        (f.rows, f.data)
    } else {
        let (shape, data) = npy::read_f32(features)?;
        let cols = shape.get(1).copied().unwrap_or(1);
        if cols != model.spec.inputs {
            bail!(
                "{}: {} features per row, the model takes {}",
                features.display(),
                cols,
                model.spec.inputs
            );
        }
        (shape[0], data)
    };
    let mut b = tandem::open_backend(choice)?;
    let p = tandem::predict(&model, &x, rows, b.as_mut())?;
    if out.extension().is_some_and(|e| e == "npy") {
        // Per row: each task's outputs, then its spread (ensembles).
        let width: usize = p
            .tasks
            .iter()
            .map(|t| t.outputs * (1 + t.spread.is_some() as usize))
            .sum();
        let mut data = Vec::with_capacity(rows * width);
        for r in 0..rows {
            for t in &p.tasks {
                let at = r * t.outputs..(r + 1) * t.outputs;
                data.extend_from_slice(&t.values[at.clone()]);
                if let Some(s) = &t.spread {
                    data.extend_from_slice(&s[at]);
                }
            }
        }
        npy::write_f32(out, &[rows, width], &data)?;
    } else {
        let mut header = Vec::new();
        for (j, t) in p.tasks.iter().enumerate() {
            let classes = model.preprocess.as_ref().and_then(|pr| pr.class_names(j));
            match t.kind {
                TaskKind::Multiclass => {
                    header.push(t.name.clone());
                    for c in 0..t.outputs {
                        let name = classes
                            .and_then(|n| n.get(c))
                            .cloned()
                            .unwrap_or(c.to_string());
                        header.push(format!("{}_p_{}", t.name, name));
                    }
                }
                _ if t.outputs == 1 => header.push(t.name.clone()),
                _ => (0..t.outputs).for_each(|c| header.push(format!("{}_{c}", t.name))),
            }
            if t.spread.is_some() {
                // Ensembles: the standard deviation of the members' outputs.
                match t.outputs {
                    1 => header.push(format!("{}_spread", t.name)),
                    c => (0..c).for_each(|k| header.push(format!("{}_spread_{k}", t.name))),
                }
            }
        }
        let mut text = header.join(",") + "\n";
        for r in 0..rows {
            let mut cells = Vec::new();
            for (j, t) in p.tasks.iter().enumerate() {
                if let Some(class) = &t.class {
                    let names = model.preprocess.as_ref().and_then(|pr| pr.class_names(j));
                    let c = class[r];
                    cells.push(
                        names
                            .and_then(|n| n.get(c))
                            .cloned()
                            .unwrap_or(c.to_string()),
                    );
                }
                for v in &t.values[r * t.outputs..(r + 1) * t.outputs] {
                    cells.push(format!("{v}"));
                }
                if let Some(s) = &t.spread {
                    for v in &s[r * t.outputs..(r + 1) * t.outputs] {
                        cells.push(format!("{v}"));
                    }
                }
            }
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        write_atomic(out, &text)?;
    }
    eprintln!("wrote {} predictions to {}", rows, out.display());
    let _ = std::io::stdout().flush();
    Ok(())
}

fn info() -> Result<()> {
    let adapters = tandem::gpu::context::list_adapters();
    println!("tandem {}", env!("CARGO_PKG_VERSION"));
    if adapters.is_empty() {
        println!("adapters: none (install a Vulkan driver, e.g. Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)");
    } else {
        println!("adapters:");
        for a in &adapters {
            println!("  {}", tandem::gpu::context::describe(a));
        }
    }
    match tandem::gpu::GpuBackend::new() {
        Ok(g) => {
            let l = &g.context().limits;
            println!("backend auto: {}", tandem::Backend::describe(&g));
            println!(
                "  max buffer {} MiB, max storage binding {} MiB, {} storage buffers per stage, {} workgroups per dimension",
                l.max_buffer_size >> 20,
                l.max_storage_buffer_binding_size >> 20,
                l.max_storage_buffers_per_shader_stage,
                l.max_compute_workgroups_per_dimension
            );
        }
        Err(e) => println!("backend auto: cpu ({e})"),
    }
    Ok(())
}
