//! The tandem benchmark: how fast each backend on this machine runs the
//! kernels training is made of. Performance is measured here, never by timed
//! tests.
//!
//! ```text
//! cargo run --release --example bench -- [--quick] [--full] [--cpu-only] [--gpu-only] [--members]
//! cargo run --release --features mpi --example bench -- --mpi [--gpu-only]
//! ```
//!
//! It prints one table, one row per measurement:
//!
//! - dense forward+backward: the three dense kernels of one layer's training
//!   pass (forward, input gradient, weight gradient; relu) as one program,
//!   at N = I = O = 256, 1024 and 4096;
//! - dispatch overhead: a small layer (N=32, I=100, O=64) dispatched 100 times,
//!   first as 100 dispatches in one submit, then as one dispatch per submit;
//! - training steps of a seed-sized and a large model;
//! - 8 seed-sized ensemble members trained fused and one after another, and on
//!   the CPU the same again while a child process keeps one core busy (the
//!   fused members must not lose to one by one when the cores are shared);
//! - with `--mpi` only: the training steps as one process and as 2 ranks of an
//!   MPI job, with the all-reduce's share of the step (`bench/mpi_rows.rs`).
//!
//! The GPU is whatever adapter `GpuBackend::new()` opens (pick one with
//! `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`); on a machine without a GPU that may
//! be a software rasterizer such as lavapipe, which runs the shaders on the CPU.
//!
//! Adding a workload: write a function `fn my_rows(b: &mut dyn Backend, ..) ->
//! Vec<Row>` next to `dense_rows` / `dispatch_rows` (build buffers and a
//! program, time it with `measure`, turn the timing into rows) and call it
//! from `bench_backend`.

use std::time::{Duration, Instant};
use tandem::cpu::CpuBackend;
use tandem::gpu::GpuBackend;
use tandem::ops::{BufId, DenseArgs, Op};
use tandem::Backend;

#[path = "bench/mpi_rows.rs"]
mod mpi_rows;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

const USAGE: &str = "usage: bench [--quick] [--full] [--cpu-only] [--gpu-only] [--members] [--mpi]
  --quick     only N=I=O=256 and the dispatch rows
  --full      also run the 4096³ dense row on the CPU (slow on few cores)
  --cpu-only  skip the GPU backend
  --gpu-only  skip the CPU backend
  --members   only the 8-member rows (idle and, on the CPU, with one core busy)
  --mpi       only the training steps as 1 process and as 2 MPI ranks (CPU; with
              --gpu-only on the GPU); needs --features mpi and mpirun";

