//! Where tandem must compute exactly what its references compute (issue 14):
//! the probability losses' clip boundary (Keras' `clip_by_value`), Adam's
//! bias correction on both backends, and DWA's row-weighted epoch means
//! (LibMTL's loss meter).

mod common;

use tandem::cpu::CpuBackend;
use tandem::io::Weighting;
use tandem::io::{AdamStyle, TrainConfig};
use tandem::model::Activation;
use tandem::ops::{AdamArgs, BufId, LossArgs, LossKind, Op};
use tandem::train::step::optimizer::adam_factors;
use tandem::train::weighting::Weighter;
use tandem::train::StepLoss;
use tandem::Backend;
use tandem::{fit, BackendChoice, Dataset, Model, ModelSpec, TaskKind, TaskSpec};

/// Runs `ops` once on `b` over buffers holding `inputs`; returns every buffer.
fn run(b: &mut dyn Backend, inputs: &[Vec<f32>], ops: &[Op]) -> Vec<Vec<f32>> {
    b.clear();
    let ids: Vec<BufId> = inputs
        .iter()
        .map(|data| {
            let id = b.alloc(data.len(), "input").unwrap();
            b.write(id, 0, data).unwrap();
            id
        })
        .collect();
    let p = b.prepare(ops).unwrap();
    b.run(p, 1).unwrap();
    ids.iter().map(|&id| b.read(id).unwrap()).collect()
}

/// Runs `ops` on the CPU fast path, the CPU reference and (when an adapter
/// exists) the GPU, each with its name.
fn on_every_backend(inputs: &[Vec<f32>], ops: &[Op]) -> Vec<(&'static str, Vec<Vec<f32>>)> {
    let mut out = vec![
        ("cpu", run(&mut CpuBackend::new(), inputs, ops)),
        ("reference", run(&mut CpuBackend::reference(), inputs, ops)),
    ];
    if let Some(gpu) = common::gpu() {
        let mut g = gpu.lock().unwrap_or_else(|e| e.into_inner());
        out.push(("gpu", run(&mut *g, inputs, ops)));
    }
    out
}

/// fl32(1 − 1e-7) = 0.99999988 and fl32(1e-7): the ends of Keras' clip.
const HI: f32 = 1.0 - 1e-7;
const LO: f32 = 1e-7;

/// Keras' gradient of binary_crossentropy on probabilities w.r.t. p, in f32
/// as its autodiff computes it inside the clip: d/dp −(y·log p + (1−y)·log(1−p))
/// = −y/p + (1−y)/(1−p), i.e. (p − y)/(p(1 − p)).
fn keras_bce_grad(p: f32, y: f32) -> f32 {
    -y / p + (1.0 - y) / (1.0 - p)
}

#[test]
fn probability_losses_keep_their_gradient_at_the_clip_boundary() {
    assert_eq!(HI.to_bits(), 0x3F7F_FFFE, "0.99999988 = 1 − 2⁻²³");
    // bce_prob: both ends, both labels, and one step outside each end.
    let z = [HI, HI, LO, LO, 1.0, 0.0];
    let y = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let n = z.len() as u32;
    let args = LossArgs {
        rows: n,
        outputs: 1,
        ..Default::default()
    };
    let op = Op::Loss {
        kind: LossKind::BceProb,
        args,
        z: BufId(0),
        label: BufId(1),
        dz: BufId(2),
        stats: BufId(3),
    };
    let inputs = [
        z.to_vec(),
        y.to_vec(),
        vec![0.0; z.len()],
        vec![0.0; 2 * z.len()],
    ];
    for (name, bufs) in on_every_backend(&inputs, &[op]) {
        let dz = &bufs[2];
        for i in 0..4 {
            let want = keras_bce_grad(z[i], y[i]);
            assert!(
                want != 0.0 && (dz[i] - want).abs() <= 4e-7 * want.abs(),
                "{name}: bce_prob at p = {} (y = {}): dz = {}, Keras {want}",
                z[i],
                y[i],
                dz[i]
            );
        }
        // Strictly outside [ε, 1 − ε] the clip passes no gradient.
        assert_eq!(&dz[4..], &[0.0, 0.0], "{name}: bce_prob outside the clip");
    }
    // ce_prob: the true class's probability at either end, then outside.
    let z = [HI, 1.0 - HI, LO, 1.0 - LO, 1.0, 0.0];
    let y = [0.0, 0.0, 0.0];
    let args = LossArgs {
        rows: 3,
        outputs: 2,
        ..Default::default()
    };
    let op = Op::Loss {
        kind: LossKind::CeProb,
        args,
        z: BufId(0),
        label: BufId(1),
        dz: BufId(2),
        stats: BufId(3),
    };
    let inputs = [z.to_vec(), y.to_vec(), vec![0.0; 6], vec![0.0; 6]];
    for (name, bufs) in on_every_backend(&inputs, &[op]) {
        let dz = &bufs[2];
        // Keras: −1/p at the true class (the gradient of −log p inside the clip).
        for (row, p) in [(0, HI), (1, LO)] {
            let want = -1.0 / p;
            assert!(
                (dz[2 * row] - want).abs() <= 2e-7 * want.abs() && dz[2 * row + 1] == 0.0,
                "{name}: ce_prob at p = {p}: dz = {:?}, Keras [{want}, 0]",
                &dz[2 * row..2 * row + 2]
            );
        }
        assert_eq!(&dz[4..], &[0.0, 0.0], "{name}: ce_prob outside the clip");
    }
}

