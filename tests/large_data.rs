//! Data larger than one buffer binding, or than memory, through the library:
//! the training rows held as several device chunks, or streamed shard by
//! shard, train exactly as one resident buffer does — the same per-step
//! losses and the same weights, bit for bit — on the CPU and, with an
//! adapter, the GPU (lavapipe binds 128 MiB: the chunk size is forced small
//! here instead). Without shuffling a streamed run equals a resident one;
//! with shuffling every epoch still visits each row once, and a streamed run
//! stopped mid-epoch resumes exactly.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use tandem::data::DataSource;
use tandem::io::{AdamStyle, OptimizerConfig, OptimizerKind, Weighting};
use tandem::model::{Activation, Architecture, Combine, EnsembleSpec, MemberSpec};
use tandem::train::{fit_rows, Checkpoint, CheckpointPolicy, FitOptions, TrainRows, ValidRows};
use tandem::{BackendChoice, Dataset, History, Model, ModelSpec, TaskKind, TaskSpec, TrainConfig};

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        b.push(BackendChoice::Gpu);
    }
    b
}

fn task(name: &str, kind: TaskKind, outputs: usize, weight: f32) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight,
        head: vec![4],
        outputs,
    }
}

fn spec(architecture: Architecture) -> ModelSpec {
    ModelSpec {
        inputs: 7,
        activation: Activation::Tanh,
        tasks: vec![
            task("class", TaskKind::Multiclass, 3, 1.0),
            task("multi", TaskKind::Binary, 2, 0.7),
            task("value", TaskKind::Regression, 1, 0.3),
        ],
        architecture,
        ..Default::default()
    }
}

fn shared() -> ModelSpec {
    spec(Architecture::Shared { trunk: vec![8, 6] })
}

fn bagging() -> ModelSpec {
    let member = |name: &str, width| MemberSpec {
        name: name.into(),
        trunk: vec![width],
        activation: Activation::Tanh,
        trainable: true,
        weights: None,
    };
    spec(Architecture::Ensemble(EnsembleSpec {
        combine: Combine::Concat,
        bagging: true,
        members: vec![member("a", 6), member("b", 5)],
    }))
}

fn cfg(shuffle: bool) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 8,
        shuffle,
        seed: 5,
        weighting: Weighting::Dwa,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Keras,
            momentum: 0.0,
        },
    }
}

/// How the training rows are held.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// Resident, in chunks of this many rows (None: one buffer).
    Resident(Option<usize>),
    /// Streamed in shards of this many rows, in chunks of so many.
    Streamed(usize, Option<usize>),
}

/// Every step's losses and counts, the validation losses and the weights, as bits.
#[derive(Debug, PartialEq)]
struct Outcome {
    steps: Vec<(u32, Vec<u32>, usize, Vec<u32>)>,
    valid: Vec<Vec<u32>>,
    params: Vec<u32>,
}

fn outcome(h: &History, model: &Model) -> Outcome {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    Outcome {
        steps: h
            .steps()
            .map(|(_, s)| (s.total.to_bits(), bits(&s.tasks), s.rows, bits(&s.labels)))
            .collect(),
        valid: h
            .epochs
            .iter()
            .map(|e| bits(&e.valid_task_losses))
            .collect(),
        params: bits(&model.params),
    }
}

/// Trains `spec` on `train` (validated on `valid`, streamed with the
/// training rows when they are) on backend `b`.
fn train(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    b: BackendChoice,
    train: &Dataset,
    valid: Option<&Dataset>,
    hold: Hold,
) -> (History, Model) {
    let mut model = Model::new(spec.clone(), cfg.seed);
    let backend = tandem::open_backend(b).unwrap();
    let mut resident = train.clone();
    let (rows, valid) = match hold {
        Hold::Resident(chunk_rows) => (
            TrainRows::Resident {
                source: &mut resident,
                chunk_rows,
            },
            valid.map(ValidRows::Resident),
        ),
        Hold::Streamed(shard_rows, chunk_rows) => (
            TrainRows::Streamed {
                source: Box::new(train.clone()),
                shard_rows,
                chunk_rows,
            },
            valid.map(|v| ValidRows::Streamed(Box::new(v.clone()))),
        ),
    };
    let opts = FitOptions::default();
    let h = fit_rows(&mut model, rows, valid, cfg, backend, opts, &mut |_| {}).unwrap();
    (h, model)
}