/// The flags, parsed by hand from `std::env::args` (no CLI dependency).
#[derive(Default)]
struct Options {
    quick: bool,
    full: bool,
    cpu_only: bool,
    gpu_only: bool,
    members: bool,
    mpi: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--full" => opts.full = true,
            "--cpu-only" => opts.cpu_only = true,
            "--gpu-only" => opts.gpu_only = true,
            "--members" => opts.members = true,
            "--mpi" => opts.mpi = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if opts.cpu_only && opts.gpu_only {
        return Err("--cpu-only and --gpu-only exclude each other".into());
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// Rows and the table
// ---------------------------------------------------------------------------

/// One line of the results table.
struct Row {
    /// The backend's `describe()` string.
    backend: String,
    workload: String,
    size: String,
    /// Median time of one `per` (None when the row was skipped or failed).
    time: Option<Duration>,
    /// What `time` is the time of: "iter", "dispatch", "step", …
    per: &'static str,
    /// Achieved GFLOP/s, where the workload's flops are known.
    gflops: Option<f64>,
    notes: String,
}

impl Row {
    /// A row that says why there is no measurement.
    fn skipped(backend: &str, workload: &str, size: &str, why: String) -> Row {
        Row {
            backend: backend.to_string(),
            workload: workload.to_string(),
            size: size.to_string(),
            time: None,
            per: "",
            gflops: None,
            notes: why,
        }
    }

    /// The row's six cells, formatted.
    fn cells(&self) -> [String; 6] {
        let time = match self.time {
            Some(t) => format!("{}/{}", format_duration(t), self.per),
            None => "-".into(),
        };
        let gflops = match self.gflops {
            Some(g) if g >= 10.0 => format!("{g:.1}"),
            Some(g) => format!("{g:.2}"),
            None => "-".into(),
        };
        [
            self.backend.clone(),
            self.workload.clone(),
            self.size.clone(),
            time,
            gflops,
            self.notes.clone(),
        ]
    }
}

/// "950 ns", "12.3 µs", "4.56 ms", "1.23 s": three significant digits.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (value, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else if s >= 1e-6 {
        (s * 1e6, "µs")
    } else {
        (s * 1e9, "ns")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {unit}")
}

/// Prints the rows as a column-aligned markdown table. Widths count chars,
/// not bytes (Rust's `{:<w$}` does too), so "µs" lines up.
fn print_table(rows: &[Row]) {
    const HEADER: [&str; 6] = ["backend", "workload", "size", "time", "GFLOP/s", "notes"];
    // Numbers read best right-aligned.
    const RIGHT: [bool; 6] = [false, false, false, true, true, false];
    let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
    let mut width = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: [&str; 6]| {
        let mut out = String::from("|");
        for k in 0..6 {
            let w = width[k];
            if RIGHT[k] {
                out += &format!(" {:>w$} |", row[k]);
            } else {
                out += &format!(" {:<w$} |", row[k]);
            }
        }
        out
    };
    println!("{}", line(HEADER));
    // The markdown separator; `---:` marks a right-aligned column.
    let rule: Vec<String> = (0..6)
        .map(|k| {
            let dashes = "-".repeat(width[k]);
            if RIGHT[k] {
                format!("{}:", &dashes[1..])
            } else {
                dashes
            }
        })
        .collect();
    println!("| {} |", rule.join(" | "));
    for row in &cells {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
}

// ---------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------

/// Keep repeating an iteration until this much time has been measured…
const MIN_TOTAL: Duration = Duration::from_millis(500);
/// …and at least this many iterations (what very slow cases end up doing).
const MIN_ITERS: usize = 3;

/// What `measure` found.
struct Timing {
    /// Median wall time of one iteration.
    median: Duration,
    /// Iterations timed (after the warm-up).
    iters: usize,
    /// Submits and dispatches per iteration, from the backend's counters: a
    /// check that the iteration does the work the row claims.
    submits: f64,
    dispatches: f64,
}

impl Timing {
    /// The notes every timed row carries, e.g. "3 dispatches, 1 submit per
    /// iter; median of 10".
    fn notes(&self) -> String {
        let count =
            |n: f64, one: &str, many: &str| format!("{n} {}", if n == 1.0 { one } else { many });
        format!(
            "{}, {} per iter; median of {}",
            count(self.dispatches, "dispatch", "dispatches"),
            count(self.submits, "submit", "submits"),
            self.iters
        )
    }
}

/// Times `iteration` (which queues work on `b`) the way every row is timed:
/// one warm-up run (shader compilation, first-touch of memory), then repeated
/// runs until `MIN_TOTAL` and `MIN_ITERS` are both reached; the median of the
/// per-iteration times is robust to the odd slow run. `finish()` is inside the
/// clock: a GPU `run` only queues work, and the time that matters is until it
/// is done.
fn measure(
    b: &mut dyn Backend,
    mut iteration: impl FnMut(&mut dyn Backend) -> tandem::Result<()>,
) -> tandem::Result<Timing> {
    iteration(b)?;
    b.finish()?;
    let before = b.counters();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < MIN_ITERS || start.elapsed() < MIN_TOTAL {
        let t = Instant::now();
        iteration(b)?;
        b.finish()?;
        times.push(t.elapsed());
    }
    let after = b.counters();
    times.sort();
    let n = times.len() as f64;
    Ok(Timing {
        median: times[times.len() / 2],
        iters: times.len(),
        submits: (after.submits - before.submits) as f64 / n,
        dispatches: (after.dispatches - before.dispatches) as f64 / n,
    })
}

// ---------------------------------------------------------------------------
// Workload: one dense layer
// ---------------------------------------------------------------------------

/// Activation code for relu (0 identity, 1 relu, 2 tanh, 3 sigmoid).
const RELU: u32 = 1;

/// The buffers of one dense layer, filled with fixed pseudo-random values.
struct DenseLayer {
    args: DenseArgs,
    x: BufId,      // [N, I] input
    params: BufId, // [O·I + O] W [O, I] then b [O]
    y: BufId,      // [N, O] output, after relu
    dy: BufId,     // [N, O] gradient arriving from above
    dx: BufId,     // [N, I] input gradient
    grads: BufId,  // [O·I + O] dW then db
}

/// Deterministic values in [-0.5, 0.5): timing must not depend on a seed.
fn fill(len: usize, salt: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|k| {
            let h = k.wrapping_add(salt).wrapping_mul(2_654_435_761) >> 8;
            h as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

impl DenseLayer {
    fn new(b: &mut dyn Backend, n: u32, i: u32, o: u32) -> tandem::Result<Self> {
        // Element counts: x and dx [N, I], y and dy [N, O], W and b together.
        let (xs, ys, per) = ((n * i) as usize, (n * o) as usize, (o * i + o) as usize);
        let x = b.alloc(xs, "x")?;
        let params = b.alloc(per, "params")?;
        let y = b.alloc(ys, "y")?;
        let dy = b.alloc(ys, "dy")?;
        let dx = b.alloc(xs, "dx")?;
        let grads = b.alloc(per, "grads")?;
        b.write(x, 0, &fill(xs, 1))?;
        b.write(params, 0, &fill(per, 2))?;
        b.write(dy, 0, &fill(ys, 3))?;
        // Every buffer holds exactly one layer, so all offsets are 0 except
        // the bias, which follows W inside `params` (and db inside `grads`).
        let args = DenseArgs {
            n,
            i,
            o,
            act: RELU,
            b_off: o * i,
            batches: 1,
            x_bstride: n * i,
            w_bstride: o * i + o,
            b_bstride: o * i + o,
            y_bstride: n * o,
            ..DenseArgs::default()
        };
        Ok(DenseLayer {
            args,
            x,
            params,
            y,
            dy,
            dx,
            grads,
        })
    }

    /// y = relu(x·Wᵀ + b)
    fn forward(&self) -> Op {
        Op::DenseForward {
            args: self.args,
            x: self.x,
            params: self.params,
            y: self.y,
        }
    }

    /// dx = (dy ⊙ relu'(y))·W
    fn backward_input(&self) -> Op {
        Op::DenseBackwardInput {
            args: self.args,
            dy: self.dy,
            y: self.y,
            params: self.params,
            dx: self.dx,
        }
    }

    /// dW = dzᵀ·x, db = Σ_n dz
    fn backward_weight(&self) -> Op {
        Op::DenseBackwardWeight {
            args: self.args,
            dy: self.dy,
            y: self.y,
            x: self.x,
            grads: self.grads,
        }
    }
}

/// Total flops of a program, as `Op::flops` counts them.
fn flops(ops: &[Op]) -> u64 {
    ops.iter().map(Op::flops).sum()
}

/// Dense forward+backward at N = I = O = `size`: one row.
fn dense_row(b: &mut dyn Backend, size: u32) -> tandem::Result<Row> {
    let layer = DenseLayer::new(b, size, size, size)?;
    let ops = [
        layer.forward(),
        layer.backward_input(),
        layer.backward_weight(),
    ];
    let program = b.prepare(&ops)?;
    let timing = measure(b, |b| b.run(program, 1))?;
    Ok(Row {
        backend: b.describe(),
        workload: "dense fwd+bwd (relu)".into(),
        size: format!("N=I=O={size}"),
        time: Some(timing.median),
        per: "iter",
        gflops: Some(flops(&ops) as f64 / timing.median.as_secs_f64() / 1e9),
        notes: timing.notes(),
    })
}

/// One dense row per size; `big_skip` says why 4096³ does not run here.
fn dense_rows(b: &mut dyn Backend, sizes: &[u32], big_skip: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    for &size in sizes {
        let workload = "dense fwd+bwd (relu)";
        let label = format!("N=I=O={size}");
        if let (4096, Some(why)) = (size, big_skip) {
            rows.push(Row::skipped(&b.describe(), workload, &label, why.into()));
            continue;
        }
        eprintln!("bench: {} | {workload} | {label}", b.describe());
        rows.push(dense_row(b, size).unwrap_or_else(|e| {
            Row::skipped(&b.describe(), workload, &label, format!("failed: {e}"))
        }));
        b.clear(); // free the big buffers before the next size
    }
    rows
}

// ---------------------------------------------------------------------------
// Workload: dispatch overhead
// ---------------------------------------------------------------------------

/// Dispatches per measured iteration in the overhead rows.
const DISPATCHES: u32 = 100;

/// The cost of one small dispatch (DenseForward at N=32, I=100, O=64), two ways:
///
/// - a program of 100 copies run once: 100 dispatches recorded into one
///   compute pass and one submit, so on the GPU the submit and the wait are
///   amortised over the 100 dispatches;
/// - a program of one copy run 100 times: one dispatch per submit, so each
///   dispatch pays for encoder creation, error scopes and a submit.
///
/// Both end with one `finish()` per 100 dispatches; the time column is the
/// iteration's median divided by 100.
fn dispatch_rows(b: &mut dyn Backend) -> Vec<Row> {
    let mut rows = Vec::new();
    for (workload, copies, submits) in [
        ("dispatch, 100 per submit", DISPATCHES, 1),
        ("dispatch, 1 per submit", 1, DISPATCHES),
    ] {
        eprintln!("bench: {} | {workload} | {DISPATCH_SIZE}", b.describe());
        rows.push(
            dispatch_row(b, workload, copies, submits).unwrap_or_else(|e| {
                Row::skipped(
                    &b.describe(),
                    workload,
                    DISPATCH_SIZE,
                    format!("failed: {e}"),
                )
            }),
        );
        b.clear();
    }
    rows
}

/// The small layer of the overhead rows, as the size column shows it.
const DISPATCH_SIZE: &str = "N=32 I=100 O=64";

/// A program of `copies` small DenseForwards, run `submits` times per
/// iteration (copies × submits = 100 dispatches): one row.
fn dispatch_row(
    b: &mut dyn Backend,
    workload: &str,
    copies: u32,
    submits: u32,
) -> tandem::Result<Row> {
    let layer = DenseLayer::new(b, 32, 100, 64)?;
    let ops = vec![layer.forward(); copies as usize];
    let program = b.prepare(&ops)?;
    let timing = measure(b, |b| {
        for _ in 0..submits {
            b.run(program, 1)?; // one run = one submit on the GPU
        }
        Ok(())
    })?;
    let per_dispatch = timing.median / DISPATCHES;
    Ok(Row {
        backend: b.describe(),
        workload: workload.into(),
        size: DISPATCH_SIZE.into(),
        time: Some(per_dispatch),
        per: "dispatch",
        gflops: Some(layer.forward().flops() as f64 / per_dispatch.as_secs_f64() / 1e9),
        notes: timing.notes(),
    })
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/// Every workload on one backend. `big_skip`: why the 4096³ dense row does
/// not run on this backend (None: it runs).
fn bench_backend(b: &mut dyn Backend, opts: &Options, big_skip: Option<&str>) -> Vec<Row> {
    let sizes: &[u32] = if opts.quick {
        &[256]
    } else {
        &[256, 1024, 4096]
    };
    let mut rows = dense_rows(b, sizes, big_skip);
    rows.extend(dispatch_rows(b));
    rows
}

fn main() {
    // The busy process of the "one core busy" rows is a copy of this program.
    if std::env::args().nth(1).as_deref() == Some(BUSY_CHILD) {
        busy_child();
    }
    // A rank of the `--mpi` rows' job.
    if std::env::args().nth(1).as_deref() == Some(mpi_rows::CHILD) {
        mpi_rows::child(std::env::args().any(|a| a == "--gpu-only"));
    }
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut rows = Vec::new();
    if opts.mpi {
        print_table(&mpi_rows::rows(opts.gpu_only));
        return;
    }

    if !opts.gpu_only {
        let mut cpu = CpuBackend::new();
        let label = cpu.describe();
        let make = || Ok(Box::new(CpuBackend::new()) as Box<dyn Backend>);
        if !opts.members {
            // 4096³ is ~0.4 TFLOP per iteration: tens of seconds on a few cores.
            let big_skip = (!opts.full).then_some("skipped (pass --full)");
            rows.extend(bench_backend(&mut cpu, &opts, big_skip));
            rows.extend(training_rows(&make, &label, None));
        }
        rows.extend(ensemble_rows(&make, &label, false));
        rows.extend(ensemble_rows(&make, &label, true));
    }

    if !opts.cpu_only {
        match GpuBackend::new() {
            Ok(mut gpu) => {
                // A software adapter (lavapipe, WARP, …) runs shaders on the
                // CPU; 4096³ would take minutes there and measure nothing new.
                let software = gpu.context().info.device_type == wgpu::DeviceType::Cpu;
                let big_skip = software.then_some("skipped on a software adapter");
                if !opts.members {
                    rows.extend(bench_backend(&mut gpu, &opts, big_skip));
                }
                let label = gpu.describe();
                drop(gpu);
                // The large step is ~16 GFLOP: seconds per step on a software adapter.
                let skip_large = (software && !opts.full)
                    .then_some("skipped on a software adapter (pass --full)");
                let make = || Ok(Box::new(GpuBackend::new()?) as Box<dyn Backend>);
                if !opts.members {
                    rows.extend(training_rows(&make, &label, skip_large));
                }
                rows.extend(ensemble_rows(&make, &label, false));
            }
            Err(e) => println!("gpu: skipped (no adapter: {e})"),
        }
    }

    print_table(&rows);
}

// ---------------------------------------------------------------------------
// Workload: whole training steps
// ---------------------------------------------------------------------------

/// A training workload: a hard-sharing model and its batch size.
struct TrainWorkload {
    name: &'static str,
    size: &'static str,
    inputs: usize,
    trunk: Vec<usize>,
    tasks: usize,
    head: Vec<usize>,
    batch: usize,
    /// Steps per epoch (the dataset holds batch · steps rows).
    steps: usize,
}

fn seed_workload() -> TrainWorkload {
    TrainWorkload {
        name: "train step (seed)",
        size: "I=100 [64] 2 tasks B=32",
        inputs: 100,
        trunk: vec![64],
        tasks: 2,
        head: vec![],
        batch: 32,
        steps: 128,
    }
}

fn large_workload() -> TrainWorkload {
    TrainWorkload {
        name: "train step (large)",
        size: "I=512 [1024,1024] 4x[256] B=1024",
        inputs: 512,
        trunk: vec![1024, 1024],
        tasks: 4,
        head: vec![256],
        batch: 1024,
        steps: 2,
    }
}

/// Times whole epochs of `w` on a fresh trainer; reports per-step time,
/// steps/s, GFLOP/s of the step's matrix products, and per step: submits,
/// dispatches and bytes read back (the loss log, read once per epoch).
fn training_row(backend: Box<dyn Backend>, w: &TrainWorkload) -> tandem::Result<Row> {
    use tandem::train::Trainer;
    let (model, data, cfg) = training_setup(w);
    let mut trainer = Trainer::new(backend, &model, &data, &cfg)?;
    let desc = trainer.backend().describe();
    trainer.train_epoch(&mut |_, _| {})?; // warm-up: pipelines, first touch
    let before = trainer.backend().counters();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < MIN_ITERS || start.elapsed() < MIN_TOTAL {
        let t = Instant::now();
        trainer.train_epoch(&mut |_, _| {})?;
        times.push(t.elapsed() / w.steps as u32);
    }
    let after = trainer.backend().counters();
    times.sort();
    let per_step = times[times.len() / 2];
    let steps = (times.len() * w.steps) as f64;
    let per = |a: u64, b: u64| (a - b) as f64 / steps;
    Ok(Row {
        backend: desc,
        workload: w.name.into(),
        size: w.size.into(),
        time: Some(per_step),
        per: "step",
        gflops: Some(trainer.flops_per_step() as f64 / per_step.as_secs_f64() / 1e9),
        notes: format!(
            "{:.0} steps/s; per step: {:.3} submits, {:.0} dispatches, {:.1} B read back",
            1.0 / per_step.as_secs_f64(),
            per(after.submits, before.submits),
            per(after.dispatches, before.dispatches),
            per(after.bytes_read, before.bytes_read),
        ),
    })
}

/// The model, rows (batch · steps) and one-epoch config of workload `w`.
fn training_setup(w: &TrainWorkload) -> (tandem::Model, tandem::Dataset, tandem::TrainConfig) {
    use tandem::io::{AdamStyle, OptimizerConfig, OptimizerKind, TrainConfig, Weighting};
    use tandem::{Dataset, Model, ModelSpec, TaskKind, TaskSpec};
    let rows = w.batch * w.steps;
    let spec = ModelSpec {
        inputs: w.inputs,
        architecture: tandem::model::Architecture::Shared {
            trunk: w.trunk.clone(),
        },
        activation: tandem::model::Activation::Relu,
        tasks: (0..w.tasks)
            .map(|j| TaskSpec {
                name: format!("t{j}"),
                kind: TaskKind::Binary,
                weight: 1.0 / w.tasks as f32,
                head: w.head.clone(),
                outputs: 1,
            })
            .collect(),
        ..Default::default()
    };
    let features = fill(rows * w.inputs, 7);
    let targets = (0..w.tasks)
        .map(|j| {
            fill(rows, 11 + j as u32)
                .iter()
                .map(|v| (*v > 0.0) as u8 as f32)
                .collect()
        })
        .collect();
    let data = Dataset {
        rows,
        inputs: w.inputs,
        features,
        targets,
        feature_names: vec![],
    };
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: w.batch,
        shuffle: true,
        seed: 0,
        weighting: Weighting::Fixed,
        gradnorm_alpha: None,
        early_stopping: None,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            style: AdamStyle::Keras,
            momentum: 0.0,
        },
    };
    (Model::new(spec, 0), data, cfg)
}

/// The training rows on fresh backends made by `make`; `skip_large` says why
/// the large workload does not run (None: it runs).
fn training_rows(
    make: &dyn Fn() -> tandem::Result<Box<dyn Backend>>,
    label: &str,
    skip_large: Option<&str>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (w, skip) in [(seed_workload(), None), (large_workload(), skip_large)] {
        if let Some(why) = skip {
            rows.push(Row::skipped(label, w.name, w.size, why.to_string()));
            continue;
        }
        rows.push(match make().and_then(|b| training_row(b, &w)) {
            Ok(r) => r,
            Err(e) => Row::skipped(label, w.name, w.size, format!("failed: {e}")),
        });
    }
    rows
}

// ---------------------------------------------------------------------------
// Workload: 8 members of the seed architecture, fused vs one after another
// ---------------------------------------------------------------------------

const MEMBERS: usize = 8;

fn seed_tasks() -> Vec<tandem::TaskSpec> {
    (0..2)
        .map(|j| tandem::TaskSpec {
            name: format!("t{j}"),
            kind: tandem::TaskKind::Binary,
            weight: 0.5,
            head: vec![],
            outputs: 1,
        })
        .collect()
}

fn seed_data(rows: usize) -> tandem::Dataset {
    tandem::Dataset {
        rows,
        inputs: 100,
        features: fill(rows * 100, 3),
        targets: (0..2)
            .map(|j| {
                fill(rows, 5 + j)
                    .iter()
                    .map(|v| (*v > 0.0) as u8 as f32)
                    .collect()
            })
            .collect(),
        feature_names: vec![],
    }
}

fn seed_config() -> tandem::TrainConfig {
    // One epoch at Keras's fit defaults: batch 32, shuffled, Adam at 0.001.
    tandem::TrainConfig {
        epochs: 1,
        ..Default::default()
    }
}

/// Median seconds per epoch of each group of trainers (each trainer of a
/// group trained one epoch in turn). The groups take turns epoch by epoch, so
/// a change in the machine's load (other processes, a busy core) reaches
/// both alike and their ratio stays fair.
fn epoch_times(groups: &mut [Vec<tandem::train::Trainer>; 2]) -> tandem::Result<[f64; 2]> {
    for t in groups.iter_mut().flatten() {
        t.train_epoch(&mut |_, _| {})?; // warm-up
    }
    let mut times = [Vec::new(), Vec::new()];
    let start = Instant::now();
    while times[0].len() < MIN_ITERS || start.elapsed() < 2 * MIN_TOTAL {
        for (group, times) in groups.iter_mut().zip(times.iter_mut()) {
            let t0 = Instant::now();
            for t in group.iter_mut() {
                t.train_epoch(&mut |_, _| {})?;
            }
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    }))
}

/// Samples/s training 8 seed-architecture members fused in one ensemble
/// (combine = concat: each member trains against the targets on its own),
/// and the same 8 as separate models trained one after another.
fn ensemble_speeds(
    make: &dyn Fn() -> tandem::Result<Box<dyn Backend>>,
) -> tandem::Result<(f64, f64)> {
    use tandem::model::{Activation, Combine, EnsembleSpec, MemberSpec};
    use tandem::train::Trainer;
    use tandem::{Model, ModelSpec};
    let steps = 64;
    let data = seed_data(32 * steps);
    let cfg = seed_config();
    let fused_spec = ModelSpec {
        inputs: 100,
        tasks: seed_tasks(),
        architecture: tandem::model::Architecture::Ensemble(EnsembleSpec {
            bagging: false,
            combine: Combine::Concat,
            members: (0..MEMBERS)
                .map(|k| MemberSpec {
                    name: format!("m{k}"),
                    trunk: vec![64],
                    activation: Activation::Relu,
                    trainable: true,
                    weights: None,
                })
                .collect(),
        }),
        ..Default::default()
    };
    let fused = vec![Trainer::new(
        make()?,
        &Model::new(fused_spec, 0),
        &data,
        &cfg,
    )?];
    let single = ModelSpec {
        inputs: 100,
        architecture: tandem::model::Architecture::Shared { trunk: vec![64] },
        activation: Activation::Relu,
        tasks: seed_tasks(),
        ..Default::default()
    };
    let mut seq = Vec::new();
    for k in 0..MEMBERS {
        seq.push(Trainer::new(
            make()?,
            &Model::new(single.clone(), k as u64),
            &data,
            &cfg,
        )?);
    }
    let [fused_s, seq_s] = epoch_times(&mut [fused, seq])?;
    Ok((data.rows as f64 / fused_s, data.rows as f64 / seq_s))
}

/// The fused and one-by-one rows of `ensemble_speeds`; with `busy`, measured
/// while another process keeps one core busy (see `BusyCore`).
fn ensemble_rows(
    make: &dyn Fn() -> tandem::Result<Box<dyn Backend>>,
    label: &str,
    busy: bool,
) -> Vec<Row> {
    let size = format!("{MEMBERS} x (I=100 [64] 2 tasks) B=32");
    let (fused_name, seq_name) = if busy {
        (
            "8 members fused, 1 core busy",
            "8 members one by one, 1 core busy",
        )
    } else {
        ("8 members fused", "8 members one by one")
    };
    let team = tandem::cpu::team::Team::global();
    let stood_down = team.stood_down();
    let speeds = if busy {
        match BusyCore::start() {
            Ok(_busy) => ensemble_speeds(make),
            Err(e) => {
                let why = format!("failed to start the busy process: {e}");
                return vec![Row::skipped(label, fused_name, &size, why)];
            }
        }
    } else {
        ensemble_speeds(make)
    };
    let stood_down = team.stood_down() - stood_down;
    match speeds {
        Ok((fused, seq)) => vec![
            Row {
                backend: label.into(),
                workload: fused_name.into(),
                size: size.clone(),
                time: Some(Duration::from_secs_f64(32.0 / fused)),
                per: "step",
                gflops: None,
                notes: format!(
                    "{fused:.0} samples/s (each sample trains all 8); CPU team stood down {stood_down}x"
                ),
            },
            Row {
                backend: label.into(),
                workload: seq_name.into(),
                size: size.clone(),
                time: Some(Duration::from_secs_f64(32.0 / seq)),
                per: "step",
                gflops: None,
                notes: format!("{seq:.0} samples/s; fused/sequential = {:.2}x", fused / seq),
            },
        ],
        Err(e) => vec![Row::skipped(
            label,
            fused_name,
            &size,
            format!("failed: {e}"),
        )],
    }
}

/// The argument that makes this program the busy process of `BusyCore`.
const BUSY_CHILD: &str = "--busy-child";

/// The most a busy process lives, whatever happens to the benchmark.
const BUSY_LIMIT: Duration = Duration::from_secs(120);

/// Another process that keeps one core busy while this value lives: a copy
/// of this program spinning in `busy_child`. Dropping it kills the child; the
/// child also ends by itself when its stdin closes (this process ended, however
/// it ended) and after `BUSY_LIMIT` at the latest.
struct BusyCore(std::process::Child);

impl BusyCore {
    fn start() -> std::io::Result<BusyCore> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg(BUSY_CHILD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        // Let it start spinning before anything is timed.
        std::thread::sleep(Duration::from_millis(100));
        Ok(BusyCore(child))
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The busy process: one thread spinning on arithmetic until its parent's end
/// of stdin closes or `BUSY_LIMIT` has passed.
fn busy_child() -> ! {
    std::thread::spawn(|| {
        use std::io::Read;
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    let end = Instant::now() + BUSY_LIMIT;
    let mut x = 1u64;
    while Instant::now() < end {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    std::process::exit(0)
}
