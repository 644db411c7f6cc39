//! CPU twin of shaders/gate.wgsl: the per-row softmax of a gate and the gated
//! sum of expert outputs, with their backwards.
//!
//! Shapes: g [R, G] (row stride G = `g_stride`, first E columns used),
//! ex [E, N, H] expert-major, out [N, H] = Σ_e g[n, e]·ex[e, n, h].
//! These plain loops are also the reference the parity tests compare the GPU
//! against (one function per kernel suffices).

use crate::ops::GateArgs;

fn put(dst: &mut f32, v: f32, accumulate: u32) {
    *dst = if accumulate != 0 { *dst + v } else { v };
}

/// y[r, e] = softmax over e of x[r, ·], rows read at g_off, written at out_off.
pub fn softmax(a: &GateArgs, x: &[f32], y: &mut [f32]) {
    let (e_n, gs) = (a.experts as usize, a.g_stride as usize);
    for r in 0..a.rows as usize {
        let x0 = a.g_off as usize + r * gs;
        let y0 = a.out_off as usize + r * gs;
        let row = &x[x0..x0 + e_n];
        let m = row.iter().copied().fold(row[0], f32::max);
        let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
        for e in 0..e_n {
            y[y0 + e] = (row[e] - m).exp() / s;
        }
    }
}

/// dx[r, e] (+)= y[r, e]·(dy[r, e] − Σ_k y[r, k]·dy[r, k]); dy, y at g_off, dx at out_off.
pub fn softmax_backward(a: &GateArgs, dy: &[f32], y: &[f32], dx: &mut [f32]) {
    let (e_n, gs) = (a.experts as usize, a.g_stride as usize);
    for r in 0..a.rows as usize {
        let a0 = a.g_off as usize + r * gs;
        let d0 = a.out_off as usize + r * gs;
        let mut dot = 0.0f32;
        for e in 0..e_n {
            dot += y[a0 + e] * dy[a0 + e];
        }
        for e in 0..e_n {
            put(
                &mut dx[d0 + e],
                y[a0 + e] * (dy[a0 + e] - dot),
                a.accumulate,
            );
        }
    }
}

/// out[n, h] (+)= Σ_e g[n, e]·ex[e, n, h].
pub fn sum_forward(a: &GateArgs, g: &[f32], ex: &[f32], out: &mut [f32]) {
    let (n_n, e_n, h_n, gs) = (
        a.rows as usize,
        a.experts as usize,
        a.width as usize,
        a.g_stride as usize,
    );
    for n in 0..n_n {
        for h in 0..h_n {
            let mut s = 0.0f32;
            for e in 0..e_n {
                s += g[a.g_off as usize + n * gs + e]
                    * ex[a.ex_off as usize + (e * n_n + n) * h_n + h];
            }
            put(&mut out[a.out_off as usize + n * h_n + h], s, a.accumulate);
        }
    }
}

/// dex[e, n, h] (+)= g[n, e]·dout[n, h].
pub fn sum_backward_experts(a: &GateArgs, g: &[f32], dout: &[f32], dex: &mut [f32]) {
    let (n_n, e_n, h_n, gs) = (
        a.rows as usize,
        a.experts as usize,
        a.width as usize,
        a.g_stride as usize,
    );
    for e in 0..e_n {
        for n in 0..n_n {
            let ge = g[a.g_off as usize + n * gs + e];
            for h in 0..h_n {
                let v = ge * dout[a.out_off as usize + n * h_n + h];
                put(
                    &mut dex[a.ex_off as usize + (e * n_n + n) * h_n + h],
                    v,
                    a.accumulate,
                );
            }
        }
    }
}

/// dg[n, e] (+)= Σ_h dout[n, h]·ex[e, n, h].
pub fn sum_backward_gate(a: &GateArgs, dout: &[f32], ex: &[f32], dg: &mut [f32]) {
    let (n_n, e_n, h_n, gs) = (
        a.rows as usize,
        a.experts as usize,
        a.width as usize,
        a.g_stride as usize,
    );
    for n in 0..n_n {
        for e in 0..e_n {
            let mut s = 0.0f32;
            for h in 0..h_n {
                s += dout[a.out_off as usize + n * h_n + h]
                    * ex[a.ex_off as usize + (e * n_n + n) * h_n + h];
            }
            put(&mut dg[a.g_off as usize + n * gs + e], s, a.accumulate);
        }
    }
}
