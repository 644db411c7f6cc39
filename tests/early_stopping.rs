//! The validation loss `fit` reports each epoch, and early stopping on it:
//! when it stops, which weights it returns, and the errors of a bad setup.

mod common;

use common::mixed_tasks;
use tandem::io::EarlyStopping;
use tandem::model::Activation;
use tandem::{fit, BackendChoice, Dataset, Model, ModelSpec, TaskKind, TaskSpec, TrainConfig};

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Cpu];
    if common::gpu().is_some() {
        b.push(BackendChoice::Gpu);
    }
    b
}

/// The three tasks of `mixed_tasks`, with unequal weights.
fn spec() -> ModelSpec {
    let task = |name: &str, kind, outputs, weight| TaskSpec {
        name: name.into(),
        kind,
        weight,
        head: vec![],
        outputs,
    };
    ModelSpec {
        inputs: 7,
        architecture: tandem::model::Architecture::Shared { trunk: vec![16] },
        activation: Activation::Relu,
        tasks: vec![
            task("class", TaskKind::Multiclass, 3, 0.5),
            task("multi", TaskKind::Binary, 2, 1.5),
            task("value", TaskKind::Regression, 1, 2.0),
        ],
        ..Default::default()
    }
}

fn cfg(epochs: usize, early_stopping: Option<EarlyStopping>) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        early_stopping,
        optimizer: tandem::io::OptimizerConfig {
            lr: 0.01,
            ..TrainConfig::default().optimizer
        },
        ..Default::default()
    }
}

/// The weighted validation loss of `model` on `data`, from its predictions
/// (probabilities and values) by the textbook formulas.
fn loss_from_predictions(model: &Model, data: &Dataset) -> (f32, Vec<f32>) {
    let mut b = tandem::open_backend(BackendChoice::Cpu).unwrap();
    let p = tandem::predict(model, &data.features, data.rows, b.as_mut()).unwrap();
    let mut per_task = Vec::new();
    for (j, t) in p.tasks.iter().enumerate() {
        let labels = &data.targets[j];
        let (mut sum, mut count) = (0.0f64, 0usize);
        match t.kind {
            TaskKind::Multiclass => {
                for (row, &y) in t.values.chunks_exact(t.outputs).zip(labels) {
                    if !y.is_nan() {
                        sum -= (row[y as usize] as f64).ln();
                        count += 1;
                    }
                }
            }
            TaskKind::Binary => {
                for (&q, &y) in t.values.iter().zip(labels) {
                    if !y.is_nan() {
                        let q = q as f64;
                        sum -= y as f64 * q.ln() + (1.0 - y as f64) * (1.0 - q).ln();
                        count += 1;
                    }
                }
            }
            TaskKind::Regression => {
                for (&v, &y) in t.values.iter().zip(labels) {
                    if !y.is_nan() {
                        sum += ((v - y) as f64).powi(2);
                        count += 1;
                    }
                }
            }
        }
        per_task.push((sum / count as f64) as f32);
    }
    let total = (model.spec.tasks.iter())
        .zip(&per_task)
        .map(|(t, l)| t.weight * l)
        .sum();
    (total, per_task)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn validation_loss_is_the_weighted_task_losses() {
    let (train, valid) = (mixed_tasks(96), mixed_tasks(40));
    for b in backends() {
        let mut model = Model::new(spec(), 3);
        let h = fit(
            &mut model,
            &train,
            Some(&valid),
            &cfg(3, None),
            tandem::open_backend(b).unwrap(),
            &mut |_| {},
        )
        .unwrap();
        let last = h.epochs.last().unwrap();
        let (want, want_tasks) = loss_from_predictions(&model, &valid);
        for (j, (got, want)) in last.valid_task_losses.iter().zip(&want_tasks).enumerate() {
            assert!(close(*got, *want), "{b:?} task {j}: {got} vs {want}");
        }
        let got = last.valid_loss.unwrap();
        assert!(close(got, want), "{b:?}: validation loss {got} vs {want}");
        assert!(h.best_epoch.is_none() && !h.stopped_early && !h.restored_best);
    }
}

/// Validation labels that contradict the training ones: the better the model
/// fits `train`, the worse its validation loss, so early stopping must fire.
fn contradicting(d: &Dataset) -> Dataset {
    let mut v = d.clone();
    for y in &mut v.targets[0] {
        *y = (*y + 1.0) % 3.0; // NaN stays NaN
    }
    for y in &mut v.targets[1] {
        *y = 1.0 - *y;
    }
    for y in &mut v.targets[2] {
        *y = -*y;
    }
    v
}

#[test]
fn early_stopping_stops_and_restores_the_best_epoch() {
    let train = mixed_tasks(96);
    let valid = contradicting(&mixed_tasks(96));
    let patience = 2;
    for restore_best in [true, false] {
        for b in backends() {
            let es = EarlyStopping {
                patience,
                min_delta: 0.0,
                restore_best,
            };
            let mut model = Model::new(spec(), 3);
            let h = fit(
                &mut model,
                &train,
                Some(&valid),
                &cfg(40, Some(es)),
                tandem::open_backend(b).unwrap(),
                &mut |_| {},
            )
            .unwrap();
            let losses: Vec<f32> = h.epochs.iter().map(|e| e.valid_loss.unwrap()).collect();
            let best = h.best_epoch.expect("a best epoch");
            assert!(h.stopped_early, "{b:?}: never stopped: {losses:?}");
            assert_eq!(h.epochs.len(), best + 1 + patience, "{b:?}: {losses:?}");
            let min = losses.iter().copied().fold(f32::INFINITY, f32::min);
            assert_eq!(losses[best], min, "{b:?}: best is the lowest: {losses:?}");
            let (now, _) = loss_from_predictions(&model, &valid);
            let expected = if restore_best {
                losses[best]
            } else {
                *losses.last().unwrap()
            };
            assert!(
                close(now, expected),
                "{b:?} restore_best={restore_best}: model's validation loss {now}, expected {expected} ({losses:?})"
            );
            assert_eq!(h.restored_best, restore_best);
        }
    }
}

#[test]
fn min_delta_decides_what_counts_as_better() {
    let train = mixed_tasks(96);
    let valid = mixed_tasks(40);
    // Nothing improves by 1e9: the first epoch stays best and training stops after 1 + patience.
    let es = EarlyStopping {
        patience: 3,
        min_delta: 1e9,
        restore_best: true,
    };
    let mut model = Model::new(spec(), 3);
    let h = fit(
        &mut model,
        &train,
        Some(&valid),
        &cfg(20, Some(es)),
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((h.best_epoch, h.epochs.len()), (Some(0), 4));
}

#[test]
fn early_stopping_without_validation_rows_is_an_error() {
    let es = EarlyStopping {
        patience: 3,
        min_delta: 0.0,
        restore_best: true,
    };
    let mut model = Model::new(spec(), 3);
    let err = fit(
        &mut model,
        &mixed_tasks(32),
        None,
        &cfg(5, Some(es)),
        tandem::open_backend(BackendChoice::Cpu).unwrap(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("validation"), "{err}");
}
