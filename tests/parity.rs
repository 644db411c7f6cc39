//! Parity of every kernel: the GPU and the fast CPU path, each against the
//! plain CPU reference (`CpuBackend::reference()`), over awkward shapes, with
//! sentinel-padded buffers that catch out-of-range writes. One line per case,
//! tinygrad style. Without an adapter only the fast CPU path is compared.
//! Run with `--show-output` to see the adapter and the table of worst errors.

mod common;
#[path = "parity/guard.rs"]
mod guard;
#[path = "parity/harness.rs"]
mod harness;

use common::{gpu, random};
use harness::Harness;
use tandem::io::{AdamStyle, TrainConfig};
use tandem::kernel::{Kernel, KERNELS};
use tandem::ops::*;
use tandem::train::step::optimizer::adam_factor_table;

/// Dense kernels accumulate up to K = 257 products in a different order on
/// each backend: absolute error grows like √K·ε·|x||w|.
const DENSE_TOL: (f32, f32) = (2e-5, 1e-4);
/// Element-wise math: the GPU's exp/tanh/log differ from libm by a few ulp.
const ELEM_TOL: (f32, f32) = (1e-5, 1e-4);
/// Data movement and counters must be exact.
const EXACT: (f32, f32) = (0.0, 0.0);

/// Shapes (rows, inputs, outputs) for the dense kernels: unit, odd, tile
/// edges (65 = one past a 64 tile, 257 = one past four), and a medium case.
const DENSE_SHAPES: &[(u32, u32, u32)] = &[
    (1, 1, 1),
    (3, 5, 7),
    (65, 65, 65),
    (257, 3, 65),
    (2, 257, 5),
    (65, 17, 257),
    (128, 96, 80),
];
/// Lengths for the 1-D kernels.
const LENGTHS: &[u32] = &[1, 3, 65, 257, 1000];

type Case = fn(&mut Harness) -> String;

/// Every kernel's parity case. The coverage test fails when one is missing.
const CASES: &[(Kernel, Case)] = &[
    (Kernel::DenseForward, dense_forward),
    (Kernel::DenseBackwardInput, dense_backward_input),
    (Kernel::DenseBackwardWeight, dense_backward_weight),
    (Kernel::LossBce, loss_bce),
    (Kernel::LossSoftmaxCe, loss_softmax_ce),
    (Kernel::LossMse, loss_mse),
    (Kernel::LossBceProb, loss_bce_prob),
    (Kernel::LossCeProb, loss_ce_prob),
    (Kernel::EnsembleMeanForward, ensemble_mean_forward),
    (Kernel::EnsembleMeanBackward, ensemble_mean_backward),
    (Kernel::MembersToRows, members_to_rows),
    (Kernel::RowsToMembers, rows_to_members),
    (Kernel::MultitaskLossReduce, multitask_loss_reduce),
    (Kernel::LossGradScale, loss_grad_scale),
    (Kernel::AdamUpdate, adam_update),
    (Kernel::SgdUpdate, sgd_update),
    (Kernel::BatchGather, batch_gather),
    (Kernel::StepAdvance, step_advance),
    (Kernel::GateSoftmax, gate_softmax),
    (Kernel::GateSoftmaxBackward, gate_softmax_backward),
    (Kernel::GatedSumForward, gated_sum_forward),
    (Kernel::GatedSumBackwardExperts, gated_sum_backward_experts),
    (Kernel::GatedSumBackwardGate, gated_sum_backward_gate),
    (Kernel::UncertaintyWeights, uncertainty_weights),
    (Kernel::UncertaintyFinish, uncertainty_finish),
    (Kernel::GradnormSumsq, gradnorm_sumsq),
    (Kernel::GradnormWeights, gradnorm_weights),
    (Kernel::GradnormUpdate, gradnorm_update),
    (Kernel::NonfiniteCheck, guard::nonfinite_check),
];

#[test]
fn every_kernel_has_a_parity_case() {
    for k in KERNELS.iter().map(|row| row.kernel) {
        assert!(
            CASES.iter().any(|(c, _)| *c == k),
            "kernel {k:?} has no parity case in tests/parity.rs"
        );
    }
}

#[test]
fn parity_all_kernels() {
    let mut gpu = gpu().map(|g| g.lock().unwrap());
    if gpu.is_none() {
        println!("no GPU: comparing the fast CPU path with the reference only");
    }
    for (kernel, case) in CASES {
        let mut h = Harness::new(gpu.as_deref_mut());
        let summary = case(&mut h);
        println!("parity {:<24} ok  {summary}", kernel.entry());
    }
}

fn seed(parts: &[u32]) -> u64 {
    parts
        .iter()
        .fold(17u64, |s, &p| s.wrapping_mul(31).wrapping_add(p as u64))
}

/// A dense layer's buffers: x at offset 3, params (W then b) at offset 5, with
/// `batches` layers side by side.
struct DenseBufs {
    args: DenseArgs,
    x: BufId,
    params: BufId,
}

