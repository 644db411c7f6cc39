//! The same training run on both backends: a model with every task kind
//! (multiclass, multi-label binary, regression), missing labels, head towers,
//! shuffling and a partial last batch, trained K steps on the CPU and on the
//! GPU; per-step losses and final weights must agree.

mod common;

use tandem::io::{AdamStyle, OptimizerConfig, OptimizerKind, TrainConfig, Weighting};
use tandem::model::Activation;
use tandem::{fit, BackendChoice, Model, ModelSpec, TaskKind, TaskSpec};

fn task(name: &str, kind: TaskKind, outputs: usize, head: Vec<usize>, weight: f32) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight,
        head,
        outputs,
    }
}

#[test]
fn cpu_and_gpu_train_the_same_model() {
    if common::gpu().is_none() {
        return;
    }
    let spec = ModelSpec {
        inputs: 7,
        architecture: tandem::model::Architecture::Shared {
            trunk: vec![24, 16],
        },
        activation: Activation::Tanh,
        tasks: vec![
            task("kind", TaskKind::Multiclass, 3, vec![8], 1.0),
            task("flags", TaskKind::Binary, 2, vec![], 0.7),
            task("value", TaskKind::Regression, 1, vec![5, 4], 0.3),
        ],
        ..Default::default()
    };
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 16,
        shuffle: true,
        seed: 5,
        weighting: Weighting::Fixed,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Torch,
            momentum: 0.0,
        },
    };
    let train = common::mixed_tasks(75); // 5 steps per epoch, the last with 11 rows
    let run = |b: BackendChoice| {
        let mut model = Model::new(spec.clone(), 3);
        let h = fit(
            &mut model,
            &train,
            None,
            &cfg,
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        let losses: Vec<Vec<f32>> = h
            .steps()
            .map(|(_, s)| [vec![s.total], s.tasks.clone()].concat())
            .collect();
        (losses, model.params)
    };
    let (cpu_loss, cpu_w) = run(BackendChoice::Cpu);
    let (gpu_loss, gpu_w) = run(BackendChoice::Gpu);
    assert_eq!(cpu_loss.len(), 15);
    common::assert_same_losses("mixed tasks", &cpu_loss, &gpu_loss);
    let worst = common::assert_same_weights("mixed tasks", &cpu_w, &gpu_w);
    // Training did something: the objective fell.
    assert!(
        cpu_loss[14][0] < cpu_loss[0][0],
        "loss did not fall: {:?}",
        cpu_loss
    );
    println!("15 steps on cpu and gpu agree; worst weight |Δ| {worst:.1e}");
}

#[test]
fn sgd_with_momentum_trains_on_both_backends() {
    let spec = ModelSpec {
        inputs: 7,
        architecture: tandem::model::Architecture::Shared { trunk: vec![12] },
        activation: Activation::Relu,
        tasks: vec![task("value", TaskKind::Regression, 1, vec![], 1.0)],
        ..Default::default()
    };
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 10,
        shuffle: false,
        seed: 0,
        weighting: Weighting::Fixed,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Keras,
            momentum: 0.9,
        },
    };
    let mut d = common::mixed_tasks(40);
    d.targets = vec![d.targets[2].clone()];
    let mut backends = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        backends.push(BackendChoice::Gpu);
    }
    let mut finals = Vec::new();
    for b in backends {
        let mut model = Model::new(spec.clone(), 1);
        let h = fit(
            &mut model,
            &d,
            None,
            &cfg,
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        let first = h.epochs[0].loss;
        let last = h.epochs.last().unwrap().loss;
        assert!(last < first, "SGD on {b:?}: loss {first} → {last}");
        finals.push(model.params);
    }
    if let [cpu, gpu] = &finals[..] {
        common::assert_same_weights("SGD", cpu, gpu);
    }
}

#[test]
fn fused_first_head_layers_train_the_same_on_both_backends() {
    // Every head starts with a hidden layer of 6: those layers run as one
    // batched dense over the trunk's output (one wide product on the CPU).
    let spec = ModelSpec {
        inputs: 7,
        architecture: tandem::model::Architecture::Shared { trunk: vec![10] },
        activation: Activation::Relu,
        tasks: vec![
            task("kind", TaskKind::Multiclass, 3, vec![6], 1.0),
            task("flags", TaskKind::Binary, 2, vec![6, 3], 0.7),
            task("value", TaskKind::Regression, 1, vec![6], 0.3),
        ],
        ..Default::default()
    };
    let model = Model::new(spec.clone(), 4);
    assert!(
        matches!(&model.network.arch, tandem::model::network::Arch::Shared(s) if s.fused_first.is_some())
    );
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 16,
        shuffle: true,
        seed: 2,
        weighting: Weighting::Fixed,
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
    };
    let train = common::mixed_tasks(75);
    let mut backends = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        backends.push(BackendChoice::Gpu);
    }
    let mut runs = Vec::new();
    for b in backends {
        let mut m = model.clone();
        let h = fit(
            &mut m,
            &train,
            None,
            &cfg,
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        let losses: Vec<f32> = h.steps().map(|(_, s)| s.total).collect();
        assert!(
            losses[14] < losses[0],
            "{b:?}: loss did not fall: {losses:?}"
        );
        runs.push((losses, m.params));
    }
    if let [(cpu_l, cpu_w), (gpu_l, gpu_w)] = &runs[..] {
        let rows = |l: &[f32]| l.iter().map(|v| vec![*v]).collect::<Vec<_>>();
        common::assert_same_losses("fused heads", &rows(cpu_l), &rows(gpu_l));
        common::assert_same_weights("fused heads", cpu_w, gpu_w);
    }
    // Saving and loading keeps every tensor under its name, whatever the layout.
    let path =
        std::env::temp_dir().join(format!("tandem-fused-{}.safetensors", std::process::id()));
    model.save(&path).unwrap();
    let back = Model::load(&path).unwrap();
    assert_eq!(back.params, model.params);
    assert_eq!(
        back.tensor("heads.flags.0.weight"),
        model.tensor("heads.flags.0.weight")
    );
}
