//! Model description, parameters and the training graph.
//!
//! - [`spec`]: what the model is (saved in its file's metadata).
//! - [`params`]: every tensor's place in one flat vector.
//! - [`graph`]: the vocabulary of a pass (buffers, dense calls, chains);
//!   [`blocks`]: paired forward/backward building blocks; [`arch`]: one file
//!   per architecture, composed from them; [`network`]: the spec's
//!   architecture placed and its graph built.
//! - [`weights`]: safetensors files.
pub mod arch;
pub mod blocks;
pub mod graph;
pub mod network;
pub mod params;
pub mod spec;
pub mod weights;

use crate::{Error, Result};
use network::Network;
use params::ParamLayout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
pub use spec::preprocess::Preprocess;
pub use spec::{
    Activation, Architecture, Combine, EnsembleSpec, ExpertsSpec, MemberSpec, ModelSpec, PleSpec,
    TaskKind, TaskSpec,
};

/// Name prefix of the learned uncertainty-weighting log-variances s_j.
pub const LOG_VAR_PREFIX: &str = "weighting.log_var.";
/// Initial s_j (LibMTL's `UW`): λ_j = 1/(2·exp(−0.5)) ≈ 0.82 at the start.
pub const LOG_VAR_INIT: f32 = -0.5;
/// Name prefix of GradNorm's weight logits p_j (λ = T·softmax(p)).
pub const GRADNORM_PREFIX: &str = "weighting.gradnorm.";
/// Initial p_j (LibMTL's `GradNorm`): equal, so every λ_j starts at 1.
pub const GRADNORM_INIT: f32 = 1.0;

/// The initial value of a weighting tensor (state that an `--init` file from
/// another framework lacks), or None for a model weight.
pub fn weighting_init(name: &str) -> Option<f32> {
    if name.starts_with(LOG_VAR_PREFIX) {
        Some(LOG_VAR_INIT)
    } else if name.starts_with(GRADNORM_PREFIX) {
        Some(GRADNORM_INIT)
    } else {
        None
    }
}

/// `len` zeros, allocated fallibly: an error naming `what` and the bytes
/// when the memory is not there.
pub fn zeros(len: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Invalid(format!(
            "{what}: cannot allocate {} bytes ({len} f32)",
            len as u128 * 4
        ))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

/// A model: its spec, parameter values in the flat layout, and the CSV
/// preprocessing it was trained with (applied again by `predict`).
#[derive(Debug, Clone)]
pub struct Model {
    pub spec: ModelSpec,
    pub network: Network,
    /// Flat parameter values, `network.layout.len` elements.
    pub params: Vec<f32>,
    pub preprocess: Option<Preprocess>,
    /// λ_j per trained epoch, across every `fit` of this model (saved in the
    /// metadata as `task_weights`, plotted by `tandem inspect`).
    pub task_weights: Vec<Vec<f32>>,
}

impl Model {
    /// A model with Keras's default initialisation: Glorot-uniform weights
    /// (limit √(6/(in+out))), zero biases, drawn from a seeded generator.
    /// For a spec that may be invalid or too large (a config's, a file's),
    /// use [`Model::try_new`]: this one trusts the spec.
    pub fn new(spec: ModelSpec, seed: u64) -> Model {
        let network = Network::new(&spec);
        let params = vec![0.0f32; network.layout.len];
        Model::init(spec, network, params, seed)
    }

    /// [`Model::new`] after checking the spec ([`ModelSpec::check`]: tasks,
    /// widths, classes, tandem's size limits) and allocating the parameters
    /// fallibly: an impossible spec is an error, never a panic or an abort.
    pub fn try_new(spec: ModelSpec, seed: u64) -> Result<Model> {
        let size = spec.check()?;
        let network = Network::new(&spec);
        debug_assert_eq!(
            network.layout.len, size.parameters,
            "spec::check counts the layout"
        );
        let params = zeros(network.layout.len, "model parameters")?;
        Ok(Model::init(spec, network, params, seed))
    }

    /// Fills `params` (zeros, the layout's length) with the seeded initialisation.
    fn init(spec: ModelSpec, network: Network, mut params: Vec<f32>, seed: u64) -> Model {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a6e_6465_6d00);
        for t in &network.layout.tensors {
            if t.shape.len() == 2 {
                let limit = (6.0 / (t.shape[0] + t.shape[1]) as f32).sqrt();
                for v in &mut params[t.offset..t.offset + t.len()] {
                    *v = rng.random_range(-limit..limit);
                }
            }
            if let Some(v) = weighting_init(&t.name) {
                params[t.offset] = v;
            }
        }
        let mut model = Model {
            spec,
            network,
            params,
            preprocess: None,
            task_weights: Vec::new(),
        };
        model.init_stack_combiners();
        model
    }

    /// A stacking combiner starts as the members' average, so training begins
    /// from soft voting: W[c, m·C + c] = 1/M for regression values; for
    /// members' probabilities, the tangent at uniform of the map back to
    /// logits: binary z = 4·(p̄ − ½) (W = 4/M, b = −2), multiclass
    /// z_c = C·p̄_c (W = C/M, b = 0; softmax ignores the constant).
    fn init_stack_combiners(&mut self) {
        let Some(e) = self.spec.ensemble() else {
            return;
        };
        if e.combine != Combine::Stack {
            return;
        }
        let m = e.members.len();
        for t in &self.spec.tasks {
            let (Some(w), Some(b)) = (
                self.layout()
                    .find(&format!("combiner.{}.weight", t.name))
                    .cloned(),
                self.layout()
                    .find(&format!("combiner.{}.bias", t.name))
                    .cloned(),
            ) else {
                continue;
            };
            let c = t.outputs;
            let (scale, bias) = match t.kind {
                TaskKind::Binary => (4.0 / m as f32, -2.0),
                TaskKind::Multiclass => (c as f32 / m as f32, 0.0),
                TaskKind::Regression => (1.0 / m as f32, 0.0),
            };
            self.params[w.offset..w.offset + w.len()].fill(0.0);
            for row in 0..c {
                for k in 0..m {
                    self.params[w.offset + row * m * c + k * c + row] = scale;
                }
            }
            self.params[b.offset..b.offset + b.len()].fill(bias);
        }
    }

    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.network.layout
    }

    /// Values of the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.layout()
            .find(name)
            .map(|t| &self.params[t.offset..t.offset + t.len()])
    }
}
