//! The CPU backend: the readable reference of every kernel (same stems as
//! `shaders/`) and the fallback where no GPU adapter exists.

pub mod activation;
pub mod concat;
pub mod dense;
pub mod ensemble;
pub mod gate;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod multitask;
pub mod optimizer;
pub mod team;
pub mod weighting;

use crate::backend::{Backend, Counters, ProgramId};
use crate::ops::{BufId, Op};
use crate::{Error, Result};

/// Buffers in host memory; ops run as soon as they are asked for.
#[derive(Default)]
pub struct CpuBackend {
    bufs: Vec<Vec<f32>>,
    programs: Vec<Vec<Op>>,
    counters: Counters,
}

impl CpuBackend {
    /// A new, empty CPU backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Direct access to a buffer (tests and debugging).
    pub fn buffer(&self, buf: BufId) -> &[f32] {
        &self.bufs[buf.0]
    }
}

fn u32s(v: &[f32]) -> &[u32] {
    bytemuck::cast_slice(v)
}

fn u32s_mut(v: &mut [f32]) -> &mut [u32] {
    bytemuck::cast_slice_mut(v)
}

/// Takes buffer `id` out of the table so it can be written while others are read.
fn take(bufs: &mut [Vec<f32>], id: BufId) -> Vec<f32> {
    std::mem::take(&mut bufs[id.0])
}

/// Runs one op on host buffers: the CPU twin of one GPU dispatch.
pub fn run_op(bufs: &mut [Vec<f32>], op: &Op) {
    let inputs_and_outputs = op.buffers();
    let outputs: Vec<BufId> = op
        .kernel()
        .bindings()
        .iter()
        .zip(&inputs_and_outputs)
        .filter(|(a, _)| **a == crate::kernel::Access::ReadWrite)
        .map(|(_, b)| *b)
        .collect();
    for (k, a) in inputs_and_outputs.iter().enumerate() {
        for b in &inputs_and_outputs[k + 1..] {
            assert!(a != b, "{:?} binds buffer {} twice", op.kernel(), a.0);
        }
    }
    let mut out: Vec<Vec<f32>> = outputs.iter().map(|&b| take(bufs, b)).collect();
    let b = &*bufs;
    match op {
        Op::DenseForward {
            args, x, params, ..
        } => dense::forward(args, &b[x.0], &b[params.0], &mut out[0]),
        Op::DenseBackwardInput {
            args,
            dy,
            y,
            params,
            ..
        } => dense::backward_input(args, &b[dy.0], &b[y.0], &b[params.0], &mut out[0]),
        Op::DenseBackwardWeight { args, dy, y, x, .. } => {
            dense::backward_weight(args, &b[dy.0], &b[y.0], &b[x.0], &mut out[0])
        }
        Op::ActivationForward { args, x, .. } => activation::forward(args, &b[x.0], &mut out[0]),
        Op::ActivationBackward { args, dy, y, .. } => {
            activation::backward(args, &b[dy.0], &b[y.0], &mut out[0])
        }
        Op::ConcatColumns { args, src, .. } => concat::concat_columns(args, &b[src.0], &mut out[0]),
        Op::SplitColumns { args, src, .. } => concat::split_columns(args, &b[src.0], &mut out[0]),
        Op::LossBce { args, z, label, .. } => {
            let (dz, stats) = out.split_at_mut(1);
            loss::bce(args, &b[z.0], &b[label.0], &mut dz[0], &mut stats[0])
        }
        Op::LossSoftmaxCe { args, z, label, .. } => {
            let (dz, stats) = out.split_at_mut(1);
            loss::softmax_ce(args, &b[z.0], &b[label.0], &mut dz[0], &mut stats[0])
        }
        Op::LossMse { args, z, label, .. } => {
            let (dz, stats) = out.split_at_mut(1);
            loss::mse(args, &b[z.0], &b[label.0], &mut dz[0], &mut stats[0])
        }
        Op::LossCeProb { args, z, label, .. } => {
            let (dz, stats) = out.split_at_mut(1);
            loss::ce_prob(args, &b[z.0], &b[label.0], &mut dz[0], &mut stats[0])
        }
        Op::LossBceProb { args, z, label, .. } => {
            let (dz, stats) = out.split_at_mut(1);
            loss::bce_prob(args, &b[z.0], &b[label.0], &mut dz[0], &mut stats[0])
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
            let (o, log) = out.split_at_mut(1);
            multitask::loss_reduce(
                args,
                &b[stats.0],
                &b[lambda.0],
                u32s(&b[counters.0]),
                &mut o[0],
                &mut log[0],
            )
        }
        Op::LossGradScale { args, out: o, .. } => multitask::grad_scale(args, &b[o.0], &mut out[0]),
        Op::AdamUpdate {
            args,
            grads,
            counters,
            ..
        } => {
            let (p, mv) = out.split_at_mut(1);
            let (m, v) = mv.split_at_mut(1);
            optimizer::adam_update(
                args,
                &b[grads.0],
                u32s(&b[counters.0]),
                &mut p[0],
                &mut m[0],
                &mut v[0],
            )
        }
        Op::SgdUpdate { args, grads, .. } => {
            let (p, u) = out.split_at_mut(1);
            optimizer::sgd_update(args, &b[grads.0], &mut p[0], &mut u[0])
        }
        Op::BatchGather {
            args,
            src,
            idx,
            counters,
            ..
        } => gather::batch_gather(
            args,
            u32s(&b[src.0]),
            u32s(&b[idx.0]),
            u32s(&b[counters.0]),
            u32s_mut(&mut out[0]),
        ),
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
        Op::UncertaintyWeights { args, params, .. } => {
            weighting::uncertainty_weights(args, &b[params.0], &mut out[0])
        }
        Op::UncertaintyFinish {
            args,
            params,
            counters,
            ..
        } => {
            let (o, rest) = out.split_at_mut(1);
            let (g, log) = rest.split_at_mut(1);
            weighting::uncertainty_finish(
                args,
                &b[params.0],
                u32s(&b[counters.0]),
                &mut o[0],
                &mut g[0],
                &mut log[0],
            )
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
        } => weighting::gradnorm_update(
            args,
            &b[lambda.0],
            &b[norms.0],
            &b[o.0],
            &b[initial.0],
            &mut out[0],
        ),
    }
    for (id, data) in outputs.into_iter().zip(out) {
        bufs[id.0] = data;
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
    fn alloc(&mut self, len: usize, _label: &str) -> Result<BufId> {
        self.bufs.push(vec![0.0; len]);
        Ok(BufId(self.bufs.len() - 1))
    }
    fn len(&self, buf: BufId) -> usize {
        self.bufs[buf.0].len()
    }
    fn write(&mut self, buf: BufId, offset: usize, data: &[f32]) -> Result<()> {
        let dst = &mut self.bufs[buf.0];
        if offset + data.len() > dst.len() {
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
                run_op(&mut self.bufs, op);
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