fn dense_setup(
    h: &mut Harness,
    n: u32,
    i: u32,
    o: u32,
    act: u32,
    batches: u32,
    share_x: bool,
) -> DenseBufs {
    let s = seed(&[n, i, o, act, batches]);
    let xs = if share_x { n * i } else { batches * n * i };
    let x = h.buffer("x", 3, &random(s, xs as usize, -1.0, 1.0));
    let per = o * i + o;
    let params = h.buffer(
        "params",
        5,
        &random(s + 1, (batches * per) as usize, -0.5, 0.5),
    );
    let args = DenseArgs {
        n,
        i,
        o,
        act,
        x_off: 3,
        w_off: 5,
        b_off: 5 + o * i,
        y_off: 2,
        dy_off: 4,
        dx_off: 1,
        batches,
        x_bstride: if share_x { 0 } else { n * i },
        w_bstride: per,
        b_bstride: per,
        y_bstride: n * o,
        accumulate: 0,
    };
    DenseBufs { args, x, params }
}

/// Switches a batched layer to the grouped layout: every item's W in one
/// contiguous [B·O, I] matrix, then every b (`ParamLayout::add_dense_group`).
fn grouped(mut a: DenseArgs) -> DenseArgs {
    a.w_bstride = a.o * a.i;
    a.b_off = a.w_off + a.batches * a.o * a.i;
    a.b_bstride = a.o;
    a
}

/// Batched cases (n, i, o, act, batches) over one shared input.
const SHARED_CASES: &[(u32, u32, u32, u32, u32)] =
    &[(33, 9, 70, 2, 3), (65, 17, 3, 1, 4), (1, 1, 1, 3, 2)];

