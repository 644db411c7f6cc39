//! CPU twin of shaders/loss.wgsl: per-row masked losses and raw gradients.
//!
//! z [N, C], label [N, C] (multiclass: [N, 1] class index), NaN = missing;
//! dz [N, C] = d(element loss)/dz; stats [N, 2] = (loss sum, valid count).
//! These plain loops are also the reference the parity tests compare the GPU
//! against (one function per loss suffices).

use crate::ops::{LossArgs, LossKind};

/// The loss `kind` (the CPU twin of `Op::Loss`).
pub fn compute(
    kind: LossKind,
    a: &LossArgs,
    z: &[f32],
    label: &[f32],
    dz: &mut [f32],
    stats: &mut [f32],
) {
    let loss = match kind {
        LossKind::Bce => bce,
        LossKind::SoftmaxCe => softmax_ce,
        LossKind::Mse => mse,
        LossKind::BceProb => bce_prob,
        LossKind::CeProb => ce_prob,
    };
    loss(a, z, label, dz, stats)
}

/// The label row output row `r` is trained against (see `LossArgs::label_rows`
/// and `label_members`).
fn label_row(a: &LossArgs, r: usize) -> usize {
    if a.label_rows == 0 {
        return r;
    }
    let (rows, members) = (a.label_rows as usize, a.label_members as usize);
    if members == 0 {
        r % rows
    } else {
        (r % rows) * members + r / rows
    }
}

/// Clamp of probabilities before the log, as Keras does.
pub const PROB_EPS: f32 = 1e-7;

/// An element-wise loss over every labelled element of z [N, C]:
/// `element(z, y)` = (l, dl/dz); a missing label (NaN) gives no loss and dz = 0.
fn elementwise(
    a: &LossArgs,
    z: &[f32],
    label: &[f32],
    dz: &mut [f32],
    stats: &mut [f32],
    element: impl Fn(f32, f32) -> (f32, f32),
) {
    let c_n = a.outputs as usize;
    for r in 0..a.rows as usize {
        let (mut total, mut count) = (0.0f32, 0.0f32);
        for c in 0..c_n {
            let at = r * c_n + c;
            let y = label[a.label_off as usize + label_row(a, r) * c_n + c];
            let mut g = 0.0;
            if !y.is_nan() {
                let (l, dl) = element(z[a.z_off as usize + at], y);
                total += l;
                count += 1.0;
                g = dl;
            }
            dz[a.dz_off as usize + at] = g;
        }
        stats[a.stats_off as usize + 2 * r] = total;
        stats[a.stats_off as usize + 2 * r + 1] = count;
    }
}

/// BCE with logits, element-wise, stable form:
/// l = max(z, 0) − z·y + log(1 + exp(−|z|)), dl/dz = sigmoid(z) − y.
pub fn bce(a: &LossArgs, z: &[f32], label: &[f32], dz: &mut [f32], stats: &mut [f32]) {
    elementwise(a, z, label, dz, stats, |v, y| {
        let l = v.max(0.0) - v * y + (1.0 + (-v.abs()).exp()).ln();
        (l, 1.0 / (1.0 + (-v).exp()) - y)
    })
}

/// Softmax cross-entropy on class indices.
pub fn softmax_ce(a: &LossArgs, z: &[f32], label: &[f32], dz: &mut [f32], stats: &mut [f32]) {
    let c_n = a.outputs as usize;
    for r in 0..a.rows as usize {
        let zr = &z[a.z_off as usize + r * c_n..a.z_off as usize + (r + 1) * c_n];
        let g = &mut dz[a.dz_off as usize + r * c_n..a.dz_off as usize + (r + 1) * c_n];
        let y = label[a.label_off as usize + label_row(a, r)];
        let s0 = a.stats_off as usize + 2 * r;
        if y.is_nan() || y < 0.0 || y as usize >= c_n {
            g.fill(0.0);
            stats[s0] = 0.0;
            stats[s0 + 1] = 0.0;
            continue;
        }
        let cls = y as usize;
        let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = zr.iter().map(|v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for (c, gc) in g.iter_mut().enumerate() {
            *gc = (zr[c] - lse).exp() - if c == cls { 1.0 } else { 0.0 };
        }
        stats[s0] = lse - zr[cls];
        stats[s0 + 1] = 1.0;
    }
}

/// Squared error, element-wise: l = (z − y)², dl/dz = 2(z − y).
pub fn mse(a: &LossArgs, z: &[f32], label: &[f32], dz: &mut [f32], stats: &mut [f32]) {
    elementwise(a, z, label, dz, stats, |v, y| {
        let d = v - y;
        (d * d, 2.0 * d)
    })
}

/// Whether the clip to [ε, 1−ε] passes the gradient at `v`: everywhere but
/// strictly outside, as Keras' `clip_by_value` (its gradient flows at ε and
/// at 1−ε = 0.99999988 themselves).
fn inside_clip(v: f32) -> bool {
    (PROB_EPS..=1.0 - PROB_EPS).contains(&v)
}

/// BCE on probabilities (an ensemble's averaged output), clamped to [ε, 1−ε]:
/// l = −y·log p − (1−y)·log(1−p), dl/dz = (p − y)/(p(1−p)), 0 strictly
/// outside the clip.
pub fn bce_prob(a: &LossArgs, z: &[f32], label: &[f32], dz: &mut [f32], stats: &mut [f32]) {
    elementwise(a, z, label, dz, stats, |v, y| {
        let p = v.clamp(PROB_EPS, 1.0 - PROB_EPS);
        let l = -(y * p.ln() + (1.0 - y) * (1.0 - p).ln());
        (
            l,
            if inside_clip(v) {
                (p - y) / (p * (1.0 - p))
            } else {
                0.0
            },
        )
    })
}

/// Cross-entropy on class probabilities (an ensemble's averaged softmax
/// outputs): l = −log clamp(z[y], ε, 1−ε), dl/dz[y] = −1/p (0 strictly outside the clip),
/// 0 for the other classes. Keras' division by the row sum is left out: rows
/// here sum to 1, where it only adds a constant to every dl/dz[c], which the
/// softmax upstream cancels.
pub fn ce_prob(a: &LossArgs, z: &[f32], label: &[f32], dz: &mut [f32], stats: &mut [f32]) {
    let c_n = a.outputs as usize;
    for r in 0..a.rows as usize {
        let g = &mut dz[a.dz_off as usize + r * c_n..a.dz_off as usize + (r + 1) * c_n];
        g.fill(0.0);
        let y = label[a.label_off as usize + label_row(a, r)];
        let s0 = a.stats_off as usize + 2 * r;
        if y.is_nan() || y < 0.0 || y as usize >= c_n {
            stats[s0] = 0.0;
            stats[s0 + 1] = 0.0;
            continue;
        }
        let cls = y as usize;
        let v = z[a.z_off as usize + r * c_n + cls];
        let p = v.clamp(PROB_EPS, 1.0 - PROB_EPS);
        if inside_clip(v) {
            g[cls] = -1.0 / p;
        }
        stats[s0] = -p.ln();
        stats[s0 + 1] = 1.0;
    }
}
