//! The graph vocabulary every architecture is written in: a [`Graph`] (the
//! buffers and ops of one pass over a batch), [`Layer`]s and their buffers,
//! the one builder of dense-layer arguments ([`DenseCall`]), a chain of dense
//! layers forward and backward ([`Chain`]), and the gated-sum helpers.
//!
//! This module knows no architecture: `arch/` and `blocks/` build on it.

use super::params::DenseSlot;
use super::spec::Activation;
use crate::backend::Backend;
use crate::ops::{BufId, DenseArgs, GateArgs, Op};
use crate::{Error, Result};

/// One dense layer and the activation after it.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub slot: DenseSlot,
    pub act: Activation,
}

/// Output and output-gradient buffers of one layer, [N, out] each.
#[derive(Debug, Clone, Copy)]
pub struct LayerBufs {
    pub y: BufId,
    /// None in inference-only graphs.
    pub dy: Option<BufId>,
}

impl LayerBufs {
    /// The gradient buffer (training graphs only).
    pub fn d(&self) -> BufId {
        self.dy.expect("training graph")
    }
}

/// What every op of one pass shares: its batch rows, whether it trains, and
/// the flat parameter (and gradient) buffers.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Rows of the batch, N.
    pub n: usize,
    /// Training graphs get gradient buffers and backward ops.
    pub train: bool,
    pub params: BufId,
    pub grads: Option<BufId>,
}

impl Pass {
    /// The gradient buffer when this pass records a backward, else None.
    pub fn backward(&self) -> Option<BufId> {
        if self.train {
            self.grads
        } else {
            None
        }
    }

    /// Allocates the output (and, for training, gradient) buffer of a layer
    /// with `outputs` values per row.
    pub fn bufs(&self, b: &mut dyn Backend, outputs: usize, name: &str) -> Result<LayerBufs> {
        layer_bufs(b, outputs, self.n, name, self.train)
    }

    /// [`Pass::bufs`] when `wanted`, else None.
    pub fn bufs_if(
        &self,
        wanted: bool,
        b: &mut dyn Backend,
        outputs: usize,
        name: &str,
    ) -> Result<Option<LayerBufs>> {
        Ok(if wanted {
            Some(self.bufs(b, outputs, name)?)
        } else {
            None
        })
    }
}

/// The elements of buffer `name`, the product of `factors`: an overflow is an
/// error naming the buffer (the backend then checks the bytes against its limits).
pub fn elems(name: &str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |n, &f| n.checked_mul(f))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "buffer `{name}`: {factors:?} elements overflow the address space"
            ))
        })
}

/// Allocates one layer's output (and, for training, its gradient) buffer.
pub fn layer_bufs(
    b: &mut dyn Backend,
    outputs: usize,
    batch: usize,
    name: &str,
    train: bool,
) -> Result<LayerBufs> {
    let n = elems(name, &[batch, outputs])?;
    Ok(LayerBufs {
        y: b.alloc(n, name)?,
        dy: if train {
            Some(b.alloc(n, &format!("d {name}"))?)
        } else {
            None
        },
    })
}

/// The buffers and ops of one pass over a batch of `batch` rows.
#[derive(Debug, Clone)]
pub struct Graph {
    pub batch: usize,
    /// The batch input [N, I] (the gather writes it).
    pub x: BufId,
    /// Per task, what its loss reads: logits (binary, multiclass) or values (regression), [N, C_j].
    pub logits: Vec<BufId>,
    /// Per task, the loss's gradient w.r.t. `logits` (training graphs only).
    pub logits_grad: Vec<Option<BufId>>,
    /// x → logits.
    pub forward: Vec<Op>,
    /// logits_grad → every trainable parameter's gradient (empty for inference).
    pub backward: Vec<Op>,
    /// Per task, what `logits` holds.
    pub form: Vec<OutputForm>,
    /// Per task, with how many members `logits` is stacked [M·N, C] (1: [N, C]).
    pub stacked: Vec<usize>,
    /// Per task, every member's output [M, N, C] (ensembles only), with M and
    /// whether the task's activation is still to be applied (`concat` trains
    /// on member logits): the predictor reports their spread.
    pub members: Vec<Option<MemberOutputs>>,
    /// Gated architectures: the gates' softmax output [T, N, E] and E.
    pub gates: Option<(BufId, usize)>,
    /// Training graphs of a `gradnorm` spec: each task's gradient of the last
    /// shared representation, [T, len], and len (summed into the shared gradient
    /// by the backward ops).
    pub rep_split: Option<(BufId, usize)>,
}