fn dense_forward(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    let mut cases = 0;
    for &(n, i, o) in DENSE_SHAPES {
        for act in 0..4 {
            h.reset();
            let d = dense_setup(h, n, i, o, act, 1, false);
            let y = h.output("y", 2, (n * o) as usize);
            let op = Op::DenseForward {
                args: d.args,
                x: d.x,
                params: d.params,
                y,
            };
            worst = worst.max(h.check(
                &format!("dense_forward {n}x{i}x{o} act {act}"),
                &[op],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
            cases += 1;
        }
    }
    // Three members in one dispatch, reading one shared input.
    h.reset();
    let d = dense_setup(h, 33, 9, 70, 2, 3, true);
    let y = h.output("y", 2, 3 * 33 * 70);
    let op = Op::DenseForward {
        args: d.args,
        x: d.x,
        params: d.params,
        y,
    };
    worst = worst.max(h.check("dense_forward batched", &[op], DENSE_TOL.0, DENSE_TOL.1));
    // Items sharing their input in the grouped layout (one wide product on the CPU).
    for &(n, i, o, act, b) in SHARED_CASES {
        h.reset();
        let d = dense_setup(h, n, i, o, act, b, true);
        let y = h.output("y", 2, (b * n * o) as usize);
        let op = Op::DenseForward {
            args: grouped(d.args),
            x: d.x,
            params: d.params,
            y,
        };
        worst = worst.max(h.check(
            &format!("dense_forward grouped {b}x{n}x{i}x{o}"),
            &[op],
            DENSE_TOL.0,
            DENSE_TOL.1,
        ));
    }
    // More than 65,535 tiles: the grid folds into a second dimension.
    h.reset();
    let n = 65_536 * 64 + 3;
    let d = dense_setup(h, n, 1, 1, 1, 1, false);
    let y = h.output("y", 2, n as usize);
    let op = Op::DenseForward {
        args: d.args,
        x: d.x,
        params: d.params,
        y,
    };
    worst = worst.max(h.check(
        "dense_forward 65,537 tiles",
        &[op],
        DENSE_TOL.0,
        DENSE_TOL.1,
    ));
    format!(
        "{} cases (+batched, +65,537 tiles), max |Δ| {worst:.2e}",
        cases
    )
}

fn dense_backward_input(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(n, i, o) in DENSE_SHAPES {
        for (act, acc) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            h.reset();
            let mut d = dense_setup(h, n, i, o, act, 1, false);
            d.args.accumulate = acc;
            let s = seed(&[n, i, o, 9]);
            // y is an activation output: keep it in the activation's range.
            let y = h.buffer("y", 2, &random(s, (n * o) as usize, 0.01, 0.99));
            let dy = h.buffer("dy", 4, &random(s + 1, (n * o) as usize, -1.0, 1.0));
            let dx = h.buffer("dx", 1, &random(s + 2, (n * i) as usize, -1.0, 1.0));
            let op = Op::DenseBackwardInput {
                args: d.args,
                dy,
                y,
                params: d.params,
                dx,
            };
            worst = worst.max(h.check(
                &format!("dense_backward_input {n}x{i}x{o} act {act} acc {acc}"),
                &[op],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    // Items sharing their input sum into one dx, in both layouts.
    for &(n, i, o, act, b) in SHARED_CASES {
        for (layout, acc) in [("interleaved", 0), ("grouped", 1)] {
            h.reset();
            let d = dense_setup(h, n, i, o, act, b, true);
            let mut args = if layout == "grouped" {
                grouped(d.args)
            } else {
                d.args
            };
            args.accumulate = acc;
            let s = seed(&[n, i, o, b, 13]);
            let y = h.buffer("y", 2, &random(s, (b * n * o) as usize, 0.01, 0.99));
            let dy = h.buffer("dy", 4, &random(s + 1, (b * n * o) as usize, -1.0, 1.0));
            let dx = h.buffer("dx", 1, &random(s + 2, (n * i) as usize, -1.0, 1.0));
            let op = Op::DenseBackwardInput {
                args,
                dy,
                y,
                params: d.params,
                dx,
            };
            worst = worst.max(h.check(
                &format!("dense_backward_input shared {layout} {b}x{n}x{i}x{o}"),
                &[op],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    format!(
        "{} shapes x 4 activations (+shared input summed), max |Δ| {worst:.2e}",
        DENSE_SHAPES.len()
    )
}

fn dense_backward_weight(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(n, i, o) in DENSE_SHAPES {
        for (act, acc) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            h.reset();
            let mut d = dense_setup(h, n, i, o, act, 1, false);
            d.args.accumulate = acc;
            let s = seed(&[n, i, o, 11]);
            let y = h.buffer("y", 2, &random(s, (n * o) as usize, 0.01, 0.99));
            let dy = h.buffer("dy", 4, &random(s + 1, (n * o) as usize, -1.0, 1.0));
            let grads = h.buffer("grads", 5, &random(s + 2, (o * i + o) as usize, -1.0, 1.0));
            let op = Op::DenseBackwardWeight {
                args: d.args,
                dy,
                y,
                x: d.x,
                grads,
            };
            worst = worst.max(h.check(
                &format!("dense_backward_weight {n}x{i}x{o} act {act} acc {acc}"),
                &[op],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    // Two members with their own inputs in one dispatch.
    h.reset();
    let d = dense_setup(h, 19, 6, 66, 1, 2, false);
    let y = h.buffer("y", 2, &random(5, 2 * 19 * 66, 0.01, 0.99));
    let dy = h.buffer("dy", 4, &random(6, 2 * 19 * 66, -1.0, 1.0));
    let grads = h.output("grads", 5, 2 * (66 * 6 + 66));
    let op = Op::DenseBackwardWeight {
        args: d.args,
        dy,
        y,
        x: d.x,
        grads,
    };
    worst = worst.max(h.check(
        "dense_backward_weight batched",
        &[op],
        DENSE_TOL.0,
        DENSE_TOL.1,
    ));
    // Items sharing their input in the grouped layout (one wide product on the CPU).
    for &(n, i, o, act, b) in SHARED_CASES {
        for acc in [0, 1] {
            h.reset();
            let d = dense_setup(h, n, i, o, act, b, true);
            let mut args = grouped(d.args);
            args.accumulate = acc;
            let s = seed(&[n, i, o, b, 17]);
            let y = h.buffer("y", 2, &random(s, (b * n * o) as usize, 0.01, 0.99));
            let dy = h.buffer("dy", 4, &random(s + 1, (b * n * o) as usize, -1.0, 1.0));
            let grads = h.buffer(
                "grads",
                5,
                &random(s + 2, (b * (o * i + o)) as usize, -1.0, 1.0),
            );
            let op = Op::DenseBackwardWeight {
                args,
                dy,
                y,
                x: d.x,
                grads,
            };
            worst = worst.max(h.check(
                &format!("dense_backward_weight grouped {b}x{n}x{i}x{o} acc {acc}"),
                &[op],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    format!(
        "{} shapes x 4 activations (+batched), max |Δ| {worst:.2e}",
        DENSE_SHAPES.len()
    )
}

/// Labels with every `every`-th element missing (NaN).
fn labels(s: u64, len: usize, every: usize, make: impl Fn(f32) -> f32) -> Vec<f32> {
    random(s, len, 0.0, 1.0)
        .into_iter()
        .enumerate()
        .map(|(k, u)| {
            if every > 0 && k % every == every - 1 {
                f32::NAN
            } else {
                make(u)
            }
        })
        .collect()
}

const LOSS_SHAPES: &[(u32, u32)] = &[(1, 1), (3, 5), (65, 1), (257, 3)];

fn loss_case(h: &mut Harness, kind: LossKind) -> f32 {
    let mut worst = 0.0f32;
    // (every: a missing label every `every` rows; members: outputs of that many
    // members stacked [M·N, C] against one label per row, as `concat` trains them)
    for &(rows, outputs) in LOSS_SHAPES {
        // (…, per_member: labels given per member [N, M, ·], as bagging trains them)
        for (every, members, per_member) in [
            (0usize, 1u32, false),
            (4, 1, false),
            (3, 3, false),
            (5, 3, true),
        ] {
            h.reset();
            let s = seed(&[rows, outputs, every as u32]);
            let n = (members * rows * outputs) as usize;
            let probabilities = matches!(kind, LossKind::BceProb | LossKind::CeProb);
            let (lo, hi) = if probabilities {
                (0.0, 1.0)
            } else {
                (-6.0, 6.0)
            };
            let mut values = random(s, n, lo, hi);
            if probabilities {
                // Exact 0 and 1 take the clamped branch (no gradient).
                for (k, v) in values.iter_mut().enumerate() {
                    match k % 7 {
                        2 => *v = 0.0,
                        5 => *v = 1.0,
                        _ => {}
                    }
                }
            }
            let z = h.buffer("z", 3, &values);
            let width = if matches!(kind, LossKind::SoftmaxCe | LossKind::CeProb) {
                rows as usize
            } else {
                (rows * outputs) as usize
            } * if per_member { members as usize } else { 1 };
            let lab = match kind {
                LossKind::Bce | LossKind::BceProb => {
                    labels(s + 1, width, every, |u| if u < 0.5 { 0.0 } else { 1.0 })
                }
                LossKind::SoftmaxCe | LossKind::CeProb => labels(s + 1, width, every, |u| {
                    (u * outputs as f32).floor().min(outputs as f32 - 1.0)
                }),
                _ => labels(s + 1, width, every, |u| 4.0 * u - 2.0),
            };
            let label = h.buffer("label", 1, &lab);
            let dz = h.output("dz", 2, n);
            let stats = h.output("stats", 4, 2 * (members * rows) as usize);
            let args = LossArgs {
                rows: members * rows,
                outputs,
                z_off: 3,
                label_off: 1,
                dz_off: 2,
                stats_off: 4,
                label_rows: if members > 1 { rows } else { 0 },
                label_members: if per_member { members } else { 0 },
            };
            let op = Op::Loss {
                kind,
                args,
                z,
                label,
                dz,
                stats,
            };
            worst = worst.max(h.check(
                &format!("loss {kind:?} {rows}x{outputs} missing every {every}"),
                &[op],
                ELEM_TOL.0,
                ELEM_TOL.1,
            ));
        }
    }
    worst
}

fn loss_bce(h: &mut Harness) -> String {
    format!(
        "{} shapes, with and without missing labels, max |Δ| {:.2e}",
        LOSS_SHAPES.len(),
        loss_case(h, LossKind::Bce)
    )
}
fn loss_softmax_ce(h: &mut Harness) -> String {
    format!(
        "{} shapes, with and without missing labels, max |Δ| {:.2e}",
        LOSS_SHAPES.len(),
        loss_case(h, LossKind::SoftmaxCe)
    )
}
fn loss_mse(h: &mut Harness) -> String {
    format!(
        "{} shapes, with and without missing labels, max |Δ| {:.2e}",
        LOSS_SHAPES.len(),
        loss_case(h, LossKind::Mse)
    )
}

fn multitask_loss_reduce(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(tasks, rows) in &[(1u32, 1u32), (3, 5), (2, 257), (4, 1000)] {
        h.reset();
        let mut stats = random(seed(&[tasks, rows]), (2 * tasks * rows) as usize, 0.0, 3.0);
        for r in 0..(tasks * rows) as usize {
            stats[2 * r + 1] = if r % 3 == 0 { 0.0 } else { (r % 2 + 1) as f32 };
        }
        if tasks > 1 {
            // The last task has no label in this batch: it contributes 0.
            let base = (2 * (tasks - 1) * rows) as usize;
            for r in 0..rows as usize {
                stats[base + 2 * r] = 0.0;
                stats[base + 2 * r + 1] = 0.0;
            }
        }
        // Stats must start at element 0 of their buffer (the kernel has no offset).
        let stats = h.buffer("stats", 0, &stats);
        let lambda = h.buffer(
            "lambda",
            0,
            &random(seed(&[tasks]), tasks as usize, 0.1, 2.0),
        );
        let counters = h.buffer_u32("counters", &[2, 40]);
        let out = h.output("out", 0, (2 * tasks + 1) as usize);
        let log = h.output("log", 0, (4 * (tasks + 1)) as usize);
        let args = ReduceArgs {
            tasks,
            rows,
            log_slots: 4,
            _pad: 0,
        };
        let op = Op::MultitaskLossReduce {
            args,
            stats,
            lambda,
            counters,
            out,
            log,
        };
        worst = worst.max(h.check(
            &format!("multitask_loss_reduce {tasks} tasks x {rows} rows"),
            &[op],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("4 shapes (one task without labels), max |Δ| {worst:.2e}")
}

fn loss_grad_scale(h: &mut Harness) -> String {
    // The last length needs more than 65,535 workgroups of 256: the 1-D grid
    // folds into a second dimension.
    let folded = 65_535 * 256 + 300;
    for &len in LENGTHS.iter().chain([&folded]) {
        h.reset();
        let out = h.buffer("out", 0, &[0.3, 0.7, 1.5, 2.0 / 3.0, 0.0]);
        let dz = h.buffer("dz", 3, &random(seed(&[len]), len as usize, -1.0, 1.0));
        let args = ScaleArgs {
            len,
            scale_index: 3,
            dz_off: 3,
            _pad: 0,
        };
        h.check(
            &format!("loss_grad_scale {len}"),
            &[Op::LossGradScale { args, out, dz }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        );
    }
    format!("{} lengths (+65,537 workgroups)", LENGTHS.len())
}

fn adam_update(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for (&len, guard) in LENGTHS.iter().flat_map(|l| [(l, 0u32), (l, 5)]) {
        for style in [0u32, 1] {
            h.reset();
            let total = len as usize + 10;
            let grads = h.buffer("grads", 0, &random(seed(&[len, 1]), total, -1.0, 1.0));
            // Step 1 of the epoch, global step t = 7: the factors' second row;
            // a set guard (an earlier step was not finite) leaves everything as it was.
            let counters = h.buffer_u32("counters", &[1, 6, guard, 0, 1]);
            let o = tandem::io::OptimizerConfig {
                lr: 0.01,
                style: [AdamStyle::Keras, AdamStyle::Torch][style as usize],
                ..TrainConfig::default().optimizer
            };
            let factors = h.buffer("factors", 0, &adam_factor_table(&o, 6, 3));
            let params = h.buffer("params", 0, &random(seed(&[len, 2]), total, -1.0, 1.0));
            let m = h.buffer("m", 0, &random(seed(&[len, 3]), total, -0.1, 0.1));
            let v = h.buffer("v", 0, &random(seed(&[len, 4]), total, 0.0, 0.1));
            // Update only [4, 4 + len): the rest must stay as it was.
            let args = AdamArgs {
                len,
                p_off: 4,
                style,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-7,
                ..Default::default()
            };
            let ops = [
                Op::AdamUpdate {
                    args,
                    grads,
                    counters,
                    factors,
                    params,
                    m,
                    v,
                },
                Op::AdamUpdate {
                    args,
                    grads,
                    counters,
                    factors,
                    params,
                    m,
                    v,
                },
            ];
            worst = worst.max(h.check(
                &format!("adam_update {len} style {style} guard {guard}"),
                &ops,
                ELEM_TOL.0,
                ELEM_TOL.1,
            ));
        }
    }
    format!(
        "{} lengths x keras/torch x guard clear/set, 2 steps on a sub-range, max |Δ| {worst:.2e}",
        LENGTHS.len()
    )
}

fn sgd_update(h: &mut Harness) -> String {
    for (&len, guard) in LENGTHS.iter().flat_map(|l| [(l, 0u32), (l, 5)]) {
        h.reset();
        let total = len as usize + 10;
        let grads = h.buffer("grads", 0, &random(seed(&[len, 1]), total, -1.0, 1.0));
        let counters = h.buffer_u32("counters", &[1, 6, guard, 0, 1]);
        let params = h.buffer("params", 0, &random(seed(&[len, 2]), total, -1.0, 1.0));
        let velocity = h.buffer("velocity", 0, &random(seed(&[len, 3]), total, -0.1, 0.1));
        let args = SgdArgs {
            len,
            p_off: 3,
            lr: 0.05,
            momentum: 0.9,
        };
        h.check(
            &format!("sgd_update {len} guard {guard}"),
            &[Op::SgdUpdate {
                args,
                grads,
                counters,
                params,
                velocity,
            }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        );
    }
    format!("{} lengths x guard clear/set", LENGTHS.len())
}

fn batch_gather(h: &mut Harness) -> String {
    for &(rows, width, batch) in &[(1u32, 1u32, 1u32), (10, 3, 4), (300, 65, 32), (70, 2, 257)] {
        for pad in [0.0f32, f32::NAN] {
            // One buffer at step 1, then the ring wrapping at step 3; then the
            // same rows held as chunks (each gather writes its own rows, the
            // first one the padding).
            for (step, chunks) in [(1u32, 1u32), (3, 1), (1, 2), (1, 3)] {
                h.reset();
                let data = random(seed(&[rows, width]), (rows * width) as usize, -1.0, 1.0);
                // Two batches of indices, the last one padded.
                let mut idx: Vec<u32> = (0..2 * batch).map(|k| (k * 7 + 3) % rows).collect();
                let last = idx.len() - 1;
                idx[last] = PAD_INDEX;
                let idx = h.buffer_u32("idx", &idx);
                let counters = h.buffer_u32("counters", &[step, 0]);
                let dst = h.output("dst", 2, (batch * width) as usize);
                let per = rows.div_ceil(chunks);
                let mut ops = Vec::new();
                for c in 0..chunks {
                    let first = (c * per).min(rows);
                    let n = per.min(rows - first);
                    let w = width as usize;
                    let part = &data[first as usize * w..(first + n) as usize * w];
                    // An empty chunk still binds one element.
                    let part = if part.is_empty() { &[0.0][..] } else { part };
                    let src = h.buffer(&format!("src {c}"), 0, part);
                    ops.push(Op::BatchGather {
                        args: GatherArgs {
                            batch,
                            width,
                            src_rows: n,
                            pad_bits: pad.to_bits(),
                            idx_len: 2 * batch,
                            dst_off: 2,
                            first_row: first,
                            skip_pad: u32::from(c > 0),
                        },
                        src,
                        idx,
                        counters,
                        dst,
                    });
                }
                h.check(
                    &format!(
                        "batch_gather {rows}x{width} batch {batch} step {step} chunks {chunks}"
                    ),
                    &ops,
                    EXACT.0,
                    EXACT.1,
                );
            }
        }
    }
    "4 shapes x zero/NaN padding x ring wrap x 1/2/3 chunks, exact".into()
}

fn step_advance(h: &mut Harness) -> String {
    h.reset();
    let counters = h.buffer_u32("counters", &[3, 99]);
    h.check(
        "step_advance",
        &[Op::StepAdvance { counters }, Op::StepAdvance { counters }],
        EXACT.0,
        EXACT.1,
    );
    "exact".into()
}

fn loss_bce_prob(h: &mut Harness) -> String {
    format!(
        "{} shapes, missing labels, stacked members, max |Δ| {:.2e}",
        LOSS_SHAPES.len(),
        loss_case(h, LossKind::BceProb)
    )
}

fn loss_ce_prob(h: &mut Harness) -> String {
    format!(
        "{} shapes, missing labels, stacked members, max |Δ| {:.2e}",
        LOSS_SHAPES.len(),
        loss_case(h, LossKind::CeProb)
    )
}

/// (members, rows, width) for the ensemble kernels.
const ENSEMBLE_SHAPES: &[(u32, u32, u32)] = &[(1, 1, 1), (3, 5, 7), (2, 65, 1), (8, 257, 3)];

fn ensemble_case(h: &mut Harness, kernel: Kernel) {
    for &(m, n, c) in ENSEMBLE_SHAPES {
        h.reset();
        let (src_len, dst_len) = match kernel {
            Kernel::EnsembleMeanForward => (m * n * c, n * c),
            Kernel::EnsembleMeanBackward => (n * c, m * n * c),
            _ => (m * n * c, m * n * c),
        };
        let src = h.buffer(
            "src",
            3,
            &random(seed(&[m, n, c]), src_len as usize, -1.0, 1.0),
        );
        let dst = h.output("dst", 2, dst_len as usize);
        let args = EnsembleArgs {
            members: m,
            rows: n,
            width: c,
            src_off: 3,
            dst_off: 2,
            ..Default::default()
        };
        let op = match kernel {
            Kernel::EnsembleMeanForward => Op::EnsembleMeanForward { args, src, dst },
            Kernel::EnsembleMeanBackward => Op::EnsembleMeanBackward { args, src, dst },
            Kernel::MembersToRows => Op::MembersToRows { args, src, dst },
            _ => Op::RowsToMembers { args, src, dst },
        };
        h.check(
            &format!("{kernel:?} {m}x{n}x{c}"),
            &[op],
            ELEM_TOL.0,
            ELEM_TOL.1,
        );
    }
}

fn ensemble_mean_forward(h: &mut Harness) -> String {
    ensemble_case(h, Kernel::EnsembleMeanForward);
    format!("{} shapes", ENSEMBLE_SHAPES.len())
}
fn ensemble_mean_backward(h: &mut Harness) -> String {
    ensemble_case(h, Kernel::EnsembleMeanBackward);
    format!("{} shapes", ENSEMBLE_SHAPES.len())
}
fn members_to_rows(h: &mut Harness) -> String {
    ensemble_case(h, Kernel::MembersToRows);
    format!("{} shapes", ENSEMBLE_SHAPES.len())
}
fn rows_to_members(h: &mut Harness) -> String {
    ensemble_case(h, Kernel::RowsToMembers);
    format!("{} shapes", ENSEMBLE_SHAPES.len())
}

/// Shapes (rows, experts, width, gate row stride) for the gate kernels: unit,
/// odd, one past a workgroup (257), and a stride wider than E (PLE's gates).
const GATE_SHAPES: &[(u32, u32, u32, u32)] = &[
    (1, 1, 1, 1),
    (3, 3, 5, 3),
    (65, 4, 3, 4),
    (257, 3, 65, 5),
    (5, 65, 2, 65),
    (1000, 2, 1, 3),
];

fn gate_args(rows: u32, experts: u32, width: u32, g_stride: u32, accumulate: u32) -> GateArgs {
    GateArgs {
        rows,
        experts,
        width,
        g_stride,
        g_off: 3,
        ex_off: 5,
        out_off: 2,
        accumulate,
    }
}

fn gate_softmax(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(r, e, _, gs) in GATE_SHAPES {
        h.reset();
        let s = seed(&[r, e, gs, 1]);
        // Large logits: the max subtraction must keep exp finite.
        let x = h.buffer("x", 3, &random(s, (r * gs) as usize, -40.0, 40.0));
        // Columns past E in each row are not the kernel's: give y real values there.
        let y = h.buffer("y", 2, &random(s + 1, (r * gs) as usize, -1.0, 1.0));
        let args = gate_args(r, e, 1, gs, 0);
        worst = worst.max(h.check(
            &format!("gate_softmax {r}x{e} stride {gs}"),
            &[Op::GateSoftmax { args, x, y }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("{} shapes, max |Δ| {worst:.2e}", GATE_SHAPES.len())
}

fn gate_softmax_backward(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(r, e, _, gs) in GATE_SHAPES {
        for acc in [0u32, 1] {
            h.reset();
            let s = seed(&[r, e, gs, 2, acc]);
            let dy = h.buffer("dy", 3, &random(s, (r * gs) as usize, -1.0, 1.0));
            let y = h.buffer("y", 3, &random(s + 1, (r * gs) as usize, 0.0, 1.0));
            let dx = h.buffer("dx", 2, &random(s + 2, (r * gs) as usize, -1.0, 1.0));
            let args = gate_args(r, e, 1, gs, acc);
            worst = worst.max(h.check(
                &format!("gate_softmax_backward {r}x{e} stride {gs} acc {acc}"),
                &[Op::GateSoftmaxBackward { args, dy, y, dx }],
                ELEM_TOL.0,
                ELEM_TOL.1,
            ));
        }
    }
    format!("{} shapes x 2, max |Δ| {worst:.2e}", GATE_SHAPES.len())
}

fn gated_sum_forward(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(n, e, w, gs) in GATE_SHAPES {
        for acc in [0u32, 1] {
            h.reset();
            let s = seed(&[n, e, w, gs, 3, acc]);
            let g = h.buffer("g", 3, &random(s, (n * gs) as usize, 0.0, 1.0));
            let ex = h.buffer("ex", 5, &random(s + 1, (e * n * w) as usize, -2.0, 2.0));
            let out = h.buffer("out", 2, &random(s + 2, (n * w) as usize, -1.0, 1.0));
            let args = gate_args(n, e, w, gs, acc);
            worst = worst.max(h.check(
                &format!("gated_sum_forward {n}x{e}x{w} stride {gs} acc {acc}"),
                &[Op::GatedSumForward { args, g, ex, out }],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    format!("{} shapes x 2, max |Δ| {worst:.2e}", GATE_SHAPES.len())
}

fn gated_sum_backward_experts(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(n, e, w, gs) in GATE_SHAPES {
        for acc in [0u32, 1] {
            h.reset();
            let s = seed(&[n, e, w, gs, 4, acc]);
            let g = h.buffer("g", 3, &random(s, (n * gs) as usize, 0.0, 1.0));
            let dout = h.buffer("dout", 2, &random(s + 1, (n * w) as usize, -1.0, 1.0));
            let dex = h.buffer("dex", 5, &random(s + 2, (e * n * w) as usize, -1.0, 1.0));
            let args = gate_args(n, e, w, gs, acc);
            worst = worst.max(h.check(
                &format!("gated_sum_backward_experts {n}x{e}x{w} stride {gs} acc {acc}"),
                &[Op::GatedSumBackwardExperts { args, g, dout, dex }],
                ELEM_TOL.0,
                ELEM_TOL.1,
            ));
        }
    }
    format!("{} shapes x 2, max |Δ| {worst:.2e}", GATE_SHAPES.len())
}

fn gated_sum_backward_gate(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(n, e, w, gs) in GATE_SHAPES {
        for acc in [0u32, 1] {
            h.reset();
            let s = seed(&[n, e, w, gs, 5, acc]);
            let dout = h.buffer("dout", 2, &random(s, (n * w) as usize, -1.0, 1.0));
            let ex = h.buffer("ex", 5, &random(s + 1, (e * n * w) as usize, -2.0, 2.0));
            let dg = h.buffer("dg", 3, &random(s + 2, (n * gs) as usize, -1.0, 1.0));
            let args = gate_args(n, e, w, gs, acc);
            worst = worst.max(h.check(
                &format!("gated_sum_backward_gate {n}x{e}x{w} stride {gs} acc {acc}"),
                &[Op::GatedSumBackwardGate { args, dout, ex, dg }],
                DENSE_TOL.0,
                DENSE_TOL.1,
            ));
        }
    }
    format!("{} shapes x 2, max |Δ| {worst:.2e}", GATE_SHAPES.len())
}

fn uncertainty_weights(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &tasks in &[1u32, 3, 65, 257] {
        h.reset();
        let params = h.buffer(
            "params",
            0,
            &random(seed(&[tasks, 6]), (tasks + 9) as usize, -3.0, 3.0),
        );
        let lambda = h.output("lambda", 0, tasks as usize);
        let args = WeightingArgs {
            tasks,
            s_off: 7,
            log_slots: 0,
            _pad: 0,
        };
        worst = worst.max(h.check(
            &format!("uncertainty_weights {tasks} tasks"),
            &[Op::UncertaintyWeights {
                args,
                params,
                lambda,
            }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("4 task counts, max |Δ| {worst:.2e}")
}

fn uncertainty_finish(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    // The last case's slot is past the log: the log must stay untouched.
    for &(tasks, slot) in &[(1u32, 0u32), (3, 2), (65, 3), (257, 4)] {
        h.reset();
        let s = seed(&[tasks, slot, 7]);
        let params = h.buffer("params", 0, &random(s, (tasks + 9) as usize, -3.0, 3.0));
        let counters = h.buffer_u32("counters", &[slot, 11]);
        let out = h.buffer("out", 0, &random(s + 1, (2 * tasks + 1) as usize, 0.0, 4.0));
        let grads = h.buffer("grads", 0, &random(s + 2, (tasks + 9) as usize, -1.0, 1.0));
        let log = h.buffer(
            "log",
            0,
            &random(s + 3, (4 * (tasks + 1)) as usize, 0.0, 1.0),
        );
        let args = WeightingArgs {
            tasks,
            s_off: 7,
            log_slots: 4,
            _pad: 0,
        };
        worst = worst.max(h.check(
            &format!("uncertainty_finish {tasks} tasks slot {slot}"),
            &[Op::UncertaintyFinish {
                args,
                params,
                counters,
                out,
                grads,
                log,
            }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("4 task counts (one past the log), max |Δ| {worst:.2e}")
}

fn gradnorm_sumsq(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &(tasks, len) in &[(1u32, 1u32), (3, 65), (2, 257), (4, 1000)] {
        h.reset();
        let split = h.buffer(
            "split",
            0,
            &random(seed(&[tasks, len, 8]), (tasks * len) as usize, -1.0, 1.0),
        );
        let norms = h.output("norms", 0, tasks as usize);
        let args = GradnormArgs {
            tasks,
            len,
            p_off: 0,
            alpha: 1.5,
        };
        worst = worst.max(h.check(
            &format!("gradnorm_sumsq {tasks} tasks x {len}"),
            &[Op::GradnormSumsq { args, split, norms }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("4 shapes, max |Δ| {worst:.2e}")
}

fn gradnorm_weights(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    for &tasks in &[1u32, 3, 65] {
        h.reset();
        let params = h.buffer(
            "params",
            0,
            &random(seed(&[tasks, 9]), (tasks + 5) as usize, -3.0, 3.0),
        );
        let lambda = h.output("lambda", 0, tasks as usize);
        let args = GradnormArgs {
            tasks,
            len: 0,
            p_off: 4,
            alpha: 1.5,
        };
        worst = worst.max(h.check(
            &format!("gradnorm_weights {tasks} tasks"),
            &[Op::GradnormWeights {
                args,
                params,
                lambda,
            }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("3 task counts, max |Δ| {worst:.2e}")
}

fn gradnorm_update(h: &mut Harness) -> String {
    let mut worst = 0.0f32;
    // The last case has no initial losses yet: zero gradients.
    for &(tasks, active) in &[(1u32, true), (2, true), (5, true), (3, false)] {
        h.reset();
        let s = seed(&[tasks, active as u32, 10]);
        let lambda = h.buffer("lambda", 0, &random(s, tasks as usize, 0.2, 2.0));
        let norms = h.buffer("norms", 0, &random(s + 1, tasks as usize, 0.01, 4.0));
        let out = h.buffer("out", 0, &random(s + 2, (2 * tasks + 1) as usize, 0.1, 3.0));
        let init = if active { (0.5, 3.0) } else { (0.0, 0.0) };
        let initial = h.buffer(
            "initial",
            0,
            &random(s + 3, tasks as usize, init.0, init.1 + 1e-9),
        );
        let grads = h.buffer("grads", 0, &random(s + 4, (tasks + 6) as usize, -1.0, 1.0));
        let args = GradnormArgs {
            tasks,
            len: 0,
            p_off: 3,
            alpha: 1.5,
        };
        worst = worst.max(h.check(
            &format!("gradnorm_update {tasks} tasks active {active}"),
            &[Op::GradnormUpdate {
                args,
                lambda,
                norms,
                out,
                initial,
                grads,
            }],
            ELEM_TOL.0,
            ELEM_TOL.1,
        ));
    }
    format!("4 cases (one before the first epoch ends), max |Δ| {worst:.2e}")
}
