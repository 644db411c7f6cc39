//! CPU twin of shaders/activation.wgsl (and the activation math the dense
//! kernels fuse). Codes: 0 identity, 1 relu, 2 tanh, 3 sigmoid.

use crate::ops::ActivationArgs;

/// act(z).
pub fn activate(z: f32, act: u32) -> f32 {
    match act {
        1 => z.max(0.0),
        2 => z.tanh(),
        3 => 1.0 / (1.0 + (-z).exp()),
        _ => z,
    }
}

/// act'(z), written in terms of the output y = act(z).
pub fn activate_grad(y: f32, act: u32) -> f32 {
    match act {
        1 => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        2 => 1.0 - y * y,
        3 => y * (1.0 - y),
        _ => 1.0,
    }
}

/// y[i] = act(x[i]) for i < len.
pub fn forward(a: &ActivationArgs, x: &[f32], y: &mut [f32]) {
    let (xo, yo, n) = (a.x_off as usize, a.y_off as usize, a.len as usize);
    for i in 0..n {
        y[yo + i] = activate(x[xo + i], a.act);
    }
}

/// dx[i] (+)= dy[i] · act'(y[i]) for i < len.
pub fn backward(a: &ActivationArgs, dy: &[f32], y: &[f32], dx: &mut [f32]) {
    let (go, yo, dxo, n) = (
        a.x_off as usize,
        a.y_off as usize,
        a.dx_off as usize,
        a.len as usize,
    );
    for i in 0..n {
        let v = dy[go + i] * activate_grad(y[yo + i], a.act);
        dx[dxo + i] = if a.accumulate != 0 {
            dx[dxo + i] + v
        } else {
            v
        };
    }
}
