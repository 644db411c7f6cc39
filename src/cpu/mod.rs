//! The CPU backend: a CPU twin of every kernel (same stems as `shaders/`) and
//! the fallback where no GPU adapter exists. Dense layers and Adam have a fast
//! path here and a plain reference in `reference/`; every other twin is a plain
//! loop and is its own reference.

pub mod activation;
pub mod dense;
pub mod ensemble;
pub mod gate;
pub mod gather;
pub mod guard;
pub mod loss;
pub mod matmul;
pub mod multitask;
pub mod optimizer;
pub mod reference;
pub mod team;
pub mod weighting;

use crate::backend::{Backend, Counters, ProgramId};
use crate::kernel::Access;
use crate::ops::{AdamArgs, BufId, DenseArgs, Op};
use crate::{Error, Result};

/// Which twin runs the kernels that have two (dense layers, Adam).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuPath {
    /// GEMM crate, thread team, SIMD: what training uses.
    #[default]
    Fast,
    /// The plain loops of `cpu::reference`, which the parity tests compare against.
    Reference,
}

/// Buffers in host memory; ops run as soon as they are asked for.
#[derive(Default)]
pub struct CpuBackend {
    bufs: Vec<Vec<f32>>,
    programs: Vec<Vec<Op>>,
    counters: Counters,
    path: CpuPath,
}

impl CpuBackend {
    /// A new, empty CPU backend on the fast path.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty CPU backend that runs the plain references.
    pub fn reference() -> Self {
        CpuBackend {
            path: CpuPath::Reference,
            ..Self::default()
        }
    }

    /// Direct access to a buffer (tests and debugging).
    pub fn buffer(&self, buf: BufId) -> &[f32] {
        &self.bufs[buf.0]
    }
}

/// The most elements of one buffer: the kernels (WGSL and their CPU twins)
/// index with u32.
pub const MAX_BUFFER_ELEMENTS: usize = u32::MAX as usize;