impl Graph {
    /// The graph of a model whose tasks each end in their own output layer
    /// (hard sharing, MMoE, PLE): logits are those layers' outputs, one row
    /// per batch row; no members, no gates, no GradNorm split (set them with
    /// struct update syntax where the architecture has them).
    pub fn with_heads(
        batch: usize,
        x: BufId,
        heads: &[Vec<LayerBufs>],
        forward: Vec<Op>,
        backward: Vec<Op>,
    ) -> Graph {
        let out = |h: &Vec<LayerBufs>| *h.last().expect("a head has an output layer");
        let tasks = heads.len();
        Graph {
            batch,
            x,
            logits: heads.iter().map(|h| out(h).y).collect(),
            logits_grad: heads.iter().map(|h| out(h).dy).collect(),
            forward,
            backward,
            form: vec![OutputForm::Logits; tasks],
            stacked: vec![1; tasks],
            members: vec![None; tasks],
            gates: None,
            rep_split: None,
        }
    }
}

/// Every member's output for one task, [M, N, C].
#[derive(Debug, Clone, Copy)]
pub struct MemberOutputs {
    pub buf: BufId,
    pub members: usize,
    /// True when the buffer holds logits (apply the task's activation first).
    pub logits: bool,
}

/// What a task's output buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputForm {
    /// Logits (binary, multiclass) or values (regression).
    Logits,
    /// Probabilities already (an ensemble's averaged sigmoid outputs).
    Probabilities,
}

/// A buffer of `len` ones (the gate of a plain sum over tasks).
pub fn ones(b: &mut dyn Backend, len: usize) -> Result<BufId> {
    let buf = b.alloc(len, "ones")?;
    b.write(buf, 0, &vec![1.0; len])?;
    Ok(buf)
}

/// out [rows, width] = Σ_j split[j, rows, width]: the per-task gradients of a
/// shared representation summed, as a gated sum with a gate of ones [rows, T].
pub fn sum_over_tasks(
    ops: &mut Vec<Op>,
    split: BufId,
    ones: BufId,
    out: BufId,
    tasks: usize,
    rows: usize,
    width: usize,
) {
    ops.push(Op::GatedSumForward {
        args: GateArgs {
            rows: rows as u32,
            experts: tasks as u32,
            width: width as u32,
            g_stride: tasks as u32,
            ..Default::default()
        },
        g: ones,
        ex: split,
        out,
    });
}

/// Builds the [`DenseArgs`] of one dense dispatch: a layer over N rows, or
/// several copies of it (experts, gates, members, heads) with the copy index
/// on the grid. Start from [`DenseCall::new`], then say where the copies'
/// parameters, inputs and outputs are.
#[derive(Debug, Clone, Copy)]
pub struct DenseCall {
    args: DenseArgs,
    /// Elements of the slot's W and b together (the interleaved copy stride).
    len: usize,
}

impl DenseCall {
    /// `slot`'s layer over `n` rows followed by `act`: one copy, input and
    /// output at offset 0, no accumulation.
    pub fn new(slot: &DenseSlot, n: usize, act: Activation) -> DenseCall {
        DenseCall {
            args: DenseArgs {
                n: n as u32,
                i: slot.inputs as u32,
                o: slot.outputs as u32,
                act: act.code(),
                w_off: slot.w as u32,
                b_off: slot.b() as u32,
                batches: 1,
                ..Default::default()
            },
            len: slot.len(),
        }
    }

    /// `count` copies placed one after another (`ParamLayout::add_dense` per
    /// copy): copy k's W and b are `k·slot.len()` past the first's.
    pub fn interleaved(mut self, count: usize) -> DenseCall {
        self.args.batches = count as u32;
        self.args.w_bstride = self.len as u32;
        self.args.b_bstride = self.len as u32;
        self
    }

    /// `count` copies of a dense group (`ParamLayout::add_dense_group`): copy
    /// k's W is `k·in·out` and its b `k·out` past the first's.
    pub fn grouped(mut self, count: usize) -> DenseCall {
        self.args.batches = count as u32;
        self.args.w_bstride = self.args.i * self.args.o;
        self.args.b_bstride = self.args.o;
        self
    }

    /// Starts at copy `first` of the layer's copies (strides as set before).
    pub fn from_copy(mut self, first: usize) -> DenseCall {
        self.args.w_off += first as u32 * self.args.w_bstride;
        self.args.b_off += first as u32 * self.args.b_bstride;
        self
    }

    /// Copy k writes its own [N, O] block of the output, [copies, N, O].
    pub fn stacked_outputs(mut self) -> DenseCall {
        self.args.y_bstride = self.args.n * self.args.o;
        self
    }

    /// Copy k reads its own [N, I] block of the input, [copies, N, I]
    /// (when `own`; else every copy reads the same input).
    pub fn own_inputs(mut self, own: bool) -> DenseCall {
        self.args.x_bstride = if own { self.args.n * self.args.i } else { 0 };
        self
    }

    /// The input starts at element `off` of its buffer.
    pub fn x_at(mut self, off: usize) -> DenseCall {
        self.args.x_off = off as u32;
        self
    }

    /// The output starts at element `off` of its buffer.
    pub fn y_at(mut self, off: usize) -> DenseCall {
        self.args.y_off = off as u32;
        self
    }

    /// The output and its gradient start at element `off` of their buffers.
    pub fn y_dy_at(mut self, off: usize) -> DenseCall {
        self.args.y_off = off as u32;
        self.args.dy_off = off as u32;
        self
    }

