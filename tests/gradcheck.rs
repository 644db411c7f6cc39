//! Finite-difference checks of every CPU backward: perturb one input, compare
//! the change of a scalar objective with what the backward kernel says.
//! Central differences in f32 with h = 1e-3 leave ~1e-4 of noise, hence the
//! tolerance |fd − analytic| ≤ 2e-3 + 2e-2·|analytic|.

mod common;

use common::random;
use tandem::cpu::{dense, loss, multitask, reference};
use tandem::ops::*;

const H: f32 = 1e-3;

fn assert_grad(what: &str, fd: f32, analytic: f32) {
    assert!(
        (fd - analytic).abs() <= 2e-3 + 2e-2 * analytic.abs(),
        "{what}: finite difference {fd} vs backward {analytic}"
    );
}

type Forward = fn(&DenseArgs, &[f32], &[f32], &mut [f32]);
type Backward = fn(&DenseArgs, &[f32], &[f32], &[f32], &mut [f32]);

/// The dense kernels' two CPU twins: (name, forward, backward_input, backward_weight).
const DENSE_PATHS: [(&str, Forward, Backward, Backward); 2] = [
    (
        "fast",
        dense::forward,
        dense::backward_input,
        dense::backward_weight,
    ),
    (
        "reference",
        reference::dense::forward,
        reference::dense::backward_input,
        reference::dense::backward_weight,
    ),
];

/// Objective of a dense layer: Σ r ⊙ y.
fn dense_objective(forward: Forward, a: &DenseArgs, x: &[f32], p: &[f32], r: &[f32]) -> f32 {
    let mut y = vec![0.0; (a.n * a.o) as usize];
    forward(a, x, p, &mut y);
    y.iter().zip(r).map(|(y, r)| y * r).sum()
}

#[test]
fn dense_backward_matches_finite_differences() {
    for (path, forward, backward_input, backward_weight) in DENSE_PATHS {
        for &(n, i, o) in &[(1u32, 1u32, 1u32), (3, 5, 7), (4, 65, 3)] {
            for act in 0..4u32 {
                let a = DenseArgs {
                    n,
                    i,
                    o,
                    act,
                    w_off: 0,
                    b_off: o * i,
                    batches: 1,
                    ..Default::default()
                };
                let s = (n * 100 + i * 10 + o + act * 1000) as u64;
                // Inputs away from relu's kink at 0 (|x·w + b| is rarely tiny).
                let x = random(s, (n * i) as usize, -1.0, 1.0);
                let p = random(s + 1, (o * i + o) as usize, -0.7, 0.7);
                let r = random(s + 2, (n * o) as usize, -1.0, 1.0);
                let mut y = vec![0.0; (n * o) as usize];
                forward(&a, &x, &p, &mut y);
                let mut dx = vec![0.0; (n * i) as usize];
                backward_input(&a, &r, &y, &p, &mut dx);
                let mut g = vec![0.0; p.len()];
                backward_weight(&a, &r, &y, &x, &mut g);
                let objective = |x: &[f32], p: &[f32]| dense_objective(forward, &a, x, p, &r);
                let what = format!("dense ({path}) {n}x{i}x{o} act {act}");
                for k in 0..x.len() {
                    let (mut xp, mut xm) = (x.clone(), x.clone());
                    xp[k] += H;
                    xm[k] -= H;
                    let fd = (objective(&xp, &p) - objective(&xm, &p)) / (2.0 * H);
                    assert_grad(&format!("{what} dx[{k}]"), fd, dx[k]);
                }
                for k in 0..p.len() {
                    let (mut pp, mut pm) = (p.clone(), p.clone());
                    pp[k] += H;
                    pm[k] -= H;
                    let fd = (objective(&x, &pp) - objective(&x, &pm)) / (2.0 * H);
                    assert_grad(&format!("{what} dparam[{k}]"), fd, g[k]);
                }
            }
        }
    }
}

