//! CPU twin of shaders/optimizer.wgsl: Adam (Keras or PyTorch form) and SGD
//! with momentum, in place over params[p_off .. p_off + len].

use crate::ops::{AdamArgs, SgdArgs};

/// One Adam step at t = counters[1] + 1.
pub fn adam_update(
    a: &AdamArgs,
    grads: &[f32],
    counters: &[u32],
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let t = (counters[1] + 1) as f32;
    let bc1 = 1.0 - a.beta1.powf(t);
    let bc2 = 1.0 - a.beta2.powf(t);
    let alpha = a.lr * bc2.sqrt() / bc1;
    let (lr_t, sqrt_bc2) = (a.lr / bc1, bc2.sqrt());
    let range = a.p_off as usize..(a.p_off + a.len) as usize;
    for at in range {
        let g = grads[at];
        let mt = a.beta1 * m[at] + (1.0 - a.beta1) * g;
        let vt = a.beta2 * v[at] + (1.0 - a.beta2) * g * g;
        m[at] = mt;
        v[at] = vt;
        if a.style == 0 {
            params[at] -= alpha * mt / (vt.sqrt() + a.eps);
        } else {
            params[at] -= lr_t * mt / (vt.sqrt() / sqrt_bc2 + a.eps);
        }
    }
}

/// One SGD step: u ← μ·u − lr·g; p ← p + u.
pub fn sgd_update(a: &SgdArgs, grads: &[f32], params: &mut [f32], velocity: &mut [f32]) {
    for at in a.p_off as usize..(a.p_off + a.len) as usize {
        let u = a.momentum * velocity[at] - a.lr * grads[at];
        velocity[at] = u;
        params[at] += u;
    }
}
