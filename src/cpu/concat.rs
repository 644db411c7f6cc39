//! CPU twin of shaders/concat.wgsl: concatenation and split along columns.

use crate::ops::ColumnsArgs;

/// dst[r, col0 + c] = src[r, c];  src [rows, width], dst [rows, wide].
pub fn concat_columns(a: &ColumnsArgs, src: &[f32], dst: &mut [f32]) {
    let (w, wide, c0) = (a.width as usize, a.wide as usize, a.col0 as usize);
    for r in 0..a.rows as usize {
        for c in 0..w {
            dst[a.dst_off as usize + r * wide + c0 + c] = src[a.src_off as usize + r * w + c];
        }
    }
}

/// dst[r, c] (+)= src[r, col0 + c];  src [rows, wide], dst [rows, width].
pub fn split_columns(a: &ColumnsArgs, src: &[f32], dst: &mut [f32]) {
    let (w, wide, c0) = (a.width as usize, a.wide as usize, a.col0 as usize);
    for r in 0..a.rows as usize {
        for c in 0..w {
            let v = src[a.src_off as usize + r * wide + c0 + c];
            let at = a.dst_off as usize + r * w + c;
            dst[at] = if a.accumulate != 0 { dst[at] + v } else { v };
        }
    }
}
