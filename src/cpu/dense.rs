//! CPU twin of shaders/dense.wgsl: the dense layer y = act(x·Wᵀ + b) and its
//! backward, through the GEMM crate.
//!
//! Shapes per batch item bt: x [N, I], W [O, I], b [O], y/dy [N, O], dx [N, I].

use super::activation::{activate, activate_grad};
use super::matmul::{matmul, Layout};
use crate::model::Activation;
use crate::ops::DenseArgs;
use rayon::prelude::*;

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

/// Element-wise work at least this large is split across threads.
const PARALLEL_ELEMENTS: usize = 1 << 16;

thread_local! {
    /// Reused dz buffer: a fresh multi-megabyte allocation per call costs a
    /// page fault per 4 KiB on first touch, which showed up in the benchmark.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Reused [N, B·O] buffer of the fused (side-by-side) paths, for the same reason.
    static WIDE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with a reused buffer of `len` elements (contents unspecified).
fn with_wide<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = WIDE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    buf.resize(len, 0.0);
    let r = f(&mut buf[..len]);
    WIDE.with(|s| *s.borrow_mut() = buf);
    r
}

/// Calls `f` with dz [N, O] = dy ⊙ act'(y) for batch item bt.
fn with_output_grad<R>(
    a: &DenseArgs,
    bt: usize,
    dy: &[f32],
    y: &[f32],
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let d = dims(a);
    let base = bt * a.y_bstride as usize;
    let (yo, go) = (a.y_off as usize + base, a.dy_off as usize + base);
    let (dy, y) = (&dy[go..go + d.n * d.o], &y[yo..yo + d.n * d.o]);
    if a.act == Activation::Identity.code() {
        return f(dy);
    }
    let mut dz = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    dz.resize(d.n * d.o, 0.0);
    let fill = |dz: &mut [f32], dy: &[f32], y: &[f32]| {
        for ((z, g), v) in dz.iter_mut().zip(dy).zip(y) {
            *z = g * activate_grad(*v, a.act);
        }
    };
    if dz.len() >= PARALLEL_ELEMENTS {
        let chunk = dz.len().div_ceil(rayon::current_num_threads());
        dz.par_chunks_mut(chunk)
            .zip(dy.par_chunks(chunk).zip(y.par_chunks(chunk)))
            .for_each(|(z, (g, v))| fill(z, g, v));
    } else {
        fill(&mut dz, dy, y);
    }
    let r = f(&dz);
    SCRATCH.with(|s| *s.borrow_mut() = dz);
    r
}

/// True when several batch items share one input and their weights form one
/// contiguous [B·O, I] matrix (and their biases one [B·O] vector): the items
/// are then one wide matrix product instead of B narrow ones.
fn fused(a: &DenseArgs) -> bool {
    a.batches > 1 && a.x_bstride == 0 && a.w_bstride == a.i * a.o && a.b_bstride == a.o
}

/// dz of every batch item side by side: [N, B·O], dz[n, bt·O + o].
fn output_grads_side_by_side(a: &DenseArgs, dy: &[f32], y: &[f32], all: &mut [f32]) {
    let d = dims(a);
    let wide = a.batches as usize * d.o;
    if wide == 0 {
        return;
    }
    // Row n of `all` gathers row n of every item's dz: rows are independent.
    let fill = |first_row: usize, rows: &mut [f32]| {
        for (k, out) in rows.chunks_exact_mut(wide).enumerate() {
            let n = first_row + k;
            for bt in 0..a.batches as usize {
                let at = bt * a.y_bstride as usize + n * d.o;
                let (g, v) = (&dy[a.dy_off as usize + at..], &y[a.y_off as usize + at..]);
                for o in 0..d.o {
                    out[bt * d.o + o] = g[o] * activate_grad(v[o], a.act);
                }
            }
        }
    };
    if all.len() >= PARALLEL_ELEMENTS {
        let per = d.n.div_ceil(rayon::current_num_threads()).max(1);
        all.par_chunks_mut(per * wide)
            .enumerate()
            .for_each(|(c, rows)| fill(c * per, rows));
    } else {
        fill(0, all);
    }
}

/// db (+)= Σ_n dz[n, :] over the rows of dz [N, db.len()], column blocks on every thread.
fn bias_grad(dz: &[f32], db: &mut [f32], accumulate: bool) {
    let cols = db.len();
    if cols == 0 {
        return;
    }
    let sum = |c0: usize, db: &mut [f32]| {
        if !accumulate {
            db.fill(0.0);
        }
        for row in dz.chunks_exact(cols) {
            for (g, v) in db.iter_mut().zip(&row[c0..]) {
                *g += v;
            }
        }
    };
    if dz.len() >= PARALLEL_ELEMENTS && cols >= 64 {
        let per = cols.div_ceil(rayon::current_num_threads());
        db.par_chunks_mut(per)
            .enumerate()
            .for_each(|(k, block)| sum(k * per, block));
    } else {
        sum(0, db);
    }
}

/// `forward` for fused batch items: one [N, I]·[I, B·O] product, then bias,
/// activation and the scatter to each item's [N, O] block.
fn forward_fused(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32]) {
    let d = dims(a);
    let wide = a.batches as usize * d.o;
    with_wide(d.n * wide, |out| forward_fused_into(a, x, params, y, out))
}

