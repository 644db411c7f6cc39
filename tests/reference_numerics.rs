//! Where tandem must compute exactly what its references compute (issue 14):
//! the probability losses' clip boundary (Keras' `clip_by_value`), Adam's
//! bias correction on both backends, and DWA's row-weighted epoch means
//! (LibMTL's loss meter).

mod common;

use tandem::cpu::CpuBackend;
use tandem::io::{AdamStyle, TrainConfig};
use tandem::ops::{AdamArgs, BufId, LossArgs, LossKind, Op};
use tandem::train::step::optimizer::adam_factors;
use tandem::Backend;

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
        let counters: Vec<f32> = bytemuck::cast_slice(&[0u32, 0]).to_vec();
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