/// Total weighted loss of one task with λ = 0.7 through the multi-task reduction,
/// and its gradient through loss_grad_scale.
fn task_loss(kind: u32, a: &LossArgs, z: &[f32], label: &[f32]) -> (f32, Vec<f32>) {
    let n = (a.rows * a.outputs) as usize;
    let mut dz = vec![0.0; n];
    let mut stats = vec![0.0; 2 * a.rows as usize];
    match kind {
        0 => loss::bce(a, z, label, &mut dz, &mut stats),
        1 => loss::softmax_ce(a, z, label, &mut dz, &mut stats),
        3 => loss::bce_prob(a, z, label, &mut dz, &mut stats),
        4 => loss::ce_prob(a, z, label, &mut dz, &mut stats),
        _ => loss::mse(a, z, label, &mut dz, &mut stats),
    }
    let mut out = vec![0.0; 3];
    let mut log = vec![0.0; 2];
    let ra = ReduceArgs {
        tasks: 1,
        rows: a.rows,
        log_slots: 1,
        _pad: 0,
    };
    multitask::loss_reduce(&ra, &stats, &[0.7], &[0, 0], &mut out, &mut log);
    let sa = ScaleArgs {
        len: n as u32,
        scale_index: 1,
        dz_off: 0,
        _pad: 0,
    };
    multitask::grad_scale(&sa, &out, &mut dz);
    (out[2], dz)
}

#[test]
fn loss_gradients_match_finite_differences() {
    // kinds: 0 bce, 1 softmax ce, 2 mse, 3 bce on probabilities, 4 ce on probabilities
    for kind in 0..5u32 {
        for &(rows, outputs) in &[(1u32, 1u32), (6, 3), (9, 1)] {
            if (kind == 1 || kind == 4) && outputs < 2 {
                continue;
            }
            let a = LossArgs {
                rows,
                outputs,
                ..Default::default()
            };
            let n = (rows * outputs) as usize;
            // bce_prob and ce_prob take probabilities, away from the clamp at ε and 1 − ε.
            let z = if kind >= 3 {
                random(kind as u64 + 3, n, 0.05, 0.95)
            } else {
                random(kind as u64 + 3, n, -3.0, 3.0)
            };
            let label_len = if kind == 1 || kind == 4 {
                rows as usize
            } else {
                n
            };
            let mut label: Vec<f32> = random(kind as u64 + 4, label_len, 0.0, 1.0)
                .into_iter()
                .map(|u| match kind {
                    0 => (u > 0.5) as u32 as f32,
                    1 | 4 => (u * outputs as f32).floor(),
                    _ => 3.0 * u,
                })
                .collect();
            if label.len() > 2 {
                label[1] = f32::NAN; // a missing label is masked out
            }
            let (_, grad) = task_loss(kind, &a, &z, &label);
            for k in 0..n {
                let (mut p, mut m) = (z.clone(), z.clone());
                p[k] += H;
                m[k] -= H;
                let fd = (task_loss(kind, &a, &p, &label).0 - task_loss(kind, &a, &m, &label).0)
                    / (2.0 * H);
                assert_grad(
                    &format!("loss kind {kind} {rows}x{outputs} dz[{k}]"),
                    fd,
                    grad[k],
                );
            }
        }
    }
}

