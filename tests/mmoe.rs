//! Mixture of experts and adaptive task weighting: the whole MMoE graph's
//! gradients against finite differences, CPU-vs-GPU training with deeper
//! experts, hidden heads, every task kind and each weighting, and the
//! behaviour uncertainty and DWA weighting promise.

mod common;

use common::random;
use tandem::cpu::CpuBackend;
use tandem::io::{AdamStyle, OptimizerConfig, OptimizerKind, TrainConfig, Weighting};
use tandem::model::{Activation, ExpertsSpec, PleSpec};
use tandem::train::weighting::dwa_lambda;
use tandem::{fit, Backend, BackendChoice, Dataset, Model, ModelSpec, TaskKind, TaskSpec};

fn task(name: &str, kind: TaskKind, outputs: usize, head: Vec<usize>, weight: f32) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight,
        head,
        outputs,
    }
}

/// Four experts of two layers, hidden heads on two of the three tasks.
fn mmoe_spec(log_vars: bool) -> ModelSpec {
    ModelSpec {
        inputs: 7,
        activation: Activation::Tanh,
        tasks: vec![
            task("kind", TaskKind::Multiclass, 3, vec![5], 1.0),
            task("flags", TaskKind::Binary, 2, vec![], 0.7),
            task("value", TaskKind::Regression, 1, vec![4, 3], 0.3),
        ],
        architecture: tandem::model::Architecture::Mmoe(ExpertsSpec {
            count: 4,
            layers: vec![6, 5],
        }),
        log_vars,
        ..Default::default()
    }
}

fn adam_cfg(epochs: usize, batch: usize, weighting: Weighting, lr: f32) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: batch,
        shuffle: true,
        seed: 5,
        weighting,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Torch,
            momentum: 0.0,
        },
    }
}

/// PLE with two levels (S = 2 shared, K = 1 per task), or CGC with one.
fn ple_spec(levels: Vec<usize>) -> ModelSpec {
    ModelSpec {
        architecture: tandem::model::Architecture::Ple(PleSpec {
            shared: 2,
            per_task: 1,
            levels,
        }),
        ..mmoe_spec(false)
    }
}

#[test]
fn mmoe_graph_gradients_match_finite_differences() {
    graph_gradients_match_finite_differences(&mmoe_spec(false));
}

#[test]
fn ple_graph_gradients_match_finite_differences() {
    graph_gradients_match_finite_differences(&ple_spec(vec![6, 5]));
    graph_gradients_match_finite_differences(&ple_spec(vec![4, 3, 5]));
    graph_gradients_match_finite_differences(&ple_spec(vec![6]));
}

fn graph_gradients_match_finite_differences(spec: &ModelSpec) {
    // Objective Σ_j Σ r_j ⊙ z_j over the logits of every task; the graph's
    // backward (seeded with r_j as the logits' gradient) must give its gradient
    // w.r.t. every parameter: experts, gates and heads.
    let spec = spec.clone();
    let model = Model::new(spec.clone(), 11);
    let n = 5;
    let mut b = CpuBackend::new();
    let p = model.params.len();
    let params = b.alloc(p, "params").unwrap();
    let grads = b.alloc(p, "grads").unwrap();
    let g = model
        .network
        .graph(&mut b, &spec, n, true, params, Some(grads))
        .unwrap();
    let x = random(3, n * 7, -1.0, 1.0);
    b.write(g.x, 0, &x).unwrap();
    let r: Vec<Vec<f32>> = spec
        .tasks
        .iter()
        .enumerate()
        .map(|(j, t)| random(40 + j as u64, n * t.outputs, -1.0, 1.0))
        .collect();
    let fwd = b.prepare(&g.forward).unwrap();
    let bwd = b.prepare(&g.backward).unwrap();
    let objective = |b: &mut CpuBackend, w: &[f32]| -> f32 {
        b.write(params, 0, w).unwrap();
        b.run(fwd, 1).unwrap();
        let mut s = 0.0f64;
        for (j, z) in g.logits.iter().enumerate() {
            let z = b.read(*z).unwrap();
            s += z
                .iter()
                .zip(&r[j])
                .map(|(a, c)| (a * c) as f64)
                .sum::<f64>();
        }
        s as f32
    };
    objective(&mut b, &model.params);
    for (j, dz) in g.logits_grad.iter().enumerate() {
        b.write(dz.unwrap(), 0, &r[j]).unwrap();
    }
    b.run(bwd, 1).unwrap();
    let analytic = b.read(grads).unwrap();
    let h = 1e-2f32;
    let mut checked = 0;
    for t in &model.layout().tensors {
        for k in t.offset..t.offset + t.len() {
            let (mut wp, mut wm) = (model.params.clone(), model.params.clone());
            wp[k] += h;
            wm[k] -= h;
            let fd = (objective(&mut b, &wp) - objective(&mut b, &wm)) / (2.0 * h);
            let a = analytic[k];
            assert!(
                (fd - a).abs() <= 2e-3 + 2e-2 * a.abs(),
                "`{}`[{}]: finite difference {fd} vs backward {a}",
                t.name,
                k - t.offset
            );
            checked += 1;
        }
    }
    assert_eq!(checked, p);
}

