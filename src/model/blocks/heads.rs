//! Task heads: per task, hidden dense layers with the model's activation,
//! then an identity output layer (`heads.{task}.{i}`), each head a chain on
//! its own input (the trunk's output, a task's mixture of experts).

use crate::backend::Backend;
use crate::model::graph::{At, Chain, InputGrad, Layer, LayerBufs, Pass};
use crate::model::params::ParamLayout;
use crate::model::spec::{Activation, ModelSpec};
use crate::ops::{BufId, Op};
use crate::Result;

/// Places every task's head (`heads.{task}.{i}`) on an input of `width`.
pub fn place(spec: &ModelSpec, layout: &mut ParamLayout, width: usize) -> Vec<Vec<Layer>> {
    spec.tasks
        .iter()
        .map(|task| {
            place_head(
                layout,
                &format!("heads.{}", task.name),
                0,
                width,
                &task.head,
                task.outputs,
                spec.activation,
            )
        })
        .collect()
}

/// Places one head numbered from `first` (`{prefix}.{first}`, …): hidden
/// layers of `hidden` units with `act`, then an identity output layer.
pub fn place_head(
    layout: &mut ParamLayout,
    prefix: &str,
    first: usize,
    inputs: usize,
    hidden: &[usize],
    outputs: usize,
    act: Activation,
) -> Vec<Layer> {
    let mut layers = Vec::new();
    let mut w = inputs;
    for (k, &h) in hidden.iter().enumerate() {
        let slot = layout.add_dense(&format!("{prefix}.{}", first + k), w, h);
        layers.push(Layer { slot, act });
        w = h;
    }
    let slot = layout.add_dense(&format!("{prefix}.{}", first + hidden.len()), w, outputs);
    layers.push(Layer {
        slot,
        act: Activation::Identity,
    });
    layers
}

/// Every task's head layers from layer `skip` on, with their buffers.
pub struct Heads<'a> {
    pub layers: &'a [Vec<Layer>],
    pub bufs: Vec<Vec<LayerBufs>>,
    pub skip: usize,
}

impl<'a> Heads<'a> {
    /// Allocates the buffers of every head's layers from `skip` on (`heads.{j}.{i}`).
    pub fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        layers: &'a [Vec<Layer>],
        skip: usize,
    ) -> Result<Heads<'a>> {
        let bufs = layers
            .iter()
            .enumerate()
            .map(|(j, h)| Chain::alloc(b, pass, h, &format!("heads.{j}"), skip))
            .collect::<Result<Vec<_>>>()?;
        Ok(Heads { layers, bufs, skip })
    }

    /// Task `j`'s head as a chain.
    pub fn chain(&self, j: usize) -> Chain<'_> {
        Chain {
            layers: &self.layers[j][self.skip..],
            bufs: &self.bufs[j],
        }
    }

    /// Task `j`'s forward ops from its input.
    pub fn forward(&self, ops: &mut Vec<Op>, pass: &Pass, j: usize, input: At) -> BufId {
        self.chain(j).forward(ops, pass, input)
    }

    /// Task `j`'s backward ops: its parameters' gradients, and its input's
    /// gradient where `input_grad` says.
    pub fn backward(
        &self,
        ops: &mut Vec<Op>,
        pass: &Pass,
        grads: BufId,
        j: usize,
        input: At,
        input_grad: Option<InputGrad>,
    ) {
        self.chain(j).backward(ops, pass, grads, input, input_grad);
    }
}
