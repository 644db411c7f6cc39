//! The non-finite guard: training that diverges (`lr = 1e10`) stops with
//! `Error::NonFinite` naming the task, the first step whose loss or gradient
//! was not finite and its epoch; the parameters are those after the step
//! before; the CLI exits 1 and leaves `--out` and `--log` byte for byte as
//! they were. Early stopping that never saw a finite validation loss is the
//! same error. On the CPU and, when an adapter exists, the GPU.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use tandem::io::{load_split, npy};
use tandem::train::Trainer;
use tandem::{fit, BackendChoice, Config, Dataset, Error, Model, NonFiniteIn};

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("div", name)
}

/// Rows of one batch; the data is four copies of them, so a run of one batch
/// per epoch steps exactly as the four-batch run does.
const BATCH: usize = 8;
const COPIES: usize = 4;

fn backends() -> Vec<(BackendChoice, &'static str)> {
    let mut b = vec![(BackendChoice::Cpu, "cpu")];
    if common::gpu().is_some() {
        b.push((BackendChoice::Gpu, "gpu"));
    }
    b
}

/// The three runs that diverge: (name, task kind, optimizer table).
/// A binary task's gradient is bounded, and at this rate ReLU units die at
/// once, so its trunk is linear: the weights then multiply up to Inf.
fn activation(kind: &str) -> &'static str {
    if kind == "binary" {
        "identity"
    } else {
        "relu"
    }
}

const CASES: &[(&str, &str, &str)] = &[
    ("sgd-binary", "binary", "kind = \"sgd\"\nlr = 1e10"),
    ("sgd-regression", "regression", "kind = \"sgd\"\nlr = 1e10"),
    (
        "adam-regression",
        "regression",
        "kind = \"adam\"\nlr = 1e10",
    ),
];

