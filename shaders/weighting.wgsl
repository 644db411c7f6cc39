// Task weighting that changes every step, kept on the GPU.
//
// Uncertainty weighting (Kendall et al. 2018, LibMTL's form): the objective is
//   Σ_j L_j / (2·exp(s_j)) + s_j / 2
// with s_j = weighting.log_var.{task} learned by the optimizer like any weight.
//
//   params [P]        s_j at params[s_off + j]
//   lambda [T]        λ_j = 1 / (2·exp(s_j)), written before multitask_loss_reduce
//   out    [2T + 1]   from multitask_loss_reduce: L_j, scale_j, total
//   grads  [P]        ∂objective/∂s_j = 1/2 − L_j·λ_j at grads[s_off + j]
//   log    [slots, 1 + T]  the step's objective gets the Σ s_j/2 terms
// CPU twin: src/cpu/weighting.rs. Parity: tests/parity.rs.

struct WeightingArgs {
    tasks: u32,
    s_off: u32,
    log_slots: u32,
    _pad: u32,
}

// ---------------------------------------------------------------------------
// uncertainty_weights: lambda[j] = 0.5 · exp(−s_j)
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> uw: WeightingArgs;
@group(0) @binding(1) var<storage, read> uw_params: array<f32>;
@group(0) @binding(2) var<storage, read_write> uw_lambda: array<f32>;

@compute @workgroup_size(64)
fn uncertainty_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= uw.tasks) { return; }
    uw_lambda[j] = 0.5 * exp(-uw_params[uw.s_off + j]);
}

// ---------------------------------------------------------------------------
// uncertainty_finish: grads[s_off + j] = 0.5 − L_j · 0.5·exp(−s_j);
// out[2T] and the log's total += Σ_j s_j / 2 (summed in task order by one thread).
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> uf: WeightingArgs;
@group(0) @binding(1) var<storage, read> uf_params: array<f32>;
@group(0) @binding(2) var<storage, read> uf_counters: array<u32>;
@group(0) @binding(3) var<storage, read_write> uf_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> uf_grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> uf_log: array<f32>;

@compute @workgroup_size(64)
fn uncertainty_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    if (lid.x != 0u) { return; }
    var total = uf_out[2u * uf.tasks];
    for (var j = 0u; j < uf.tasks; j++) {
        let s = uf_params[uf.s_off + j];
        uf_grads[uf.s_off + j] = 0.5 - uf_out[j] * (0.5 * exp(-s));
        total += 0.5 * s;
    }
    uf_out[2u * uf.tasks] = total;
    let slot = uf_counters[0];
    if (slot < uf.log_slots) { uf_log[slot * (uf.tasks + 1u)] = total; }
}

// GradNorm (Chen et al. 2018; LibMTL's `GradNorm` on the shared representation):
// task weights w = T·softmax(p), p = weighting.gradnorm.{task} learned by the optimizer.
//
//   split   [T, len]  per task, ∂(w_j L_j)/∂(shared representation) (the graph writes it)
//   norms   [T]       ||split_j||²
//   initial [T]       L_j(0): the first epoch's mean losses (0 during the first epoch: no update)
//   out     [2T + 1]  from multitask_loss_reduce: L_j first
// With G_j = ||split_j||, Ḡ = mean G, r_j = (L_j/L_j(0)) / mean_k(L_k/L_k(0)), c_j = Ḡ·r_j^α
// (constants), L_grad = Σ_j |G_j − c_j| and ∂G_j/∂p_k = G_j·(δ_jk − w_k/T):
//   ∂L_grad/∂p_k = Σ_j sign(G_j − c_j)·G_j·(δ_jk − w_k/T)

struct GradnormArgs {
    tasks: u32,
    len: u32,        // elements of one task's split gradient
    p_off: u32,      // p_j at params[p_off + j]
    alpha: f32,
}

