//! Golden training traces produced by Keras (tests/fixtures/golden, copied from
//! the project's shared references): tandem must reproduce every step's loss
//! within 1e-4 relative and every final weight within 1e-4 absolute, on the
//! CPU and on the GPU backend.

mod common;

use std::path::{Path, PathBuf};
use tandem::io::load_split;
use tandem::model::weights::read_tensors;
use tandem::{fit, BackendChoice, Config, Model};

fn case_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// The value columns of expected_losses.csv per step (after `step,epoch`):
/// `loss`, or one `<task>_loss` per task (mmoe-uw-small).
fn expected_losses(dir: &Path) -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(dir.join("expected_losses.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .skip(2)
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split(',').skip(2).map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

fn run_case(name: &str, backend: BackendChoice) -> Model {
    let dir = case_dir(name);
    let mut cfg = Config::load(dir.join("config.toml")).unwrap();
    let split = load_split(&mut cfg).unwrap();
    let mut model = Model::from_spec(&cfg.model, cfg.train.seed).unwrap();
    model.load_init(dir.join("init.safetensors")).unwrap();
    let b = tandem::open_backend(backend).unwrap();
    let desc = b.describe();
    let history = fit(&mut model, &split.train, None, &cfg.train, b, &mut |_| {}).unwrap();
    let (columns, want) = expected_losses(&dir);
    let per_task = columns[0] != "loss";
    let got: Vec<Vec<f32>> = history
        .steps()
        .map(|(_, s)| {
            if per_task {
                s.tasks.clone()
            } else {
                vec![s.total]
            }
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{name} on {desc}: number of steps");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        for (c, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{name} on {desc}: step {k} {} {g}, reference {w}",
                columns[c]
            );
        }
    }
    let expected = read_tensors(&dir.join("expected_final.safetensors"), model.layout()).unwrap();
    let mut worst = (0.0f32, String::new());
    for t in &model.layout().tensors {
        let range = t.offset..t.offset + t.len();
        for (a, b) in model.params[range.clone()].iter().zip(&expected[range]) {
            let d = (a - b).abs();
            if d > worst.0 {
                worst = (d, t.name.clone());
            }
        }
    }
    assert!(
        worst.0 <= 1e-4,
        "{name} on {desc}: final weight off by {} in `{}`",
        worst.0,
        worst.1
    );
    println!(
        "golden {name:<18} {desc}: {} steps match the reference, worst weight |Δ| {:.1e}",
        got.len(),
        worst.0
    );
    model
}

#[test]
fn seed_small_cpu() {
    run_case("seed-small", BackendChoice::Cpu);
}

#[test]
fn seed_small_gpu() {
    if common::gpu().is_some() {
        run_case("seed-small", BackendChoice::Gpu);
    }
}

#[test]
fn binary_regression_cpu() {
    run_case("binary-regression", BackendChoice::Cpu);
}

#[test]
fn binary_regression_gpu() {
    if common::gpu().is_some() {
        run_case("binary-regression", BackendChoice::Gpu);
    }
}

#[test]
fn ensemble_stack_cpu() {
    frozen_member_is_untouched(run_case("ensemble-stack", BackendChoice::Cpu));
}

#[test]
fn ensemble_stack_gpu() {
    if common::gpu().is_some() {
        frozen_member_is_untouched(run_case("ensemble-stack", BackendChoice::Gpu));
    }
}

/// m2 is frozen: its tensors after training are bit-identical to its file.
fn frozen_member_is_untouched(model: Model) {
    let dir = case_dir("ensemble-stack");
    let bytes = std::fs::read(dir.join("m2.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in st.tensors() {
        let want: Vec<u32> = view
            .data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got: Vec<u32> = model
            .tensor(&format!("members.m2.{name}"))
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want, "frozen member tensor `{name}` changed");
    }
}

#[test]
fn mmoe_uw_small_cpu() {
    run_case("mmoe-uw-small", BackendChoice::Cpu);
}

#[test]
fn mmoe_uw_small_gpu() {
    if common::gpu().is_some() {
        run_case("mmoe-uw-small", BackendChoice::Gpu);
    }
}
