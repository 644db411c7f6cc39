//! `--mpi`: the training step of the seed and large workloads as one process
//! and as the ranks of an MPI job (`train::distributed`: three programs and
//! two all-reduces per step), with the share of the step each rank spends in
//! the all-reduces and in reading the statistics and gradient back.
//!
//! The one-process rows run here; the P = 2 rows run in a job this program
//! starts itself (`mpirun -n 2 <this program> --mpi-rank`, each rank on one CPU
//! thread so that the two ranks use the same two cores as the one process),
//! whose rank 0 sends its rows back on stdout. Needs `--features mpi` and
//! `mpirun` on the PATH; MPI settings come from the environment (`OMPI_MCA_*`).

use super::{large_workload, seed_workload, training_setup, Row, TrainWorkload};
use super::{MIN_ITERS, MIN_TOTAL};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tandem::train::{collective, Collective, Trainer};
use tandem::Backend;

/// The argument that makes this program a rank of the benchmark's job.
pub const CHILD: &str = "--mpi-rank";
/// Ranks of the job.
const RANKS: usize = 2;

fn backend(gpu: bool) -> tandem::Result<Box<dyn Backend>> {
    let choice = match gpu {
        true => tandem::BackendChoice::Gpu,
        false => tandem::BackendChoice::Cpu,
    };
    tandem::open_backend(choice)
}

/// One row: `w` trained by this process alone (`c` None) or as a rank of `c`.
fn step_row(w: &TrainWorkload, gpu: bool, c: Option<Rc<dyn Collective>>) -> tandem::Result<Row> {
    let (model, data, cfg) = training_setup(w);
    let p = c.as_ref().map_or(1, |c| c.size());
    let source = &mut tandem::data::DatasetRef(&data);
    let rows = tandem::train::TrainRows::Resident {
        source,
        chunk_rows: None,
    };
    let mut trainer = Trainer::with_rows(backend(gpu)?, &model, rows, &cfg, c.clone())?;
    let desc = trainer.backend().describe();
    trainer.train_epoch(&mut |_, _| {})?; // warm-up
    let before = trainer.comm_times().unwrap_or_default();
    let mut times = Vec::new();
    let start = Instant::now();
    loop {
        let t = Instant::now();
        trainer.train_epoch(&mut |_, _| {})?;
        times.push(t.elapsed() / w.steps as u32);
        let more = times.len() < MIN_ITERS || start.elapsed() < MIN_TOTAL;
        // Every rank trains as many epochs: on while any rank wants more.
        let more = match &c {
            Some(c) => collective::any(c.as_ref(), more)?,
            None => more,
        };
        if !more {
            break;
        }
    }
    let mean = times.iter().sum::<Duration>().as_secs_f64() / times.len() as f64;
    times.sort();
    let after = trainer.comm_times().unwrap_or_default();
    let steps = (after.steps - before.steps).max(1) as f64;
    let share = |a: Duration, b: Duration| (a - b).as_secs_f64() / steps / mean * 100.0;
    let notes = match p {
        1 => "one process: one recorded program, 32 steps per submit".to_string(),
        _ => format!(
            "all-reduce {:.1}% of the step ({:.0} µs, {:.0} kB per rank), readback and write \
             {:.1}%; {p} ranks, one step per submit",
            share(after.all_reduce, before.all_reduce),
            (after.all_reduce - before.all_reduce).as_secs_f64() / steps * 1e6,
            (after.bytes - before.bytes) as f64 / steps / 1e3,
            share(after.transfer, before.transfer),
        ),
    };
    let per_step = times[times.len() / 2];
    Ok(Row {
        backend: format!("{desc}, P={p}"),
        workload: w.name.into(),
        size: w.size.into(),
        time: Some(per_step),
        per: "step",
        gflops: Some(trainer.flops_per_step() as f64 / per_step.as_secs_f64() / 1e9),
        notes,
    })
}

/// The argument that leaves the large workload out (a software GPU adapter).
const SEED_ONLY: &str = "--seed-only";

