// Batch gather from a dataset resident on the GPU, and the step counter.
//
// batch_gather: dst[b, c] = src[idx[k] - first_row, c] for b < batch, c < width,
//   k = (counters[0] · batch + b) mod idx_len (the step within the epoch; idx
//   is a ring, so a streamed epoch can reuse it shard after shard).
//   `src` may be one chunk of a dataset held in several buffers: rows
//   [first_row, first_row + src_rows). A row of another chunk is left alone
//   (that chunk's gather writes it). The index 0xFFFFFFFF pads the row with
//   pad_bits (0.0 for features, NaN for labels, so a short last batch is
//   masked out of every loss) unless skip_pad is set (one chunk pads).
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
    first_row: u32,
    skip_pad: u32,
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
    let k = (ga_counters[0] * ga.batch + b) % ga.idx_len;
    let row = ga_idx[k];
    if (row == 0xffffffffu) {
        if (ga.skip_pad == 0u) { ga_dst[ga.dst_off + i] = ga.pad_bits; }
        return;
    }
    let local = row - ga.first_row;
    if (row < ga.first_row || local >= ga.src_rows) { return; }
    ga_dst[ga.dst_off + i] = ga_src[local * ga.width + c];
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
