//! Model description, parameters and the training graph.
pub mod ensemble;
pub mod network;
pub mod params;
pub mod shared;
pub mod spec;
pub mod weights;

use crate::io::Preprocess;
use network::Network;
use params::ParamLayout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
pub use spec::{
    Activation, Combine, EnsembleSpec, ExpertsSpec, MemberSpec, ModelSpec, TaskKind, TaskSpec,
};

/// A model: its spec, parameter values in the flat layout, and the CSV
/// preprocessing it was trained with (applied again by `predict`).
#[derive(Debug, Clone)]
pub struct Model {
    pub spec: ModelSpec,
    pub network: Network,
    /// Flat parameter values, `network.layout.len` elements.
    pub params: Vec<f32>,
    pub preprocess: Option<Preprocess>,
}

impl Model {
    /// A model with Keras's default initialisation: Glorot-uniform weights
    /// (limit √(6/(in+out))), zero biases, drawn from a seeded generator.
    pub fn new(spec: ModelSpec, seed: u64) -> Model {
        let network = Network::new(&spec);
        let mut params = vec![0.0f32; network.layout.len];
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a6e_6465_6d00);
        for t in &network.layout.tensors {
            if t.shape.len() == 2 {
                let limit = (6.0 / (t.shape[0] + t.shape[1]) as f32).sqrt();
                for v in &mut params[t.offset..t.offset + t.len()] {
                    *v = rng.random_range(-limit..limit);
                }
            }
        }
        let mut model = Model {
            spec,
            network,
            params,
            preprocess: None,
        };
        model.init_stack_combiners();
        model
    }

    /// A stacking combiner starts as the members' average, so training begins
    /// from soft voting: W[c, m·C + c] = 1/M (values, logits) or, for binary
    /// tasks whose members output probabilities, the tangent of the logit at
    /// ½: z = 4·(p̄ − ½), i.e. W = 4/M, b = −2.
    fn init_stack_combiners(&mut self) {
        let Some(e) = &self.spec.ensemble else { return };
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
            let (scale, bias) = if t.kind == TaskKind::Binary {
                (4.0 / m as f32, -2.0)
            } else {
                (1.0 / m as f32, 0.0)
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
