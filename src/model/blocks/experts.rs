//! A mixture's experts: E copies of one dense stack run as one batched dense
//! dispatch per layer (expert index on the grid). Expert e's parameters of a
//! layer follow expert e−1's (`experts.{e}.{l}`), so one stride steps from
//! expert to expert; the first layer reads the shared input, the others each
//! expert's own previous output.
//!
//! Forward:  ex_l = act(ex_{l−1}·W_{e,l}ᵀ + b_{e,l})   every expert e at once, [E, N, H_l]
//! Backward: per layer, from the last, the weight gradients, then the input
//! gradients (none for the shared input: the model's input needs none).

use crate::backend::Backend;
use crate::model::graph::{Dense, DenseCall, Layer, LayerBufs, Pass};
use crate::model::params::ParamLayout;
use crate::ops::{BufId, DenseArgs, Op};
use crate::Result;

/// Places `experts.{e}.{l}` for every layer l (expert after expert within a
/// layer) on an input of `inputs`; returns expert 0's layer per level.
pub fn place(
    layout: &mut ParamLayout,
    count: usize,
    inputs: usize,
    sizes: &[usize],
    act: crate::model::spec::Activation,
) -> Vec<Layer> {
    let mut width = inputs;
    let mut layers = Vec::new();
    for (l, &h) in sizes.iter().enumerate() {
        let mut first = None;
        for e in 0..count {
            let slot = layout.add_dense(&format!("experts.{e}.{l}"), width, h);
            first.get_or_insert(slot);
        }
        layers.push(Layer {
            slot: first.expect("at least one expert"),
            act,
        });
        width = h;
    }
    layers
}

/// `count` interleaved copies of `layer` over N rows, reading one shared
/// input (`own_inputs` false) or each its own: outputs [count, N, O].
pub fn copies_args(layer: &Layer, n: usize, count: usize, own_inputs: bool) -> DenseArgs {
    DenseCall::new(&layer.slot, n, layer.act)
        .interleaved(count)
        .own_inputs(own_inputs)
        .stacked_outputs()
        .args()
}

/// The experts' layers with their buffers for one pass.
pub struct ExpertStack {
    pub layers: Vec<Dense>,
}

impl ExpertStack {
    /// Allocates every layer's output [E, N, H_l] (`experts.{l}`) over input `x`.
    pub fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        layers: &[Layer],
        count: usize,
        x: BufId,
    ) -> Result<ExpertStack> {
        let mut dense = Vec::new();
        let mut input = x;
        for (l, layer) in layers.iter().enumerate() {
            let y: LayerBufs = pass.bufs(b, count * layer.slot.outputs, &format!("experts.{l}"))?;
            dense.push(Dense {
                args: copies_args(layer, pass.n, count, l > 0),
                x: input,
                y,
            });
            input = y.y;
        }
        Ok(ExpertStack { layers: dense })
    }

    /// The last layer's outputs [E, N, H_L].
    pub fn out(&self) -> LayerBufs {
        self.layers.last().expect("at least one expert layer").y
    }

    pub fn forward(&self, ops: &mut Vec<Op>, pass: &Pass) {
        for d in &self.layers {
            d.forward(ops, pass.params);
        }
    }

    pub fn backward(&self, ops: &mut Vec<Op>, pass: &Pass, grads: BufId) {
        for l in (0..self.layers.len()).rev() {
            let d = &self.layers[l];
            d.backward_weight(ops, grads);
            if l > 0 {
                d.backward_input(ops, d.args, pass.params, self.layers[l - 1].y.d());
            }
        }
    }
}
