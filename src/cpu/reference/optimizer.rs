//! Reference of `adam_update` in shaders/optimizer.wgsl (fast path:
//! src/cpu/optimizer.rs), one element at a time over params[p_off .. p_off + len].

use crate::ops::AdamArgs;

/// One Adam step with the factors of step k = counters[0] of the epoch,
/// (f0, f1) = factors[2k], factors[2k + 1], which the host computed in f64 for
/// the global step t (`train::step::optimizer::adam_factors`):
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²; then
/// style 0 (Keras):   p ← p − f0 · m/(√v + ε),     f0 = lr·√(1−β2ᵗ)/(1−β1ᵗ),
/// style 1 (PyTorch): p ← p − f0 · m/(√v/f1 + ε),  f0 = lr/(1−β1ᵗ), f1 = √(1−β2ᵗ).
/// Nothing changes once the non-finite guard counters[2] is set.
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
    for at in a.p_off as usize..(a.p_off + a.len) as usize {
        let g = grads[at];
        m[at] = a.beta1 * m[at] + (1.0 - a.beta1) * g;
        v[at] = a.beta2 * v[at] + (1.0 - a.beta2) * g * g;
        if a.style == 0 {
            params[at] -= f0 * m[at] / (v[at].sqrt() + a.eps);
        } else {
            params[at] -= f0 * m[at] / (v[at].sqrt() / f1 + a.eps);
        }
    }
}
