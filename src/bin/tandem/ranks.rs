//! `tandem train` as one rank of an MPI job. Started by an MPI launcher
//! (`mpirun -n P`, `srun`) from a binary built with the `mpi` feature, every
//! rank trains its part of each global batch (see `tandem::train::distributed`);
//! rank 0 alone prints and writes outputs. A rank that fails prints its error,
//! naming itself, and aborts the whole job (`MPI_Abort`), so no rank waits for
//! it. Without a launcher, or with one rank, this is the single process.

use std::path::PathBuf;
use std::rc::Rc;
use tandem::io::config::{FeatureSource, TargetSource};
use tandem::train::Collective;
use tandem::Config;

/// The job this process runs in.
pub struct Ranks {
    collective: Option<Rc<dyn Collective>>,
    /// The rank's index among the ranks on its node.
    local_rank: usize,
    /// Held until the process ends: dropping it finalises MPI.
    #[cfg(feature = "mpi")]
    job: std::cell::RefCell<Option<tandem::dist::mpi::MpiJob>>,
}

impl Ranks {
    /// The single process.
    fn single() -> Ranks {
        Ranks {
            collective: None,
            local_rank: 0,
            #[cfg(feature = "mpi")]
            job: std::cell::RefCell::new(None),
        }
    }

    /// Joins the MPI job when an MPI launcher started this process.
    pub fn start() -> anyhow::Result<Ranks> {
        match tandem::dist::launched() {
            None => Ok(Ranks::single()),
            Some(size) => Ranks::join(size),
        }
    }

    #[cfg(not(feature = "mpi"))]
    fn join(size: usize) -> anyhow::Result<Ranks> {
        if size > 1 {
            anyhow::bail!(
                "started by an MPI launcher as one of {size} ranks, but this tandem was built \
                 without MPI: build it with `cargo build --release --features mpi` (each rank \
                 would otherwise train the whole model alone and write the same outputs)"
            );
        }
        Ok(Ranks::single())
    }

    #[cfg(feature = "mpi")]
    fn join(_size: usize) -> anyhow::Result<Ranks> {
        let job = tandem::dist::mpi::MpiJob::init()?;
        let local_rank = job.collective.local_rank();
        let collective: Rc<dyn Collective> = job.collective.clone();
        Ok(Ranks {
            collective: Some(collective),
            local_rank,
            job: std::cell::RefCell::new(Some(job)),
        })
    }

    pub fn rank(&self) -> usize {
        self.collective.as_ref().map_or(0, |c| c.rank())
    }

    pub fn size(&self) -> usize {
        self.collective.as_ref().map_or(1, |c| c.size())
    }

    /// True on the rank that prints and writes (rank 0, or the single process).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The rank's index among the ranks on its node (0 for a single process).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The collective `fit` sums across (None for a single process).
    pub fn collective(&self) -> Option<Rc<dyn Collective>> {
        self.collective.clone()
    }

    /// Replaces `{rank}` in the data paths of `cfg` with this rank's index (0
    /// for a single process): each rank may read its own copy of the data,
    /// e.g. on a node-local disk. Every copy must hold the same rows.
    pub fn localize(&self, cfg: &mut Config) {
        let rank = self.rank().to_string();
        let fill = |p: &mut PathBuf| {
            if let Some(s) = p.to_str().filter(|s| s.contains("{rank}")) {
                *p = PathBuf::from(s.replace("{rank}", &rank));
            }
        };
        if let Some(p) = cfg.data.path.as_mut() {
            fill(p);
        }
        if let FeatureSource::Npy(p) = &mut cfg.data.features {
            fill(p);
        }
        for (_, t) in cfg.data.targets.iter_mut() {
            if let TargetSource::Npy(p) = t {
                fill(p);
            }
        }
    }

    /// After a failure: in a job of several ranks, prints the error naming
    /// this rank and ends every rank (never returns); else returns the error
    /// for `main` to print.
    pub fn fail(&self, e: anyhow::Error) -> anyhow::Error {
        match &self.collective {
            Some(c) if c.size() > 1 => {
                // One write, so that the launcher's merged stderr keeps the line whole.
                let line = format!("error: rank {} of {}: {e:#}\n", c.rank(), c.size());
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                c.abort(1)
            }
            _ => e,
        }
    }

    /// Ends the process with `code`, finalising MPI first (every rank calls
    /// this: they wait for each other, so that rank 0 has written its files
    /// before any rank's exit status makes the launcher end the job).
    pub fn exit(&self, code: i32) -> ! {
        if let Some(c) = &self.collective {
            let _ = c.all_reduce_max(&mut [0]);
        }
        #[cfg(feature = "mpi")]
        drop(self.job.borrow_mut().take());
        std::process::exit(code)
    }
}
