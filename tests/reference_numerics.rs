//! Where tandem must compute exactly what its references compute (issue 14):
//! the probability losses' clip boundary (Keras' `clip_by_value`), Adam's
//! bias correction on both backends, and DWA's row-weighted epoch means
//! (LibMTL's loss meter).

mod common;

use tandem::cpu::CpuBackend;
use tandem::ops::{BufId, LossArgs, LossKind, Op};
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
    assert_eq!(HI, 0.99999988);
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
