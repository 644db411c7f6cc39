// Element-wise activations, forward and backward, on a flat range.
//   x, y, dy, dx: [len] at their offsets.
// Backward uses the forward output: dx = dy ⊙ act'(y).
// CPU twin: src/cpu/activation.rs.

struct ActivationArgs {
    len: u32,
    act: u32,      // 0 identity, 1 relu, 2 tanh, 3 sigmoid
    x_off: u32,    // forward: x; backward: dy
    y_off: u32,    // forward: y (written); backward: y (read)
    dx_off: u32,   // backward: dx (written)
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
}

fn activate(z: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(z, 0.0); }
        case 2u: { return tanh(z); }
        case 3u: { return 1.0 / (1.0 + exp(-z)); }
        default: { return z; }
    }
}

fn activate_grad(y: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return 1.0 - y * y; }
        case 3u: { return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

// Flattened 2-D grid of 256-thread workgroups.
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * 256u + lid.x;
}

@group(0) @binding(0) var<uniform> af: ActivationArgs;
@group(0) @binding(1) var<storage, read> af_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> af_y: array<f32>;

@compute @workgroup_size(256)
fn activation_forward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= af.len) { return; }
    af_y[af.y_off + i] = activate(af_x[af.x_off + i], af.act);
}

@group(0) @binding(0) var<uniform> ab: ActivationArgs;
@group(0) @binding(1) var<storage, read> ab_dy: array<f32>;
@group(0) @binding(2) var<storage, read> ab_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> ab_dx: array<f32>;

@compute @workgroup_size(256)
fn activation_backward(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= ab.len) { return; }
    var v = ab_dy[ab.x_off + i] * activate_grad(ab_y[ab.y_off + i], ab.act);
    if (ab.accumulate != 0u) { v += ab_dx[ab.dx_off + i]; }
    ab_dx[ab.dx_off + i] = v;
}
