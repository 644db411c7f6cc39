//! CPU twin of shaders/weighting.wgsl: uncertainty weighting's λ_j from the
//! learned s_j, and after the reduce the gradient of s_j and the s_j/2 terms.
//! These plain loops are also the reference the parity tests compare the GPU
//! against (one function per kernel suffices).

use crate::ops::{GradnormArgs, WeightingArgs};

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

/// norms[j] = Σ_i split[j·len + i]², summed in the shader's order (256
/// strided partial sums, then a tree).
pub fn gradnorm_sumsq(a: &GradnormArgs, split: &[f32], norms: &mut [f32]) {
    const LANES: usize = 256;
    let len = a.len as usize;
    for j in 0..a.tasks as usize {
        let mut part = [0.0f32; LANES];
        for (t, p) in part.iter_mut().enumerate() {
            let mut i = t;
            while i < len {
                let v = split[j * len + i];
                *p += v * v;
                i += LANES;
            }
        }
        let mut half = LANES / 2;
        while half > 0 {
            for t in 0..half {
                part[t] += part[t + half];
            }
            half /= 2;
        }
        norms[j] = part[0];
    }
}

/// lambda[j] = T·softmax(p)_j.
pub fn gradnorm_weights(a: &GradnormArgs, params: &[f32], lambda: &mut [f32]) {
    let (t, p0) = (a.tasks as usize, a.p_off as usize);
    let p = &params[p0..p0 + t];
    let m = p.iter().copied().fold(p[0], f32::max);
    let s: f32 = p.iter().map(|v| (v - m).exp()).sum();
    for j in 0..t {
        lambda[j] = t as f32 * (p[j] - m).exp() / s;
    }
}

/// grads[p_off + k] = Σ_j sign(G_j − c_j)·G_j·(δ_jk − w_k/T), or 0 while
/// `initial` is unset (see shaders/weighting.wgsl).
pub fn gradnorm_update(
    a: &GradnormArgs,
    lambda: &[f32],
    norms: &[f32],
    out: &[f32],
    initial: &[f32],
    grads: &mut [f32],
) {
    let (t, p0) = (a.tasks as usize, a.p_off as usize);
    let tn = t as f32;
    let mut active = true;
    let (mut g_mean, mut r_mean) = (0.0f32, 0.0f32);
    for j in 0..t {
        // NaN or ≤ 0: the first epoch's losses are not in yet.
        if initial[j].is_nan() || initial[j] <= 0.0 {
            active = false;
        }
        g_mean += norms[j].sqrt();
        r_mean += out[j] / initial[j].max(1e-30);
    }
    g_mean /= tn;
    r_mean /= tn;
    for k in 0..t {
        grads[p0 + k] = 0.0;
    }
    if !active || r_mean.is_nan() || r_mean <= 0.0 {
        return;
    }
    let mut coef_sum = 0.0f32;
    for j in 0..t {
        let g = norms[j].sqrt();
        let r = out[j] / initial[j] / r_mean;
        let c = g_mean * r.powf(a.alpha);
        let d = g - c;
        let sign = if d > 0.0 {
            1.0
        } else if d < 0.0 {
            -1.0
        } else {
            0.0
        };
        let coef = sign * g;
        coef_sum += coef;
        grads[p0 + j] = coef;
    }
    for k in 0..t {
        grads[p0 + k] -= coef_sum * lambda[k] / tn;
    }
}
