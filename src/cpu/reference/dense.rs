//! Reference of shaders/dense.wgsl (fast path: src/cpu/dense.rs).
//!
//! Per batch item bt: x [N, I] at x_off + bt·x_bstride, W [O, I] at
//! w_off + bt·w_bstride, b [O] at b_off + bt·b_bstride, y and dy [N, O] at
//! y_off/dy_off + bt·y_bstride, dx [N, I] at dx_off + bt·x_bstride.
//! dz = dy ⊙ act'(y).

use crate::cpu::activation::{activate, activate_grad};
use crate::ops::DenseArgs;

/// Offsets of item bt: (x, W, b, y and dy, dx).
struct Item {
    x: usize,
    w: usize,
    b: usize,
    y: usize,
    dy: usize,
    dx: usize,
}

fn item(a: &DenseArgs, bt: u32) -> Item {
    Item {
        x: (a.x_off + bt * a.x_bstride) as usize,
        w: (a.w_off + bt * a.w_bstride) as usize,
        b: (a.b_off + bt * a.b_bstride) as usize,
        y: (a.y_off + bt * a.y_bstride) as usize,
        dy: (a.dy_off + bt * a.y_bstride) as usize,
        dx: (a.dx_off + bt * a.x_bstride) as usize,
    }
}

fn put(dst: &mut f32, v: f32, add: bool) {
    *dst = if add { *dst + v } else { v };
}

/// y[n, o] = act(Σ_k x[n, k]·W[o, k] + b[o]).
pub fn forward(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32]) {
    let (n_n, i_n, o_n) = (a.n as usize, a.i as usize, a.o as usize);
    for bt in 0..a.batches {
        let at = item(a, bt);
        for n in 0..n_n {
            for o in 0..o_n {
                let mut s = 0.0f32;
                for k in 0..i_n {
                    s += x[at.x + n * i_n + k] * params[at.w + o * i_n + k];
                }
                y[at.y + n * o_n + o] = activate(s + params[at.b + o], a.act);
            }
        }
    }
}

/// dx[n, i] (+)= Σ_o dz[n, o]·W[o, i]. Items sharing their input
/// (x_bstride = 0) sum into one dx.
pub fn backward_input(a: &DenseArgs, dy: &[f32], y: &[f32], params: &[f32], dx: &mut [f32]) {
    let (n_n, i_n, o_n) = (a.n as usize, a.i as usize, a.o as usize);
    for bt in 0..a.batches {
        let at = item(a, bt);
        let add = a.accumulate != 0 || (a.x_bstride == 0 && bt > 0);
        for n in 0..n_n {
            for i in 0..i_n {
                let mut s = 0.0f32;
                for o in 0..o_n {
                    let dz = dy[at.dy + n * o_n + o] * activate_grad(y[at.y + n * o_n + o], a.act);
                    s += dz * params[at.w + o * i_n + i];
                }
                put(&mut dx[at.dx + n * i_n + i], s, add);
            }
        }
    }
}

/// dW[o, i] (+)= Σ_n dz[n, o]·x[n, i],  db[o] (+)= Σ_n dz[n, o], into `grads`
/// at W's and b's offsets.
pub fn backward_weight(a: &DenseArgs, dy: &[f32], y: &[f32], x: &[f32], grads: &mut [f32]) {
    let (n_n, i_n, o_n) = (a.n as usize, a.i as usize, a.o as usize);
    let add = a.accumulate != 0;
    for bt in 0..a.batches {
        let at = item(a, bt);
        let dz = |n: usize, o: usize| {
            dy[at.dy + n * o_n + o] * activate_grad(y[at.y + n * o_n + o], a.act)
        };
        for o in 0..o_n {
            for i in 0..i_n {
                let mut s = 0.0f32;
                for n in 0..n_n {
                    s += dz(n, o) * x[at.x + n * i_n + i];
                }
                put(&mut grads[at.w + o * i_n + i], s, add);
            }
            let mut s = 0.0f32;
            for n in 0..n_n {
                s += dz(n, o);
            }
            put(&mut grads[at.b + o], s, add);
        }
    }
}
