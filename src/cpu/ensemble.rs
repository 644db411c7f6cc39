//! CPU twin of shaders/ensemble.wgsl: combining member outputs.
//! members [M, N, C] (member-major), rows [N, M·C], out [N, C].
//! These plain loops are also the reference the parity tests compare the GPU
//! against (one function per kernel suffices).

use crate::ops::EnsembleArgs;

fn dims(a: &EnsembleArgs) -> (usize, usize, usize) {
    (a.members as usize, a.rows as usize, a.width as usize)
}

/// out[n, c] = (1/M) Σ_m members[m, n, c].
pub fn mean_forward(a: &EnsembleArgs, members: &[f32], out: &mut [f32]) {
    let (m, n, c) = dims(a);
    let len = n * c;
    for i in 0..len {
        let s: f32 = (0..m)
            .map(|k| members[a.src_off as usize + k * len + i])
            .sum();
        out[a.dst_off as usize + i] = s / m as f32;
    }
}

/// dmembers[m, n, c] = dout[n, c] / M.
pub fn mean_backward(a: &EnsembleArgs, dout: &[f32], dmembers: &mut [f32]) {
    let (m, n, c) = dims(a);
    let len = n * c;
    for i in 0..m * len {
        dmembers[a.dst_off as usize + i] = dout[a.src_off as usize + i % len] / m as f32;
    }
}

/// rows[n, k·C + c] = members[k, n, c].
pub fn members_to_rows(a: &EnsembleArgs, members: &[f32], rows: &mut [f32]) {
    let (m, n, c) = dims(a);
    for k in 0..m {
        for r in 0..n {
            for j in 0..c {
                rows[a.dst_off as usize + r * m * c + k * c + j] =
                    members[a.src_off as usize + (k * n + r) * c + j];
            }
        }
    }
}

/// members[k, n, c] = rows[n, k·C + c].
pub fn rows_to_members(a: &EnsembleArgs, rows: &[f32], members: &mut [f32]) {
    let (m, n, c) = dims(a);
    for k in 0..m {
        for r in 0..n {
            for j in 0..c {
                members[a.dst_off as usize + (k * n + r) * c + j] =
                    rows[a.src_off as usize + r * m * c + k * c + j];
            }
        }
    }
}
