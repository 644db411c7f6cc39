//! CPU twin of shaders/gather.wgsl: batch gather by index, and the step counter.
//! Data moves as u32 bits, as on the GPU. These plain loops are also the
//! reference the parity tests compare the GPU against.

use crate::ops::GatherArgs;

/// dst[b, c] = src[idx[counters[0]·batch + b], c], or pad_bits for a pad index.
pub fn batch_gather(a: &GatherArgs, src: &[u32], idx: &[u32], counters: &[u32], dst: &mut [u32]) {
    let (batch, width) = (a.batch as usize, a.width as usize);
    let base = counters[0] as usize * batch;
    for b in 0..batch {
        let k = base + b;
        let row = if k < a.idx_len as usize {
            idx[k]
        } else {
            u32::MAX
        };
        for c in 0..width {
            dst[a.dst_off as usize + b * width + c] = if row < a.src_rows {
                src[row as usize * width + c]
            } else {
                a.pad_bits
            };
        }
    }
}

/// counters[0] += 1 (step within the epoch); counters[1] += 1 (global step).
pub fn step_advance(counters: &mut [u32]) {
    counters[0] += 1;
    counters[1] += 1;
}