// ---------------------------------------------------------------------------
// gradnorm_sumsq: norms[j] = Σ_i split[j·len + i]²; one workgroup per task,
// 256 strided partial sums, then a tree (fixed order, no atomics)
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> gs: GradnormArgs;
@group(0) @binding(1) var<storage, read> gs_split: array<f32>;
@group(0) @binding(2) var<storage, read_write> gs_norms: array<f32>;

var<workgroup> gs_part: array<f32, 256>;

@compute @workgroup_size(256)
fn gradnorm_sumsq(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = wid.x + wid.y * nwg.x;   // the task: uniform across the workgroup
    let t = lid.x;
    var s = 0.0;
    if (j < gs.tasks) {
        for (var i = t; i < gs.len; i += 256u) {
            let v = gs_split[j * gs.len + i];
            s += v * v;
        }
    }
    gs_part[t] = s;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if (t < half) { gs_part[t] += gs_part[t + half]; }
        workgroupBarrier();
    }
    if (t == 0u && j < gs.tasks) { gs_norms[j] = gs_part[0]; }
}

// ---------------------------------------------------------------------------
// gradnorm_weights: lambda[j] = T·softmax(p)_j
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> gw: GradnormArgs;
@group(0) @binding(1) var<storage, read> gw_params: array<f32>;
@group(0) @binding(2) var<storage, read_write> gw_lambda: array<f32>;

@compute @workgroup_size(64)
fn gradnorm_weights(@builtin(local_invocation_id) lid: vec3<u32>) {
    if (lid.x != 0u) { return; }
    var m = gw_params[gw.p_off];
    for (var j = 1u; j < gw.tasks; j++) { m = max(m, gw_params[gw.p_off + j]); }
    var s = 0.0;
    for (var j = 0u; j < gw.tasks; j++) { s += exp(gw_params[gw.p_off + j] - m); }
    for (var j = 0u; j < gw.tasks; j++) {
        gw_lambda[j] = f32(gw.tasks) * exp(gw_params[gw.p_off + j] - m) / s;
    }
}

// ---------------------------------------------------------------------------
// gradnorm_update: grads[p_off + k] = ∂L_grad/∂p_k (0 while initial is unset)
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> gu: GradnormArgs;
@group(0) @binding(1) var<storage, read> gu_lambda: array<f32>;
@group(0) @binding(2) var<storage, read> gu_norms: array<f32>;
@group(0) @binding(3) var<storage, read> gu_out: array<f32>;
@group(0) @binding(4) var<storage, read> gu_initial: array<f32>;
@group(0) @binding(5) var<storage, read_write> gu_grads: array<f32>;

@compute @workgroup_size(64)
fn gradnorm_update(@builtin(local_invocation_id) lid: vec3<u32>) {
    if (lid.x != 0u) { return; }
    let tn = f32(gu.tasks);
    var ready = true;
    var g_mean = 0.0;
    var r_mean = 0.0;
    for (var j = 0u; j < gu.tasks; j++) {
        if (!(gu_initial[j] > 0.0)) { ready = false; }
        g_mean += sqrt(gu_norms[j]);
        r_mean += gu_out[j] / max(gu_initial[j], 1e-30);
    }
    g_mean /= tn;
    r_mean /= tn;
    // coef_j = sign(G_j − c_j)·G_j
    var coef_sum = 0.0;
    for (var k = 0u; k < gu.tasks; k++) {
        gu_grads[gu.p_off + k] = 0.0;
    }
    if (!ready || !(r_mean > 0.0)) { return; }
    for (var j = 0u; j < gu.tasks; j++) {
        let g = sqrt(gu_norms[j]);
        let r = gu_out[j] / gu_initial[j] / r_mean;
        let c = g_mean * pow(r, gu.alpha);
        let coef = sign(g - c) * g;
        coef_sum += coef;
        gu_grads[gu.p_off + j] = coef;
    }
    for (var k = 0u; k < gu.tasks; k++) {
        gu_grads[gu.p_off + k] -= coef_sum * gu_lambda[k] / tn;
    }
}
