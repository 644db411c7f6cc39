//! Running as one rank of an MPI job: whether this process was started by an
//! MPI launcher (`mpirun`, `mpiexec`, `srun`), and, with the `mpi` feature,
//! [`mpi::MpiCollective`], the MPI implementation of
//! `train::collective::Collective`.

#[cfg(feature = "mpi")]
pub mod mpi;

/// Variables MPI launchers set in every rank's environment, with the job's
/// size where the variable holds it: Open MPI's `mpirun`, MPICH's and Intel
/// MPI's `mpiexec` (PMI), Slurm's `srun` (PMI or PMIx).
const LAUNCHER_VARS: [(&str, bool); 5] = [
    ("OMPI_COMM_WORLD_SIZE", true),
    ("PMI_SIZE", true),
    ("PMIX_RANK", false),
    ("PMI_RANK", false),
    ("OMPI_COMM_WORLD_RANK", false),
];

/// Some(P) when an MPI launcher started this process as one of P ranks
/// (P = 0 when the launcher does not say how many), None otherwise.
pub fn launched() -> Option<usize> {
    let mut found = None;
    for (var, holds_size) in LAUNCHER_VARS {
        if let Ok(v) = std::env::var(var) {
            let size = v.trim().parse().ok().filter(|_| holds_size);
            found = Some(found.flatten().or(size));
        }
    }
    found.map(|s| s.unwrap_or(0))
}
