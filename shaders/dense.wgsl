// Dense layer: forward y = act(x·Wᵀ + b) and its backward, as tiled GEMMs.
//
// Shapes (per batch item `bt`, e.g. one ensemble member or expert):
//   x  [N, I]   activations in
//   W  [O, I]   weights, PyTorch nn.Linear layout, at params[w_off ..]
//   b  [O]      bias, at params[b_off ..]
//   y  [N, O]   activations out (after the activation)
//   dy [N, O]   gradient w.r.t. y; dz = dy ⊙ act'(y) is formed on the fly
//
// Every entry point computes a 64×64 output tile per workgroup of 16×16
// threads; each thread owns a 4×4 block held in four vec4 registers. The K
// dimension is walked in slices of 16 staged through workgroup memory as
// vec4 rows, so the inner loop is 2 vec4 loads and 4 vec4 FMAs per k.
// Workgroups are numbered on a flattened 2-D grid (x ≤ 65535), so any
// number of tiles can be dispatched. Every global read and write is guarded.
// CPU twin: src/cpu/dense.rs (fast path), src/cpu/reference/dense.rs (plain
// loops). Parity: tests/parity.rs.

struct DenseArgs {
    n: u32,          // rows (batch)
    i: u32,          // input features
    o: u32,          // output features
    act: u32,        // ACT_* below
    x_off: u32,      // offsets in elements into each bound buffer
    w_off: u32,
    b_off: u32,
    y_off: u32,
    dy_off: u32,
    dx_off: u32,
    batches: u32,    // independent layers in one dispatch (members, experts)
    x_bstride: u32,  // element strides between batch items (0 = shared input)
    w_bstride: u32,
    b_bstride: u32,
    y_bstride: u32,
    accumulate: u32, // backward: 1 = add into the destination instead of overwriting
}

const TILE: u32 = 64u;   // output tile edge
const TK: u32 = 16u;     // K slice staged per iteration
const Q: u32 = 16u;      // TILE / 4: vec4 columns per tile row

// tile_a[kk * Q + r4] = rows 4·r4 .. 4·r4+3 of the A slice at k = kk
// tile_b[kk * Q + c4] = cols 4·c4 .. 4·c4+3 of the B slice at k = kk
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// Activation codes: `Activation::code()` in src/kernel/activation.rs
// (tests/shaders.rs checks that they agree).
const ACT_IDENTITY: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_TANH: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;

fn activate(z: f32, act: u32) -> f32 {
    switch act {
        case ACT_RELU: { return max(z, 0.0); }
        case ACT_TANH: { return tanh(z); }
        case ACT_SIGMOID: { return 1.0 / (1.0 + exp(-z)); }
        default: { return z; } // ACT_IDENTITY
    }
}

// act'(z) written in terms of the output y = act(z).
fn activate_grad(y: f32, act: u32) -> f32 {
    switch act {
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_TANH: { return 1.0 - y * y; }
        case ACT_SIGMOID: { return y * (1.0 - y); }
        default: { return 1.0; } // ACT_IDENTITY
    }
}

// Adds tile_a[k, rows of this thread] ⊗ tile_b[k, cols of this thread] for k in the slice.
fn multiply_slice(tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 4>>) {
    for (var kk = 0u; kk < TK; kk++) {
        let a = tile_a[kk * Q + ty];
        let b = tile_b[kk * Q + tx];
        (*acc)[0] += a.x * b;
        (*acc)[1] += a.y * b;
        (*acc)[2] += a.z * b;
        (*acc)[3] += a.w * b;
    }
}

// Which tile of which batch item this workgroup computes.
struct TileId {
    valid: bool,
    bt: u32,
    row0: u32,
    col0: u32,
}

fn tile_id(wid: vec3<u32>, nwg: vec3<u32>, rows: u32, cols: u32, batches: u32) -> TileId {
    let flat = wid.x + wid.y * nwg.x;
    let tiles_r = (rows + TILE - 1u) / TILE;
    let tiles_c = (cols + TILE - 1u) / TILE;
    let per_batch = tiles_r * tiles_c;
    var t: TileId;
    t.valid = flat < per_batch * batches;
    t.bt = flat / max(per_batch, 1u);
    let r = flat % max(per_batch, 1u);
    t.row0 = (r / tiles_c) * TILE;
    t.col0 = (r % tiles_c) * TILE;
    return t;
}

