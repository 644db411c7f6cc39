//! Reference of `adam_update` in shaders/optimizer.wgsl (fast path:
//! src/cpu/optimizer.rs), one element at a time over params[p_off .. p_off + len].

use crate::ops::AdamArgs;

/// One Adam step at t = counters[1] + 1:
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²; then
/// style 0 (Keras):   p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε),
/// style 1 (PyTorch): p ← p − (lr/(1−β1ᵗ)) · m/(√v/√(1−β2ᵗ) + ε).
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
    for at in a.p_off as usize..(a.p_off + a.len) as usize {
        let g = grads[at];
        m[at] = a.beta1 * m[at] + (1.0 - a.beta1) * g;
        v[at] = a.beta2 * v[at] + (1.0 - a.beta2) * g * g;
        if a.style == 0 {
            let alpha = a.lr * bc2.sqrt() / bc1;
            params[at] -= alpha * m[at] / (v[at].sqrt() + a.eps);
        } else {
            params[at] -= (a.lr / bc1) * m[at] / (v[at].sqrt() / bc2.sqrt() + a.eps);
        }
    }
}
