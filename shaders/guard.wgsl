// The non-finite guard of the training step, between the backward pass and the optimizer.
//
//   out      [2T + 1]  from multitask_loss_reduce (and the weighting): L_j…, scale_j…, total
//   grads    [len]     the step's flat gradient
//   counters [5 + T]   u32: [0] step within the epoch, [1] global step (see gather.wgsl), then
//                      the guard: [2] 0 while every step so far was finite, else 1 + the global
//                      step of the first that was not; [3] that step within its epoch; [4] what
//                      was not finite, bits: 1 a gradient, 2 the objective, 4 a task's loss;
//                      [5 + j] 1 when task j's loss L_j was not finite
//
// nonfinite_check: one thread per gradient element; x is not finite when its exponent bits are
// all ones (Inf or NaN; tested on the bits, which no compiler may assume away). Thread 0 also
// checks L_j and the objective. Once [2] holds an earlier step, nothing changes: the record is
// the first bad step's. Every thread that writes in one step writes the same values, so the
// record does not depend on the order the workgroups run in. adam_update and sgd_update skip
// when [2] ≠ 0, so the parameters and the optimizer state stay as the last finite step left
// them; the host reads counters with the epoch's loss log (no readback inside an epoch).
// CPU twin: src/cpu/guard.rs.

struct GuardArgs {
    tasks: u32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> gd: GuardArgs;
@group(0) @binding(1) var<storage, read> gd_out: array<f32>;
@group(0) @binding(2) var<storage, read> gd_grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> gd_counters: array<atomic<u32>>;

fn not_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

fn record(mark: u32, what: u32) {
    atomicStore(&gd_counters[2], mark);
    atomicStore(&gd_counters[3], atomicLoad(&gd_counters[0]));
    atomicOr(&gd_counters[4], what);
}

@compute @workgroup_size(256)
fn nonfinite_check(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let mark = atomicLoad(&gd_counters[1]) + 1u;
    let seen = atomicLoad(&gd_counters[2]);
    if (seen != 0u && seen != mark) { return; }
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i < gd.len && not_finite(gd_grads[i])) { record(mark, 1u); }
    if (i == 0u) {
        for (var j = 0u; j < gd.tasks; j++) {
            if (not_finite(gd_out[j])) {
                atomicStore(&gd_counters[5u + j], 1u);
                record(mark, 4u);
            }
        }
        if (not_finite(gd_out[2u * gd.tasks])) { record(mark, 2u); }
    }
}
