//! Ensembles: the PyTorch-written member, the combiners trained on both
//! backends, frozen members, prediction spread, and bad member input.

mod common;

use common::random;
use std::path::{Path, PathBuf};
use tandem::io::{npy, AdamStyle, OptimizerConfig, OptimizerKind, TrainConfig, Weighting};
use tandem::model::{Activation, Combine, EnsembleSpec, MemberSpec};
use tandem::{fit, BackendChoice, Config, Dataset, Model, ModelSpec, TaskKind, TaskSpec};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn member(name: &str, trunk: Vec<usize>, act: Activation, trainable: bool) -> MemberSpec {
    MemberSpec {
        name: name.into(),
        trunk,
        activation: act,
        trainable,
        weights: None,
    }
}

fn task(name: &str, kind: TaskKind, outputs: usize) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight: 1.0,
        head: vec![],
        outputs,
    }
}

/// Each step's objective as a one-entry row, for `common::assert_same_losses`.
fn per_step(losses: &[f32]) -> Vec<Vec<f32>> {
    losses.iter().map(|l| vec![*l]).collect()
}

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        b.push(BackendChoice::Gpu);
    }
    b
}

#[test]
fn pytorch_member_predicts_what_pytorch_recorded() {
    let spec = ModelSpec {
        inputs: 5,
        tasks: vec![task("y", TaskKind::Binary, 1)],
        architecture: tandem::model::Architecture::Ensemble(EnsembleSpec {
            bagging: false,
            combine: Combine::Mean,
            members: vec![member("torch", vec![8, 6], Activation::Relu, false)],
        }),
        ..Default::default()
    };
    let mut model = Model::new(spec, 0);
    model
        .load_member("torch", fixture("pytorch/member.safetensors"))
        .unwrap();
    let (shape, x) = npy::read_f32(fixture("pytorch/inputs.npy")).unwrap();
    let (_, want) = npy::read_f32(fixture("pytorch/outputs.npy")).unwrap();
    for b in backends() {
        let mut backend = tandem::open_backend(b).unwrap();
        let p = tandem::predict(&model, &x, shape[0], backend.as_mut()).unwrap();
        for (k, (g, w)) in p.tasks[0].values.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5,
                "{b:?} row {k}: tandem {g}, PyTorch {w}"
            );
        }
    }
}

fn data(rows: usize) -> Dataset {
    let features = random(11, rows * 6, -1.0, 1.0);
    let (mut y, mut v, mut k) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rows {
        let x = &features[r * 6..r * 6 + 6];
        y.push(if r % 9 == 4 {
            f32::NAN
        } else {
            (x[0] - x[1] + 0.5 * x[2] > 0.0) as u8 as f32
        });
        v.push(x[3] * 2.0 + x[4] - x[5]);
        k.push(if r % 11 == 6 {
            f32::NAN
        } else {
            ((x[1] + x[4] > 0.0) as u8 + (x[2] > 0.3) as u8) as f32
        });
    }
    Dataset {
        rows,
        inputs: 6,
        features,
        targets: vec![y, v, k],
        feature_names: vec![],
    }
}

fn ensemble_spec(combine: Combine) -> ModelSpec {
    ModelSpec {
        inputs: 6,
        tasks: vec![
            task("y", TaskKind::Binary, 1),
            task("v", TaskKind::Regression, 1),
            task("k", TaskKind::Multiclass, 3),
        ],
        architecture: tandem::model::Architecture::Ensemble(EnsembleSpec {
            bagging: false,
            combine,
            members: vec![
                // a and b share a shape: one dispatch per layer for both.
                member("a", vec![10, 5], Activation::Tanh, true),
                member("b", vec![10, 5], Activation::Tanh, true),
                member("c", vec![7], Activation::Relu, true),
                member("frozen", vec![4], Activation::Sigmoid, false),
            ],
        }),
        ..Default::default()
    }
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 12,
        shuffle: true,
        seed: 3,
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
    }
}

