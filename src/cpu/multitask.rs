//! CPU twin of shaders/multitask.wgsl: the weighted multi-task loss and the
//! gradient scaling. The sums follow the shader's order (256 strided partial
//! sums, then a tree) so both backends round the same way. These plain loops
//! are also the reference the parity tests compare the GPU against.

use crate::ops::{ReduceArgs, ScaleArgs};

const LANES: usize = 256;

/// Σ over rows of stats[task j], in the shader's order: (loss sum, count).
fn ordered_sum(stats: &[f32], j: usize, rows: usize) -> (f32, f32) {
    let mut l = [0.0f32; LANES];
    let mut c = [0.0f32; LANES];
    for t in 0..LANES {
        let mut r = t;
        while r < rows {
            l[t] += stats[2 * (j * rows + r)];
            c[t] += stats[2 * (j * rows + r) + 1];
            r += LANES;
        }
    }
    let mut half = LANES / 2;
    while half > 0 {
        for t in 0..half {
            l[t] += l[t + half];
            c[t] += c[t + half];
        }
        half /= 2;
    }
    (l[0], c[0])
}

/// out = [L_j…, λ_j/count_j…, Σ λ_j L_j]; log[slot] = [total, L_j…].
pub fn loss_reduce(
    a: &ReduceArgs,
    stats: &[f32],
    lambda: &[f32],
    counters: &[u32],
    out: &mut [f32],
    log: &mut [f32],
) {
    let (tasks, rows) = (a.tasks as usize, a.rows as usize);
    let slot = counters[0] as usize;
    let mut total = 0.0f32;
    for j in 0..tasks {
        let (l, c) = ordered_sum(stats, j, rows);
        let (mean, scale) = if c > 0.0 {
            (l / c, lambda[j] / c)
        } else {
            (0.0, 0.0)
        };
        out[j] = mean;
        out[tasks + j] = scale;
        total += lambda[j] * mean;
        if slot < a.log_slots as usize {
            log[slot * (tasks + 1) + 1 + j] = mean;
        }
    }
    out[2 * tasks] = total;
    if slot < a.log_slots as usize {
        log[slot * (tasks + 1)] = total;
    }
}

/// dz[i] *= out[scale_index] for i < len.
pub fn grad_scale(a: &ScaleArgs, out: &[f32], dz: &mut [f32]) {
    let s = out[a.scale_index as usize];
    let o = a.dz_off as usize;
    for v in &mut dz[o..o + a.len as usize] {
        *v *= s;
    }
}
