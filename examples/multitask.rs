//! The seed's program in Rust: a shared Dense(64, relu) trunk feeding two
//! binary heads, loss 0.5·L1 + 0.5·L2, Adam, batch 32, 10 epochs, on synthetic
//! data with 100 features. Runs on the GPU when an adapter exists.
//!
//!     cargo run --release --example multitask

use rand::{Rng, SeedableRng};
use tandem::io::TrainConfig;
use tandem::model::Activation;
use tandem::{BackendChoice, Dataset, Model, ModelSpec, TaskKind, TaskSpec};

/// Rows of 100 features; task 1 and task 2 are two different linear
/// functions of the features (sharing half their weights) passed through a threshold.
fn synthetic(rows: usize, seed: u64) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let w1: Vec<f32> = (0..100).map(|_| rng.random_range(-1.0..1.0)).collect();
    let w2: Vec<f32> = w1
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i < 50 {
                *w
            } else {
                rng.random_range(-1.0..1.0)
            }
        })
        .collect();
    let mut features = Vec::with_capacity(rows * 100);
    let (mut t1, mut t2) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        let x: Vec<f32> = (0..100).map(|_| rng.random_range(-1.0..1.0)).collect();
        let dot = |w: &[f32]| x.iter().zip(w).map(|(a, b)| a * b).sum::<f32>();
        t1.push((dot(&w1) > 0.0) as u8 as f32);
        t2.push((dot(&w2) > 0.0) as u8 as f32);
        features.extend(x);
    }
    Dataset {
        rows,
        inputs: 100,
        features,
        targets: vec![t1, t2],
        feature_names: (0..100).map(|i| format!("x{i}")).collect(),
    }
}

fn main() -> tandem::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let task = |name: &str| TaskSpec {
        name: name.into(),
        kind: TaskKind::Binary,
        weight: 0.5,
        head: vec![],
        outputs: 1,
    };
    let spec = ModelSpec {
        inputs: 100,
        architecture: tandem::model::Architecture::Shared { trunk: vec![64] },
        activation: Activation::Relu,
        tasks: vec![task("task1"), task("task2")],
        ..Default::default()
    };
    // Keras's fit defaults (batch 32, shuffled, Adam at 0.001) for 10 epochs.
    let train = TrainConfig {
        epochs: 10,
        ..Default::default()
    };
    let all = synthetic(5000, 1);
    let (data, valid) = (
        all.select(&(0..4000).collect::<Vec<_>>()),
        all.select(&(4000..5000).collect::<Vec<_>>()),
    );

    let mut model = Model::new(spec, 0);
    let backend = tandem::open_backend(BackendChoice::Auto)?;
    let history = tandem::fit(
        &mut model,
        &data,
        Some(&valid),
        &train,
        backend,
        &mut |event| {
            if let tandem::Event::EpochEnd(r) = event {
                let val = r.valid_loss.unwrap_or(f32::NAN);
                println!(
                    "epoch {:>2}  loss {:.4}  val_loss {val:.4}",
                    r.epoch + 1,
                    r.loss
                );
            }
        },
    )?;
    println!("\ntrained on {}; validation metrics:", history.backend);
    print!(
        "{}",
        tandem::train::metrics::table(&history.epochs.last().unwrap().valid)
    );
    Ok(())
}
