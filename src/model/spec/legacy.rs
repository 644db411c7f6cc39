//! The spec as the first model-file format (`format = "tandem-1"`) saved it:
//! the architecture as three exclusive options beside a trunk, decided in the
//! order ensemble, PLE, MMoE, hard sharing.

use super::{Activation, Architecture, EnsembleSpec, ExpertsSpec, ModelSpec, PleSpec, TaskSpec};
use serde::Deserialize;

/// A `tandem-1` spec, field for field.
#[derive(Deserialize)]
pub struct SpecV1 {
    inputs: usize,
    trunk: Vec<usize>,
    activation: Activation,
    tasks: Vec<TaskSpec>,
    #[serde(default)]
    experts: Option<ExpertsSpec>,
    #[serde(default)]
    ple: Option<PleSpec>,
    #[serde(default)]
    log_vars: bool,
    #[serde(default)]
    gradnorm: bool,
    #[serde(default)]
    ensemble: Option<EnsembleSpec>,
}

impl From<SpecV1> for ModelSpec {
    fn from(v: SpecV1) -> ModelSpec {
        let architecture = match (v.ensemble, v.ple, v.experts) {
            (Some(e), _, _) => Architecture::Ensemble(e),
            (None, Some(p), _) => Architecture::Ple(p),
            (None, None, Some(x)) => Architecture::Mmoe(x),
            (None, None, None) => Architecture::Shared { trunk: v.trunk },
        };
        ModelSpec {
            inputs: v.inputs,
            activation: v.activation,
            tasks: v.tasks,
            architecture,
            log_vars: v.log_vars,
            gradnorm: v.gradnorm,
        }
    }
}
