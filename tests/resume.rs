//! Checkpoints and exact resume through the library: for each architecture
//! and task weighting, N epochs in one run against k epochs, a checkpoint and
//! a resumed run to N (and against a run stopped mid-epoch and resumed) give
//! the same per-step log, bit for bit, and byte-identical model files; on
//! the CPU and, with an adapter, the GPU. Then the errors: a corrupted or
//! truncated checkpoint, another architecture, a changed optimizer.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tandem::io::{AdamStyle, EarlyStopping, OptimizerConfig, OptimizerKind, Weighting};
use tandem::model::{
    Activation, Architecture, Combine, EnsembleSpec, ExpertsSpec, MemberSpec, PleSpec,
};
use tandem::train::{fit_with, Checkpoint, CheckpointPolicy, FitOptions};
use tandem::{BackendChoice, Dataset, History, Model, ModelSpec, TaskKind, TaskSpec, TrainConfig};

const EPOCHS: usize = 4;

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        b.push(BackendChoice::Gpu);
    }
    b
}

/// A file in the temporary folder, named for this process (each test removes its own).
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tandem-resume-{}-{name}", std::process::id()))
}

fn task(name: &str, kind: TaskKind, outputs: usize, head: Vec<usize>, weight: f32) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight,
        head,
        outputs,
    }
}

/// The three tasks of `common::mixed_tasks` under `architecture`.
fn spec(architecture: Architecture) -> ModelSpec {
    ModelSpec {
        inputs: 7,
        activation: Activation::Tanh,
        tasks: vec![
            task("class", TaskKind::Multiclass, 3, vec![4], 1.0),
            task("multi", TaskKind::Binary, 2, vec![], 0.7),
            task("value", TaskKind::Regression, 1, vec![], 0.3),
        ],
        architecture,
        ..Default::default()
    }
}

fn member(name: &str, trunk: Vec<usize>, trainable: bool) -> MemberSpec {
    MemberSpec {
        name: name.into(),
        trunk,
        activation: Activation::Tanh,
        trainable,
        weights: None,
    }
}

fn ensemble(combine: Combine, bagging: bool) -> Architecture {
    Architecture::Ensemble(EnsembleSpec {
        combine,
        bagging,
        members: vec![
            member("a", vec![6], true),
            member("b", vec![5], true),
            member("frozen", vec![4], false),
        ],
    })
}

fn cfg(weighting: Weighting, kind: OptimizerKind) -> TrainConfig {
    TrainConfig {
        epochs: EPOCHS,
        batch_size: 8,
        shuffle: true,
        seed: 11,
        weighting,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind,
            lr: if kind == OptimizerKind::Sgd {
                0.05
            } else {
                0.01
            },
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Keras,
            momentum: 0.9,
        },
    }
}

/// One resume case: a model, its config (`EPOCHS` epochs) and data.
struct Case {
    name: &'static str,
    spec: ModelSpec,
    cfg: TrainConfig,
    train: Dataset,
    valid: Option<Dataset>,
    /// Epochs of the first run before the resumed one (before early stopping
    /// would end the run: a run's last epoch never stops early).
    split: usize,
}

/// 300 rows: 38 steps of 8 per epoch, two submissions and a short last batch.
fn case(name: &'static str, spec: ModelSpec, cfg: TrainConfig) -> Case {
    Case {
        name,
        spec,
        cfg,
        train: common::mixed_tasks(300),
        valid: None,
        split: 2,
    }
}

