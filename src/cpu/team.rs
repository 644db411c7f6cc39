//! A team of worker threads that spin between jobs, for CPU kernels too short
//! to wake a sleeping thread: on a virtual machine waking a parked worker costs
//! tens of microseconds, as long as a whole seed-sized training step.
//!
//! `run(parts, f)` calls f(0), …, f(parts − 1), each exactly once, on the
//! calling thread and the workers, and returns when all have finished. Thread
//! t (the caller is 0) first claims part t, so a kernel split the same way op
//! after op keeps each thread on the same data (its members' weights and
//! activations stay in its core's cache); then it claims whatever is left, so
//! the caller never waits for a worker to wake up: a sleeping worker simply
//! claims nothing and the caller does the work. Part boundaries are the
//! caller's choice, so results do not depend on which thread ran which part.
//!
//! Workers spin for a short while after each job (as OpenMP runtimes do) and
//! then park until the next one. A call from inside a part runs serially.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// The job a worker runs parts of: `f` lives on the posting caller's stack for
/// as long as any part of it can still be claimed (see `Team::run`).
#[derive(Clone, Copy)]
struct Job {
    epoch: u32,
    parts: u32,
    f: *const (dyn Fn(usize) + Sync),
}

// SAFETY: the pointer is only dereferenced while `Team::run` keeps the closure
// alive, and the closure is `Sync`.
unsafe impl Send for Job {}

struct Shared {
    /// The epoch of the newest job (workers spin on it).
    posted: AtomicU64,
    job: Mutex<Option<Job>>,
    /// (epoch << 32) | a bit per claimed part: a claim is a compare-and-swap
    /// that fails once the epoch has moved on, so a slow worker can never
    /// claim a part of a later job with an earlier job's closure.
    claim: AtomicU64,
    /// Parts of the current job not yet finished.
    pending: AtomicUsize,
    /// A part panicked: `run` panics too once the job is over.
    panicked: AtomicBool,
    /// Workers that are parked (or about to be) and need an unpark.
    sleepers: Mutex<Vec<Thread>>,
}

/// The process's team: one worker per extra core.
pub struct Team {
    shared: Arc<Shared>,
    workers: usize,
    /// Serialises callers from different threads.
    post: Mutex<()>,
}

thread_local! {
    /// True on a thread while it runs a part (nested calls run serially).
    static IN_PART: Cell<bool> = const { Cell::new(false) };
}

impl Team {
    /// The shared team, started on first use with one worker per core beyond
    /// the first (none on a single core). `TANDEM_CPU_THREADS` caps the
    /// threads in all (1 = everything on the calling thread).
    pub fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = std::env::var("TANDEM_CPU_THREADS")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .map_or(cores, |n| n.min(cores));
            Team::new(threads - 1)
        })
    }

    /// A team with `workers` threads besides the caller's.
    pub fn new(workers: usize) -> Team {
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            job: Mutex::new(None),
            claim: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: Mutex::new(Vec::new()),
        });
        for k in 0..workers {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(format!("tandem-cpu-{k}"))
                .spawn(move || worker(&s, k as u32 + 1))
                .expect("spawning a CPU worker thread");
        }
        Team {
            shared,
            workers,
            post: Mutex::new(()),
        }
    }

    /// Threads that share a job: the workers and the caller.
    pub fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Most parts one job can have.
    pub const MAX_PARTS: usize = 32;

    /// Calls `f(p)` for every p in 0..parts, across the team; returns when all
    /// have returned. Panics if a part panicked. More than `MAX_PARTS` parts
    /// run in rounds of `MAX_PARTS`.
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        if parts > Self::MAX_PARTS {
            for first in (0..parts).step_by(Self::MAX_PARTS) {
                let n = (parts - first).min(Self::MAX_PARTS);
                self.run(n, &|p| f(first + p));
            }
            return;
        }
        if parts == 0 {
            return;
        }
        if parts == 1 || self.workers == 0 || IN_PART.with(Cell::get) {
            (0..parts).for_each(f);
            return;
        }
        let _one_caller = self.post.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let epoch = (s.posted.load(Ordering::Relaxed) as u32).wrapping_add(1);
        // SAFETY (lifetime): `f` is erased to 'static for the workers. This
        // function does not return until `pending` is 0, i.e. every claimed
        // part has finished, and after that no part can be claimed (claims
        // need this epoch, which the next job replaces before posting).
        let f_static: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
            epoch,
            parts: parts as u32,
            f: f_static,
        });
        s.panicked.store(false, Ordering::Relaxed);
        s.pending.store(parts, Ordering::Relaxed);
        s.claim.store((epoch as u64) << 32, Ordering::Release);
        s.posted.store(epoch as u64, Ordering::Release);
        for t in s
            .sleepers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.unpark();
        }
        run_parts(s, epoch, parts as u32, 0, f);
        while s.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a CPU kernel panicked on a worker thread");
        }
    }
}