/// Cross-entropy on softmax probabilities is softmax cross-entropy: the same
/// loss, and (through the softmax's backward) the same gradient on the logits.
#[test]
fn ce_on_softmax_probabilities_is_softmax_ce() {
    use tandem::cpu::gate;
    use tandem::ops::GateArgs;
    let (rows, outputs) = (7u32, 4u32);
    let a = LossArgs {
        rows,
        outputs,
        ..Default::default()
    };
    let z = random(41, (rows * outputs) as usize, -3.0, 3.0);
    let mut label: Vec<f32> = random(42, rows as usize, 0.0, 1.0)
        .into_iter()
        .map(|u| (u * outputs as f32).floor())
        .collect();
    label[2] = f32::NAN;
    let ga = GateArgs {
        rows,
        experts: outputs,
        g_stride: outputs,
        ..Default::default()
    };
    let mut p = vec![0.0; z.len()];
    gate::softmax(&ga, &z, &mut p);
    let (l_logits, dz_logits) = task_loss(1, &a, &z, &label);
    let (l_prob, dp) = task_loss(4, &a, &p, &label);
    assert!(
        (l_logits - l_prob).abs() <= 1e-5 * l_logits.abs().max(1.0),
        "loss {l_logits} (softmax ce) vs {l_prob} (ce on probabilities)"
    );
    let mut dz = vec![0.0; z.len()];
    gate::softmax_backward(&ga, &dp, &p, &mut dz);
    for (k, (a, b)) in dz_logits.iter().zip(&dz).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5,
            "dz[{k}]: {a} (softmax ce) vs {b} (through softmax)"
        );
    }
}

#[test]
fn ensemble_combiners_match_finite_differences() {
    use tandem::cpu::ensemble;
    let (m, n, c) = (3u32, 4u32, 2u32);
    let a = EnsembleArgs {
        members: m,
        rows: n,
        width: c,
        ..Default::default()
    };
    let src = random(7, (m * n * c) as usize, -1.0, 1.0);
    // mean: objective Σ r ⊙ mean(src)
    let r = random(8, (n * c) as usize, -1.0, 1.0);
    let objective = |s: &[f32]| {
        let mut out = vec![0.0; (n * c) as usize];
        ensemble::mean_forward(&a, s, &mut out);
        out.iter().zip(&r).map(|(o, r)| o * r).sum::<f32>()
    };
    let mut grad = vec![0.0; src.len()];
    ensemble::mean_backward(&a, &r, &mut grad);
    for k in 0..src.len() {
        let (mut p, mut q) = (src.clone(), src.clone());
        p[k] += H;
        q[k] -= H;
        assert_grad(
            &format!("mean [{k}]"),
            (objective(&p) - objective(&q)) / (2.0 * H),
            grad[k],
        );
    }
    // members_to_rows: objective Σ r ⊙ rows(src); rows_to_members is its backward
    let r = random(9, (m * n * c) as usize, -1.0, 1.0);
    let objective = |s: &[f32]| {
        let mut out = vec![0.0; (m * n * c) as usize];
        ensemble::members_to_rows(&a, s, &mut out);
        out.iter().zip(&r).map(|(o, r)| o * r).sum::<f32>()
    };
    let mut grad = vec![0.0; src.len()];
    ensemble::rows_to_members(&a, &r, &mut grad);
    for k in 0..src.len() {
        let (mut p, mut q) = (src.clone(), src.clone());
        p[k] += H;
        q[k] -= H;
        assert_grad(
            &format!("members_to_rows [{k}]"),
            (objective(&p) - objective(&q)) / (2.0 * H),
            grad[k],
        );
    }
}

