// Batch gather from a dataset resident on the GPU, and the step counter.
//
// batch_gather: dst[b, c] = src[idx[base + b], c] for b < batch, c < width,
//   base = counters[0] · batch (the step within the epoch). An index ≥ src_rows
//   (the host writes 0xFFFFFFFF) pads the row with pad_bits: 0.0 for features,
//   NaN for labels, so a short last batch is masked out of every loss.
//   Data is moved as u32 bits, so NaN labels survive exactly.
// step_advance: counters[0] += 1 (step within the epoch), counters[1] += 1 (global step).
// CPU twin: src/cpu/gather.rs.

struct GatherArgs {
    batch: u32,
    width: u32,
    src_rows: u32,
    pad_bits: u32,
    idx_len: u32,
    dst_off: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> ga: GatherArgs;
@group(0) @binding(1) var<storage, read> ga_src: array<u32>;
@group(0) @binding(2) var<storage, read> ga_idx: array<u32>;
@group(0) @binding(3) var<storage, read> ga_counters: array<u32>;
@group(0) @binding(4) var<storage, read_write> ga_dst: array<u32>;

@compute @workgroup_size(256)
fn batch_gather(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid.x;
    if (i >= ga.batch * ga.width) { return; }
    let b = i / ga.width;
    let c = i % ga.width;
    let k = ga_counters[0] * ga.batch + b;
    var row = 0xffffffffu;
    if (k < ga.idx_len) { row = ga_idx[k]; }
    var v = ga.pad_bits;
    if (row < ga.src_rows) { v = ga_src[row * ga.width + c]; }
    ga_dst[ga.dst_off + i] = v;
}

// step_advance reads no arguments, but the host binds a uniform block at
// binding 0 of every kernel; `_ = st` keeps it in the entry point's interface.
struct StepArgs {
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> st: StepArgs;
@group(0) @binding(1) var<storage, read_write> st_counters: array<u32>;

@compute @workgroup_size(1)
fn step_advance() {
    _ = st;
    st_counters[0] += 1u;
    st_counters[1] += 1u;
}