// ---------------------------------------------------------------------------
// dense_forward: y[n, o] = act(Σ_k x[n, k] · W[o, k] + b[o])
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> fw: DenseArgs;
@group(0) @binding(1) var<storage, read> fw_x: array<f32>;
@group(0) @binding(2) var<storage, read> fw_p: array<f32>;
@group(0) @binding(3) var<storage, read_write> fw_y: array<f32>;

@compute @workgroup_size(16, 16)
fn dense_forward(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_id(wid, nwg, fw.n, fw.o, fw.batches);
    // Workgroup-uniform exit: every thread of this workgroup takes it together.
    if (!t.valid) { return; }
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let x0 = fw.x_off + t.bt * fw.x_bstride;
    let w0 = fw.w_off + t.bt * fw.w_bstride;
    var acc: array<vec4<f32>, 4>;
    // Loader layout: thread tid stages row (tid % 64), k = 4·(tid / 64) .. +3.
    let lr = tid % TILE;
    let lk = (tid / TILE) * 4u;
    for (var k0 = 0u; k0 < fw.i; k0 += TK) {
        let xr = t.row0 + lr;   // row of x
        let wr = t.col0 + lr;   // row of W (= output column)
        for (var j = 0u; j < 4u; j++) {
            let k = k0 + lk + j;
            var a = 0.0;
            var b = 0.0;
            if (xr < fw.n && k < fw.i) { a = fw_x[x0 + xr * fw.i + k]; }
            if (wr < fw.o && k < fw.i) { b = fw_p[w0 + wr * fw.i + k]; }
            tile_a[(lk + j) * Q + lr / 4u][lr % 4u] = a;
            tile_b[(lk + j) * Q + lr / 4u][lr % 4u] = b;
        }
        workgroupBarrier();
        multiply_slice(tx, ty, &acc);
        workgroupBarrier();
    }
    let b0 = fw.b_off + t.bt * fw.b_bstride;
    let y0 = fw.y_off + t.bt * fw.y_bstride;
    for (var r = 0u; r < 4u; r++) {
        let row = t.row0 + ty * 4u + r;
        for (var c = 0u; c < 4u; c++) {
            let col = t.col0 + tx * 4u + c;
            if (row < fw.n && col < fw.o) {
                fw_y[y0 + row * fw.o + col] = activate(acc[r][c] + fw_p[b0 + col], fw.act);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// dense_backward_input: dx[n, i] (+)= Σ_o dz[n, o] · W[o, i],  dz = dy ⊙ act'(y)
// (summed over batch items when they share their input)
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> bi: DenseArgs;
@group(0) @binding(1) var<storage, read> bi_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bi_y: array<f32>;
@group(0) @binding(3) var<storage, read> bi_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> bi_dx: array<f32>;

@compute @workgroup_size(16, 16)
fn dense_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    // Batch items that share one input (x_bstride = 0) sum into one dx: the
    // product runs over K = batches·O, k = bt·O + o (heads of several tasks on
    // one trunk, members on one input). Otherwise each item has its own dx.
    let summed = bi.x_bstride == 0u && bi.batches > 1u;
    let t = tile_id(wid, nwg, bi.n, bi.i, select(bi.batches, 1u, summed));
    if (!t.valid) { return; }
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let kdim = select(bi.o, bi.o * bi.batches, summed);
    var acc: array<vec4<f32>, 4>;
    // A = dz [N, O] with k = o contiguous: stage row (tid % 64), k = 4·(tid / 64) .. +3.
    let lr = tid % TILE;
    let lk = (tid / TILE) * 4u;
    // B = W [O, I] with the output column i contiguous: stage k = tid / 16, cols 4·(tid % 16) .. +3.
    let bk = tid / Q;
    let bc = (tid % Q) * 4u;
    for (var k0 = 0u; k0 < kdim; k0 += TK) {
        let row = t.row0 + lr;
        for (var j = 0u; j < 4u; j++) {
            let k = k0 + lk + j;
            var a = 0.0;
            if (row < bi.n && k < kdim) {
                let bt = select(t.bt, k / bi.o, summed);
                let at = bt * bi.y_bstride + row * bi.o + k % bi.o;
                a = bi_dy[bi.dy_off + at] * activate_grad(bi_y[bi.y_off + at], bi.act);
            }
            tile_a[(lk + j) * Q + lr / 4u][lr % 4u] = a;
        }
        let k = k0 + bk;
        var b = vec4<f32>(0.0);
        if (k < kdim) {
            let bt = select(t.bt, k / bi.o, summed);
            let w0 = bi.w_off + bt * bi.w_bstride + (k % bi.o) * bi.i;
            for (var j = 0u; j < 4u; j++) {
                let col = t.col0 + bc + j;
                if (col < bi.i) { b[j] = bi_p[w0 + col]; }
            }
        }
        tile_b[bk * Q + bc / 4u] = b;
        workgroupBarrier();
        multiply_slice(tx, ty, &acc);
        workgroupBarrier();
    }
    let x0 = bi.dx_off + t.bt * bi.x_bstride;
    for (var r = 0u; r < 4u; r++) {
        let row = t.row0 + ty * 4u + r;
        for (var c = 0u; c < 4u; c++) {
            let col = t.col0 + tx * 4u + c;
            if (row < bi.n && col < bi.i) {
                let at = x0 + row * bi.i + col;
                var v = acc[r][c];
                if (bi.accumulate != 0u) { v += bi_dx[at]; }
                bi_dx[at] = v;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// dense_backward_weight: dW[o, i] (+)= Σ_n dz[n, o] · x[n, i],  db[o] (+)= Σ_n dz[n, o]
// The bias gradient is the extra column i = I of the same GEMM, against a column of ones.
// ---------------------------------------------------------------------------
@group(0) @binding(0) var<uniform> bw: DenseArgs;
@group(0) @binding(1) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bw_y: array<f32>;
@group(0) @binding(3) var<storage, read> bw_x: array<f32>;
@group(0) @binding(4) var<storage, read_write> bw_g: array<f32>;

@compute @workgroup_size(16, 16)
fn dense_backward_weight(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    let cols = bw.i + 1u;
    let t = tile_id(wid, nwg, bw.o, cols, bw.batches);
    if (!t.valid) { return; }
    let tx = lid.x;
    let ty = lid.y;
    let tid = ty * 16u + tx;
    let yb = t.bt * bw.y_bstride;
    let x0 = bw.x_off + t.bt * bw.x_bstride;
    var acc: array<vec4<f32>, 4>;
    // Both operands have their output index contiguous: stage k = tid / 16, 4 rows/cols at 4·(tid % 16).
    let sk = tid / Q;
    let sc = (tid % Q) * 4u;
    for (var k0 = 0u; k0 < bw.n; k0 += TK) {
        let k = k0 + sk;   // batch row n
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let o = t.row0 + sc + j;
            if (k < bw.n && o < bw.o) {
                let at = yb + k * bw.o + o;
                a[j] = bw_dy[bw.dy_off + at] * activate_grad(bw_y[bw.y_off + at], bw.act);
            }
            let c = t.col0 + sc + j;
            if (k < bw.n && c < bw.i) {
                b[j] = bw_x[x0 + k * bw.i + c];
            } else if (k < bw.n && c == bw.i) {
                b[j] = 1.0;
            }
        }
        tile_a[sk * Q + sc / 4u] = a;
        tile_b[sk * Q + sc / 4u] = b;
        workgroupBarrier();
        multiply_slice(tx, ty, &acc);
        workgroupBarrier();
    }
    let w0 = bw.w_off + t.bt * bw.w_bstride;
    let b0 = bw.b_off + t.bt * bw.b_bstride;
    for (var r = 0u; r < 4u; r++) {
        let o = t.row0 + ty * 4u + r;
        for (var c = 0u; c < 4u; c++) {
            let col = t.col0 + tx * 4u + c;
            if (o < bw.o && col <= bw.i) {
                var at = w0 + o * bw.i + col;
                if (col == bw.i) { at = b0 + o; }
                var v = acc[r][c];
                if (bw.accumulate != 0u) { v += bw_g[at]; }
                bw_g[at] = v;
            }
        }
    }
}
