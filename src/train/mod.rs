//! Training: the trainer, metrics and prediction.
pub mod bagging;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod distributed;
pub mod fit;
pub mod metrics;
pub mod predict;
pub mod step;
pub mod trainer;
pub mod weighting;

pub use crate::backend::select::{open_backend, BackendChoice};
pub use checkpoint::{Checkpoint, CheckpointPolicy};
pub use collective::{Collective, SingleProcess};
pub use distributed::step::CommTimes;
pub use fit::{
    allocation, evaluate, evaluate_loss, fit, fit_with, forward, predict, EpochReport, Event,
    FitOptions, History, Interrupted,
};
pub use predict::{task_losses, weighted_loss, Outputs, Predictions, Predictor, TaskPrediction};
pub use trainer::{StepLoss, Trainer, TrainerState};
