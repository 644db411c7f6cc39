//! CPU twin of shaders/gather.wgsl: batch gather by index, and the step counter.
//! Data moves as u32 bits, as on the GPU. These plain loops are also the
//! reference the parity tests compare the GPU against.

use crate::ops::{GatherArgs, PAD_INDEX};

/// dst[b, c] = src[idx[k] - first_row, c], k = (counters[0]·batch + b) mod
/// idx_len, for the rows of this chunk; pad_bits for a pad index (unless
/// `skip_pad`); other chunks' rows are left alone.
pub fn batch_gather(a: &GatherArgs, src: &[u32], idx: &[u32], counters: &[u32], dst: &mut [u32]) {
    let (batch, width) = (a.batch as usize, a.width as usize);
    let base = counters[0] as usize * batch;
    for b in 0..batch {
        let row = idx[(base + b) % a.idx_len as usize];
        let out = &mut dst[a.dst_off as usize + b * width..][..width];
        if row == PAD_INDEX {
            if a.skip_pad == 0 {
                out.fill(a.pad_bits);
            }
            continue;
        }
        let local = row.wrapping_sub(a.first_row);
        if row < a.first_row || local >= a.src_rows {
            continue;
        }
        out.copy_from_slice(&src[local as usize * width..][..width]);
    }
}

/// counters[0] += 1 (step within the epoch); counters[1] += 1 (global step).
pub fn step_advance(counters: &mut [u32]) {
    counters[0] += 1;
    counters[1] += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset held as three chunks gathers exactly what one buffer does.
    #[test]
    fn chunks_gather_what_one_buffer_does() {
        let (rows, width, batch) = (10u32, 3u32, 4u32);
        let src: Vec<u32> = (0..rows * width).collect();
        let idx = [9, 0, 4, 7, 3, 5, PAD_INDEX, PAD_INDEX];
        let args = GatherArgs {
            batch,
            width,
            src_rows: rows,
            pad_bits: 77,
            idx_len: idx.len() as u32,
            ..Default::default()
        };
        for step in 0..2u32 {
            let mut one = vec![0u32; (batch * width) as usize];
            batch_gather(&args, &src, &idx, &[step], &mut one);
            let mut chunked = vec![0u32; one.len()];
            for (first, n) in [(0u32, 4u32), (4, 4), (8, 2)] {
                let part = &src[(first * width) as usize..((first + n) * width) as usize];
                let a = GatherArgs {
                    src_rows: n,
                    first_row: first,
                    skip_pad: u32::from(first > 0),
                    ..args
                };
                batch_gather(&a, part, &idx, &[step], &mut chunked);
            }
            assert_eq!(chunked, one, "step {step}");
        }
        // Step 2 wraps around the ring to step 0's rows.
        let (mut at0, mut at2) = (vec![0u32; 12], vec![0u32; 12]);
        batch_gather(&args, &src, &idx, &[0], &mut at0);
        batch_gather(&args, &src, &idx, &[2], &mut at2);
        assert_eq!(at0, at2);
    }
}