#[test]
fn every_combiner_trains_the_same_on_both_backends() {
    let train = data(50);
    for combine in [
        Combine::Stack,
        Combine::Mean,
        Combine::Concat,
        Combine::Gate,
    ] {
        let mut results = Vec::new();
        for b in backends() {
            let mut model = Model::new(ensemble_spec(combine), 1);
            let frozen_before = model
                .tensor("members.frozen.trunk.0.weight")
                .unwrap()
                .to_vec();
            let h = fit(
                &mut model,
                &train,
                None,
                &cfg(4),
                tandem::open_backend(b).unwrap(),
                &mut |_| {},
            )
            .unwrap();
            let losses: Vec<f32> = h.steps().map(|(_, s)| s.total).collect();
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "{combine:?} on {b:?}: {losses:?}"
            );
            assert!(
                h.epochs[3].loss < h.epochs[0].loss,
                "{combine:?} on {b:?} did not learn: {losses:?}"
            );
            assert_eq!(
                model.tensor("members.frozen.trunk.0.weight").unwrap(),
                frozen_before.as_slice(),
                "{combine:?}: frozen member moved"
            );
            results.push((losses, model.params));
        }
        if let [(cpu_l, cpu_w), (gpu_l, gpu_w)] = &results[..] {
            let what = format!("{combine:?}");
            common::assert_same_losses(&what, &per_step(cpu_l), &per_step(gpu_l));
            common::assert_same_weights(&what, cpu_w, gpu_w);
        }
    }
}

#[test]
fn prediction_reports_the_members_spread() {
    let d = data(30);
    let model = Model::new(ensemble_spec(Combine::Mean), 2);
    let mut b = tandem::open_backend(BackendChoice::Cpu).unwrap();
    let out = tandem::train::forward(&model, &d.features, d.rows, b.as_mut()).unwrap();
    let p = tandem::predict(&model, &d.features, d.rows, b.as_mut()).unwrap();
    let per = out.members[0].as_ref().unwrap();
    assert_eq!(per.len(), 4);
    let spread = p.tasks[0].spread.as_ref().unwrap();
    for r in 0..d.rows {
        let vals: Vec<f32> = per.iter().map(|m| m[r]).collect();
        let mean = vals.iter().sum::<f32>() / 4.0;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0).sqrt();
        assert!(
            (spread[r] - sd).abs() < 1e-6,
            "row {r}: spread {} vs {sd}",
            spread[r]
        );
        assert!(
            (p.tasks[0].values[r] - mean).abs() < 1e-6,
            "row {r}: mean combine"
        );
    }
    assert!(
        spread.iter().any(|s| *s > 1e-3),
        "members disagree somewhere"
    );
}

/// Under every combiner but `concat`, a member ends in its task's activation,
/// as the standalone model would predict: sigmoid probabilities for binary
/// tasks, softmax probabilities for multiclass ones. `mean` then averages
/// those probabilities (soft voting) and the spread is taken over them.
#[test]
fn members_output_probabilities_and_mean_is_soft_voting() {
    let d = data(30);
    let ens = Model::new(ensemble_spec(Combine::Mean), 5);
    // Member `c` (trunk [7], relu) as a model of its own, with its weights.
    let mut single = Model::new(
        ModelSpec {
            inputs: 6,
            architecture: tandem::model::Architecture::Shared { trunk: vec![7] },
            activation: Activation::Relu,
            tasks: ensemble_spec(Combine::Mean).tasks,
            ..Default::default()
        },
        0,
    );
    for t in single.layout().tensors.clone() {
        let from = format!("members.c.{}", t.name);
        let values = ens
            .tensor(&from)
            .unwrap_or_else(|| panic!("{from} missing"));
        single.params[t.offset..t.offset + t.len()].copy_from_slice(values);
    }
    let mut b = tandem::open_backend(BackendChoice::Cpu).unwrap();
    let out = tandem::train::forward(&ens, &d.features, d.rows, b.as_mut()).unwrap();
    let p = tandem::predict(&ens, &d.features, d.rows, b.as_mut()).unwrap();
    let alone = tandem::predict(&single, &d.features, d.rows, b.as_mut()).unwrap();
    for (j, name) in [(0usize, "y"), (2, "k")] {
        let per = out.members[j].as_ref().unwrap();
        let c = p.tasks[j].outputs;
        for (k, (a, e)) in alone.tasks[j].values.iter().zip(&per[2]).enumerate() {
            assert!(
                (a - e).abs() < 1e-5,
                "{name}[{k}]: alone {a}, as member {e}"
            );
        }
        let spread = p.tasks[j].spread.as_ref().unwrap();
        for i in 0..d.rows * c {
            let vals: Vec<f32> = per.iter().map(|m| m[i]).collect();
            let mean = vals.iter().sum::<f32>() / vals.len() as f32;
            let sd =
                (vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / vals.len() as f32).sqrt();
            assert!(
                (p.tasks[j].values[i] - mean).abs() < 1e-6,
                "{name}[{i}]: mean"
            );
            assert!((spread[i] - sd).abs() < 1e-6, "{name}[{i}]: spread");
        }
    }
    for (r, row) in p.tasks[2].values.chunks_exact(3).enumerate() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {r}: soft vote sums to {sum}");
    }
}