/// Trains `spec` on both backends with `cfg`; per-step losses and final weights must agree.
fn cpu_and_gpu_agree(spec: &ModelSpec, cfg: &TrainConfig, what: &str) {
    let train = common::mixed_tasks(75); // 5 steps per epoch, the last with 11 rows
    let run = |b: BackendChoice| {
        let mut model = Model::new(spec.clone(), 3);
        let h = fit(
            &mut model,
            &train,
            None,
            cfg,
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        let losses: Vec<Vec<f32>> = h
            .steps()
            .map(|(_, s)| [vec![s.total], s.tasks.clone()].concat())
            .collect();
        (losses, model.params, model.task_weights)
    };
    let (cpu_loss, cpu_w, cpu_l) = run(BackendChoice::Cpu);
    let (gpu_loss, gpu_w, gpu_l) = run(BackendChoice::Gpu);
    assert_eq!(cpu_loss.len(), 5 * cfg.epochs);
    common::assert_same_losses(what, &cpu_loss, &gpu_loss);
    let worst = common::assert_same_weights(what, &cpu_w, &gpu_w);
    for (a, b) in cpu_l.iter().flatten().zip(gpu_l.iter().flatten()) {
        assert!(
            (a - b).abs() <= 1e-4,
            "{what}: task weights {cpu_l:?} vs {gpu_l:?}"
        );
    }
    let n = cpu_loss.len();
    assert!(
        cpu_loss[n - 1][1..].iter().sum::<f32>() < cpu_loss[0][1..].iter().sum::<f32>(),
        "{what}: task losses did not fall: {cpu_loss:?}"
    );
    println!("{what}: {n} steps on cpu and gpu agree; worst weight |Δ| {worst:.1e}");
}

#[test]
fn mmoe_trains_the_same_on_cpu_and_gpu() {
    if common::gpu().is_none() {
        return;
    }
    cpu_and_gpu_agree(
        &mmoe_spec(false),
        &adam_cfg(3, 16, Weighting::Fixed, 0.01),
        "mmoe fixed",
    );
    cpu_and_gpu_agree(
        &mmoe_spec(true),
        &adam_cfg(3, 16, Weighting::Uncertainty, 0.01),
        "mmoe uncertainty",
    );
    cpu_and_gpu_agree(
        &mmoe_spec(false),
        &adam_cfg(4, 16, Weighting::Dwa, 0.01),
        "mmoe dwa",
    );
}

#[test]
fn ple_trains_the_same_on_cpu_and_gpu() {
    if common::gpu().is_none() {
        return;
    }
    cpu_and_gpu_agree(
        &ple_spec(vec![6, 5]),
        &adam_cfg(3, 16, Weighting::Fixed, 0.01),
        "ple 2 levels",
    );
    let mut cgc = ple_spec(vec![6]);
    cgc.log_vars = true;
    cpu_and_gpu_agree(
        &cgc,
        &adam_cfg(3, 16, Weighting::Uncertainty, 0.01),
        "cgc uncertainty",
    );
}

#[test]
fn ple_names_its_tensors() {
    let m = Model::new(ple_spec(vec![6, 5]), 0);
    // E = 2 shared + 3 tasks × 1 = 5 experts per level; gates over S + K = 3.
    for (name, shape) in [
        ("experts.0.0.weight", vec![6, 7]),
        ("experts.4.1.weight", vec![5, 6]),
        ("gates.kind.0.weight", vec![3, 7]),
        ("gates.value.1.bias", vec![3]),
        ("shared_gates.0.weight", vec![5, 7]),
        ("heads.kind.0.weight", vec![5, 5]),
    ] {
        let t = m
            .layout()
            .find(name)
            .unwrap_or_else(|| panic!("no `{name}`"));
        assert_eq!(t.shape, shape, "{name}");
    }
    // The last level has no shared gate.
    assert!(m.layout().find("shared_gates.1.weight").is_none());
}

/// Two regression tasks of the same signal family; the second's noise has ten
/// times the standard deviation (0.1 vs 1). A small MMoE with uncertainty weights.
fn noisy_pair() -> (Dataset, ModelSpec) {
    let rows = 512;
    let features = random(7, rows * 4, -1.0, 1.0);
    let noise = random(8, rows * 2, -1.0, 1.0);
    let (mut clean, mut noisy) = (Vec::new(), Vec::new());
    for r in 0..rows {
        let x = &features[r * 4..r * 4 + 4];
        // Uniform noise on [−√3, √3]·σ has standard deviation σ.
        clean.push(x[0] - 0.5 * x[1] + 0.1 * 3f32.sqrt() * noise[2 * r]);
        noisy.push(x[2] + 0.5 * x[3] + 1.0 * 3f32.sqrt() * noise[2 * r + 1]);
    }
    let data = Dataset {
        rows,
        inputs: 4,
        features,
        targets: vec![clean, noisy],
        feature_names: vec![],
    };
    let spec = ModelSpec {
        inputs: 4,
        activation: Activation::Relu,
        tasks: vec![
            task("clean", TaskKind::Regression, 1, vec![], 1.0),
            task("noisy", TaskKind::Regression, 1, vec![], 1.0),
        ],
        architecture: tandem::model::Architecture::Mmoe(ExpertsSpec {
            count: 2,
            layers: vec![8],
        }),
        log_vars: true,
        ..Default::default()
    };
    (data, spec)
}

#[test]
fn uncertainty_weights_the_noisier_task_less() {
    // At UW's optimum exp(s_j) = L_j, so λ_j = 1/(2·exp(s_j)) must end far
    // lower for the noisy task.
    let (data, spec) = noisy_pair();
    let mut model = Model::new(spec, 1);
    let cfg = adam_cfg(40, 32, Weighting::Uncertainty, 0.02);
    let h = fit(
        &mut model,
        &data,
        None,
        &cfg,
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    let s_clean = model.tensor("weighting.log_var.clean").unwrap()[0];
    let s_noisy = model.tensor("weighting.log_var.noisy").unwrap()[0];
    let last = h.epochs.last().unwrap();
    let lambda = &last.task_weights;
    println!(
        "s = ({s_clean:.3}, {s_noisy:.3}), λ = {lambda:?}, last epoch's step losses {:?}",
        last.steps.last().unwrap().tasks
    );
    assert!(
        lambda[0] > 3.0 * lambda[1],
        "λ should favour the clean task: {lambda:?} (s = {s_clean}, {s_noisy})"
    );
    // Both moved from −0.5 toward log L_j: the clean task's down, the noisy one's up.
    assert!(
        s_clean < -1.5 && s_noisy > -0.3,
        "s = ({s_clean}, {s_noisy})"
    );
}

#[test]
fn dwa_follows_the_ratio_of_the_last_two_epoch_losses() {
    assert_eq!(dwa_lambda(&[], 3), vec![1.0; 3]);
    assert_eq!(dwa_lambda(&[vec![1.0, 2.0]], 2), vec![1.0; 2]);
    // Task 0's loss halved, task 1's stayed: λ = 2·softmax([0.5, 1] / 2).
    let l = dwa_lambda(&[vec![2.0, 1.0], vec![1.0, 1.0]], 2);
    let e0 = (0.25f32).exp();
    let e1 = (0.5f32).exp();
    assert!((l[0] - 2.0 * e0 / (e0 + e1)).abs() < 1e-6, "{l:?}");
    assert!((l[1] - 2.0 * e1 / (e0 + e1)).abs() < 1e-6, "{l:?}");
    assert!((l.iter().sum::<f32>() - 2.0).abs() < 1e-6);
    // In a run: λ = 1 for two epochs, then DWA's weights, summing to T.
    let mut model = Model::new(mmoe_spec(false), 2);
    let h = fit(
        &mut model,
        &common::mixed_tasks(75),
        None,
        &adam_cfg(4, 16, Weighting::Dwa, 0.01),
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    let w: Vec<&Vec<f32>> = h.epochs.iter().map(|e| &e.task_weights).collect();
    assert_eq!(w[0], &vec![1.0; 3]);
    assert_eq!(w[1], &vec![1.0; 3]);
    for e in 2..4 {
        assert!((w[e].iter().sum::<f32>() - 3.0).abs() < 1e-5, "{w:?}");
        assert_ne!(w[e], &vec![1.0; 3]);
    }
    // Epoch means weigh each step by the labels it averaged (the last batch is short).
    let mean = |e: usize, j: usize| {
        let steps = &h.epochs[e].steps;
        let num: f32 = steps.iter().map(|s| s.tasks[j] * s.labels[j]).sum();
        num / steps.iter().map(|s| s.labels[j]).sum::<f32>()
    };
    let want = dwa_lambda(
        &[
            vec![mean(1, 0), mean(1, 1), mean(1, 2)],
            vec![mean(2, 0), mean(2, 1), mean(2, 2)],
        ],
        3,
    );
    for j in 0..3 {
        assert!((w[3][j] - want[j]).abs() < 1e-5, "{w:?} vs {want:?}");
    }
    assert_eq!(model.task_weights.len(), 4);
}

#[test]
fn gradnorm_without_its_parameters_is_a_clear_error() {
    let mut model = Model::new(mmoe_spec(false), 2);
    let err = fit(
        &mut model,
        &common::mixed_tasks(20),
        None,
        &adam_cfg(1, 16, Weighting::GradNorm, 0.01),
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gradnorm") && err.contains("weighting.gradnorm"),
        "{err}"
    );
}

/// Hard sharing: trunk [6, 5] under the three heads.
fn shared_spec() -> ModelSpec {
    ModelSpec {
        architecture: tandem::model::Architecture::Shared { trunk: vec![6, 5] },
        ..mmoe_spec(false)
    }
}

fn with_gradnorm(mut spec: ModelSpec) -> ModelSpec {
    spec.gradnorm = true;
    spec
}

#[test]
fn gradnorm_graphs_keep_the_gradients_right() {
    // Keeping each task's representation gradient apart must not change the
    // parameters' gradients.
    graph_gradients_match_finite_differences(&with_gradnorm(shared_spec()));
    graph_gradients_match_finite_differences(&with_gradnorm(mmoe_spec(false)));
    graph_gradients_match_finite_differences(&with_gradnorm(ple_spec(vec![6, 5])));
}

#[test]
fn gradnorm_trains_the_same_on_cpu_and_gpu() {
    if common::gpu().is_none() {
        return;
    }
    let cfg = adam_cfg(3, 16, Weighting::GradNorm, 0.01);
    cpu_and_gpu_agree(&with_gradnorm(shared_spec()), &cfg, "shared gradnorm");
    cpu_and_gpu_agree(&with_gradnorm(mmoe_spec(false)), &cfg, "mmoe gradnorm");
    cpu_and_gpu_agree(&with_gradnorm(ple_spec(vec![6, 5])), &cfg, "ple gradnorm");
}

#[test]
fn gradnorm_upweights_the_task_that_learns_slower() {
    // The noisy task's loss cannot fall far below its noise, so its loss ratio
    // L/L(0) stays high: GradNorm raises its weight; the weights sum to T.
    let (data, mut spec) = noisy_pair();
    spec.log_vars = false;
    spec.gradnorm = true;
    let mut model = Model::new(spec, 1);
    let h = fit(
        &mut model,
        &data,
        None,
        &adam_cfg(20, 32, Weighting::GradNorm, 0.02),
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    let w: Vec<&Vec<f32>> = h.epochs.iter().map(|e| &e.task_weights).collect();
    assert_eq!(w[0], &vec![1.0, 1.0], "no update in the first epoch");
    for l in &w {
        assert!((l.iter().sum::<f32>() - 2.0).abs() < 1e-4, "{w:?}");
    }
    let last = w.last().unwrap();
    println!("gradnorm weights by epoch: {w:?}");
    assert!(
        last[1] > last[0] * 1.2,
        "noisy task not upweighted: {last:?}"
    );
    assert!(model.tensor("weighting.gradnorm.noisy").is_some());
}

#[test]
fn gradnorm_graphs_keep_each_tasks_gradient_in_its_own_slot() {
    // Seed only task j's logits gradient: only slot j of the split may be non-zero.
    for spec in [
        with_gradnorm(shared_spec()),
        with_gradnorm(mmoe_spec(false)),
        with_gradnorm(ple_spec(vec![6, 5])),
    ] {
        let model = Model::new(spec.clone(), 4);
        let n = 3;
        let mut b = CpuBackend::new();
        let params = b.alloc(model.params.len(), "params").unwrap();
        b.write(params, 0, &model.params).unwrap();
        let grads = b.alloc(model.params.len(), "grads").unwrap();
        let g = model
            .network
            .graph(&mut b, &spec, n, true, params, Some(grads))
            .unwrap();
        let (split, len) = g.rep_split.expect("a gradnorm graph keeps the split");
        b.write(g.x, 0, &random(5, n * 7, -1.0, 1.0)).unwrap();
        let fwd = b.prepare(&g.forward).unwrap();
        let bwd = b.prepare(&g.backward).unwrap();
        b.run(fwd, 1).unwrap();
        for j in 0..spec.tasks.len() {
            for (k, t) in spec.tasks.iter().enumerate() {
                let r = if k == j {
                    random(9 + k as u64, n * t.outputs, -1.0, 1.0)
                } else {
                    vec![0.0; n * t.outputs]
                };
                b.write(g.logits_grad[k].unwrap(), 0, &r).unwrap();
            }
            b.run(bwd, 1).unwrap();
            let s = b.read(split).unwrap();
            for k in 0..spec.tasks.len() {
                let norm: f32 = s[k * len..(k + 1) * len].iter().map(|v| v * v).sum();
                assert_eq!(
                    norm > 0.0,
                    k == j,
                    "task {j} seeded, slot {k} has |g|² {norm}"
                );
            }
        }
    }
}

#[test]
fn weighting_state_is_optional_in_an_init_file() {
    // A saved uncertainty-weighted model initialises a fixed-weight run (its
    // weighting tensors are skipped), and a plain weights file initialises an
    // uncertainty run (s_j start at −0.5).
    let dir = std::env::temp_dir().join(format!("tandem-mmoe-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut uw = Model::new(mmoe_spec(true), 1);
    let s_at = uw.layout().find("weighting.log_var.kind").unwrap().offset;
    uw.params[s_at] = 0.25;
    uw.save(dir.join("uw.safetensors")).unwrap();
    let mut fixed = Model::new(mmoe_spec(false), 2);
    fixed.load_weights(dir.join("uw.safetensors")).unwrap();
    assert_eq!(fixed.params[..], uw.params[..fixed.params.len()]);
    fixed.save(dir.join("plain.safetensors")).unwrap();
    let mut again = Model::new(mmoe_spec(true), 3);
    again.load_weights(dir.join("plain.safetensors")).unwrap();
    assert_eq!(again.tensor("weighting.log_var.kind").unwrap(), &[-0.5]);
    assert_eq!(again.params[..fixed.params.len()], fixed.params[..]);
    let _ = std::fs::remove_dir_all(&dir);
}
