// Per-task losses and their gradients w.r.t. the logits, with missing labels masked.
//
//   z      [N, C]   logits (binary, multiclass) or predictions (regression)
//   label  [N, L]   L = C (binary, regression) or 1 (multiclass: class index as f32); NaN = missing
//   dz     [N, C]   raw gradient of the per-element loss (scaled later by λ_j / count_j)
//   stats  [N, 2]   per row: summed loss of the valid elements, number of valid elements
//
// Elements:
//   bce:  l = max(z,0) − z·y + log(1 + exp(−|z|)),   dl/dz = sigmoid(z) − y
//   ce:   l = logsumexp(z) − z[y],                    dl/dz = softmax(z) − onehot(y)
//   bce on probabilities (an ensemble's averaged output): p = clamp(z, ε, 1−ε), ε = 1e-7 (Keras),
//         l = −y·log p − (1−y)·log(1−p),              dl/dz = (p − y)/(p(1−p)), 0 strictly outside [ε, 1−ε]
//   mse:  l = (z − y)²,                               dl/dz = 2(z − y)
//   ce on probabilities (an ensemble's averaged softmax outputs): p = clamp(z[y], ε, 1−ε),
//         l = −log p,                                 dl/dz[y] = −1/p, 0 elsewhere and strictly outside [ε, 1−ε]
//   The clip's gradient is Keras' (TensorFlow's clip_by_value): zero only strictly outside
//   [ε, 1−ε]; at p = ε or p = 1−ε = 0.99999988 exactly the gradient flows.
// A task's loss is Σ l / Σ count over the batch (multitask_loss_reduce).
// CPU twin: src/cpu/loss.rs.

struct LossArgs {
    rows: u32,
    outputs: u32,   // C
    z_off: u32,
    label_off: u32,
    dz_off: u32,
    stats_off: u32,
    label_rows: u32, // 0: row r reads label row r; else label row r % label_rows
                     // (M members' outputs [M·N, C] all trained against one [N, ·] label)
    label_members: u32, // 0: as above; M: labels are per member, [N, M, ·] (bagging):
                        // stacked row r = m·N + n reads label row n·M + m
}

// The label row that output row r is trained against.
fn label_row_of(r: u32, label_rows: u32, label_members: u32) -> u32 {
    if (label_rows == 0u) { return r; }
    let n = r % label_rows;
    if (label_members == 0u) { return n; }
    return n * label_members + r / label_rows;
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid.x;
}

// NaN test on the bits: shader compilers may assume floats are never NaN.
fn is_missing(y: f32) -> bool {
    return (bitcast<u32>(y) & 0x7fffffffu) > 0x7f800000u;
}

@group(0) @binding(0) var<uniform> lb: LossArgs;
@group(0) @binding(1) var<storage, read> lb_z: array<f32>;
@group(0) @binding(2) var<storage, read> lb_label: array<f32>;
@group(0) @binding(3) var<storage, read_write> lb_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> lb_stats: array<f32>;

@compute @workgroup_size(256)
fn loss_bce(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= lb.rows) { return; }
    var total = 0.0;
    var count = 0.0;
    for (var c = 0u; c < lb.outputs; c++) {
        let at = r * lb.outputs + c;
        let y = lb_label[lb.label_off + label_row_of(r, lb.label_rows, lb.label_members) * lb.outputs + c];
        var g = 0.0;
        if (!is_missing(y)) {
            let z = lb_z[lb.z_off + at];
            total += max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
            count += 1.0;
            g = 1.0 / (1.0 + exp(-z)) - y;
        }
        lb_dz[lb.dz_off + at] = g;
    }
    lb_stats[lb.stats_off + 2u * r] = total;
    lb_stats[lb.stats_off + 2u * r + 1u] = count;
}

@group(0) @binding(0) var<uniform> lc: LossArgs;
@group(0) @binding(1) var<storage, read> lc_z: array<f32>;
@group(0) @binding(2) var<storage, read> lc_label: array<f32>;
@group(0) @binding(3) var<storage, read_write> lc_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> lc_stats: array<f32>;

@compute @workgroup_size(256)
fn loss_softmax_ce(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= lc.rows) { return; }
    let z0 = lc.z_off + r * lc.outputs;
    let y = lc_label[lc.label_off + label_row_of(r, lc.label_rows, lc.label_members)];
    // A missing label (or one outside 0..C−1, which the loader rejects) masks the row.
    if (is_missing(y) || y < 0.0 || u32(y) >= lc.outputs) {
        for (var c = 0u; c < lc.outputs; c++) { lc_dz[lc.dz_off + r * lc.outputs + c] = 0.0; }
        lc_stats[lc.stats_off + 2u * r] = 0.0;
        lc_stats[lc.stats_off + 2u * r + 1u] = 0.0;
        return;
    }
    let cls = u32(y);
    var m = lc_z[z0];
    for (var c = 1u; c < lc.outputs; c++) { m = max(m, lc_z[z0 + c]); }
    var s = 0.0;
    for (var c = 0u; c < lc.outputs; c++) { s += exp(lc_z[z0 + c] - m); }
    let lse = m + log(s);
    var zy = 0.0;
    for (var c = 0u; c < lc.outputs; c++) {
        let z = lc_z[z0 + c];
        var g = exp(z - lse);
        if (c == cls) { g -= 1.0; zy = z; }
        lc_dz[lc.dz_off + r * lc.outputs + c] = g;
    }
    lc_stats[lc.stats_off + 2u * r] = lse - zy;
    lc_stats[lc.stats_off + 2u * r + 1u] = 1.0;
}