/// A buffer of `len` zeros, allocated fallibly: a size past
/// [`MAX_BUFFER_ELEMENTS`] or beyond the memory there is is an error naming
/// the buffer and its bytes, never a panic or an abort.
fn zeroed(len: usize, label: &str) -> Result<Vec<f32>> {
    let bytes = len as u128 * 4;
    if len > MAX_BUFFER_ELEMENTS {
        return Err(Error::Invalid(format!(
            "buffer `{label}` needs {bytes} bytes ({len} elements); the CPU backend holds \
             at most {MAX_BUFFER_ELEMENTS} elements per buffer (the kernels index with u32)"
        )));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Invalid(format!(
            "buffer `{label}` needs {bytes} bytes ({len} elements): out of memory"
        ))
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

fn u32s(v: &[f32]) -> &[u32] {
    bytemuck::cast_slice(v)
}

fn u32s_mut(v: &mut [f32]) -> &mut [u32] {
    bytemuck::cast_slice_mut(v)
}

/// An op's two outputs (its read_write buffers), in binding order.
fn two(out: &mut [Vec<f32>]) -> (&mut [f32], &mut [f32]) {
    match out {
        [a, b] => (a, b),
        _ => panic!("expected 2 outputs, got {}", out.len()),
    }
}

/// An op's three outputs, in binding order.
fn three(out: &mut [Vec<f32>]) -> (&mut [f32], &mut [f32], &mut [f32]) {
    match out {
        [a, b, c] => (a, b, c),
        _ => panic!("expected 3 outputs, got {}", out.len()),
    }
}

/// Runs one op on host buffers: the CPU twin of one GPU dispatch. The op's
/// read_write buffers are taken out of the table while it runs, so that they
/// can be written while the others are read.
pub fn run_op(bufs: &mut [Vec<f32>], op: &Op, path: CpuPath) {
    let ids = op.buffers();
    for (k, a) in ids.iter().enumerate() {
        for b in &ids[k + 1..] {
            assert!(a != b, "{:?} binds buffer {} twice", op.kernel(), a.0);
        }
    }
    let outputs: Vec<BufId> = (op.kernel().bindings().iter().zip(&ids))
        .filter(|(access, _)| **access == Access::ReadWrite)
        .map(|(_, id)| *id)
        .collect();
    let mut out: Vec<Vec<f32>> = outputs
        .iter()
        .map(|&id| std::mem::take(&mut bufs[id.0]))
        .collect();
    let twins = match path {
        CpuPath::Fast => &FAST,
        CpuPath::Reference => &REFERENCE,
    };
    execute(bufs, &mut out, op, twins);
    for (id, data) in outputs.into_iter().zip(out) {
        bufs[id.0] = data;
    }
}

/// (args, x, params, y).
type DenseForwardFn = fn(&DenseArgs, &[f32], &[f32], &mut [f32]);
/// (args, dy, y, params or x, dx or grads).
type DenseBackwardFn = fn(&DenseArgs, &[f32], &[f32], &[f32], &mut [f32]);
/// (args, grads, counters, factors, params, m, v).
type AdamFn = fn(&AdamArgs, &[f32], &[u32], &[f32], &mut [f32], &mut [f32], &mut [f32]);

/// The CPU twins that differ between the fast path and the reference.
struct Twins {
    dense_forward: DenseForwardFn,
    dense_backward_input: DenseBackwardFn,
    dense_backward_weight: DenseBackwardFn,
    adam_update: AdamFn,
}

const FAST: Twins = Twins {
    dense_forward: dense::forward,
    dense_backward_input: dense::backward_input,
    dense_backward_weight: dense::backward_weight,
    adam_update: optimizer::adam_update,
};

const REFERENCE: Twins = Twins {
    dense_forward: reference::dense::forward,
    dense_backward_input: reference::dense::backward_input,
    dense_backward_weight: reference::dense::backward_weight,
    adam_update: reference::optimizer::adam_update,
};

/// Runs `op`, reading its inputs from `b` and writing `out` (its read_write
/// buffers, in binding order). One arm per `Op` variant: a kernel without a
/// CPU twin does not compile.
fn execute(b: &[Vec<f32>], out: &mut [Vec<f32>], op: &Op, t: &Twins) {
    match op {
        Op::DenseForward {
            args, x, params, ..
        } => (t.dense_forward)(args, &b[x.0], &b[params.0], &mut out[0]),
        Op::DenseBackwardInput {
            args,
            dy,
            y,
            params,
            ..
        } => (t.dense_backward_input)(args, &b[dy.0], &b[y.0], &b[params.0], &mut out[0]),
        Op::DenseBackwardWeight { args, dy, y, x, .. } => {
            (t.dense_backward_weight)(args, &b[dy.0], &b[y.0], &b[x.0], &mut out[0])
        }
        Op::Loss {
            kind,
            args,
            z,
            label,
            ..
        } => {
            let (dz, stats) = two(out);
            loss::compute(*kind, args, &b[z.0], &b[label.0], dz, stats)
        }
        Op::EnsembleMeanForward { args, src, .. } => {
            ensemble::mean_forward(args, &b[src.0], &mut out[0])
        }
        Op::EnsembleMeanBackward { args, src, .. } => {
            ensemble::mean_backward(args, &b[src.0], &mut out[0])
        }
        Op::MembersToRows { args, src, .. } => {
            ensemble::members_to_rows(args, &b[src.0], &mut out[0])
        }
        Op::RowsToMembers { args, src, .. } => {
            ensemble::rows_to_members(args, &b[src.0], &mut out[0])
        }
        Op::MultitaskLossReduce {
            args,
            stats,
            lambda,
            counters,
            ..
        } => {
            let (o, log) = two(out);
            let counters = u32s(&b[counters.0]);
            multitask::loss_reduce(args, &b[stats.0], &b[lambda.0], counters, o, log)
        }
        Op::LossGradScale { args, out: o, .. } => multitask::grad_scale(args, &b[o.0], &mut out[0]),
        Op::AdamUpdate {
            args,
            grads,
            counters,
            factors,
            ..
        } => {
            let (p, m, v) = three(out);
            let (g, f) = (&b[grads.0], &b[factors.0]);
            (t.adam_update)(args, g, u32s(&b[counters.0]), f, p, m, v)
        }
        Op::SgdUpdate {
            args,
            grads,
            counters,
            ..
        } => {
            let (p, u) = two(out);
            optimizer::sgd_update(args, &b[grads.0], u32s(&b[counters.0]), p, u)
        }
        Op::BatchGather {
            args,
            src,
            idx,
            counters,
            ..
        } => {
            let (src, idx, counters) = (u32s(&b[src.0]), u32s(&b[idx.0]), u32s(&b[counters.0]));
            gather::batch_gather(args, src, idx, counters, u32s_mut(&mut out[0]))
        }
        Op::StepAdvance { .. } => gather::step_advance(u32s_mut(&mut out[0])),
        Op::GateSoftmax { args, x, .. } => gate::softmax(args, &b[x.0], &mut out[0]),
        Op::GateSoftmaxBackward { args, dy, y, .. } => {
            gate::softmax_backward(args, &b[dy.0], &b[y.0], &mut out[0])
        }
        Op::GatedSumForward { args, g, ex, .. } => {
            gate::sum_forward(args, &b[g.0], &b[ex.0], &mut out[0])
        }
        Op::GatedSumBackwardExperts { args, g, dout, .. } => {
            gate::sum_backward_experts(args, &b[g.0], &b[dout.0], &mut out[0])
        }
        Op::GatedSumBackwardGate { args, dout, ex, .. } => {
            gate::sum_backward_gate(args, &b[dout.0], &b[ex.0], &mut out[0])
        }
        Op::UncertaintyWeights { .. }
        | Op::UncertaintyFinish { .. }
        | Op::GradnormSumsq { .. }
        | Op::GradnormWeights { .. }
        | Op::GradnormUpdate { .. } => execute_weighting(b, out, op),
        Op::NonfiniteCheck {
            args,
            out: o,
            grads,
            ..
        } => guard::nonfinite_check(args, &b[o.0], &b[grads.0], u32s_mut(&mut out[0])),
    }
}

/// The task weighting's ops (`execute` hands them over): one arm each.
fn execute_weighting(b: &[Vec<f32>], out: &mut [Vec<f32>], op: &Op) {
    match op {
        Op::UncertaintyWeights { args, params, .. } => {
            weighting::uncertainty_weights(args, &b[params.0], &mut out[0])
        }
        Op::UncertaintyFinish {
            args,
            params,
            counters,
            ..
        } => {
            let (o, g, log) = three(out);
            weighting::uncertainty_finish(args, &b[params.0], u32s(&b[counters.0]), o, g, log)
        }
        Op::GradnormSumsq { args, split, .. } => {
            weighting::gradnorm_sumsq(args, &b[split.0], &mut out[0])
        }
        Op::GradnormWeights { args, params, .. } => {
            weighting::gradnorm_weights(args, &b[params.0], &mut out[0])
        }
        Op::GradnormUpdate {
            args,
            lambda,
            norms,
            out: o,
            initial,
            ..
        } => {
            let (lambda, norms, o, initial) = (&b[lambda.0], &b[norms.0], &b[o.0], &b[initial.0]);
            weighting::gradnorm_update(args, lambda, norms, o, initial, &mut out[0])
        }
        other => unreachable!("{:?} is not a weighting op", other.kernel()),
    }
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        let (gemm, team) = (rayon::current_num_threads(), team::Team::global().threads());
        if gemm == team {
            format!("cpu ({gemm} threads)")
        } else {
            format!("cpu ({gemm} threads, {team} for small kernels)")
        }
    }
    fn is_gpu(&self) -> bool {
        false
    }
    fn alloc(&mut self, len: usize, label: &str) -> Result<BufId> {
        self.bufs.push(zeroed(len, label)?);
        Ok(BufId(self.bufs.len() - 1))
    }
    fn len(&self, buf: BufId) -> usize {
        self.bufs[buf.0].len()
    }
    fn write(&mut self, buf: BufId, offset: usize, data: &[f32]) -> Result<()> {
        let dst = &mut self.bufs[buf.0];
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > dst.len())
        {
            return Err(Error::Invalid(format!(
                "write of {} elements at {offset} past the end of a buffer of {}",
                data.len(),
                dst.len()
            )));
        }
        dst[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn read(&mut self, buf: BufId) -> Result<Vec<f32>> {
        Ok(self.bufs[buf.0].clone())
    }
    fn prepare(&mut self, ops: &[Op]) -> Result<ProgramId> {
        self.programs.push(ops.to_vec());
        Ok(ProgramId(self.programs.len() - 1))
    }
    fn run(&mut self, program: ProgramId, repeats: u32) -> Result<()> {
        let ops = std::mem::take(&mut self.programs[program.0]);
        for _ in 0..repeats {
            for op in &ops {
                run_op(&mut self.bufs, op, self.path);
            }
        }
        self.counters.dispatches += ops.len() as u64 * repeats as u64;
        self.programs[program.0] = ops;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn clear(&mut self) {
        self.bufs.clear();
        self.programs.clear();
    }
    fn counters(&self) -> Counters {
        self.counters
    }
}
