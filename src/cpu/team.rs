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
//!
//! Spinning only pays while every thread has a core of its own. When other
//! work shares the cores, a spinning worker takes time from the caller or from
//! that work, and a worker descheduled in the middle of its part holds the
//! caller up for a whole scheduler time slice. So the team watches for signs
//! that one of its threads lost its core (see `PREEMPTED`): a gap in a
//! worker's spin loop, a worker waking up late, the caller waiting for a
//! worker's part far longer than its own part took, the caller's part
//! taking far longer than the worker's, or (on Linux) the caller's own count
//! of time spent waiting for a core. On any of these the team stands down:
//! every job runs on the calling thread alone (and the workers park) for a
//! back-off that starts at `MIN_BACKOFF` and doubles, up to `MAX_BACKOFF`,
//! while the team keeps finding contention each time it tries again. One
//! thread is then as fast as training without the team; the results are the
//! same either way, since parts do not depend on which thread runs them.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A thread that should have been running (spinning, running a part, waking
/// up for a job) but lost this much time has lost its core to another thread:
/// longer than interrupts and the odd hypervisor hiccup take, shorter than a
/// scheduler time slice (0.75 ms and up on Linux).
const PREEMPTED: Duration = Duration::from_micros(250);

/// The first stand-down's length, and the longest one.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

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
    /// When the newest job was posted (`Contention::now` nanoseconds).
    posted_at: AtomicU64,
    /// The longest part a worker ran of the current job, in nanoseconds (0:
    /// no worker ran one).
    worker_part: AtomicU64,
    contention: Contention,
}

/// Whether the team is standing down, and for how long it will next time.
struct Contention {
    origin: Instant,
    /// Jobs run on the caller alone until this time (`now` nanoseconds).
    solo_until: AtomicU64,
    /// The next stand-down's length, and when contention was last found.
    backoff: Mutex<(Duration, Option<Instant>)>,
    /// Stand-downs so far.
    count: AtomicU64,
}

