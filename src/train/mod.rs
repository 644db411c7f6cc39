//! Training: the trainer, metrics and prediction.
pub mod fit;
pub mod metrics;
pub mod predict;
pub mod trainer;
pub mod weighting;

pub use fit::{
    allocation, evaluate, fit, logits, open_backend, predict, BackendChoice, EpochReport, Event,
    History,
};
pub use predict::{Predictions, Predictor, TaskPrediction};
pub use trainer::{StepLoss, Trainer};
