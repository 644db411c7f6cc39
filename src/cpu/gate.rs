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

/// The gated sums' shapes and offsets: g [N, G] (row stride G = g_stride) at
/// g_off, ex [E, N, H] at ex_off, out [N, H] at out_off.
struct GatedSumIndex {
    rows: usize,
    experts: usize,
    width: usize,
    g_stride: usize,
    g_off: usize,
    ex_off: usize,
    out_off: usize,
}

impl GatedSumIndex {
    fn of(a: &GateArgs) -> Self {
        GatedSumIndex {
            rows: a.rows as usize,
            experts: a.experts as usize,
            width: a.width as usize,
            g_stride: a.g_stride as usize,
            g_off: a.g_off as usize,
            ex_off: a.ex_off as usize,
            out_off: a.out_off as usize,
        }
    }
    /// Index of g[n, e].
    fn g(&self, n: usize, e: usize) -> usize {
        self.g_off + n * self.g_stride + e
    }
    /// Index of ex[e, n, h].
    fn ex(&self, e: usize, n: usize, h: usize) -> usize {
        self.ex_off + (e * self.rows + n) * self.width + h
    }
    /// Index of out[n, h].
    fn out(&self, n: usize, h: usize) -> usize {
        self.out_off + n * self.width + h
    }
}

/// out[n, h] (+)= Σ_e g[n, e]·ex[e, n, h].
pub fn sum_forward(a: &GateArgs, g: &[f32], ex: &[f32], out: &mut [f32]) {
    let ix = GatedSumIndex::of(a);
    for n in 0..ix.rows {
        for h in 0..ix.width {
            let mut s = 0.0f32;
            for e in 0..ix.experts {
                s += g[ix.g(n, e)] * ex[ix.ex(e, n, h)];
            }
            put(&mut out[ix.out(n, h)], s, a.accumulate);
        }
    }
}

/// dex[e, n, h] (+)= g[n, e]·dout[n, h].
pub fn sum_backward_experts(a: &GateArgs, g: &[f32], dout: &[f32], dex: &mut [f32]) {
    let ix = GatedSumIndex::of(a);
    for e in 0..ix.experts {
        for n in 0..ix.rows {
            let ge = g[ix.g(n, e)];
            for h in 0..ix.width {
                put(
                    &mut dex[ix.ex(e, n, h)],
                    ge * dout[ix.out(n, h)],
                    a.accumulate,
                );
            }
        }
    }
}

/// dg[n, e] (+)= Σ_h dout[n, h]·ex[e, n, h].
pub fn sum_backward_gate(a: &GateArgs, dout: &[f32], ex: &[f32], dg: &mut [f32]) {
    let ix = GatedSumIndex::of(a);
    for n in 0..ix.rows {
        for e in 0..ix.experts {
            let mut s = 0.0f32;
            for h in 0..ix.width {
                s += dout[ix.out(n, h)] * ex[ix.ex(e, n, h)];
            }
            put(&mut dg[ix.g(n, e)], s, a.accumulate);
        }
    }
}