#[test]
fn gate_backwards_match_finite_differences() {
    use tandem::cpu::gate;
    // Gate logits x [N, G] → softmax g (first E columns) → out [N, H] = Σ_e g·ex,
    // objective Σ r ⊙ out; checks the softmax, the gated sum and both backwards together.
    for &(n, e, w, gs) in &[(1u32, 1u32, 1u32, 1u32), (3, 3, 5, 4), (4, 6, 2, 6)] {
        let a = GateArgs {
            rows: n,
            experts: e,
            width: w,
            g_stride: gs,
            ..Default::default()
        };
        let s = (n * 100 + e * 10 + w) as u64;
        let x = random(s, (n * gs) as usize, -2.0, 2.0);
        let ex = random(s + 1, (e * n * w) as usize, -1.0, 1.0);
        let r = random(s + 2, (n * w) as usize, -1.0, 1.0);
        let objective = |x: &[f32], ex: &[f32]| {
            let mut g = vec![0.0; x.len()];
            gate::softmax(&a, x, &mut g);
            let mut out = vec![0.0; (n * w) as usize];
            gate::sum_forward(&a, &g, ex, &mut out);
            out.iter().zip(&r).map(|(o, r)| o * r).sum::<f32>()
        };
        let mut g = vec![0.0; x.len()];
        gate::softmax(&a, &x, &mut g);
        let mut dex = vec![0.0; ex.len()];
        gate::sum_backward_experts(&a, &g, &r, &mut dex);
        let mut dg = vec![0.0; x.len()];
        gate::sum_backward_gate(&a, &r, &ex, &mut dg);
        let mut dx = vec![0.0; x.len()];
        gate::softmax_backward(&a, &dg, &g, &mut dx);
        for k in 0..x.len() {
            if (k as u32 % gs) >= e {
                continue; // columns past E are not gate logits
            }
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += H;
            xm[k] -= H;
            let fd = (objective(&xp, &ex) - objective(&xm, &ex)) / (2.0 * H);
            assert_grad(&format!("gate {n}x{e}x{w} dlogit[{k}]"), fd, dx[k]);
        }
        for k in 0..ex.len() {
            let (mut ep, mut em) = (ex.clone(), ex.clone());
            ep[k] += H;
            em[k] -= H;
            let fd = (objective(&x, &ep) - objective(&x, &em)) / (2.0 * H);
            assert_grad(&format!("gate {n}x{e}x{w} dexpert[{k}]"), fd, dex[k]);
        }
    }
}

#[test]
fn uncertainty_gradient_matches_finite_differences() {
    use tandem::cpu::weighting;
    // Objective Σ_j L_j·λ_j(s) + s_j/2 with λ_j = 1/(2·exp(s_j)), as reduce + finish compute it.
    let tasks = 3u32;
    let a = WeightingArgs {
        tasks,
        s_off: 2,
        log_slots: 1,
        _pad: 0,
    };
    let losses = [0.7f32, 8.3, 0.01];
    let objective = |params: &[f32]| {
        let mut lambda = vec![0.0; 3];
        weighting::uncertainty_weights(&a, params, &mut lambda);
        let mut out = vec![0.0; 7];
        out[..3].copy_from_slice(&losses);
        out[6] = (0..3).map(|j| lambda[j] * losses[j]).sum();
        let mut grads = vec![0.0; params.len()];
        let mut log = vec![0.0; 4];
        weighting::uncertainty_finish(&a, params, &[0, 0], &mut out, &mut grads, &mut log);
        assert_eq!(log[0], out[6]);
        (out[6], grads)
    };
    let params = vec![9.0, 9.0, -0.5, 0.3, 1.7];
    let (_, grads) = objective(&params);
    for k in 2..5 {
        let (mut pp, mut pm) = (params.clone(), params.clone());
        pp[k] += H;
        pm[k] -= H;
        let fd = (objective(&pp).0 - objective(&pm).0) / (2.0 * H);
        assert_grad(&format!("uncertainty ds[{}]", k - 2), fd, grads[k]);
    }
}

/// Objective of a batched dense layer: Σ r ⊙ y over every batch item.
fn batched_objective(a: &DenseArgs, x: &[f32], p: &[f32], r: &[f32]) -> f32 {
    let mut y = vec![0.0; (a.batches * a.n * a.o) as usize];
    dense::forward(a, x, p, &mut y);
    y.iter().zip(r).map(|(y, r)| y * r).sum()
}