/// The rows of the workloads, alone or as a rank of `c`.
fn workload_rows(gpu: bool, seed_only: bool, c: Option<Rc<dyn Collective>>) -> Vec<Row> {
    let mut workloads = vec![seed_workload()];
    if !seed_only {
        workloads.push(large_workload());
    }
    workloads
        .iter()
        .map(|w| {
            step_row(w, gpu, c.clone())
                .unwrap_or_else(|e| Row::skipped("-", w.name, w.size, format!("failed: {e}")))
        })
        .collect()
}

/// The one-process rows, then the rows of a job of `RANKS` ranks.
pub fn rows(gpu: bool) -> Vec<Row> {
    // The large step takes seconds on a software adapter (lavapipe): seed only there.
    let software = gpu
        && tandem::gpu::GpuBackend::new()
            .is_ok_and(|g| g.context().info.device_type == wgpu::DeviceType::Cpu);
    let mut rows = workload_rows(gpu, software, None);
    if !cfg!(feature = "mpi") {
        let why = "skipped: build with --features mpi".to_string();
        rows.push(Row::skipped("P=2", "train steps over MPI", "-", why));
        return rows;
    }
    eprintln!("bench: starting mpirun -n {RANKS}");
    let exe = std::env::current_exe().expect("the benchmark's path");
    let mut job = std::process::Command::new("mpirun");
    job.args(["-n", &RANKS.to_string(), "--bind-to", "none"])
        .arg(exe)
        .arg(CHILD)
        .args(gpu.then_some("--gpu-only"))
        .args(software.then_some(SEED_ONLY))
        .env("TANDEM_CPU_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .stderr(std::process::Stdio::inherit());
    match job.output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            rows.extend(text.lines().filter_map(decode));
        }
        Ok(o) => rows.push(Row::skipped("P=2", "mpirun", "-", format!("{}", o.status))),
        Err(e) => rows.push(Row::skipped("P=2", "mpirun", "-", format!("failed: {e}"))),
    }
    rows
}

/// A row as one line of stdout, from a rank to the parent.
#[cfg(feature = "mpi")]
fn encode(r: &Row) -> String {
    let secs = r.time.map_or(-1.0, |t| t.as_secs_f64());
    let gflops = r.gflops.unwrap_or(-1.0);
    let cells = [&r.backend, &r.workload, &r.size, &r.notes];
    format!(
        "ROW\t{}\t{secs:e}\t{gflops:e}",
        cells.map(|c| c.as_str()).join("\t")
    )
}

fn decode(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.strip_prefix("ROW\t")?.split('\t').collect();
    let [backend, workload, size, notes, secs, gflops] = f[..] else {
        return None;
    };
    let secs: f64 = secs.parse().ok()?;
    let gflops: f64 = gflops.parse().ok()?;
    Some(Row {
        backend: backend.into(),
        workload: workload.into(),
        size: size.into(),
        time: (secs >= 0.0).then(|| Duration::from_secs_f64(secs)),
        per: "step",
        gflops: (gflops >= 0.0).then_some(gflops),
        notes: notes.into(),
    })
}

/// A rank of the benchmark's job: both workloads; rank 0 prints the rows.
#[cfg(feature = "mpi")]
pub fn child(gpu: bool) -> ! {
    let seed_only = std::env::args().any(|a| a == SEED_ONLY);
    let job = match tandem::dist::mpi::MpiJob::init() {
        Ok(j) => j,
        Err(e) => {
            eprintln!("bench rank: {e}");
            std::process::exit(1)
        }
    };
    let c: Rc<dyn Collective> = job.collective.clone();
    let rows = workload_rows(gpu, seed_only, Some(c.clone()));
    if c.rank() == 0 {
        for r in &rows {
            println!("{}", encode(r));
        }
    }
    drop(job);
    std::process::exit(0)
}

#[cfg(not(feature = "mpi"))]
pub fn child(_gpu: bool) -> ! {
    eprintln!("bench: {CHILD} needs a build with --features mpi");
    std::process::exit(2)
}