/// A gated ensemble's allocation is each task's mean attention over members:
/// softmax(x·W_gᵀ + b_g) averaged over the rows, computed here by hand.
#[test]
fn a_gated_ensemble_reports_its_attention_over_members() {
    let d = data(30);
    let model = Model::new(ensemble_spec(Combine::Gate), 4);
    let mut b = tandem::open_backend(BackendChoice::Cpu).unwrap();
    let alloc = tandem::train::allocation(&model, &d.features, d.rows, b.as_mut())
        .unwrap()
        .expect("a gated ensemble has gates");
    let m = 4;
    assert_eq!(alloc.len(), 3);
    for (j, t) in ["y", "v", "k"].iter().enumerate() {
        let w = model.tensor(&format!("combiner.{t}.weight")).unwrap();
        let bias = model.tensor(&format!("combiner.{t}.bias")).unwrap();
        let mut want = vec![0.0f64; m];
        for x in d.features.chunks_exact(6) {
            let z: Vec<f64> = (0..m)
                .map(|k| {
                    let dot: f32 = (0..6).map(|i| w[k * 6 + i] * x[i]).sum();
                    (dot + bias[k]) as f64
                })
                .collect();
            let mx = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - mx).exp()).sum();
            for k in 0..m {
                want[k] += (z[k] - mx).exp() / s / d.rows as f64;
            }
        }
        for k in 0..m {
            assert!(
                (alloc[j][k] as f64 - want[k]).abs() < 1e-5,
                "{t} member {k}: {} vs {}",
                alloc[j][k],
                want[k]
            );
        }
    }
}

