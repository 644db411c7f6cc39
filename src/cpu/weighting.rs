//! CPU twin of shaders/weighting.wgsl: uncertainty weighting's λ_j from the
//! learned s_j, and after the reduce the gradient of s_j and the s_j/2 terms.

use crate::ops::WeightingArgs;

/// lambda[j] = 0.5·exp(−s_j).
pub fn uncertainty_weights(a: &WeightingArgs, params: &[f32], lambda: &mut [f32]) {
    for j in 0..a.tasks as usize {
        lambda[j] = 0.5 * (-params[a.s_off as usize + j]).exp();
    }
}

/// grads[s_off + j] = 0.5 − L_j·0.5·exp(−s_j); the objective (out[2T] and the
/// log slot's total) gains Σ_j s_j/2, summed in task order.
pub fn uncertainty_finish(
    a: &WeightingArgs,
    params: &[f32],
    counters: &[u32],
    out: &mut [f32],
    grads: &mut [f32],
    log: &mut [f32],
) {
    let t = a.tasks as usize;
    let mut total = out[2 * t];
    for j in 0..t {
        let s = params[a.s_off as usize + j];
        grads[a.s_off as usize + j] = 0.5 - out[j] * (0.5 * (-s).exp());
        total += 0.5 * s;
    }
    out[2 * t] = total;
    let slot = counters[0] as usize;
    if slot < a.log_slots as usize {
        log[slot * (t + 1)] = total;
    }
}
