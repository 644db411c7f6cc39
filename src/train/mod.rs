//! Training: the trainer, metrics and prediction.
pub mod bagging;
pub mod config;
pub mod fit;
pub mod metrics;
pub mod predict;
pub mod trainer;
pub mod weighting;

pub use fit::{
    allocation, evaluate, evaluate_loss, fit, forward, open_backend, predict, BackendChoice,
    EpochReport, Event, History,
};
pub use predict::{task_losses, weighted_loss, Outputs, Predictions, Predictor, TaskPrediction};
pub use trainer::{StepLoss, Trainer};
