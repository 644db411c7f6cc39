//! CPU twin of shaders/optimizer.wgsl: Adam (Keras or PyTorch form) and SGD
//! with momentum, in place over params[p_off .. p_off + len].

use crate::ops::{AdamArgs, SgdArgs};
use rayon::prelude::*;

/// Parameter counts at least this large are updated on every thread.
const PARALLEL_ELEMENTS: usize = 1 << 16;

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
    let update = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
            let mt = a.beta1 * *m + (1.0 - a.beta1) * g;
            let vt = a.beta2 * *v + (1.0 - a.beta2) * g * g;
            *m = mt;
            *v = vt;
            if a.style == 0 {
                *p -= alpha * mt / (vt.sqrt() + a.eps);
            } else {
                *p -= lr_t * mt / (vt.sqrt() / sqrt_bc2 + a.eps);
            }
        }
    };
    let (p, m, v, g) = (
        &mut params[range.clone()],
        &mut m[range.clone()],
        &mut v[range.clone()],
        &grads[range],
    );
    if p.len() >= PARALLEL_ELEMENTS {
        // Each element's update is independent: the split changes no result.
        let chunk = p.len().div_ceil(rayon::current_num_threads());
        p.par_chunks_mut(chunk)
            .zip(m.par_chunks_mut(chunk))
            .zip(v.par_chunks_mut(chunk).zip(g.par_chunks(chunk)))
            .for_each(|((p, m), (v, g))| update(p, m, v, g));
    } else {
        update(p, m, v, g);
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