/// 301 rows of `common::mixed_tasks`: 38 steps of 8, a short last batch.
fn data() -> (Dataset, Dataset) {
    let all = common::mixed_tasks(361);
    let pick = |r: std::ops::Range<usize>| all.select(&r.collect::<Vec<_>>());
    (pick(0..301), pick(301..361))
}

#[test]
fn chunked_rows_train_as_one_buffer() {
    let (rows, valid) = data();
    for b in backends() {
        for (name, spec) in [("shared", shared()), ("bagging", bagging())] {
            for shuffle in [false, true] {
                let c = cfg(shuffle);
                let (h, m) = train(&spec, &c, b, &rows, Some(&valid), Hold::Resident(None));
                let one = outcome(&h, &m);
                // 7 rows: chunks end inside batches; 300: a last chunk of one row.
                for chunk in [7, 64, 300] {
                    let hold = Hold::Resident(Some(chunk));
                    let (h, m) = train(&spec, &c, b, &rows, Some(&valid), hold);
                    let what = format!("{name} on {b:?}, shuffle {shuffle}, chunks of {chunk}");
                    assert_eq!(outcome(&h, &m), one, "{what}");
                }
            }
        }
    }
}

#[test]
fn streamed_rows_in_file_order_train_as_resident_rows() {
    let (rows, valid) = data();
    for b in backends() {
        for (name, spec) in [("shared", shared()), ("bagging", bagging())] {
            let c = cfg(false);
            let (h, m) = train(&spec, &c, b, &rows, Some(&valid), Hold::Resident(None));
            let resident = outcome(&h, &m);
            // Shards of 2 and 5 batches (the last shard short), one shard of
            // every row, and shards held as chunks.
            for hold in [
                Hold::Streamed(16, None),
                Hold::Streamed(40, None),
                Hold::Streamed(301, None),
                Hold::Streamed(40, Some(7)),
            ] {
                let (h, m) = train(&spec, &c, b, &rows, Some(&valid), hold);
                assert_eq!(outcome(&h, &m), resident, "{name} on {b:?}, {hold:?}");
            }
        }
    }
}

#[test]
fn shuffled_streaming_visits_every_row_once_per_epoch() {
    // Every row's labels are counted once per epoch: per task, the epoch's
    // label counts equal the resident run's (which sees every row).
    let (rows, _) = data();
    let c = cfg(true);
    let spec = shared();
    let per_epoch = |h: &History| -> Vec<(usize, Vec<f32>)> {
        h.epochs
            .iter()
            .map(|e| {
                let rows = e.steps.iter().map(|s| s.rows).sum();
                let labels = (0..3)
                    .map(|j| e.steps.iter().map(|s| s.labels[j]).sum())
                    .collect();
                (rows, labels)
            })
            .collect()
    };
    let (h, _) = train(
        &spec,
        &c,
        BackendChoice::Cpu,
        &rows,
        None,
        Hold::Resident(None),
    );
    let resident = per_epoch(&h);
    let (h, _) = train(
        &spec,
        &c,
        BackendChoice::Cpu,
        &rows,
        None,
        Hold::Streamed(40, None),
    );
    assert_eq!(per_epoch(&h), resident);
    // … in another order than the file's (and than the resident shuffle).
    let (h2, _) = train(
        &spec,
        &cfg(false),
        BackendChoice::Cpu,
        &rows,
        None,
        Hold::Streamed(40, None),
    );
    let first = |h: &History| h.epochs[0].steps[0].total.to_bits();
    assert_ne!(
        first(&h),
        first(&h2),
        "the shuffled stream saw the file's first batch"
    );
}