/// `len` split into `parts` contiguous ranges whose starts are multiples of
/// `align` (the last may be shorter; ranges may be empty when len is small).
pub fn ranges(len: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let step = len.div_ceil(parts.max(1)).div_ceil(align.max(1)) * align.max(1);
    (0..parts)
        .map(|p| (p * step).min(len)..((p + 1) * step).min(len))
        .collect()
}

/// Splits `v` into consecutive pieces of the given lengths (which must not
/// sum past `v.len()`), each behind its own lock so that parts can take
/// theirs through a shared reference.
pub fn pieces<'a, T>(mut v: &'a mut [T], lens: &[usize]) -> Vec<Mutex<&'a mut [T]>> {
    lens.iter()
        .map(|&n| {
            let (head, rest) = std::mem::take(&mut v).split_at_mut(n);
            v = rest;
            Mutex::new(head)
        })
        .collect()
}

/// Claims and runs parts of job `epoch` until none is left, starting with
/// part `home` (this thread's index).
fn run_parts(s: &Shared, epoch: u32, parts: u32, home: u32, f: &(dyn Fn(usize) + Sync)) {
    let all = if parts == 32 {
        u32::MAX
    } else {
        (1u32 << parts) - 1
    };
    loop {
        let c = s.claim.load(Ordering::Acquire);
        let (e, taken) = ((c >> 32) as u32, c as u32);
        if e != epoch || taken & all == all {
            return;
        }
        let next = if home < parts && taken & (1 << home) == 0 {
            home
        } else {
            (!taken & all).trailing_zeros()
        };
        if s.claim
            .compare_exchange_weak(c, c | (1 << next), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        IN_PART.with(|p| p.set(true));
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(next as usize)));
        IN_PART.with(|p| p.set(false));
        if ok.is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

fn worker(s: &Shared, home: u32) {
    let mut seen = 0u64;
    let mut idle_since = Instant::now();
    loop {
        let posted = s.posted.load(Ordering::Acquire);
        if posted != seen {
            seen = posted;
            let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(job) = job {
                if job.epoch as u64 == posted {
                    // SAFETY: see `Team::run`; a part is only run after a
                    // successful claim of this epoch, while `run` waits.
                    let f = unsafe { &*job.f };
                    run_parts(s, job.epoch, job.parts, home, f);
                }
            }
            idle_since = Instant::now();
            continue;
        }
        if idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        // Park until the next job; re-check after registering so that a job
        // posted in between is not missed (an early unpark makes park return).
        s.sleepers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(std::thread::current());
        if s.posted.load(Ordering::Acquire) == seen {
            std::thread::park();
        }
        idle_since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_exactly_once_job_after_job() {
        let team = Team::new(3);
        for parts in [1usize, 2, 3, 7, 32, 33, 70] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                team.run(parts, &|p| {
                    hits[p].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn parked_workers_wake_for_later_jobs() {
        let team = Team::new(1);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 5);
            let sum = AtomicUsize::new(0);
            team.run(16, &|p| {
                sum.fetch_add(p, Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), 120);
        }
    }

    #[test]
    fn nested_calls_run_serially() {
        let team = Team::new(2);
        let count = AtomicUsize::new(0);
        team.run(4, &|_| {
            team.run(3, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(count.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_panicking_part_panics_the_caller_and_the_team_still_works() {
        let team = Team::new(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            team.run(8, &|p| assert!(p != 5, "part 5 fails"));
        }));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        team.run(4, &|p| {
            sum.fetch_add(p, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
    }
}