fn cases() -> Vec<Case> {
    let adam = OptimizerKind::Adam;
    let shared = Architecture::Shared { trunk: vec![8, 6] };
    let mmoe = Architecture::Mmoe(ExpertsSpec {
        count: 3,
        layers: vec![6],
    });
    let ple = Architecture::Ple(PleSpec {
        shared: 2,
        per_task: 1,
        levels: vec![5, 4],
    });
    let mut early = case(
        "early stopping",
        spec(shared.clone()),
        cfg(Weighting::Fixed, adam),
    );
    let all = common::mixed_tasks(360);
    early.train = all.select(&(0..300).collect::<Vec<_>>());
    early.valid = Some(all.select(&(300..360).collect::<Vec<_>>()));
    early.cfg.epochs = 6;
    early.split = 1;
    early.cfg.optimizer.lr = 0.05;
    early.cfg.early_stopping = Some(EarlyStopping {
        patience: 1,
        min_delta: 0.0,
        restore_best: true,
    });
    vec![
        case(
            "hard sharing, adam, shuffle",
            spec(shared.clone()),
            cfg(Weighting::Fixed, adam),
        ),
        case(
            "hard sharing, sgd with momentum",
            spec(shared.clone()),
            cfg(Weighting::Fixed, OptimizerKind::Sgd),
        ),
        case(
            "mmoe, uncertainty",
            ModelSpec {
                log_vars: true,
                ..spec(mmoe)
            },
            cfg(Weighting::Uncertainty, adam),
        ),
        case(
            "ple, gradnorm",
            ModelSpec {
                gradnorm: true,
                ..spec(ple)
            },
            cfg(Weighting::GradNorm, adam),
        ),
        case("hard sharing, dwa", spec(shared), cfg(Weighting::Dwa, adam)),
        case(
            "stacked ensemble, frozen member",
            spec(ensemble(Combine::Stack, false)),
            cfg(Weighting::Fixed, adam),
        ),
        case(
            "bagging",
            spec(ensemble(Combine::Concat, true)),
            cfg(Weighting::Fixed, adam),
        ),
        early,
    ]
}

/// What a run leaves: its `--log` rows (as the CLI writes them) and the model file's bytes.
#[derive(PartialEq)]
struct Outcome {
    log: Vec<String>,
    model: Vec<u8>,
}

/// The first difference only: a whole log and model file say too much.
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} log rows, last {:?}; model of {} bytes, hash {:x}",
            self.log.len(),
            self.log.last(),
            self.model.len(),
            self.model
                .iter()
                .fold(0u64, |h, &b| h.wrapping_mul(31).wrapping_add(b as u64))
        )
    }
}

/// The CLI's `--log` rows of the steps `h` did itself (none before its resume point).
fn log_rows(h: &History) -> Vec<String> {
    let spe = h.steps_per_epoch as u64;
    let epochs = h.epochs.iter().map(|e| (e.epoch, &e.steps));
    let cut = h.interrupted.iter().map(|i| (i.epoch, &i.steps));
    let mut rows = Vec::new();
    for (epoch, steps) in epochs.chain(cut) {
        for (i, s) in steps.iter().enumerate() {
            let k = epoch as u64 * spe + i as u64;
            if k >= h.resumed_at_step {
                let tasks: Vec<String> = s.tasks.iter().map(|l| l.to_string()).collect();
                rows.push(format!("{k},{epoch},{},{}", s.total, tasks.join(",")));
            }
        }
    }
    rows
}