#[test]
fn a_streamed_run_stopped_mid_epoch_resumes_exactly() {
    let (rows, valid) = data();
    let spec = shared();
    let c = cfg(true);
    let dir = std::env::temp_dir().join(format!("tandem-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("run.ckpt");
    // Shards of 5 steps (the short last one anywhere in the shuffled order),
    // stopped at a shard's end; shards of 37 steps (submissions of 32 and 5),
    // stopped inside a shard.
    for (b, (shard, stop_at)) in backends()
        .into_iter()
        .flat_map(|b| [(40, 10), (296, 32)].map(|c| (b, c)))
    {
        let hold = Hold::Streamed(shard, None);
        let (h, m) = train(&spec, &c, b, &rows, Some(&valid), hold);
        let whole = outcome(&h, &m);
        let stop = AtomicBool::new(false);
        let stopping = FitOptions {
            checkpoint: Some(CheckpointPolicy {
                path: ckpt.clone(),
                every: 1,
            }),
            stop: Some(&stop),
            ..Default::default()
        };
        let (first, _) = run_streamed(&spec, &c, b, (&rows, &valid), shard, stopping, &mut |e| {
            if let tandem::Event::Progress { epoch: 1, done, .. } = e {
                stop.store(done >= stop_at, Ordering::SeqCst);
            }
        });
        let cut = first.interrupted.as_ref().expect("the run was stopped");
        let what = format!("{b:?}, shards of {shard}");
        assert_eq!(cut.epoch, 1, "{what}");
        assert!(
            (stop_at..h.steps_per_epoch).contains(&cut.steps.len()),
            "{what}"
        );
        let loaded = Checkpoint::load(&ckpt).unwrap();
        let resuming = FitOptions {
            resume: Some((&loaded, &ckpt)),
            ..Default::default()
        };
        let (rest, model) =
            run_streamed(&spec, &c, b, (&rows, &valid), shard, resuming, &mut |_| {});
        // The steps from the resume point on, and the final weights, are
        // the uninterrupted run's.
        let resumed = outcome(&rest, &model);
        assert_eq!(resumed.params, whole.params, "{b:?}: weights");
        let from = |h: &History, o: &Outcome| -> Vec<_> {
            let spe = h.steps_per_epoch as u64;
            let index = h.steps().map(|(e, _)| e as u64 * spe);
            let mut k = 0;
            let mut last = u64::MAX;
            let mut keep = Vec::new();
            for (step, base) in o.steps.iter().zip(index) {
                k = if base == last { k + 1 } else { 0 };
                last = base;
                if base + k >= rest.resumed_at_step {
                    keep.push(step.clone());
                }
            }
            keep
        };
        assert!(rest.resumed_at_step > 0);
        assert_eq!(
            from(&rest, &resumed),
            from(&h, &whole),
            "{b:?}: steps after the resume"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `fit_rows` of `spec` on `rows` and `valid`, both streamed, in shards of `shard_rows`.
fn run_streamed(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    b: BackendChoice,
    (rows, valid): (&Dataset, &Dataset),
    shard_rows: usize,
    opts: FitOptions,
    on_event: &mut dyn FnMut(tandem::Event),
) -> (History, Model) {
    let mut model = Model::new(spec.clone(), cfg.seed);
    let train = TrainRows::Streamed {
        source: Box::new(rows.clone()) as Box<dyn DataSource>,
        shard_rows,
        chunk_rows: None,
    };
    let valid = Some(ValidRows::Streamed(Box::new(valid.clone())));
    let backend = tandem::open_backend(b).unwrap();
    let h = fit_rows(&mut model, train, valid, cfg, backend, opts, on_event).unwrap();
    (h, model)
}
