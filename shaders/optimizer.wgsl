// Optimizers, updating parameters in place over params[p_off .. p_off + len].
//
// adam_update: m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²; then with the step's two factors
//   (f0, f1) = factors[2k], factors[2k + 1], k = counters[0] (the step within the epoch):
//              style 0 (Keras):   p ← p − f0·m/(√v + ε),     f0 = α_t = lr·√(1−β2ᵗ)/(1−β1ᵗ)
//              style 1 (PyTorch): p ← p − f0·m/(√v/f1 + ε),  f0 = lr/(1−β1ᵗ), f1 = √(1−β2ᵗ)
//   The host computes the factors of every step of the epoch in f64 and rounds them once to f32
//   (written with the epoch's row order), so the bias correction is exact and the same on every
//   backend: no f32 pow on the device.
// sgd_update (Keras form):        u ← μ·u − lr·g;  p ← p + u
// Both leave p and their state untouched once the non-finite guard has fired (counters[2] ≠ 0,
// see guard.wgsl): the parameters stay as the last finite step left them.
// CPU twin: src/cpu/optimizer.rs (Adam: SIMD across threads; reference:
// src/cpu/reference/optimizer.rs).

struct AdamArgs {
    len: u32,
    p_off: u32,
    style: u32,
    _pad0: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> ad: AdamArgs;
@group(0) @binding(1) var<storage, read> ad_grad: array<f32>;
@group(0) @binding(2) var<storage, read> ad_counters: array<u32>;
@group(0) @binding(3) var<storage, read> ad_factors: array<f32>;
@group(0) @binding(4) var<storage, read_write> ad_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> ad_m: array<f32>;
@group(0) @binding(6) var<storage, read_write> ad_v: array<f32>;

@compute @workgroup_size(256)
fn adam_update(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= ad.len || ad_counters[2] != 0u) { return; }
    let at = ad.p_off + i;
    let k = 2u * ad_counters[0];
    let f0 = ad_factors[k];
    let f1 = ad_factors[k + 1u];
    let g = ad_grad[at];
    let m = ad.beta1 * ad_m[at] + (1.0 - ad.beta1) * g;
    let v = ad.beta2 * ad_v[at] + (1.0 - ad.beta2) * g * g;
    ad_m[at] = m;
    ad_v[at] = v;
    if (ad.style == 0u) {
        ad_p[at] -= f0 * m / (sqrt(v) + ad.eps);
    } else {
        ad_p[at] -= f0 * m / (sqrt(v) / f1 + ad.eps);
    }
}

struct SgdArgs {
    len: u32,
    p_off: u32,
    lr: f32,
    momentum: f32,
}

@group(0) @binding(0) var<uniform> sg: SgdArgs;
@group(0) @binding(1) var<storage, read> sg_grad: array<f32>;
@group(0) @binding(2) var<storage, read> sg_counters: array<u32>;
@group(0) @binding(3) var<storage, read_write> sg_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> sg_u: array<f32>;

@compute @workgroup_size(256)
fn sgd_update(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= sg.len || sg_counters[2] != 0u) { return; }
    let at = sg.p_off + i;
    let u = sg.momentum * sg_u[at] - sg.lr * sg_grad[at];
    sg_u[at] = u;
    sg_p[at] += u;
}