impl Contention {
    fn new() -> Contention {
        Contention {
            origin: Instant::now(),
            solo_until: AtomicU64::new(0),
            backoff: Mutex::new((MIN_BACKOFF, None)),
            count: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the team started.
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// True while the team stands down.
    fn solo(&self) -> bool {
        let until = self.solo_until.load(Ordering::Relaxed);
        until != 0 && self.now() < until
    }

    /// A thread of the team lost its core: stand down. The stand-down lasts
    /// twice as long as the last one if contention came back soon after that
    /// one ended (the cores are still shared), else `MIN_BACKOFF`. Ignored
    /// while standing down already (threads often see one preemption twice).
    fn found(&self) {
        if self.solo() {
            return;
        }
        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (len, last) = *b;
        let again = last.is_some_and(|t| now.duration_since(t) < 2 * len + MIN_BACKOFF);
        let len = if again { len } else { MIN_BACKOFF };
        let until = now.duration_since(self.origin) + len;
        self.solo_until
            .store(until.as_nanos() as u64, Ordering::Relaxed);
        *b = ((len * 2).min(MAX_BACKOFF), Some(now));
        self.count.fetch_add(1, Ordering::Relaxed);
    }
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
    /// The calling thread's last look at its run-queue wait: when, and the
    /// wait so far (see `caller_lost_core`).
    static LAST_LOOK: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
    /// Linux's scheduler statistics of this thread, kept open.
    static SCHEDSTAT: Option<std::fs::File> =
        std::fs::File::open("/proc/thread-self/schedstat").ok();
}

/// How much time this thread has spent runnable but waiting for a core, where
/// the system says (Linux: the second field of its schedstat).
fn run_queue_wait() -> Option<Duration> {
    SCHEDSTAT.with(|f| {
        let mut buf = [0u8; 96];
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(f.as_ref()?, &mut buf, 0).ok()?;
        #[cfg(not(unix))]
        let n = {
            let _ = f.as_ref()?;
            0
        };
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let ns = text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        Some(Duration::from_nanos(ns))
    })
}

/// True when the calling thread waited for a core for more than a twentieth
/// of the time since its last look (and more than `PREEMPTED`): other work
/// competes with the team's threads even where none of them was caught
/// descheduled at a telling moment (e.g. the caller between two jobs while a
/// worker spins on its core). Looks at most every 2 ms (a look costs about a
/// microsecond); after a pause of over 100 ms it only takes a new baseline.
fn caller_lost_core(now: Instant) -> bool {
    let last = LAST_LOOK.with(Cell::get);
    let since = last.map(|(t, _)| now.duration_since(t));
    if since.is_some_and(|d| d < Duration::from_millis(2)) {
        return false;
    }
    let Some(wait) = run_queue_wait() else {
        return false;
    };
    LAST_LOOK.with(|l| l.set(Some((now, wait))));
    match (last, since) {
        (Some((_, before)), Some(d)) if d <= Duration::from_millis(100) => {
            wait.saturating_sub(before) > PREEMPTED.max(d / 20)
        }
        _ => false,
    }
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
            posted_at: AtomicU64::new(0),
            worker_part: AtomicU64::new(0),
            contention: Contention::new(),
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

    /// How often the team has stood down (run every job on the caller's
    /// thread for a while) because its threads were losing their cores.
    pub fn stood_down(&self) -> u64 {
        self.shared.contention.count.load(Ordering::Relaxed)
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
        let s = &*self.shared;
        if parts == 1 || self.workers == 0 || IN_PART.with(Cell::get) || s.contention.solo() {
            (0..parts).for_each(f);
            return;
        }
        let _one_caller = self.post.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
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
        s.worker_part.store(0, Ordering::Relaxed);
        s.posted_at.store(s.contention.now(), Ordering::Relaxed);
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
        let own_part = run_parts(s, epoch, parts as u32, 0, f);
        let own = start.elapsed();
        let waiting = Instant::now();
        while s.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        let waited = waiting.elapsed();
        // Parts are split evenly and part 0, the caller's, is never the
        // smaller: a worker's part that ends long after the caller's, or a
        // caller's part far longer than a worker's, lost its core.
        let worker_part = Duration::from_nanos(s.worker_part.load(Ordering::Relaxed));
        if (waited > PREEMPTED && waited > own)
            || (!worker_part.is_zero() && own_part > PREEMPTED + 2 * worker_part)
            || caller_lost_core(start)
        {
            s.contention.found();
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a CPU kernel panicked on a worker thread");
        }
    }
}

/// `len` split into at most `parts` contiguous ranges whose starts are
/// multiples of `align`: all but the last as long as the first, none empty
/// (one empty range when `len` is 0).
pub fn ranges(len: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let step = len.div_ceil(parts.max(1)).div_ceil(align.max(1)) * align.max(1);
    let parts = len.div_ceil(step.max(1)).max(1);
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
/// part `home` (this thread's index); returns the longest part's time.
fn run_parts(
    s: &Shared,
    epoch: u32,
    parts: u32,
    home: u32,
    f: &(dyn Fn(usize) + Sync),
) -> Duration {
    let mut longest = Duration::ZERO;
    let all = if parts == 32 {
        u32::MAX
    } else {
        (1u32 << parts) - 1
    };
    loop {
        let c = s.claim.load(Ordering::Acquire);
        let (e, taken) = ((c >> 32) as u32, c as u32);
        if e != epoch || taken & all == all {
            return longest;
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
        let started = Instant::now();
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(next as usize)));
        let took = started.elapsed();
        longest = longest.max(took);
        IN_PART.with(|p| p.set(false));
        if ok.is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        if home != 0 {
            s.worker_part
                .fetch_max(took.as_nanos() as u64, Ordering::Relaxed);
        }
        s.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

fn worker(s: &Shared, home: u32) {
    let mut seen = 0u64;
    let mut idle_since = Instant::now();
    let mut last = idle_since;
    loop {
        let posted = s.posted.load(Ordering::Acquire);
        let now = Instant::now();
        // A spin loop's turns are nanoseconds apart, unless the thread was
        // descheduled in between.
        if now.duration_since(last) > PREEMPTED {
            s.contention.found();
        }
        last = now;
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
            last = idle_since;
            continue;
        }
        if now.duration_since(idle_since) < SPIN && !s.contention.solo() {
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
            // Woken for a job: the time since it was posted is how long this
            // thread waited for a core.
            let posted_at = Duration::from_nanos(s.posted_at.load(Ordering::Relaxed));
            let woke = Duration::from_nanos(s.contention.now());
            if s.posted.load(Ordering::Acquire) != seen && woke > posted_at + PREEMPTED {
                s.contention.found();
            }
        }
        idle_since = Instant::now();
        last = idle_since;
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

    #[test]
    fn ranges_cover_the_length_without_empty_parts() {
        for (len, parts, align) in [(0, 2, 16), (1, 3, 1), (4, 3, 1), (8, 2, 1), (100, 3, 16)] {
            let r = ranges(len, parts, align);
            assert!(!r.is_empty() && r.len() <= parts.max(1));
            assert_eq!((r[0].start, r[r.len() - 1].end), (0, len));
            assert!(r.windows(2).all(|w| w[0].end == w[1].start));
            assert!(len == 0 || r.iter().all(|p| !p.is_empty() && p.start % align == 0));
        }
        assert_eq!(ranges(4, 3, 1), vec![0..2, 2..4]);
    }

    #[test]
    fn contention_stands_the_team_down_once_per_spell() {
        let c = Contention::new();
        assert!(!c.solo());
        c.found();
        assert!(c.solo());
        c.found(); // the same spell: ignored
        assert_eq!(c.count.load(Ordering::Relaxed), 1);
        let next = c.backoff.lock().map(|b| b.0).unwrap_or_default();
        assert_eq!(next, 2 * MIN_BACKOFF);
    }

    #[test]
    fn a_worker_losing_its_core_stands_the_team_down() {
        // A worker's part that takes a millisecond while the caller's takes
        // 50 µs looks like a worker descheduled mid-part.
        let team = Team::new(1);
        let on_worker = || {
            std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tandem-cpu"))
        };
        for _ in 0..1000 {
            if team.stood_down() > 0 {
                break;
            }
            let hits: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
            team.run(2, &|p| {
                if on_worker() {
                    std::thread::sleep(PREEMPTED * 4);
                } else {
                    // Long enough for the worker to claim the other part.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {}
                }
                hits[p].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        assert!(team.stood_down() > 0);
        // Standing down changes where parts run, not what they compute.
        let sum = AtomicUsize::new(0);
        team.run(8, &|p| {
            sum.fetch_add(p, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 28);
    }
}
