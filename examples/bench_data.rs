//! Large-data benchmark: rows per second and peak memory of one training
//! epoch on a synthetic npy dataset of N rows × 100 f32 features and two
//! binary tasks (trunk [64], batch 1024), resident and streamed, on the CPU
//! and the GPU; optionally 20M rows (8 GB) streamed on the CPU under a
//! 2 GiB budget.
//!
//!   cargo run --release --example bench_data -- [--rows N] [--big] [--cpu-only] [--dir D]
//!
//! Each measurement runs in a child process (this binary again), so its peak
//! resident set (`ru_maxrss` from `wait4`) is its own. The data files are
//! written once into `--dir` (default: the system's temporary folder) and
//! reused. Compare ratios from one run: machines here are shared.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const INPUTS: usize = 100;
const CHILD: &str = "--child";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        if let Err(e) = child(&args[2..]) {
            eprintln!("bench_data child: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let mut rows = 2_000_000usize;
    let (mut big, mut cpu_only) = (false, false);
    let mut dir = std::env::temp_dir().join("tandem-bench-data");
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows = it.next().and_then(|v| v.parse().ok()).unwrap_or(rows),
            "--big" => big = true,
            "--cpu-only" => cpu_only = true,
            "--dir" => dir = it.next().map(PathBuf::from).unwrap_or(dir),
            _ => {
                eprintln!("usage: bench_data [--rows N] [--big] [--cpu-only] [--dir D]");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(&dir).expect("create the data folder");
    let mut table = Vec::new();
    let small = dataset(&dir, rows).expect("write the dataset");
    let mut runs = vec![("cpu", "false", None), ("cpu", "true", Some("256MiB"))];
    if !cpu_only {
        runs.push(("gpu", "false", None));
        runs.push(("gpu", "true", Some("256MiB")));
    }
    for (backend, stream, budget) in runs {
        table.push(measure(&small, rows, backend, stream, budget));
    }
    if big {
        let n = 20_000_000;
        let large = dataset(&dir, n).expect("write the 20M-row dataset");
        table.push(measure(&large, n, "cpu", "auto", Some("2GiB")));
    }
    println!(
        "\n{:<12} {:<8} {:<9} {:>9} {:>12} {:>12}  how",
        "rows", "backend", "stream", "budget", "rows/s", "peak RSS"
    );
    for r in &table {
        println!("{r}");
    }
}

/// Writes (once) `x.npy` [n, 100] and two label files; returns the config folder.
fn dataset(dir: &Path, n: usize) -> std::io::Result<PathBuf> {
    let d = dir.join(format!("rows-{n}"));
    let done = d.join("done");
    if done.exists() {
        return Ok(d);
    }
    std::fs::create_dir_all(&d)?;
    eprintln!("writing {n} × {INPUTS} rows to {} …", d.display());
    let mut x = npy_writer(&d.join("x.npy"), n, INPUTS)?;
    let mut y1 = npy_writer(&d.join("y1.npy"), n, 1)?;
    let mut y2 = npy_writer(&d.join("y2.npy"), n, 1)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut row = vec![0f32; INPUTS];
    for _ in 0..n {
        for v in row.iter_mut() {
            // xorshift64*: cheap, seeded, uniform in [-1, 1).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let u = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
            *v = 2.0 * u - 1.0;
        }
        let a = row[0] + row[1] - row[2];
        let b = row[3] * row[4] + row[5];
        x.write_all(bytemuck::cast_slice(&row))?;
        y1.write_all(&f32::from(u8::from(a > 0.0)).to_le_bytes())?;
        y2.write_all(&f32::from(u8::from(b > 0.0)).to_le_bytes())?;
    }
    x.flush()?;
    y1.flush()?;
    y2.flush()?;
    std::fs::write(done, b"")?;
    Ok(d)
}

/// A C-order little-endian f32 `.npy` header for [rows, cols]; the caller writes the values.
fn npy_writer(path: &Path, rows: usize, cols: usize) -> std::io::Result<BufWriter<std::fs::File>> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut header = dict.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(&header)?;
    Ok(w)
}

/// Runs one epoch in a child process; returns the table row.
fn measure(dir: &Path, rows: usize, backend: &str, stream: &str, budget: Option<&str>) -> String {
    let config = dir.join(format!("{backend}-{stream}.toml"));
    let budget_line = budget.map_or(String::new(), |b| format!("memory_budget = \"{b}\"\n"));
    let text = format!(
        "[model]\ntrunk = [64]\nactivation = \"relu\"\n\n[[tasks]]\nname = \"a\"\nkind = \"binary\"\n\n\
         [[tasks]]\nname = \"b\"\nkind = \"binary\"\n\n[train]\nepochs = 1\nbatch_size = 1024\n\
         shuffle = false\n\n[data]\nfeatures = \"x.npy\"\nstream = {}\n{budget_line}\n\
         [data.targets]\na = \"y1.npy\"\nb = \"y2.npy\"\n",
        if stream == "auto" { "\"auto\"".to_string() } else { stream.to_string() }
    );
    std::fs::write(&config, text).expect("write the config");
    let exe = std::env::current_exe().expect("this binary");
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD).arg(&config).arg(backend);
    let (out, max_rss_kib) = run_measured(&mut cmd);
    let how = out.lines().last().unwrap_or("failed").to_string();
    let rate = how.split_whitespace().next().unwrap_or("-").to_string();
    format!(
        "{:<12} {:<8} {:<9} {:>9} {:>12} {:>9} MB  {}",
        rows,
        backend,
        stream,
        budget.unwrap_or("-"),
        rate,
        max_rss_kib / 1024,
        how.split_once(' ').map_or("", |x| x.1)
    )
}

/// Runs `cmd`, returns its standard output and its peak resident set in KiB.
// `wait4` below reaps the child (and gives its resource usage), which
// `Child::wait` would not.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (String, i64) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writing.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (reader.join().unwrap_or_default(), usage.ru_maxrss)
}

/// One training epoch of `config` on `backend`; prints "ROWS/S how".
fn child(args: &[String]) -> anyhow::Result<()> {
    let (config, backend) = (Path::new(&args[0]), args[1].as_str());
    let mut cfg = tandem::Config::load(config)?;
    let split = tandem::io::open_split(&mut cfg)?;
    let mut model = tandem::Model::from_spec(&cfg.model, cfg.train.seed)?;
    let b = tandem::open_backend(backend.parse()?)?;
    let decision = tandem::train::feed::decide(
        &cfg.data.plan,
        b.as_ref(),
        &model.spec,
        split.train.as_ref(),
        cfg.train.batch_size,
    )?;
    let rows = split.train.rows();
    let start = Instant::now();
    let h = tandem::train::fit_source(
        &mut model,
        split.train,
        split.valid,
        &cfg.train,
        &decision,
        b,
        Default::default(),
        &mut |_| {},
    )?;
    let secs = start.elapsed().as_secs_f64();
    let loss = h.epochs.last().map_or(f32::NAN, |e| e.loss);
    println!(
        "{:.0} {} on {}; loss {loss:.4}; {secs:.1} s",
        rows as f64 / secs,
        decision.why,
        h.backend
    );
    Ok(())
}
