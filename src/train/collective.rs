//! The collective operations data-parallel training needs, behind an
//! interface without any MPI type: the trainer sums values across the
//! processes of a job through [`Collective`], and the `mpi` feature's
//! `dist::mpi::MpiCollective` implements it over MPI. [`SingleProcess`] is the
//! job of one process, where every operation leaves the data as it is.
//!
//! Every process of the job must call the same operations, in the same order,
//! with buffers of the same lengths: the training loop is deterministic and
//! identical on every process, which is what keeps them in step.

use crate::Result;

/// One process's handle on the job it belongs to.
pub trait Collective {
    /// This process's index, 0 ≤ rank < size; rank 0 alone writes outputs.
    fn rank(&self) -> usize;
    /// The number of processes P.
    fn size(&self) -> usize;
    /// Replaces `data` on every process by its element-wise sum over all of
    /// them (one MPI_Allreduce); every process receives the same values.
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()>;
    /// Replaces `data` on every process by its element-wise maximum over all
    /// of them (flags: "does any process want to stop", data hashes).
    fn all_reduce_max(&self, data: &mut [u32]) -> Result<()>;
    /// Ends every process of the job with exit status `code` (MPI_Abort): the
    /// way out when this process failed and the others may be waiting in a
    /// collective operation for it. Print the error first.
    fn abort(&self, code: i32) -> !;
}

/// A job of one process: sums and maxima over one process are the data itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_max(&self, _data: &mut [u32]) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// True on every process when `local` is true on any of them.
pub fn any(c: &dyn Collective, local: bool) -> Result<bool> {
    let mut flag = [local as u32];
    c.all_reduce_max(&mut flag)?;
    Ok(flag[0] != 0)
}

/// True on every process when every process passed the same `value`
/// (compared through the maximum of the value and of its complement).
pub fn same_everywhere(c: &dyn Collective, value: u64) -> Result<bool> {
    let words = [value as u32, (value >> 32) as u32];
    let mut both = [words[0], words[1], !words[0], !words[1]];
    c.all_reduce_max(&mut both)?;
    Ok(both[0] == words[0] && both[1] == words[1] && both[2] == !words[0] && both[3] == !words[1])
}

#[cfg(test)]
mod tests {
    use crate::train::collective::{any, same_everywhere, Collective, SingleProcess};

    #[test]
    fn a_single_process_leaves_the_data_alone() {
        let c = SingleProcess;
        let mut v = [1.5f32, -2.0];
        c.all_reduce_sum(&mut v).unwrap();
        assert_eq!(v, [1.5, -2.0]);
        assert!(any(&c, true).unwrap());
        assert!(!any(&c, false).unwrap());
        assert!(same_everywhere(&c, 0xdead_beef_0123_4567).unwrap());
    }
}
