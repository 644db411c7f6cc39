// The weighted multi-task loss, reduced on the GPU in a fixed order.
//
//   stats   [T, N, 2]  per task and row: loss sum, valid count (from loss.wgsl)
//   lambda  [T]        task weights λ_j
//   counters[2]        u32: [0] step within the epoch (log slot), [1] global step
//   out     [2T + 1]   L_j (masked mean), scale_j = λ_j / count_j, total Σ λ_j L_j
//   log     [slots, 1 + T]  per step: total, then L_j (read back once per epoch)
//
// One workgroup of 256 threads: thread t sums rows t, t+256, … then a tree
// reduction in workgroup memory. No atomics, so a run gives the same bits
// every time. loss_grad_scale then multiplies a task's dz by scale_j.
// CPU twin: src/cpu/multitask.rs.

struct ReduceArgs {
    tasks: u32,
    rows: u32,
    log_slots: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> ra: ReduceArgs;
@group(0) @binding(1) var<storage, read> ra_stats: array<f32>;
@group(0) @binding(2) var<storage, read> ra_lambda: array<f32>;
@group(0) @binding(3) var<storage, read> ra_counters: array<u32>;
@group(0) @binding(4) var<storage, read_write> ra_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> ra_log: array<f32>;

var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_count: array<f32, 256>;

@compute @workgroup_size(256)
fn multitask_loss_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var total = 0.0;
    for (var j = 0u; j < ra.tasks; j++) {
        var l = 0.0;
        var c = 0.0;
        for (var r = t; r < ra.rows; r += 256u) {
            let at = 2u * (j * ra.rows + r);
            l += ra_stats[at];
            c += ra_stats[at + 1u];
        }
        part_loss[t] = l;
        part_count[t] = c;
        workgroupBarrier();
        for (var half = 128u; half > 0u; half >>= 1u) {
            if (t < half) {
                part_loss[t] += part_loss[t + half];
                part_count[t] += part_count[t + half];
            }
            workgroupBarrier();
        }
        if (t == 0u) {
            let count = part_count[0];
            var mean = 0.0;
            var scale = 0.0;
            if (count > 0.0) {
                mean = part_loss[0] / count;
                scale = ra_lambda[j] / count;
            }
            ra_out[j] = mean;
            ra_out[ra.tasks + j] = scale;
            total += ra_lambda[j] * mean;
            let slot = ra_counters[0];
            if (slot < ra.log_slots) { ra_log[slot * (ra.tasks + 1u) + 1u + j] = mean; }
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        ra_out[2u * ra.tasks] = total;
        let slot = ra_counters[0];
        if (slot < ra.log_slots) { ra_log[slot * (ra.tasks + 1u)] = total; }
    }
}

struct ScaleArgs {
    len: u32,
    scale_index: u32,   // index into out: tasks + j
    dz_off: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> sa: ScaleArgs;
@group(0) @binding(1) var<storage, read> sa_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> sa_dz: array<f32>;

@compute @workgroup_size(256)
fn loss_grad_scale(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= sa.len) { return; }
    sa_dz[sa.dz_off + i] *= sa_out[sa.scale_index];
}