fn forward_fused_into(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32], out: &mut [f32]) {
    let d = dims(a);
    let wide = a.batches as usize * d.o;
    matmul(
        d.n,
        wide,
        d.i,
        out,
        Layout::rows(0, wide),
        false,
        x,
        Layout::rows(a.x_off as usize, d.i),
        params,
        Layout::transposed(a.w_off as usize, d.i),
    );
    let bias = &params[a.b_off as usize..a.b_off as usize + wide];
    for bt in 0..a.batches as usize {
        let y0 = a.y_off as usize + bt * a.y_bstride as usize;
        for row in 0..d.n {
            let src = &out[row * wide + bt * d.o..row * wide + (bt + 1) * d.o];
            let dst = &mut y[y0 + row * d.o..y0 + (row + 1) * d.o];
            for ((v, s), b) in dst.iter_mut().zip(src).zip(&bias[bt * d.o..]) {
                *v = activate(s + b, a.act);
            }
        }
    }
}

/// y[n, o] = act(Σ_k x[n, k]·W[o, k] + b[o]).
pub fn forward(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32]) {
    if fused(a) {
        return forward_fused(a, x, params, y);
    }
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
        let bias = &params[b0..b0 + d.o];
        let rows = &mut y[y0..y0 + d.n * d.o];
        let epilogue = |out: &mut [f32]| {
            for row in out.chunks_exact_mut(d.o.max(1)) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = activate(*v + b, a.act);
                }
            }
        };
        if rows.len() >= PARALLEL_ELEMENTS && d.o > 0 {
            let per = d.n.div_ceil(rayon::current_num_threads()) * d.o;
            rows.par_chunks_mut(per).for_each(epilogue);
        } else {
            epilogue(rows);
        }
    }
}

/// dx[n, i] (+)= Σ_o dz[n, o]·W[o, i],  dz = dy ⊙ act'(y). Batch items that
/// share their input (x_bstride = 0) sum into one dx.
pub fn backward_input(a: &DenseArgs, dy: &[f32], y: &[f32], params: &[f32], dx: &mut [f32]) {
    let d = dims(a);
    if a.batches > 1 && a.x_bstride == 0 {
        let x0 = a.dx_off as usize;
        if a.w_bstride == a.i * a.o {
            // One product over K = B·O: [N, B·O]·[B·O, I].
            let wide = a.batches as usize * d.o;
            with_wide(d.n * wide, |dz| {
                output_grads_side_by_side(a, dy, y, dz);
                matmul(
                    d.n,
                    d.i,
                    wide,
                    dx,
                    Layout::rows(x0, d.i),
                    a.accumulate != 0,
                    dz,
                    Layout::rows(0, wide),
                    params,
                    Layout::rows(a.w_off as usize, d.i),
                )
            });
        } else {
            for bt in 0..a.batches as usize {
                let w0 = a.w_off as usize + bt * a.w_bstride as usize;
                let acc = a.accumulate != 0 || bt > 0;
                with_output_grad(a, bt, dy, y, |dz| {
                    matmul(
                        d.n,
                        d.i,
                        d.o,
                        dx,
                        Layout::rows(x0, d.i),
                        acc,
                        dz,
                        Layout::rows(0, d.o),
                        params,
                        Layout::rows(w0, d.i),
                    )
                });
            }
        }
        return;
    }
    for bt in 0..a.batches as usize {
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let x0 = a.dx_off as usize + bt * a.x_bstride as usize;
        with_output_grad(a, bt, dy, y, |dz| {
            matmul(
                d.n,
                d.i,
                d.o,
                dx,
                Layout::rows(x0, d.i),
                a.accumulate != 0,
                dz,
                Layout::rows(0, d.o),
                params,
                Layout::rows(w0, d.i),
            )
        });
    }
}

/// dW[o, i] (+)= Σ_n dz[n, o]·x[n, i],  db[o] (+)= Σ_n dz[n, o], into `grads`.
pub fn backward_weight(a: &DenseArgs, dy: &[f32], y: &[f32], x: &[f32], grads: &mut [f32]) {
    let d = dims(a);
    if fused(a) {
        // All items' dW as one [B·O, I] product: dWᵀ = xᵀ·dz_all.
        let wide = a.batches as usize * d.o;
        with_wide(d.n * wide, |dz| {
            output_grads_side_by_side(a, dy, y, dz);
            matmul(
                d.i,
                wide,
                d.n,
                grads,
                Layout::transposed(a.w_off as usize, d.i),
                a.accumulate != 0,
                x,
                Layout::transposed(a.x_off as usize, d.i),
                dz,
                Layout::rows(0, wide),
            );
            let db = &mut grads[a.b_off as usize..a.b_off as usize + wide];
            bias_grad(dz, db, a.accumulate != 0);
        });
        return;
    }
    for bt in 0..a.batches as usize {
        let x0 = a.x_off as usize + bt * a.x_bstride as usize;
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let b0 = a.b_off as usize + bt * a.b_bstride as usize;
        with_output_grad(a, bt, dy, y, |dz| {
            // dWᵀ[i, o] = Σ_n x[n, i]·dz[n, o], written through a transposed
            // view of dW: the GEMM crate is fastest with this operand order.
            matmul(
                d.i,
                d.o,
                d.n,
                grads,
                Layout::transposed(w0, d.i),
                a.accumulate != 0,
                x,
                Layout::transposed(x0, d.i),
                dz,
                Layout::rows(0, d.o),
            );
            // db = Σ_n dz[n, :], summed row by row (contiguous reads).
            bias_grad(dz, &mut grads[b0..b0 + d.o], a.accumulate != 0);
        });
    }
}