@group(0) @binding(0) var<uniform> lm: LossArgs;
@group(0) @binding(1) var<storage, read> lm_z: array<f32>;
@group(0) @binding(2) var<storage, read> lm_label: array<f32>;
@group(0) @binding(3) var<storage, read_write> lm_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> lm_stats: array<f32>;

@compute @workgroup_size(256)
fn loss_mse(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= lm.rows) { return; }
    var total = 0.0;
    var count = 0.0;
    for (var c = 0u; c < lm.outputs; c++) {
        let at = r * lm.outputs + c;
        let y = lm_label[lm.label_off + label_row_of(r, lm.label_rows, lm.label_members) * lm.outputs + c];
        var g = 0.0;
        if (!is_missing(y)) {
            let d = lm_z[lm.z_off + at] - y;
            total += d * d;
            count += 1.0;
            g = 2.0 * d;
        }
        lm_dz[lm.dz_off + at] = g;
    }
    lm_stats[lm.stats_off + 2u * r] = total;
    lm_stats[lm.stats_off + 2u * r + 1u] = count;
}

@group(0) @binding(0) var<uniform> lp: LossArgs;
@group(0) @binding(1) var<storage, read> lp_z: array<f32>;
@group(0) @binding(2) var<storage, read> lp_label: array<f32>;
@group(0) @binding(3) var<storage, read_write> lp_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> lp_stats: array<f32>;

const PROB_EPS: f32 = 1e-7;

@compute @workgroup_size(256)
fn loss_bce_prob(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= lp.rows) { return; }
    var total = 0.0;
    var count = 0.0;
    for (var c = 0u; c < lp.outputs; c++) {
        let at = r * lp.outputs + c;
        let y = lp_label[lp.label_off + label_row_of(r, lp.label_rows, lp.label_members) * lp.outputs + c];
        var g = 0.0;
        if (!is_missing(y)) {
            let z = lp_z[lp.z_off + at];
            let p = clamp(z, PROB_EPS, 1.0 - PROB_EPS);
            total += -(y * log(p) + (1.0 - y) * log(1.0 - p));
            count += 1.0;
            // Zero only strictly outside [ε, 1−ε], as clip_by_value's gradient.
            if (z >= PROB_EPS && z <= 1.0 - PROB_EPS) { g = (p - y) / (p * (1.0 - p)); }
        }
        lp_dz[lp.dz_off + at] = g;
    }
    lp_stats[lp.stats_off + 2u * r] = total;
    lp_stats[lp.stats_off + 2u * r + 1u] = count;
}

@group(0) @binding(0) var<uniform> lq: LossArgs;
@group(0) @binding(1) var<storage, read> lq_z: array<f32>;
@group(0) @binding(2) var<storage, read> lq_label: array<f32>;
@group(0) @binding(3) var<storage, read_write> lq_dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> lq_stats: array<f32>;

// Cross-entropy on class probabilities (an ensemble's averaged or gated softmax outputs):
//   p = clamp(z[y], ε, 1−ε),  l = −log p,  dl/dz[y] = −1/p (0 strictly outside [ε, 1−ε]),  dl/dz[c≠y] = 0.
// Keras also divides z by its row sum first; for rows that already sum to 1 (every caller's) that
// adds the same constant to each dl/dz[c], which a softmax or a convex combination of softmaxes
// upstream cancels, so it is left out.
@compute @workgroup_size(256)
fn loss_ce_prob(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= lq.rows) { return; }
    let z0 = lq.z_off + r * lq.outputs;
    let d0 = lq.dz_off + r * lq.outputs;
    for (var c = 0u; c < lq.outputs; c++) { lq_dz[d0 + c] = 0.0; }
    let y = lq_label[lq.label_off + label_row_of(r, lq.label_rows, lq.label_members)];
    if (is_missing(y) || y < 0.0 || u32(y) >= lq.outputs) {
        lq_stats[lq.stats_off + 2u * r] = 0.0;
        lq_stats[lq.stats_off + 2u * r + 1u] = 0.0;
        return;
    }
    let cls = u32(y);
    let z = lq_z[z0 + cls];
    let p = clamp(z, PROB_EPS, 1.0 - PROB_EPS);
    if (z >= PROB_EPS && z <= 1.0 - PROB_EPS) { lq_dz[d0 + cls] = -1.0 / p; }
    lq_stats[lq.stats_off + 2u * r] = -log(p);
    lq_stats[lq.stats_off + 2u * r + 1u] = 1.0;
}