/// One `fit_with` of `case` with `epochs`, resuming `resume`, checkpointing
/// to `ckpt`, stopping when `stop_at(epoch, done)` says so.
fn run(
    case: &Case,
    b: BackendChoice,
    epochs: usize,
    resume: Option<&Path>,
    ckpt: &Path,
    stop_at: &dyn Fn(usize, usize) -> bool,
) -> (History, Model) {
    let mut model = Model::new(case.spec.clone(), case.cfg.seed);
    let cfg = TrainConfig {
        epochs,
        ..case.cfg.clone()
    };
    let loaded = resume.map(|p| (Checkpoint::load(p).unwrap(), p));
    let stop = AtomicBool::new(false);
    let opts = FitOptions {
        checkpoint: Some(CheckpointPolicy {
            path: ckpt.to_path_buf(),
            every: 1,
        }),
        resume: loaded.as_ref().map(|(c, p)| (c, *p)),
        stop: Some(&stop),
        ..Default::default()
    };
    let backend = tandem::open_backend(b).unwrap();
    let h = fit_with(
        &mut model,
        &case.train,
        case.valid.as_ref(),
        &cfg,
        backend,
        opts,
        &mut |e| {
            if let tandem::Event::Progress { epoch, done, .. } = e {
                if stop_at(epoch, done) {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    (h, model)
}

fn outcome(parts: &[&History], model: &Model) -> Outcome {
    Outcome {
        log: parts.iter().flat_map(|h| log_rows(h)).collect(),
        model: model.to_bytes().unwrap(),
    }
}

fn check_case(case: &Case, b: BackendChoice) {
    let what = format!("{} on {b:?}", case.name);
    let ckpt = scratch(&format!(
        "{}-{b:?}.ckpt",
        case.name.replace([' ', ','], "_")
    ));
    let never = |_: usize, _: usize| false;
    let n = case.cfg.epochs;
    let (full, model) = run(case, b, n, None, &ckpt, &never);
    let want = outcome(&[&full], &model);
    assert_eq!(want.log.len(), full.steps().count(), "{what}");

    // k epochs, then a resumed run to N.
    let (first, _) = run(case, b, case.split, None, &ckpt, &never);
    let (rest, model) = run(case, b, n, Some(&ckpt), &ckpt, &never);
    assert_eq!(
        outcome(&[&first, &rest], &model),
        want,
        "{what}: k + resume"
    );

    // Stopped mid-epoch (after the first submission of epoch 1), then resumed.
    let (cut, _) = run(case, b, n, None, &ckpt, &|e, done| e == 1 && done < 38);
    let i = cut.interrupted.as_ref().expect("the run was interrupted");
    assert_eq!((i.epoch, i.steps.len()), (1, 32), "{what}");
    let (rest, model) = run(case, b, n, Some(&ckpt), &ckpt, &never);
    assert!(rest.interrupted.is_none());
    assert_eq!(
        outcome(&[&cut, &rest], &model),
        want,
        "{what}: stop + resume"
    );
    assert_eq!(full.best_epoch, rest.best_epoch, "{what}");
    assert_eq!(full.stopped_early, rest.stopped_early, "{what}");
    assert_eq!(full.restored_best, rest.restored_best, "{what}");
    if case.cfg.early_stopping.is_some() {
        assert!(
            full.stopped_early && full.restored_best,
            "{what}: not a test of early stopping"
        );
    }
    println!(
        "{what}: {} steps identical (best epoch {:?}, stopped early {})",
        want.log.len(),
        full.best_epoch,
        full.stopped_early
    );
    std::fs::remove_file(&ckpt).unwrap();
}

/// Runs the case called `name` on every backend.
fn check(name: &str) {
    let case = cases().into_iter().find(|c| c.name == name).unwrap();
    for b in backends() {
        check_case(&case, b);
    }
}

#[test]
fn hard_sharing_with_adam_and_shuffle_resumes_bit_for_bit() {
    check("hard sharing, adam, shuffle");
}

#[test]
fn sgd_with_momentum_resumes_bit_for_bit() {
    check("hard sharing, sgd with momentum");
}

#[test]
fn mmoe_with_uncertainty_weighting_resumes_bit_for_bit() {
    check("mmoe, uncertainty");
}

#[test]
fn ple_with_gradnorm_resumes_bit_for_bit() {
    check("ple, gradnorm");
}

#[test]
fn dwa_resumes_bit_for_bit() {
    check("hard sharing, dwa");
}

#[test]
fn stacked_ensemble_with_a_frozen_member_resumes_bit_for_bit() {
    check("stacked ensemble, frozen member");
}

#[test]
fn bagging_resumes_bit_for_bit() {
    check("bagging");
}

#[test]
fn early_stopping_resumes_bit_for_bit() {
    check("early stopping");
}

#[test]
fn a_checkpoint_is_the_model_file_plus_the_training_state() {
    let case = &cases()[0];
    let dir = scratch("plain");
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("plain.ckpt");
    let never = |_: usize, _: usize| false;
    run(case, BackendChoice::Cpu, 2, None, &ckpt, &never);
    let mut model = Model::new(case.spec.clone(), case.cfg.seed);
    let cfg = TrainConfig {
        epochs: 2,
        ..case.cfg.clone()
    };
    let cpu = tandem::open_backend(BackendChoice::Cpu).unwrap();
    tandem::fit(&mut model, &case.train, None, &cfg, cpu, &mut |_| {}).unwrap();
    // The model as Model::save writes it, read back from the checkpoint.
    let loaded = Model::load(&ckpt).unwrap();
    assert!(loaded.to_bytes().unwrap() == model.to_bytes().unwrap());
    let bytes = std::fs::read(&ckpt).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut extra: Vec<String> = (st.names().into_iter())
        .filter(|n| n.starts_with("checkpoint."))
        .map(|n| n.to_string())
        .collect();
    extra.sort();
    assert_eq!(extra, ["checkpoint.adam.m", "checkpoint.adam.v"]);
    let ck = Checkpoint::load(&ckpt).unwrap();
    assert_eq!((ck.state.epoch, ck.state.global_step), (2, 76));
    // No temporary file is left beside it.
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tandem-"), "left behind: {name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resume_that_would_not_continue_the_run_is_refused_naming_the_key() {
    let case = &cases()[0];
    let ckpt = scratch("refused.ckpt");
    run(case, BackendChoice::Cpu, 2, None, &ckpt, &|_, _| false);
    let ck = Checkpoint::load(&ckpt).unwrap();
    let attempt = |cfg: &TrainConfig, spec: &ModelSpec, train: &Dataset| {
        let mut model = Model::new(spec.clone(), cfg.seed);
        let opts = FitOptions {
            resume: Some((&ck, ckpt.as_path())),
            ..Default::default()
        };
        let cpu = tandem::open_backend(BackendChoice::Cpu).unwrap();
        fit_with(&mut model, train, None, cfg, cpu, opts, &mut |_| {})
            .err()
            .map(|e| e.to_string())
    };
    let (cfg, spec, train) = (&case.cfg, &case.spec, &case.train);
    let edited = |f: &dyn Fn(&mut TrainConfig)| {
        let mut c = cfg.clone();
        f(&mut c);
        c
    };
    let named = |e: Option<String>, key: &str| {
        let e = e.unwrap_or_else(|| panic!("no error for `{key}`"));
        assert!(e.contains(key) && e.contains("refused.ckpt"), "{key}: {e}");
    };
    named(
        attempt(&edited(&|c| c.optimizer.lr = 0.02), spec, train),
        "`train.optimizer.lr`",
    );
    named(
        attempt(
            &edited(&|c| c.optimizer.kind = OptimizerKind::Sgd),
            spec,
            train,
        ),
        "`train.optimizer.kind`",
    );
    named(
        attempt(&edited(&|c| c.batch_size = 9), spec, train),
        "`train.batch_size`",
    );
    named(
        attempt(&edited(&|c| c.seed = 1), spec, train),
        "`train.seed`",
    );
    named(
        attempt(&edited(&|c| c.epochs = 1), spec, train),
        "train.epochs = 1",
    );
    let other = common::mixed_tasks(301);
    named(attempt(cfg, spec, &other), "`data (training rows)`");
    let wider = ModelSpec {
        architecture: Architecture::Shared { trunk: vec![8, 7] },
        ..spec.clone()
    };
    named(
        attempt(cfg, &wider, train),
        "`model.architecture.shared.trunk.1`",
    );
    // More epochs is what resuming is for.
    assert_eq!(attempt(&edited(&|c| c.epochs = 5), spec, train), None);
    std::fs::remove_file(&ckpt).unwrap();
}
