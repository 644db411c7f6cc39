//! Synchronous data-parallel training: P processes (ranks) train one model on
//! parts of each global batch, and every step's math is the single process's.
//!
//! - **Rows.** The global row order is the single process's (the same seeded
//!   ChaCha8 permutation, drawn on every rank), cut into global batches of
//!   `batch_size`; rank r trains slots [⌊r·b/P⌋, ⌊(r+1)·b/P⌋) of each batch of
//!   b slots (a short last batch's padding included), padded to ⌈b/P⌉ slots
//!   ([`Partition`]). Every rank holds every training row on its device (a
//!   shuffled batch draws from all of them).
//! - **The step** ([`step`]) runs as three programs with two exchanges:
//!   gather, forward and the per-row losses; the per-row loss statistics of
//!   the global batch are assembled on every rank (each rank places its rows
//!   in a zeroed [T, rows, 2] array and one all-reduce sums them), so the
//!   reduce to L_j = Σ loss / Σ count and Σ λ_j L_j is the single process's
//!   over the same values; then the weighting, dz scaled by λ_j/count_j of the
//!   global batch, backward; the flat gradient (with GradNorm's squared
//!   norms) is summed by one all-reduce; then the gradients that come from
//!   global values (uncertainty's ∂/∂s_j, GradNorm's ∂/∂p_j), the guard and
//!   the optimizer, the same on every rank.
//! - **Validation** ([`valid`]) runs on each rank's share of the validation
//!   rows; the outputs are assembled like the loss statistics, so metrics,
//!   the validation loss and early stopping are the same on every rank.

pub mod step;
pub mod valid;

use super::collective::{same_everywhere, Collective};
use super::step::StepShape;
use crate::ops::PAD_INDEX;
use crate::{Error, Result};
use std::rc::Rc;

/// One rank's part of every global batch.
#[derive(Clone)]
pub struct Partition {
    pub collective: Rc<dyn Collective>,
    /// Rows per global batch b.
    pub batch: usize,
    /// Slots per rank, ⌈b/P⌉: the batch the rank's device buffers are sized for.
    pub local: usize,
    /// This rank's slots [lo, hi) of each global batch.
    pub lo: usize,
    pub hi: usize,
}

impl Partition {
    /// The part of `collective`'s rank in batches of `shape`; None for no
    /// collective or a job of one process (the single process's program).
    pub fn new(collective: Option<&Rc<dyn Collective>>, shape: &StepShape) -> Option<Partition> {
        let c = collective.filter(|c| c.size() > 1)?;
        let (p, r, b) = (c.size(), c.rank(), shape.batch);
        let (lo, hi) = share(b, r, p);
        Some(Partition {
            collective: c.clone(),
            batch: b,
            local: b.div_ceil(p),
            lo,
            hi,
        })
    }

    /// The shape the rank's device buffers and ops are built for: the same
    /// rows, tasks and steps, batches of ⌈b/P⌉ slots.
    pub fn device_shape(&self, global: &StepShape) -> StepShape {
        StepShape {
            batch: self.local,
            ..*global
        }
    }

    /// This rank's row order from the global one (whole global batches):
    /// per batch its slots [lo, hi), padded to `local` with `PAD_INDEX`.
    pub fn local_order(&self, order: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(order.len() / self.batch * self.local);
        for batch in order.chunks(self.batch) {
            out.extend_from_slice(&batch[self.lo..self.hi]);
            out.resize(out.len() + self.local - (self.hi - self.lo), PAD_INDEX);
        }
        out
    }
}

/// Rank `r`'s share [⌊r·n/P⌋, ⌊(r+1)·n/P⌋) of `n` items among `p` ranks.
pub fn share(n: usize, r: usize, p: usize) -> (usize, usize) {
    (r * n / p, (r + 1) * n / p)
}

/// 64-bit FNV-1a over the bytes of `words`.
fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Every rank must end with the same weights (the same update applied to the
/// same values, step by step): an error naming this rank when its differ.
pub fn check_same_weights(c: &dyn Collective, params: &[f32]) -> Result<()> {
    let h = fnv(params.iter().map(|v| v.to_bits() as u64));
    if !same_everywhere(c, h)? {
        return Err(Error::Invalid(format!(
            "rank {} of {}: its weights after training differ from another rank's \
             (hash {h:016x}): the ranks did not apply the same updates",
            c.rank(),
            c.size()
        )));
    }
    Ok(())
}

/// Every rank must train on the same rows (each reads its own copy): an
/// error naming this rank when its training or validation rows differ from
/// another rank's. `keys` are the rows' hashes (`checkpoint::data_keys`).
pub fn check_same_data(c: &dyn Collective, keys: &[(String, String)]) -> Result<()> {
    for (what, value) in keys {
        let h = fnv(value.bytes().map(u64::from));
        if !same_everywhere(c, h)? {
            return Err(Error::Invalid(format!(
                "rank {} of {}: its {what} ({value}) differ from another rank's; every rank \
                 must read the same data",
                c.rank(),
                c.size(),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::collective::SingleProcess;

    /// A rank of a job of `size` that never communicates (for the row logic).
    struct Pretend(usize, usize);
    impl Collective for Pretend {
        fn rank(&self) -> usize {
            self.0
        }
        fn size(&self) -> usize {
            self.1
        }
        fn all_reduce_sum(&self, _: &mut [f32]) -> Result<()> {
            Ok(())
        }
        fn all_reduce_max(&self, _: &mut [u32]) -> Result<()> {
            Ok(())
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    #[test]
    fn ranks_cut_every_global_batch_into_their_slots() {
        let shape = StepShape::new(7, 3, 1).unwrap(); // 3 batches, the last of 1 row
        let order = [6, 5, 4, 3, 2, 1, 0, PAD_INDEX, PAD_INDEX];
        let parts: Vec<Vec<u32>> = (0..2)
            .map(|r| {
                let c: Rc<dyn Collective> = Rc::new(Pretend(r, 2));
                let p = Partition::new(Some(&c), &shape).unwrap();
                assert_eq!(p.device_shape(&shape).order_len(), 6);
                p.local_order(&order)
            })
            .collect();
        let pad = PAD_INDEX;
        assert_eq!(parts[0], [6, pad, 3, pad, 0, pad]);
        assert_eq!(parts[1], [5, 4, 2, 1, pad, pad]);
    }

    #[test]
    fn one_process_is_no_partition() {
        let shape = StepShape::new(7, 3, 1).unwrap();
        let c: Rc<dyn Collective> = Rc::new(SingleProcess);
        assert!(Partition::new(Some(&c), &shape).is_none());
        assert!(Partition::new(None, &shape).is_none());
    }

    #[test]
    fn shares_cover_every_item_once() {
        for (n, p) in [(10, 3), (2, 3), (32, 2), (0, 4)] {
            let mut next = 0;
            for r in 0..p {
                let (lo, hi) = share(n, r, p);
                assert_eq!(lo, next);
                assert!(hi - lo <= n.div_ceil(p));
                next = hi;
            }
            assert_eq!(next, n);
        }
    }
}
