//! Training: the trainer, metrics and prediction.
pub mod bagging;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod distributed;
pub mod evaluate;
pub mod feed;
pub mod fit;
pub mod metrics;
pub mod predict;
pub mod step;
pub mod trainer;
pub mod valid;
pub mod weighting;

pub use crate::backend::select::{open_backend, BackendChoice};
pub use checkpoint::{Checkpoint, CheckpointPolicy};
pub use collective::{Collective, SingleProcess};
pub use distributed::step::CommTimes;
pub use evaluate::{allocation, evaluate, evaluate_loss, forward, predict};
pub use fit::{
    fit, fit_rows, fit_source, fit_with, EpochReport, Event, FitOptions, History, Interrupted,
    ValidRows,
};
pub use predict::{task_losses, weighted_loss, Outputs, Predictions, Predictor, TaskPrediction};
pub use trainer::{StepLoss, TrainRows, Trainer, TrainerState};
