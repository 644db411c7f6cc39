//! Bagging: each ensemble member trains on its own seeded bootstrap sample.
//!
//! Member m draws N rows with replacement; the rows it never drew are masked
//! out of its loss (its labels become missing). A row drawn several times
//! counts once, so each member sees the distinct rows of its sample, about
//! 63% of the data. The labels of all members sit side by side per row,
//! [N, M·L], so one gather moves them; the loss reads member m's block.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Per member, whether each of `rows` rows is in its bootstrap sample.
pub fn bootstrap_masks(rows: usize, members: usize, seed: u64) -> Vec<Vec<bool>> {
    (0..members)
        .map(|m| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0xba66_0000 + m as u64));
            let mut drawn = vec![false; rows];
            for _ in 0..rows {
                drawn[rng.random_range(0..rows)] = true;
            }
            drawn
        })
        .collect()
}

/// Labels [rows, width] → per-member labels [rows, M·width], NaN (missing)
/// where the row is out of member m's sample; the labels' row r is row
/// `first_row + r` of the masks.
pub fn bag_labels(labels: &[f32], width: usize, masks: &[Vec<bool>], first_row: usize) -> Vec<f32> {
    let rows = labels.len() / width.max(1);
    let m = masks.len();
    let mut out = Vec::with_capacity(rows * m * width);
    for r in 0..rows {
        for mask in masks {
            let row = &labels[r * width..(r + 1) * width];
            if mask[first_row + r] {
                out.extend_from_slice(row);
            } else {
                out.extend(std::iter::repeat_n(f32::NAN, width));
            }
        }
    }
    out
}
