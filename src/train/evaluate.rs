//! A trained model on rows in memory: forward passes, predictions, the
//! loss and the metrics (each on a backend of the caller's choice).

use super::metrics::TaskMetrics;
use super::predict::{task_losses, task_metrics, to_predictions, weighted_loss};
use super::predict::{Outputs, Predictions, Predictor};
use super::trainer::check_data;
use super::valid::forward_features;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::model::Model;
use crate::Result;

/// A forward program over `features` [rows, inputs], with `model`'s
/// parameters uploaded to `backend`.
fn upload_predictor(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Predictor> {
    let params = backend.alloc(model.params.len(), "params")?;
    backend.write(params, 0, &model.params)?;
    Predictor::new(backend, model, params, features, rows)
}

/// The forward pass of every task for `features` [rows, inputs].
pub fn forward(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Outputs> {
    forward_features(model, features, rows, backend)
}

/// The learned allocation of a gated model: per task, the mean over `rows`
/// of its gate's weight on each expert ([T][E]); None without gates.
pub fn allocation(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Option<Vec<Vec<f32>>>> {
    upload_predictor(model, features, rows, backend)?.mean_gates(backend)
}

/// `model`'s loss on `data`: Σ_j w_j L_j with the configured weights, and the
/// per-task mean losses L_j (what `fit` reports as the validation loss).
pub fn evaluate_loss(
    model: &Model,
    data: &Dataset,
    backend: &mut dyn Backend,
) -> Result<(f32, Vec<f32>)> {
    check_data(model, data, "evaluation")?;
    let out = forward(model, &data.features, data.rows, backend)?;
    let losses = task_losses(model, &out, data);
    Ok((weighted_loss(model, &losses), losses))
}

/// Per-task metrics of `model` on `data`.
pub fn evaluate(
    model: &Model,
    data: &Dataset,
    backend: &mut dyn Backend,
) -> Result<Vec<(String, TaskMetrics)>> {
    check_data(model, data, "evaluation")?;
    let out = forward(model, &data.features, data.rows, backend)?;
    Ok(task_metrics(model, &out, data))
}

/// Probabilities / values of every task for `features` [rows, inputs].
pub fn predict(
    model: &Model,
    features: &[f32],
    rows: usize,
    backend: &mut dyn Backend,
) -> Result<Predictions> {
    let out = forward(model, features, rows, backend)?;
    Ok(to_predictions(model, out, rows))
}
