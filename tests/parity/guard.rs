//! Parity of `nonfinite_check` (shaders/guard.wgsl): which step, tasks and
//! kinds of non-finite values it records in the step counters, exactly.

use super::harness::Harness;
use crate::common::random;
use tandem::ops::{GuardArgs, Op};

const EXACT: (f32, f32) = (0.0, 0.0);

/// (tasks, gradient elements): one, odd, a workgroup edge, many workgroups.
const SHAPES: &[(u32, u32)] = &[(1, 1), (3, 65), (2, 257), (4, 1000), (1, 300_001)];

/// What a case plants: a bad gradient element, a bad task loss, a bad
/// objective, and the guard record it starts from.
struct Plant {
    name: &'static str,
    grad: Option<(usize, f32)>,
    loss: Option<(usize, f32)>,
    objective: Option<f32>,
    /// counters[2] before the step: 0 (all finite so far), or 1 + an earlier global step.
    seen: u32,
}

#[rustfmt::skip]
const PLANTS: &[Plant] = &[
    Plant { name: "finite", grad: None, loss: None, objective: None, seen: 0 },
    Plant { name: "NaN gradient (last)", grad: Some((usize::MAX, f32::NAN)), loss: None, objective: None, seen: 0 },
    Plant { name: "-Inf gradient (first) and Inf loss (last task)", grad: Some((0, f32::NEG_INFINITY)), loss: Some((usize::MAX, f32::INFINITY)), objective: Some(f32::INFINITY), seen: 0 },
    Plant { name: "NaN loss (first task)", grad: None, loss: Some((0, f32::NAN)), objective: None, seen: 0 },
    Plant { name: "Inf objective only", grad: None, loss: None, objective: Some(f32::INFINITY), seen: 0 },
    Plant { name: "NaN gradient after an earlier bad step", grad: Some((1, f32::NAN)), loss: Some((0, f32::NAN)), objective: None, seen: 4 },
    Plant { name: "NaN gradient, this step already recorded", grad: Some((1, f32::NAN)), loss: None, objective: None, seen: 12 },
];

fn at(i: usize, len: usize) -> usize {
    i.min(len - 1)
}

pub fn nonfinite_check(h: &mut Harness) -> String {
    for &(tasks, len) in SHAPES {
        for p in PLANTS {
            h.reset();
            let (t, n) = (tasks as usize, len as usize);
            let mut out = random(u64::from(tasks) * 7 + 1, 2 * t + 1, 0.0, 3.0);
            let mut grads = random(u64::from(len) + 2, n + 9, -1e30, 1e30);
            if let Some((i, v)) = p.grad {
                grads[at(i, n)] = v;
            }
            // Past `len`: not the step's gradient, never looked at.
            grads[n] = f32::NAN;
            if let Some((j, v)) = p.loss {
                out[at(j, t)] = v;
            }
            if let Some(v) = p.objective {
                out[2 * t] = v;
            }
            let out = h.buffer("out", 0, &out);
            let grads = h.buffer("grads", 0, &grads);
            // Step 2 of its epoch, global step 11 (mark 12); `seen` = 4 is an
            // earlier step's record, 12 this step's own.
            let mut c = vec![2u32, 11, p.seen, u32::from(p.seen != 0), 0];
            c.extend((0..tasks).map(|_| 0u32));
            let counters = h.buffer_u32("counters", &c);
            let args = GuardArgs {
                tasks,
                len,
                ..Default::default()
            };
            let op = Op::NonfiniteCheck {
                args,
                out,
                grads,
                counters,
            };
            h.check(
                &format!("nonfinite_check {tasks} tasks, {len} gradients: {}", p.name),
                &[op.clone(), op],
                EXACT.0,
                EXACT.1,
            );
        }
    }
    format!(
        "{} shapes x {} plants (finite, NaN/Inf gradient, loss, objective, earlier record), exact",
        SHAPES.len(),
        PLANTS.len()
    )
}
