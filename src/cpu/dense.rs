//! CPU twin of shaders/dense.wgsl: the dense layer y = act(x·Wᵀ + b) and its
//! backward, through the GEMM crate.
//!
//! Shapes per batch item bt: x [N, I], W [O, I], b [O], y/dy [N, O], dx [N, I].

use super::activation::{activate, activate_grad};
use super::matmul::{matmul, Layout};
use crate::ops::DenseArgs;

struct Dims {
    n: usize,
    i: usize,
    o: usize,
}

fn dims(a: &DenseArgs) -> Dims {
    Dims {
        n: a.n as usize,
        i: a.i as usize,
        o: a.o as usize,
    }
}

/// dz [N, O] = dy ⊙ act'(y) for batch item bt.
fn output_grad(a: &DenseArgs, bt: usize, dy: &[f32], y: &[f32]) -> Vec<f32> {
    let d = dims(a);
    let base = bt * a.y_bstride as usize;
    let (yo, go) = (a.y_off as usize + base, a.dy_off as usize + base);
    (0..d.n * d.o)
        .map(|k| dy[go + k] * activate_grad(y[yo + k], a.act))
        .collect()
}

/// y[n, o] = act(Σ_k x[n, k]·W[o, k] + b[o]).
pub fn forward(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32]) {
    let d = dims(a);
    for bt in 0..a.batches as usize {
        let x0 = a.x_off as usize + bt * a.x_bstride as usize;
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let b0 = a.b_off as usize + bt * a.b_bstride as usize;
        let y0 = a.y_off as usize + bt * a.y_bstride as usize;
        matmul(
            d.n,
            d.o,
            d.i,
            y,
            Layout::rows(y0, d.o),
            false,
            x,
            Layout::rows(x0, d.i),
            params,
            Layout::transposed(w0, d.i),
        );
        for row in 0..d.n {
            let out = &mut y[y0 + row * d.o..y0 + (row + 1) * d.o];
            for (col, v) in out.iter_mut().enumerate() {
                *v = activate(*v + params[b0 + col], a.act);
            }
        }
    }
}

/// dx[n, i] (+)= Σ_o dz[n, o]·W[o, i],  dz = dy ⊙ act'(y).
pub fn backward_input(a: &DenseArgs, dy: &[f32], y: &[f32], params: &[f32], dx: &mut [f32]) {
    let d = dims(a);
    for bt in 0..a.batches as usize {
        let dz = output_grad(a, bt, dy, y);
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let x0 = a.dx_off as usize + bt * a.x_bstride as usize;
        matmul(
            d.n,
            d.i,
            d.o,
            dx,
            Layout::rows(x0, d.i),
            a.accumulate != 0,
            &dz,
            Layout::rows(0, d.o),
            params,
            Layout::rows(w0, d.i),
        );
    }
}

/// dW[o, i] (+)= Σ_n dz[n, o]·x[n, i],  db[o] (+)= Σ_n dz[n, o], into `grads`.
pub fn backward_weight(a: &DenseArgs, dy: &[f32], y: &[f32], x: &[f32], grads: &mut [f32]) {
    let d = dims(a);
    for bt in 0..a.batches as usize {
        let dz = output_grad(a, bt, dy, y);
        let x0 = a.x_off as usize + bt * a.x_bstride as usize;
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let b0 = a.b_off as usize + bt * a.b_bstride as usize;
        matmul(
            d.o,
            d.i,
            d.n,
            grads,
            Layout::rows(w0, d.i),
            a.accumulate != 0,
            &dz,
            Layout::transposed(0, d.o),
            x,
            Layout::rows(x0, d.i),
        );
        for o in 0..d.o {
            let mut s = 0.0f32;
            for row in 0..d.n {
                s += dz[row * d.o + o];
            }
            grads[b0 + o] = if a.accumulate != 0 {
                grads[b0 + o] + s
            } else {
                s
            };
        }
    }
}
