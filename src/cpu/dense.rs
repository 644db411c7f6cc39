//! CPU twin of shaders/dense.wgsl, the fast path: the dense layer
//! y = act(x·Wᵀ + b) and its backward, through the GEMM crate, with fused
//! (side-by-side) items, a thread team and reused scratch buffers. The plain
//! loops it must agree with are `cpu::reference::dense`.
//!
//! Shapes per batch item bt: x [N, I], W [O, I], b [O], y/dy [N, O], dx [N, I].

use super::activation::{activate, activate_grad};
use super::matmul::{matmul, Layout};
use super::team::{pieces, ranges, Team};
use crate::kernel::Activation;
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

/// Fused items whose product has at least this many multiply-adds (N·I·O·B)
/// are split by items across the CPU team: each thread then keeps working on
/// the same members' weights, gradients and activations from op to op.
const TEAM_WORK: usize = 1 << 13;

/// The items of a fused layer split across the team, when worth it: per part
/// the sub-arguments (items `r`, offsets moved to the part's first item).
fn item_parts(a: &DenseArgs) -> Option<(&'static Team, Vec<std::ops::Range<usize>>)> {
    let team = Team::global();
    let b = a.batches as usize;
    let work = (a.n as usize) * (a.i as usize) * (a.o as usize) * b;
    // Products the GEMM crate threads itself are left to it.
    let threaded = super::matmul::uses_threads(a.n as usize, b * a.o as usize, a.i as usize);
    if team.threads() < 2 || b < 2 || work < TEAM_WORK || threaded {
        return None;
    }
    Some((team, ranges(b, team.threads().min(b), 1)))
}

/// `a` restricted to items `r` (weights, biases and outputs start at item r.start).
fn sub_items(a: &DenseArgs, r: &std::ops::Range<usize>) -> DenseArgs {
    let first = r.start as u32;
    DenseArgs {
        batches: r.len() as u32,
        w_off: a.w_off + first * a.w_bstride,
        b_off: a.b_off + first * a.b_bstride,
        y_off: a.y_off + first * a.y_bstride,
        dy_off: a.dy_off + first * a.y_bstride,
        x_off: a.x_off + first * a.x_bstride,
        dx_off: a.dx_off + first * a.x_bstride,
        ..*a
    }
}

/// Runs `f(items, block)` for every part across the team, where `block` is
/// the part's items' slice of `out` = (buffer, offset of item 0, item stride).
fn on_item_blocks(
    team: &Team,
    parts: &[std::ops::Range<usize>],
    out: (&mut [f32], usize, usize),
    f: &(dyn Fn(&std::ops::Range<usize>, &mut [f32]) + Sync),
) {
    let (buf, off, stride) = out;
    let rest = &mut buf[off..];
    let lens = block_lens(parts, stride, rest.len());
    let blocks = pieces(rest, &lens);
    team.run(parts.len(), &|k| {
        let mut block = blocks[k].lock().unwrap_or_else(|e| e.into_inner());
        f(&parts[k], &mut block)
    });
}

/// Lengths that cut `len` elements from `start` into the items' blocks of
/// `stride` elements (the last block takes whatever remains).
fn block_lens(parts: &[std::ops::Range<usize>], stride: usize, len: usize) -> Vec<usize> {
    let mut lens: Vec<usize> = parts.iter().map(|r| r.len() * stride).collect();
    let before: usize = lens[..lens.len() - 1].iter().sum();
    *lens.last_mut().expect("at least one part") = len.saturating_sub(before);
    lens
}

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
    if let Some((team, parts)) = item_parts(a) {
        // Each part: its items' products and epilogues into its block of y.
        let out = (y, a.y_off as usize, a.y_bstride as usize);
        return on_item_blocks(team, &parts, out, &|r, yk| {
            let sub = DenseArgs {
                y_off: 0,
                ..sub_items(a, r)
            };
            forward_items(&sub, x, params, yk)
        });
    }
    forward_items(a, x, params, y)
}