#[test]
fn batched_dense_over_a_shared_input_matches_finite_differences() {
    // Three items (members, or heads of tasks) on one input, in the grouped
    // layout: the CPU runs them as one wide product; dx sums over the items.
    let (n, i, o, b) = (3u32, 5u32, 4u32, 3u32);
    for act in 0..4u32 {
        let a = DenseArgs {
            n,
            i,
            o,
            act,
            w_off: 0,
            b_off: b * o * i,
            batches: b,
            x_bstride: 0,
            w_bstride: o * i,
            b_bstride: o,
            y_bstride: n * o,
            ..Default::default()
        };
        let x = random(40 + act as u64, (n * i) as usize, -1.0, 1.0);
        let p = random(41 + act as u64, (b * (o * i + o)) as usize, -0.7, 0.7);
        let r = random(42 + act as u64, (b * n * o) as usize, -1.0, 1.0);
        let mut y = vec![0.0; (b * n * o) as usize];
        dense::forward(&a, &x, &p, &mut y);
        let mut dx = vec![0.0; x.len()];
        dense::backward_input(&a, &r, &y, &p, &mut dx);
        let mut g = vec![0.0; p.len()];
        dense::backward_weight(&a, &r, &y, &x, &mut g);
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += H;
            xm[k] -= H;
            let fd = (batched_objective(&a, &xp, &p, &r) - batched_objective(&a, &xm, &p, &r))
                / (2.0 * H);
            assert_grad(&format!("shared batched act {act} dx[{k}]"), fd, dx[k]);
        }
        for k in 0..p.len() {
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pp[k] += H;
            pm[k] -= H;
            let fd = (batched_objective(&a, &x, &pp, &r) - batched_objective(&a, &x, &pm, &r))
                / (2.0 * H);
            assert_grad(&format!("shared batched act {act} dparam[{k}]"), fd, g[k]);
        }
    }
}

#[test]
fn gradnorm_gradient_matches_finite_differences() {
    use tandem::cpu::weighting;
    // L_grad(p) = Σ_j |w_j(p)·n_j − c_j| with w = T·softmax(p), n_j the unweighted
    // gradient norms and the targets c_j = Ḡ·r_j^α held constant (as GradNorm does).
    let tasks = 3u32;
    let a = GradnormArgs {
        tasks,
        len: 0,
        p_off: 1,
        alpha: 1.5,
    };
    let n = [0.8f32, 2.5, 0.3];
    let out = [0.9f32, 0.4, 1.3, 0.0, 0.0, 0.0, 0.0];
    let initial = [1.0f32, 0.7, 1.1];
    let params = vec![0.0, 0.3, -0.2, 0.5];
    let weights = |p: &[f32]| {
        let mut l = vec![0.0; 3];
        weighting::gradnorm_weights(&a, p, &mut l);
        l
    };
    let w0 = weights(&params);
    let g0: Vec<f32> = (0..3).map(|j| w0[j] * n[j]).collect();
    let g_mean = g0.iter().sum::<f32>() / 3.0;
    let ratios: Vec<f32> = (0..3).map(|j| out[j] / initial[j]).collect();
    let r_mean = ratios.iter().sum::<f32>() / 3.0;
    let c: Vec<f32> = (0..3)
        .map(|j| g_mean * (ratios[j] / r_mean).powf(1.5))
        .collect();
    let l_grad = |p: &[f32]| {
        let w = weights(p);
        (0..3).map(|j| (w[j] * n[j] - c[j]).abs()).sum::<f32>()
    };
    let norms: Vec<f32> = g0.iter().map(|g| g * g).collect();
    let mut grads = vec![0.0; 4];
    weighting::gradnorm_update(&a, &w0, &norms, &out, &initial, &mut grads);
    for k in 1..4 {
        let (mut pp, mut pm) = (params.clone(), params.clone());
        pp[k] += H;
        pm[k] -= H;
        let fd = (l_grad(&pp) - l_grad(&pm)) / (2.0 * H);
        assert_grad(&format!("gradnorm dp[{}]", k - 1), fd, grads[k]);
    }
    // Before the first epoch's losses exist, nothing moves.
    weighting::gradnorm_update(&a, &w0, &norms, &out, &[0.0; 3], &mut grads);
    assert_eq!(&grads[1..], &[0.0; 3]);
}