/// Writes x.npy, y.npy and config.toml for one case; returns the config.
fn write_case(dir: &Path, kind: &str, optimizer: &str, copies: usize) -> PathBuf {
    let x = common::random(5, BATCH * 4, -1.0, 1.0);
    let y: Vec<f32> = (0..BATCH)
        .map(|r| match kind {
            "binary" => (x[4 * r] + x[4 * r + 1] > 0.0) as u8 as f32,
            _ => 3.0 * x[4 * r] - x[4 * r + 2],
        })
        .collect();
    let rows = BATCH * copies;
    npy::write_f32(dir.join("x.npy"), &[rows, 4], &x.repeat(copies)).unwrap();
    npy::write_f32(dir.join("y.npy"), &[rows, 1], &y.repeat(copies)).unwrap();
    let act = activation(kind);
    let config = format!(
        "[model]\ninputs = 4\ntrunk = [8]\nactivation = \"{act}\"\n\n\
         [[tasks]]\nname = \"y\"\nkind = \"{kind}\"\n\n\
         [train]\nepochs = 6\nbatch_size = {BATCH}\nshuffle = false\nseed = 3\n\n\
         [train.optimizer]\n{optimizer}\n\n\
         [data]\nfeatures = \"x.npy\"\n[data.targets]\ny = \"y.npy\"\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn not_finite(v: &[f32]) -> bool {
    v.iter().any(|x| !x.is_finite())
}

/// The reference: one batch per epoch, so every step's losses and gradient
/// are read back on their own. Returns the first step whose loss or gradient
/// is not finite, the parameters after the step before it, and that step's
/// objective.
fn step_by_step(config: &Path, choice: BackendChoice) -> (u64, Vec<f32>, Option<f32>) {
    let mut cfg = Config::load(config).unwrap();
    let split = load_split(&mut cfg).unwrap();
    let t = &split.train;
    let one = Dataset {
        rows: BATCH,
        inputs: t.inputs,
        features: t.features[..BATCH * t.inputs].to_vec(),
        targets: t.targets.iter().map(|y| y[..BATCH].to_vec()).collect(),
        feature_names: t.feature_names.clone(),
    };
    let mut model = Model::from_spec(&cfg.model, cfg.train.seed).unwrap();
    let backend = tandem::open_backend(choice).unwrap();
    let mut trainer = Trainer::new(backend, &model, &one, &cfg.train).unwrap();
    let (mut params, mut last) = (model.params.clone(), None);
    for step in 0..100u64 {
        let losses = trainer.train_epoch(&mut |_, _| {}).unwrap();
        let (_, _, grads) = trainer.optimizer_state().unwrap();
        let l = &losses[0];
        let bad = !l.total.is_finite() || not_finite(&l.tasks) || not_finite(&grads);
        assert_eq!(
            bad,
            trainer.divergence().is_some(),
            "step {step}: loss {l:?}, gradient finite: {}",
            !not_finite(&grads)
        );
        if bad {
            return (step, params, last);
        }
        trainer.download(&mut model).unwrap();
        params = model.params.clone();
        assert!(
            !not_finite(&params),
            "step {step}: finite step, non-finite weights"
        );
        last = Some(l.total);
    }
    panic!("{}: no step was non-finite", config.display());
}

#[test]
fn fit_stops_at_the_first_non_finite_step_with_the_last_finite_weights() {
    for &(name, kind, optimizer) in CASES {
        // Four batches per epoch: it stops inside the epoch; one: at its start.
        for (copies, (choice, b)) in [COPIES, 1]
            .into_iter()
            .flat_map(|c| backends().into_iter().map(move |b| (c, b)))
        {
            let dir = scratch(&format!("lib-{name}-{copies}"));
            let config = write_case(&dir, kind, optimizer, copies);
            let (cpu_step, _, _) = step_by_step(&config, BackendChoice::Cpu);
            let (step, params, last) = step_by_step(&config, choice);
            assert_eq!(step, cpu_step, "{name} on {b}: the reference runs disagree");
            let mut cfg = Config::load(&config).unwrap();
            let split = load_split(&mut cfg).unwrap();
            let mut model = Model::from_spec(&cfg.model, cfg.train.seed).unwrap();
            let backend = tandem::open_backend(choice).unwrap();
            let err = fit(
                &mut model,
                &split.train,
                None,
                &cfg.train,
                backend,
                &mut |_| {},
            )
            .expect_err("a diverging run is an error");
            let msg = err.to_string();
            match err {
                Error::NonFinite {
                    what,
                    tasks,
                    step: s,
                    epoch,
                    last_finite_loss,
                } => {
                    assert_ne!(what, NonFiniteIn::ValidationLoss);
                    assert_eq!(tasks, vec!["y".to_string()], "{name} on {b}");
                    assert_eq!(s, step, "{name} on {b}: {msg}");
                    assert_eq!(epoch as u64, step / copies as u64, "{name} on {b}");
                    assert_eq!(last_finite_loss, last, "{name} on {b}");
                }
                other => panic!("{name} on {b}: expected NonFinite, got {other}"),
            }
            assert!(!not_finite(&model.params), "{name} on {b}");
            assert!(
                model
                    .params
                    .iter()
                    .zip(&params)
                    .all(|(a, p)| a.to_bits() == p.to_bits()),
                "{name} on {b}: the weights are not those after step {}",
                step as i64 - 1
            );
            println!("{name} on {b}, {copies} batches per epoch: {msg}");
        }
    }
}

#[test]
fn cli_exits_1_naming_task_and_step_and_leaves_outputs_alone() {
    for &(name, kind, optimizer) in CASES {
        let dir = scratch(&format!("cli-{name}"));
        let config = write_case(&dir, kind, optimizer, COPIES);
        let (step, _, _) = step_by_step(&config, BackendChoice::Cpu);
        let (out, log) = (dir.join("model.safetensors"), dir.join("losses.csv"));
        for (_, b) in backends() {
            std::fs::write(&out, b"an earlier model").unwrap();
            std::fs::write(&log, b"step,epoch,loss\n0,0,1\n").unwrap();
            let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["train", config.to_str().unwrap(), "--quiet", "--backend", b])
                .args([
                    "--out",
                    out.to_str().unwrap(),
                    "--log",
                    log.to_str().unwrap(),
                ])
                .env("XDG_RUNTIME_DIR", std::env::temp_dir())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{name} on {b}:\n{err}");
            assert!(err.contains("task `y`"), "{name} on {b}:\n{err}");
            assert!(
                err.contains(&format!("at step {step} ")),
                "{name} on {b}:\n{err}"
            );
            assert!(err.contains("nothing was written"), "{name} on {b}:\n{err}");
            assert_eq!(std::fs::read(&out).unwrap(), b"an earlier model");
            assert_eq!(
                std::fs::read(&log).unwrap(),
                b"step,epoch,loss\n0,0,1\n",
                "{name} on {b}: --log changed"
            );
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                names.len(),
                5,
                "{name} on {b}: files left behind: {names:?}"
            );
        }
    }
}

#[test]
fn early_stopping_with_a_never_finite_validation_loss_is_an_error() {
    let dir = scratch("early");
    let config = write_case(&dir, "regression", "kind = \"sgd\"\nlr = 0.01", COPIES);
    let mut cfg = Config::load(&config).unwrap();
    let split = load_split(&mut cfg).unwrap();
    cfg.train.early_stopping = Some(tandem::io::EarlyStopping {
        patience: 1,
        min_delta: 0.0,
        restore_best: true,
    });
    // Finite training; validation rows so large that every prediction's square overflows.
    let mut valid = split.train.clone();
    valid
        .features
        .iter_mut()
        .for_each(|x| *x = 1e30 * x.signum());
    for (choice, b) in backends() {
        let mut model = Model::from_spec(&cfg.model, cfg.train.seed).unwrap();
        let backend = tandem::open_backend(choice).unwrap();
        let res = fit(
            &mut model,
            &split.train,
            Some(&valid),
            &cfg.train,
            backend,
            &mut |_| {},
        );
        match res {
            Err(Error::NonFinite {
                what: NonFiniteIn::ValidationLoss,
                tasks,
                ..
            }) => assert_eq!(tasks, vec!["y".to_string()], "{b}"),
            Err(e) => panic!("{b}: expected a non-finite validation loss, got {e}"),
            Ok(h) => panic!(
                "{b}: early stopping ended without error; validation losses {:?}",
                h.epochs.iter().map(|e| e.valid_loss).collect::<Vec<_>>()
            ),
        }
    }
}