/// `forward` on the calling thread.
fn forward_items(a: &DenseArgs, x: &[f32], params: &[f32], y: &mut [f32]) {
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
    match item_parts(a) {
        // Items with inputs of their own: each part writes its items' dx blocks.
        Some((team, parts)) if a.x_bstride != 0 => {
            let out = (dx, a.dx_off as usize, a.x_bstride as usize);
            on_item_blocks(team, &parts, out, &|r, dxk| {
                let sub = DenseArgs {
                    dx_off: 0,
                    ..sub_items(a, r)
                };
                backward_input_items(&sub, dy, y, params, dxk)
            })
        }
        _ => backward_input_items(a, dy, y, params, dx),
    }
}

/// `backward_input` on the calling thread.
fn backward_input_items(a: &DenseArgs, dy: &[f32], y: &[f32], params: &[f32], dx: &mut [f32]) {
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

/// All items' dW [B·O, I] as one product dWᵀ = xᵀ·dz_all, and db [B·O], into
/// `dw` and `db` (item 0 of `a` first).
fn backward_weight_fused(
    a: &DenseArgs,
    dy: &[f32],
    y: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let d = dims(a);
    let wide = a.batches as usize * d.o;
    with_wide(d.n * wide, |dz| {
        output_grads_side_by_side(a, dy, y, dz);
        matmul(
            d.i,
            wide,
            d.n,
            dw,
            Layout::transposed(0, d.i),
            a.accumulate != 0,
            x,
            Layout::transposed(a.x_off as usize, d.i),
            dz,
            Layout::rows(0, wide),
        );
        bias_grad(dz, db, a.accumulate != 0);
    });
}

/// dW[o, i] (+)= Σ_n dz[n, o]·x[n, i],  db[o] (+)= Σ_n dz[n, o], into `grads`.
pub fn backward_weight(a: &DenseArgs, dy: &[f32], y: &[f32], x: &[f32], grads: &mut [f32]) {
    let d = dims(a);
    let (w0, b0, all) = (a.w_off as usize, a.b_off as usize, a.batches as usize * d.o);
    let w_end = w0 + all * d.i;
    let grouped = a.w_bstride == a.i * a.o && a.b_bstride == a.o;
    if !grouped || (b0 < w_end && b0 + all > w0) {
        // Interleaved items (or one item whose bias sits inside its weights).
        return backward_weight_interleaved(a, dy, y, x, grads);
    }
    // All items' dW [B·O, I] and db [B·O] as two separate regions.
    let (dw, db) = if b0 >= w_end {
        let (w_region, b_region) = grads.split_at_mut(b0);
        (&mut w_region[w0..w_end], &mut b_region[..all])
    } else {
        let (b_region, w_region) = grads.split_at_mut(w0);
        (&mut w_region[..all * d.i], &mut b_region[b0..b0 + all])
    };
    match item_parts(a) {
        // Each part writes its items' rows of dW and entries of db.
        Some((team, parts)) => {
            let w_blocks = pieces(dw, &block_lens(&parts, d.o * d.i, all * d.i));
            let b_blocks = pieces(db, &block_lens(&parts, d.o, all));
            team.run(parts.len(), &|k| {
                let sub = sub_items(a, &parts[k]);
                let mut dw = w_blocks[k].lock().unwrap_or_else(|e| e.into_inner());
                let mut db = b_blocks[k].lock().unwrap_or_else(|e| e.into_inner());
                backward_weight_grouped(&sub, dy, y, x, &mut dw, &mut db);
            });
        }
        None => backward_weight_grouped(a, dy, y, x, dw, db),
    }
}

/// Grouped items' dW [B·O, I] into `dw` and db [B·O] into `db` (item 0 of `a` first).
fn backward_weight_grouped(
    a: &DenseArgs,
    dy: &[f32],
    y: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    if fused(a) {
        return backward_weight_fused(a, dy, y, x, dw, db);
    }
    let d = dims(a);
    for bt in 0..a.batches as usize {
        let x0 = a.x_off as usize + bt * a.x_bstride as usize;
        with_output_grad(a, bt, dy, y, |dz| {
            weight_grad(a, x, x0, dz, dw, bt * d.o * d.i);
            bias_grad(dz, &mut db[bt * d.o..(bt + 1) * d.o], a.accumulate != 0);
        });
    }
}

/// dWᵀ[i, o] (+)= Σ_n x[n, i]·dz[n, o] for one item whose dW starts at `w0`,
/// written through a transposed view: the GEMM crate is fastest this way.
fn weight_grad(a: &DenseArgs, x: &[f32], x0: usize, dz: &[f32], dw: &mut [f32], w0: usize) {
    let d = dims(a);
    matmul(
        d.i,
        d.o,
        d.n,
        dw,
        Layout::transposed(w0, d.i),
        a.accumulate != 0,
        x,
        Layout::transposed(x0, d.i),
        dz,
        Layout::rows(0, d.o),
    );
}

/// `backward_weight` for items whose weights and biases interleave.
fn backward_weight_interleaved(a: &DenseArgs, dy: &[f32], y: &[f32], x: &[f32], grads: &mut [f32]) {
    let d = dims(a);
    for bt in 0..a.batches as usize {
        let x0 = a.x_off as usize + bt * a.x_bstride as usize;
        let w0 = a.w_off as usize + bt * a.w_bstride as usize;
        let b0 = a.b_off as usize + bt * a.b_bstride as usize;
        with_output_grad(a, bt, dy, y, |dz| {
            weight_grad(a, x, x0, dz, grads, w0);
            // db = Σ_n dz[n, :], summed row by row (contiguous reads).
            bias_grad(dz, &mut grads[b0..b0 + d.o], a.accumulate != 0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u32, len: usize) -> Vec<f32> {
        (0..len)
            .map(|k| {
                (((k as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32
                    / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// Items split across the team give what one thread gives, for shared
    /// inputs (fused) and inputs of their own (one product per item).
    #[test]
    fn split_items_match_one_thread() {
        for &(n, i, o, b, shared) in &[
            (32usize, 100usize, 64usize, 8usize, true),
            (32, 64, 1, 8, false),
            (7, 33, 65, 3, true),
            (65, 17, 9, 5, false),
        ] {
            let (n32, i32_, o32, b32) = (n as u32, i as u32, o as u32, b as u32);
            let x_bstride = if shared { 0 } else { n * i };
            let a = DenseArgs {
                n: n32,
                i: i32_,
                o: o32,
                act: Activation::Relu.code(),
                batches: b32,
                x_off: 3,
                x_bstride: x_bstride as u32,
                w_off: 5,
                w_bstride: (i * o) as u32,
                b_off: (5 + b * i * o) as u32,
                b_bstride: o32,
                y_off: 2,
                y_bstride: (n * o) as u32,
                dy_off: 2,
                dx_off: 1,
                ..Default::default()
            };
            assert!(item_parts(&a).is_some() || Team::global().threads() == 1);
            let x = values(1, 3 + b * n * i);
            let params = values(2, 5 + b * i * o + b * o);
            let dy = values(3, 2 + b * n * o);
            let (mut y1, mut y2) = (vec![0.0; 2 + b * n * o], vec![0.0; 2 + b * n * o]);
            forward(&a, &x, &params, &mut y1);
            forward_items(&a, &x, &params, &mut y2);
            assert_eq!(y1, y2, "forward {n}x{i}x{o} x{b}");
            let dx_len = 1 + if shared { n * i } else { b * n * i };
            let (mut d1, mut d2) = (vec![0.0; dx_len], vec![0.0; dx_len]);
            backward_input(&a, &dy, &y1, &params, &mut d1);
            backward_input_items(&a, &dy, &y1, &params, &mut d2);
            assert_eq!(d1, d2, "backward_input {n}x{i}x{o} x{b}");
            let (mut g1, mut g2) = (vec![0.0; params.len()], vec![0.0; params.len()]);
            backward_weight(&a, &dy, &y1, &x, &mut g1);
            backward_weight_interleaved(&a, &dy, &y1, &x, &mut g2);
            let worst = g1
                .iter()
                .zip(&g2)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "backward_weight {n}x{i}x{o} x{b}: {worst}");
        }
    }
}
