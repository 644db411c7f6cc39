//! CPU twin of shaders/guard.wgsl: the non-finite guard of the training step.
//! A plain loop, its own reference (the parity tests compare the GPU with it).

use crate::ops::GuardArgs;

/// Exponent bits all ones: Inf or NaN (tested on the bits, as the shader does).
fn not_finite(x: f32) -> bool {
    x.to_bits() & 0x7f80_0000 == 0x7f80_0000
}

/// Unless counters[2] already holds an earlier step, records the step when
/// a gradient element (bit 1 of counters[4]), the objective out[2T] (bit 2)
/// or a task's loss out[j] (bit 4, counters[5 + j] = 1) is not finite:
/// counters[2] = 1 + the global step counters[1], counters[3] = counters[0].
pub fn nonfinite_check(a: &GuardArgs, out: &[f32], grads: &[f32], counters: &mut [u32]) {
    let mark = counters[1].wrapping_add(1);
    if counters[2] != 0 && counters[2] != mark {
        return;
    }
    let tasks = a.tasks as usize;
    // An `|` over every element, not a search that stops early: it vectorises.
    let bad_grad = grads[..a.len as usize]
        .iter()
        .fold(false, |bad, &g| bad | not_finite(g));
    let mut what = 0;
    if bad_grad {
        what |= 1;
    }
    if not_finite(out[2 * tasks]) {
        what |= 2;
    }
    for j in 0..tasks {
        if not_finite(out[j]) {
            counters[5 + j] = 1;
            what |= 4;
        }
    }
    if what != 0 {
        counters[2] = mark;
        counters[3] = counters[0];
        counters[4] |= what;
    }
}
