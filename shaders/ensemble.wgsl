// Combining the outputs of ensemble members.
//
//   members [M, N, C]  every member's output for one task (member-major)
//   rows    [N, M·C]   the same values side by side per row (what `stack` feeds
//                      its dense combiner: row n = [o_0(n), o_1(n), …])
//   out     [N, C]     the combined output
//
// ensemble_mean_forward:  out[n, c] = (1/M) Σ_m members[m, n, c]
// ensemble_mean_backward: dmembers[m, n, c] = dout[n, c] / M
// members_to_rows:        rows[n, m·C + c] = members[m, n, c]
// rows_to_members:        members[m, n, c] = rows[n, m·C + c]   (the backward of members_to_rows)
// CPU twin: src/cpu/ensemble.rs.

struct EnsembleArgs {
    members: u32,   // M
    rows: u32,      // N
    width: u32,     // C
    src_off: u32,
    dst_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid.x;
}

@group(0) @binding(0) var<uniform> mf: EnsembleArgs;
@group(0) @binding(1) var<storage, read> mf_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> mf_dst: array<f32>;

@compute @workgroup_size(256)
fn ensemble_mean_forward(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let len = mf.rows * mf.width;
    if (i >= len) { return; }
    var s = 0.0;
    for (var m = 0u; m < mf.members; m++) { s += mf_src[mf.src_off + m * len + i]; }
    mf_dst[mf.dst_off + i] = s / f32(mf.members);
}

@group(0) @binding(0) var<uniform> mb: EnsembleArgs;
@group(0) @binding(1) var<storage, read> mb_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> mb_dst: array<f32>;

@compute @workgroup_size(256)
fn ensemble_mean_backward(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let len = mb.rows * mb.width;
    if (i >= mb.members * len) { return; }
    mb_dst[mb.dst_off + i] = mb_src[mb.src_off + i % len] / f32(mb.members);
}

@group(0) @binding(0) var<uniform> mr: EnsembleArgs;
@group(0) @binding(1) var<storage, read> mr_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> mr_dst: array<f32>;

// One thread per element of members [M, N, C].
@compute @workgroup_size(256)
fn members_to_rows(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let len = mr.rows * mr.width;
    if (i >= mr.members * len) { return; }
    let m = i / len;
    let n = (i % len) / mr.width;
    let c = i % mr.width;
    mr_dst[mr.dst_off + n * mr.members * mr.width + m * mr.width + c] = mr_src[mr.src_off + i];
}

@group(0) @binding(0) var<uniform> rm: EnsembleArgs;
@group(0) @binding(1) var<storage, read> rm_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> rm_dst: array<f32>;

@compute @workgroup_size(256)
fn rows_to_members(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    let len = rm.rows * rm.width;
    if (i >= rm.members * len) { return; }
    let m = i / len;
    let n = (i % len) / rm.width;
    let c = i % rm.width;
    rm_dst[rm.dst_off + i] = rm_src[rm.src_off + n * rm.members * rm.width + m * rm.width + c];
}
