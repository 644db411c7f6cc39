// Concatenation and split along the feature (column) axis.
//   concat_columns: dst[r, col0 + c] = src[r, c]          src [N, W], dst [N, D]
//   split_columns:  dst[r, c] (+)= src[r, col0 + c]       src [N, D], dst [N, W]
// split is concat's backward (it routes a gradient slice back to its block).
// CPU twin: src/cpu/concat.rs.

struct ColumnsArgs {
    rows: u32,
    width: u32,      // W: columns of the narrow side
    wide: u32,       // D: columns of the wide side
    col0: u32,       // first column of the block in the wide side
    src_off: u32,
    dst_off: u32,
    accumulate: u32, // split only: add into dst
    _pad: u32,
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid.x;
}

@group(0) @binding(0) var<uniform> cc: ColumnsArgs;
@group(0) @binding(1) var<storage, read> cc_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> cc_dst: array<f32>;

@compute @workgroup_size(256)
fn concat_columns(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= cc.rows * cc.width) { return; }
    let r = i / cc.width;
    let c = i % cc.width;
    cc_dst[cc.dst_off + r * cc.wide + cc.col0 + c] = cc_src[cc.src_off + i];
}

@group(0) @binding(0) var<uniform> sc: ColumnsArgs;
@group(0) @binding(1) var<storage, read> sc_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> sc_dst: array<f32>;

@compute @workgroup_size(256)
fn split_columns(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= sc.rows * sc.width) { return; }
    let r = i / sc.width;
    let c = i % sc.width;
    var v = sc_src[sc.src_off + r * sc.wide + sc.col0 + c];
    if (sc.accumulate != 0u) { v += sc_dst[sc.dst_off + i]; }
    sc_dst[sc.dst_off + i] = v;
}