/// Writes an ensemble config around the golden member files; `edit` changes its text.
fn ensemble_config(name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let src = fixture("golden/ensemble-stack");
    let dir = std::env::temp_dir().join(format!("tandem-ens-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "m1.safetensors",
        "m2.safetensors",
        "x.npy",
        "y_y.npy",
        "init.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(src.join("config.toml")).unwrap();
    std::fs::write(dir.join("config.toml"), edit(text)).unwrap();
    dir.join("config.toml")
}

fn load_err(path: &Path) -> String {
    match Config::load(path).and_then(|c| Model::from_spec(&c.model, c.train.seed)) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_member_whose_input_width_differs_is_named() {
    let p = ensemble_config("width", |t| t.replace("inputs = 8", "inputs = 9"));
    let e = load_err(&p);
    assert!(
        e.contains("m1.safetensors")
            && e.contains("trunk.0.weight")
            && e.contains("[8, 9]")
            && e.contains("[8, 8]"),
        "{e}"
    );
}

#[test]
fn a_member_file_missing_a_tensor_is_named() {
    let p = ensemble_config("missing", |t| t);
    // Rewrite m1 without its output layer's bias.
    let dir = p.parent().unwrap();
    let bytes = std::fs::read(dir.join("m1.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "heads.y.0.bias")
        .collect();
    std::fs::write(
        dir.join("m1.safetensors"),
        safetensors::serialize(kept, None).unwrap(),
    )
    .unwrap();
    let e = load_err(&p);
    assert!(
        e.contains("m1.safetensors") && e.contains("missing tensor `heads.y.0.bias`"),
        "{e}"
    );
}

#[test]
fn a_member_without_an_output_for_a_task_is_named() {
    let p = ensemble_config("task", |t| {
        t.replace(
            "[train]",
            "[[tasks]]\nname = \"z\"\nkind = \"binary\"\n\n[train]",
        )
        .replace("y = \"y_y.npy\"", "y = \"y_y.npy\"\nz = \"y_y.npy\"")
    });
    let e = load_err(&p);
    assert!(
        e.contains("m1.safetensors") && e.contains("heads.z.0.weight"),
        "{e}"
    );
}

#[test]
fn an_unknown_combiner_is_named_with_its_line() {
    let p = ensemble_config("combine", |t| {
        t.replace("combine = \"stack\"", "combine = \"vote\"")
    });
    let e = load_err(&p);
    assert!(e.contains("vote") && e.contains("line"), "{e}");
}

#[test]
fn an_ensemble_without_members_is_an_error() {
    let p = ensemble_config("empty", |t| {
        let start = t.find("[[members]]").unwrap();
        let end = t.find("[ensemble]").unwrap();
        format!("{}{}", &t[..start], &t[end..])
    });
    let e = load_err(&p);
    assert!(e.contains("members"), "{e}");
}

fn bagged_spec() -> ModelSpec {
    let mut spec = ensemble_spec(Combine::Concat);
    if let tandem::model::Architecture::Ensemble(e) = &mut spec.architecture {
        e.bagging = true;
    }
    spec
}

#[test]
fn bagging_keeps_each_member_to_its_own_sample() {
    let train = data(40);
    let cfg = cfg(3);
    let masks = tandem::train::bagging::bootstrap_masks(train.rows, 4, cfg.seed);
    // A row member "a" never drew but member "c" did.
    let r = (0..train.rows)
        .find(|&r| !masks[0][r] && masks[2][r] && !train.targets[1][r].is_nan())
        .unwrap();
    let run = |data: &Dataset| {
        let mut model = Model::new(bagged_spec(), 5);
        fit(
            &mut model,
            data,
            None,
            &cfg,
            tandem::open_backend(BackendChoice::Cpu).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        model
    };
    let base = run(&train);
    let mut changed = train.clone();
    changed.targets[1][r] += 10.0; // a very different regression label on row r
    let other = run(&changed);
    assert_eq!(
        base.tensor("members.a.trunk.0.weight"),
        other.tensor("members.a.trunk.0.weight"),
        "row {r} is out of a's sample"
    );
    assert_ne!(
        base.tensor("members.c.trunk.0.weight"),
        other.tensor("members.c.trunk.0.weight"),
        "row {r} is in c's sample"
    );
}

#[test]
fn bagging_trains_the_same_on_both_backends() {
    let train = data(40);
    let mut results = Vec::new();
    for b in backends() {
        let mut model = Model::new(bagged_spec(), 6);
        let h = fit(
            &mut model,
            &train,
            None,
            &cfg(3),
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        results.push((
            h.steps().map(|(_, s)| s.total).collect::<Vec<f32>>(),
            model.params,
        ));
    }
    if let [(cpu_l, cpu_w), (gpu_l, gpu_w)] = &results[..] {
        common::assert_same_losses("bagging", &per_step(cpu_l), &per_step(gpu_l));
        common::assert_same_weights("bagging", cpu_w, gpu_w);
    }
}

#[test]
fn bagging_needs_the_concat_combiner() {
    let p = ensemble_config("bagging", |t| {
        t.replace("combine = \"stack\"", "combine = \"stack\"\nbagging = true")
    });
    let e = load_err(&p);
    assert!(
        e.contains("bagging") && e.contains("concat") && e.contains("line"),
        "{e}"
    );
}
