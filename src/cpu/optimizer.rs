//! CPU twin of shaders/optimizer.wgsl: Adam (Keras or PyTorch form) and SGD
//! with momentum, in place over params[p_off .. p_off + len].
//!
//! `adam_update` is the fast path (SIMD, split across the CPU team); its
//! plain reference is `cpu::reference::optimizer::adam_update`. `sgd_update`
//! is a plain loop and is its own reference.

use super::team::{pieces, ranges, Team};
use crate::ops::{AdamArgs, SgdArgs};

/// Parameter counts at least this large are updated by the whole CPU team
/// (see `team.rs`; a part's hand-off costs well under a microsecond).
const PARALLEL_ELEMENTS: usize = 1 << 13;

/// One Adam step with the bias-corrected factors of step counters[0] of the
/// epoch: (f0, f1) = factors[2k], factors[2k + 1] (see the reference); none
/// once the non-finite guard counters[2] is set.
pub fn adam_update(
    a: &AdamArgs,
    grads: &[f32],
    counters: &[u32],
    factors: &[f32],
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    if counters[2] != 0 {
        return;
    }
    let k = 2 * counters[0] as usize;
    let (f0, f1) = (factors[k], factors[k + 1]);
    let range = a.p_off as usize..(a.p_off + a.len) as usize;
    let (b1, b2, eps, keras) = (a.beta1, a.beta2, a.eps, a.style == 0);
    let update = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        // Compiled for the widest SIMD this CPU has (AVX-512, AVX2 or the
        // baseline), chosen at run time; the form is chosen outside the loop so
        // that the loop has no branch and vectorises.
        pulp::Arch::new().dispatch(|| {
            let moments = (p.iter_mut().zip(m).zip(v)).zip(g);
            if keras {
                for (((p, m), v), &g) in moments {
                    let mt = b1 * *m + (1.0 - b1) * g;
                    let vt = b2 * *v + (1.0 - b2) * g * g;
                    (*m, *v) = (mt, vt);
                    *p -= f0 * mt / (vt.sqrt() + eps);
                }
            } else {
                for (((p, m), v), &g) in moments {
                    let mt = b1 * *m + (1.0 - b1) * g;
                    let vt = b2 * *v + (1.0 - b2) * g * g;
                    (*m, *v) = (mt, vt);
                    *p -= f0 * mt / (vt.sqrt() / f1 + eps);
                }
            }
        })
    };
    let (p, m, v, g) = (
        &mut params[range.clone()],
        &mut m[range.clone()],
        &mut v[range.clone()],
        &grads[range],
    );
    if p.len() >= PARALLEL_ELEMENTS {
        // Each element's update is independent: the split changes no result.
        let team = Team::global();
        let parts = ranges(p.len(), team.threads(), 16);
        let lens: Vec<usize> = parts.iter().map(|r| r.len()).collect();
        let (p, m, v) = (pieces(p, &lens), pieces(m, &lens), pieces(v, &lens));
        team.run(parts.len(), &|k| {
            let (mut pk, mut mk, mut vk) = (
                p[k].lock().unwrap_or_else(|e| e.into_inner()),
                m[k].lock().unwrap_or_else(|e| e.into_inner()),
                v[k].lock().unwrap_or_else(|e| e.into_inner()),
            );
            update(&mut pk, &mut mk, &mut vk, &g[parts[k].clone()]);
        });
    } else {
        update(p, m, v, g);
    }
}

/// One SGD step: u ← μ·u − lr·g; p ← p + u; none once the non-finite guard
/// counters[2] is set.
pub fn sgd_update(
    a: &SgdArgs,
    grads: &[f32],
    counters: &[u32],
    params: &mut [f32],
    velocity: &mut [f32],
) {
    if counters[2] != 0 {
        return;
    }
    for at in a.p_off as usize..(a.p_off + a.len) as usize {
        let u = a.momentum * velocity[at] - a.lr * grads[at];
        velocity[at] = u;
        params[at] += u;
    }
}