/// Gradients over several orders of magnitude, both signs.
fn gradients(len: usize) -> Vec<f32> {
    let u = common::random(14, 2 * len, -1.0, 1.0);
    (0..len)
        .map(|i| u[i] * 10f32.powf(4.0 * u[len + i].abs() - 3.0))
        .collect()
}

/// The first Adam step over the same gradients, from zero parameters and
/// moments, with the factors the trainer computes: only the optimizer's
/// arithmetic can differ between the backends, and it must agree to 2e-7
/// relative on every parameter (an f32 bias correction on the device was
/// 1.00006× the CPU's).
#[test]
fn first_adam_step_is_the_same_on_cpu_and_gpu() {
    let len = 3000;
    let g = gradients(len);
    for (style, form) in [(0u32, AdamStyle::Keras), (1, AdamStyle::Torch)] {
        let o = tandem::io::OptimizerConfig {
            style: form,
            ..TrainConfig::default().optimizer
        };
        let args = AdamArgs {
            len: len as u32,
            style,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            ..Default::default()
        };
        let op = Op::AdamUpdate {
            args,
            grads: BufId(0),
            counters: BufId(1),
            factors: BufId(2),
            params: BufId(3),
            m: BufId(4),
            v: BufId(5),
        };
        // Parameters start at 0, so after the step they are −(the update) exactly.
        let counters: Vec<f32> = bytemuck::cast_slice(&[0u32, 0, 0]).to_vec();
        let factors = adam_factors(&o, 1).to_vec();
        let zeros = vec![0.0; len];
        let inputs = [
            g.clone(),
            counters,
            factors,
            zeros.clone(),
            zeros.clone(),
            zeros,
        ];
        let all = on_every_backend(&inputs, &[op]);
        let cpu = &all[0].1[3];
        assert!(cpu.iter().all(|&p| p != 0.0));
        for (name, bufs) in &all[1..] {
            let (mut worst, mut at) = (0.0f64, 0);
            for (i, (&a, &b)) in bufs[3].iter().zip(cpu).enumerate() {
                let rel = ((a as f64 - b as f64) / b as f64).abs();
                if rel > worst {
                    (worst, at) = (rel, i);
                }
            }
            assert!(
                worst <= 2e-7,
                "style {style}: {name} update / cpu update − 1 reaches {worst:.3e} \
                 (parameter {at}: {} vs {}, ratio {})",
                bufs[3][at],
                cpu[at],
                bufs[3][at] / cpu[at]
            );
        }
    }
}

