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
