//! [`Collective`] over MPI (the `mpi` crate over the system's MPI library):
//! the sums are `MPI_Allreduce` on `MPI_COMM_WORLD`, the way out of a failed
//! rank is `MPI_Abort`. MPI errors use MPI's default handler, which ends the
//! whole job: a failed collective never hangs the other ranks.

use crate::train::collective::Collective;
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::cell::RefCell;

/// This process's rank in `MPI_COMM_WORLD`.
pub struct MpiCollective {
    world: SimpleCommunicator,
    local_rank: usize,
    /// The send buffer of the all-reduces (MPI_IN_PLACE is not offered).
    send: RefCell<Vec<f32>>,
    send_u32: RefCell<Vec<u32>>,
}

/// An initialised MPI library: dropping it calls `MPI_Finalize`.
pub struct MpiJob {
    pub collective: std::rc::Rc<MpiCollective>,
    _universe: Universe,
}

impl MpiJob {
    /// Initialises MPI (once per process); an error when it was initialised before.
    pub fn init() -> Result<MpiJob> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Invalid("MPI was initialised already in this process".into()))?;
        let world = universe.world();
        // The ranks sharing this node's memory, ordered by world rank.
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(MpiJob {
            collective: std::rc::Rc::new(MpiCollective {
                world,
                local_rank,
                send: RefCell::new(Vec::new()),
                send_u32: RefCell::new(Vec::new()),
            }),
            _universe: universe,
        })
    }
}

impl MpiCollective {
    /// This rank's index among the ranks on its node (0 ≤ local rank <
    /// ranks on the node): the GPU it should take on a node with several.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The MPI library's own description of its version.
    pub fn library_version() -> String {
        mpi::environment::library_version().unwrap_or_else(|_| "unknown MPI".into())
    }
}

/// MPI counts elements in a C int.
fn check_count(len: usize) -> Result<()> {
    if len > i32::MAX as usize {
        return Err(Error::Invalid(format!(
            "an all-reduce of {len} elements: MPI takes at most {}",
            i32::MAX
        )));
    }
    Ok(())
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        check_count(data.len())?;
        let mut send = self.send.borrow_mut();
        send.clear();
        send.extend_from_slice(data);
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
        Ok(())
    }

    fn all_reduce_max(&self, data: &mut [u32]) -> Result<()> {
        check_count(data.len())?;
        let mut send = self.send_u32.borrow_mut();
        send.clear();
        send.extend_from_slice(data);
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::max());
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