#[test]
fn adam_factors_are_the_exact_bias_corrections() {
    let o = TrainConfig::default().optimizer;
    let (lr, b1, b2) = (o.lr as f64, o.beta1 as f64, o.beta2 as f64);
    for t in [1u64, 2, 10, 1000, 100_000] {
        let (bc1, bc2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        let keras = adam_factors(&o, t);
        assert_eq!(keras, [(lr * bc2.sqrt() / bc1) as f32, 1.0], "t = {t}");
        let torch = tandem::io::OptimizerConfig {
            style: AdamStyle::Torch,
            ..o
        };
        assert_eq!(
            adam_factors(&torch, t),
            [(lr / bc1) as f32, bc2.sqrt() as f32],
            "t = {t}"
        );
    }
}

/// A step's losses as the trainer reports them (the objective is not used here).
fn step(tasks: [f32; 2], labels: [f32; 2], rows: usize) -> StepLoss {
    StepLoss {
        total: 0.0,
        tasks: tasks.to_vec(),
        rows,
        labels: labels.to_vec(),
    }
}

fn two_tasks() -> ModelSpec {
    ModelSpec {
        inputs: 3,
        architecture: tandem::model::Architecture::Shared { trunk: vec![6] },
        activation: Activation::Tanh,
        tasks: vec![
            TaskSpec {
                name: "flag".into(),
                kind: TaskKind::Binary,
                weight: 1.0,
                head: vec![],
                outputs: 1,
            },
            TaskSpec {
                name: "value".into(),
                kind: TaskKind::Regression,
                weight: 1.0,
                head: vec![],
                outputs: 1,
            },
        ],
        ..Default::default()
    }
}

/// LibMTL's DWA by hand: its loss meter keeps Σ_b L_b·bs_b / Σ_b bs_b per
/// epoch, and λ = T·softmax((L̄(e−1)/L̄(e−2)) / 2). Batches of 3 and 1 rows:
/// epoch 0: task 0 (1.0·3 + 0.5·1)/4 = 0.875, task 1 (2·3 + 1·1)/4 = 1.75;
/// epoch 1: task 0 (0.5·3 + 0.25·1)/4 = 0.4375, task 1 (2·3 + 4·1)/4 = 2.5;
/// r = (0.5, 1.428571), λ_0 = 2/(1 + e^((1.428571 − 0.5)/2)) = 0.771939.
/// (Averaging per step instead would give 0.641643.)
#[test]
fn dwa_weighs_each_step_by_its_rows_as_libmtl() {
    let model = Model::new(two_tasks(), 1);
    let mut w = Weighter::new(Weighting::Dwa, None, &model.spec, &model.network).unwrap();
    w.end_epoch(&[
        step([1.0, 2.0], [3.0, 3.0], 3),
        step([0.5, 1.0], [1.0, 1.0], 1),
    ]);
    assert_eq!(w.epoch_losses[0], vec![0.875, 1.75]);
    w.end_epoch(&[
        step([0.5, 2.0], [3.0, 3.0], 3),
        step([0.25, 4.0], [1.0, 1.0], 1),
    ]);
    assert_eq!(w.epoch_losses[1], vec![0.4375, 2.5]);
    let lambda = w.epoch_lambda().unwrap();
    let want = [0.771_939_3, 1.228_060_7];
    for j in 0..2 {
        assert!((lambda[j] - want[j]).abs() < 1e-6, "{lambda:?} vs {want:?}");
    }
}

/// 83 rows in batches of 20 (the last has 3), some labels missing.
fn ragged(missing: bool) -> Dataset {
    let rows = 83;
    let features = common::random(21, rows * 3, -1.0, 1.0);
    let x = |r: usize, c: usize| features[r * 3 + c];
    let flag = (0..rows)
        .map(|r| match missing && r % 6 == 1 {
            true => f32::NAN,
            false => (x(r, 0) + 0.5 * x(r, 1) > 0.0) as u8 as f32,
        })
        .collect();
    let value = (0..rows)
        .map(|r| match missing && (r % 4 == 0 || r >= 81) {
            true => f32::NAN,
            false => 2.0 * x(r, 2) - x(r, 1),
        })
        .collect();
    Dataset {
        rows,
        inputs: 3,
        features,
        targets: vec![flag, value],
        feature_names: vec![],
    }
}

/// DWA in training, on the CPU and the GPU: each step reports its rows and
/// present labels (counted here from the data, in file order), and the λ of
/// the third epoch is T·softmax(r/2) over the label-weighted epoch means, which
/// without missing labels is LibMTL's row-weighted mean.
#[test]
fn dwa_in_training_uses_label_weighted_epoch_means() {
    let mut backends = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        backends.push(BackendChoice::Gpu);
    }
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 20,
        shuffle: false,
        weighting: Weighting::Dwa,
        optimizer: tandem::io::OptimizerConfig {
            lr: 0.05,
            ..TrainConfig::default().optimizer
        },
        ..TrainConfig::default()
    };
    for missing in [false, true] {
        let data = ragged(missing);
        let present = |j: usize, r: std::ops::Range<usize>| {
            data.targets[j][r].iter().filter(|y| !y.is_nan()).count() as f32
        };
        for &choice in &backends {
            let what = format!("{choice:?}, missing labels: {missing}");
            let mut model = Model::new(two_tasks(), 2);
            let backend = tandem::open_backend(choice).unwrap();
            let h = fit(&mut model, &data, None, &cfg, backend, &mut |_| {}).unwrap();
            let mut means = Vec::new();
            for e in 0..2 {
                let steps = &h.epochs[e].steps;
                let rows: Vec<usize> = steps.iter().map(|s| s.rows).collect();
                assert_eq!(rows, [20, 20, 20, 20, 3], "{what}");
                for (s, st) in steps.iter().enumerate() {
                    let r = 20 * s..(20 * s + 20).min(83);
                    let want = [present(0, r.clone()), present(1, r)];
                    assert_eq!(st.labels, want, "{what}: step {s}'s labels");
                }
                let mean = |j: usize| {
                    let num: f64 = steps
                        .iter()
                        .map(|s| (s.tasks[j] * s.labels[j]) as f64)
                        .sum();
                    let den: f64 = steps.iter().map(|s| s.labels[j] as f64).sum();
                    num / den
                };
                means.push([mean(0), mean(1)]);
            }
            let r = [means[1][0] / means[0][0], means[1][1] / means[0][1]];
            let ex = [(r[0] / 2.0).exp(), (r[1] / 2.0).exp()];
            let lambda = &h.epochs[2].task_weights;
            for j in 0..2 {
                let want = 2.0 * ex[j] / (ex[0] + ex[1]);
                assert!(
                    (lambda[j] as f64 - want).abs() < 1e-6,
                    "{what}: λ = {lambda:?}, want {want} for task {j}"
                );
            }
        }
    }
}
