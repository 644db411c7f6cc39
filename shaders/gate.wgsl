// Gates of a mixture of experts: a softmax over experts per row, and the gated
// sum of the experts' outputs, with their backwards.
//
//   g   [R, G]      gate rows (row stride G = g_stride), the first E columns used
//   ex  [E, N, H]   expert outputs, expert-major (as one batched dense dispatch writes them)
//   out [N, H]      Σ_e g[n, e] · ex[e, n, h]
//
// gate_softmax / gate_softmax_backward read at g_off and write at out_off, both with
// row stride g_stride. The gated-sum kernels read g at g_off, ex at ex_off and out /
// dout at out_off. `accumulate` = 1 adds into the destination instead of overwriting.
// One thread per output element; a flattened 2-D grid of 256-thread workgroups.
// CPU twin: src/cpu/gate.rs. Parity: tests/parity.rs.

struct GateArgs {
    rows: u32,        // R rows of the softmax, or N rows of the gated sum
    experts: u32,     // E
    width: u32,       // H, the experts' output width
    g_stride: u32,    // G, elements between gate rows (≥ E)
    g_off: u32,
    ex_off: u32,
    out_off: u32,
    accumulate: u32,
}

fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid.x;
}

// ---------------------------------------------------------------------------
// gate_softmax: y[r, e] = exp(x[r, e] − m_r) / Σ_k exp(x[r, k] − m_r), m_r = max_k x[r, k]
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> sf: GateArgs;
@group(0) @binding(1) var<storage, read> sf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sf_y: array<f32>;

@compute @workgroup_size(256)
fn gate_softmax(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wid, nwg, lid);
    if (r >= sf.rows) { return; }
    let x0 = sf.g_off + r * sf.g_stride;
    let y0 = sf.out_off + r * sf.g_stride;
    var m = sf_x[x0];
    for (var e = 1u; e < sf.experts; e++) { m = max(m, sf_x[x0 + e]); }
    var s = 0.0;
    for (var e = 0u; e < sf.experts; e++) { s += exp(sf_x[x0 + e] - m); }
    for (var e = 0u; e < sf.experts; e++) { sf_y[y0 + e] = exp(sf_x[x0 + e] - m) / s; }
}

// ---------------------------------------------------------------------------
// gate_softmax_backward: dx[r, e] (+)= y[r, e] · (dy[r, e] − Σ_k y[r, k]·dy[r, k])
// dy and y at g_off, dx at out_off.
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> sb: GateArgs;
@group(0) @binding(1) var<storage, read> sb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> sb_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> sb_dx: array<f32>;

@compute @workgroup_size(256)
fn gate_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wid, nwg, lid);
    if (r >= sb.rows) { return; }
    let a0 = sb.g_off + r * sb.g_stride;
    let d0 = sb.out_off + r * sb.g_stride;
    var dot = 0.0;
    for (var e = 0u; e < sb.experts; e++) { dot += sb_y[a0 + e] * sb_dy[a0 + e]; }
    for (var e = 0u; e < sb.experts; e++) {
        var v = sb_y[a0 + e] * (sb_dy[a0 + e] - dot);
        if (sb.accumulate != 0u) { v += sb_dx[d0 + e]; }
        sb_dx[d0 + e] = v;
    }
}

// ---------------------------------------------------------------------------
// gated_sum_forward: out[n, h] (+)= Σ_e g[n, e] · ex[e, n, h]
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> gf: GateArgs;
@group(0) @binding(1) var<storage, read> gf_g: array<f32>;
@group(0) @binding(2) var<storage, read> gf_ex: array<f32>;
@group(0) @binding(3) var<storage, read_write> gf_out: array<f32>;

@compute @workgroup_size(256)
fn gated_sum_forward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if (i >= gf.rows * gf.width) { return; }
    let n = i / gf.width;
    let h = i % gf.width;
    var s = 0.0;
    for (var e = 0u; e < gf.experts; e++) {
        s += gf_g[gf.g_off + n * gf.g_stride + e] * gf_ex[gf.ex_off + (e * gf.rows + n) * gf.width + h];
    }
    if (gf.accumulate != 0u) { s += gf_out[gf.out_off + i]; }
    gf_out[gf.out_off + i] = s;
}

// ---------------------------------------------------------------------------
// gated_sum_backward_experts: dex[e, n, h] (+)= g[n, e] · dout[n, h]
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> ge: GateArgs;
@group(0) @binding(1) var<storage, read> ge_g: array<f32>;
@group(0) @binding(2) var<storage, read> ge_dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> ge_dex: array<f32>;

@compute @workgroup_size(256)
fn gated_sum_backward_experts(@builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    let per = ge.rows * ge.width;
    if (i >= ge.experts * per) { return; }
    let e = i / per;
    let nh = i % per;
    let n = nh / ge.width;
    var v = ge_g[ge.g_off + n * ge.g_stride + e] * ge_dout[ge.out_off + nh];
    if (ge.accumulate != 0u) { v += ge_dex[ge.ex_off + i]; }
    ge_dex[ge.ex_off + i] = v;
}

// ---------------------------------------------------------------------------
// gated_sum_backward_gate: dg[n, e] (+)= Σ_h dout[n, h] · ex[e, n, h]
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> gg: GateArgs;
@group(0) @binding(1) var<storage, read> gg_dout: array<f32>;
@group(0) @binding(2) var<storage, read> gg_ex: array<f32>;
@group(0) @binding(3) var<storage, read_write> gg_dg: array<f32>;

@compute @workgroup_size(256)
fn gated_sum_backward_gate(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wid, nwg, lid);
    if (i >= gg.rows * gg.experts) { return; }
    let n = i / gg.experts;
    let e = i % gg.experts;
    var s = 0.0;
    for (var h = 0u; h < gg.width; h++) {
        s += gg_dout[gg.out_off + n * gg.width + h] * gg_ex[gg.ex_off + (e * gg.rows + n) * gg.width + h];
    }
    let at = gg.g_off + n * gg.g_stride + e;
    if (gg.accumulate != 0u) { s += gg_dg[at]; }
    gg_dg[at] = s;
}