    /// The input's gradient starts at element `off` of its buffer.
    pub fn dx_at(mut self, off: usize) -> DenseCall {
        self.args.dx_off = off as u32;
        self
    }

    /// The input's gradient adds to what its buffer holds.
    pub fn accumulate(mut self, accumulate: bool) -> DenseCall {
        self.args.accumulate = accumulate as u32;
        self
    }

    /// The arguments.
    pub fn args(self) -> DenseArgs {
        self.args
    }
}

/// One dense dispatch: its arguments, its input and its output buffers.
#[derive(Debug, Clone, Copy)]
pub struct Dense {
    pub args: DenseArgs,
    pub x: BufId,
    pub y: LayerBufs,
}

impl Dense {
    /// y = act(x·Wᵀ + b).
    pub fn forward(&self, ops: &mut Vec<Op>, params: BufId) {
        ops.push(Op::DenseForward {
            args: self.args,
            x: self.x,
            params,
            y: self.y.y,
        });
    }

    /// The parameters' gradient into `grads`.
    pub fn backward_weight(&self, ops: &mut Vec<Op>, grads: BufId) {
        ops.push(Op::DenseBackwardWeight {
            args: self.args,
            dy: self.y.d(),
            y: self.y.y,
            x: self.x,
            grads,
        });
    }

    /// The input's gradient into `dx`, with `args` (this dispatch's, or
    /// adjusted: offsets, accumulation).
    pub fn backward_input(&self, ops: &mut Vec<Op>, args: DenseArgs, params: BufId, dx: BufId) {
        ops.push(Op::DenseBackwardInput {
            args,
            dy: self.y.d(),
            y: self.y.y,
            params,
            dx,
        });
    }
}

/// A buffer and an element offset into it.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub buf: BufId,
    pub off: usize,
}

impl At {
    /// `buf` from element 0.
    pub fn start(buf: BufId) -> At {
        At { buf, off: 0 }
    }
}

/// A chain of dense layers over one batch, each reading the previous one's
/// output: a dense stack (a trunk, an expert, a head).
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a> {
    pub layers: &'a [Layer],
    pub bufs: &'a [LayerBufs],
}

impl Chain<'_> {
    /// Allocates the chain's buffers, `{name}.{i}` for layer i (from `first`).
    pub fn alloc(
        b: &mut dyn Backend,
        pass: &Pass,
        layers: &[Layer],
        name: &str,
        first: usize,
    ) -> Result<Vec<LayerBufs>> {
        layers
            .iter()
            .enumerate()
            .skip(first)
            .map(|(i, l)| pass.bufs(b, l.slot.outputs, &format!("{name}.{i}")))
            .collect()
    }

    /// Forward ops from `input`; returns the last output (`input` itself for
    /// an empty chain).
    pub fn forward(&self, ops: &mut Vec<Op>, pass: &Pass, input: At) -> BufId {
        let mut x = input;
        for (l, b) in self.layers.iter().zip(self.bufs) {
            let args = DenseCall::new(&l.slot, pass.n, l.act).x_at(x.off).args();
            ops.push(Op::DenseForward {
                args,
                x: x.buf,
                params: pass.params,
                y: b.y,
            });
            x = At::start(b.y);
        }
        x.buf
    }

    /// Backward ops of the chain fed by `input`: parameter gradients into
    /// `grads`, and the input's gradient where `input_grad` says.
    pub fn backward(
        &self,
        ops: &mut Vec<Op>,
        pass: &Pass,
        grads: BufId,
        input: At,
        input_grad: Option<InputGrad>,
    ) {
        for k in (0..self.layers.len()).rev() {
            let (l, b) = (&self.layers[k], &self.bufs[k]);
            let (x, dx) = if k > 0 {
                let prev = &self.bufs[k - 1];
                (At::start(prev.y), prev.dy.map(InputGrad::write))
            } else {
                (input, input_grad)
            };
            let call = DenseCall::new(&l.slot, pass.n, l.act);
            ops.push(Op::DenseBackwardWeight {
                args: call.x_at(x.off).args(),
                dy: b.d(),
                y: b.y,
                x: x.buf,
                grads,
            });
            if let Some(dx) = dx {
                ops.push(Op::DenseBackwardInput {
                    args: call.accumulate(dx.accumulate).dx_at(dx.at.off).args(),
                    dy: b.d(),
                    y: b.y,
                    params: pass.params,
                    dx: dx.at.buf,
                });
            }
        }
    }
}

/// Where the gradient of a chain's input goes, and whether it adds to what
/// is there (an input feeding several chains sums their gradients).
#[derive(Debug, Clone, Copy)]
pub struct InputGrad {
    pub at: At,
    pub accumulate: bool,
}

impl InputGrad {
    /// Overwrites `buf` from element 0.
    pub fn write(buf: BufId) -> InputGrad {
        InputGrad {
            at: At::start(buf),
            accumulate: false,
        }
    }
}
