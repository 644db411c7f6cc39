//! Data-parallel training over MPI through the `tandem` binary: `mpirun -n 2`
//! and `-n 3` (oversubscribed) train a multi-task model and an MMoE with
//! uncertainty weighting exactly as one process does with the same global
//! batch (every step's losses within 1e-5 relative, the final weights within
//! 1e-5, on the CPU backend; on the GPU within the CPU-vs-GPU tolerance);
//! GradNorm and DWA with early stopping decide as one process does;
//! rank 0 alone prints and writes; a rank whose data cannot be read stops the
//! whole job within 10 s with a message naming the rank and the file.
#![cfg(feature = "mpi")]

mod common;

use common::cli::{s, scratch, tandem_cmd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tandem::io::npy;

/// One job at a time: the ranks of concurrent jobs would share two cores.
static JOBS: Mutex<()> = Mutex::new(());

/// `mpirun -n P tandem ARGS` on this machine, as root too, with P above the
/// cores allowed; the ranks' CPU backends keep to one thread each.
fn mpirun(p: usize, args: &[&str]) -> Command {
    let tandem = tandem_cmd(args);
    let mut c = Command::new("mpirun");
    c.args(["-n", &p.to_string(), "--oversubscribe", "--bind-to", "none"])
        .arg(tandem.get_program())
        .args(args);
    for (k, v) in [
        ("XDG_RUNTIME_DIR", s(&std::env::temp_dir())),
        ("TANDEM_CPU_THREADS", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
        // Ranks waiting in a collective yield their core to the others.
        ("OMPI_MCA_mpi_yield_when_idle", "1"),
        // Containers often forbid the cross-memory attach of shared memory.
        ("OMPI_MCA_btl_vader_single_copy_mechanism", "none"),
    ] {
        c.env(k, v);
    }
    c
}

/// Runs `cmd` to the end; a failure prints its output.
fn ok(mut cmd: Command, what: &str) -> Output {
    let o = cmd.output().expect("the command runs");
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// 120 rows of `common::mixed_tasks` (a 3-class task, a 2-label binary task, a
/// regression task, some labels missing) as npy files in `dir`; `features`
/// names the feature file.
fn write_data(dir: &Path, features: &str) {
    let d = common::mixed_tasks(120);
    npy::write_f32(dir.join(features), &[d.rows, 7], &d.features).unwrap();
    for (name, t) in ["kind", "flags", "value"].iter().zip(&d.targets) {
        let width = t.len() / d.rows;
        npy::write_f32(dir.join(format!("{name}.npy")), &[d.rows, width], t).unwrap();
    }
}

/// A config over `write_data`'s files: `model` replaces the trunk, `train`
/// adds keys to [train]. 96 training rows at batch 20: 5 steps per epoch, the
/// last of 16 rows; 24 validation rows.
fn config(dir: &Path, model: &str, train: &str, features: &str) -> PathBuf {
    let text = format!(
        r#"[model]
{model}
activation = "tanh"

[[tasks]]
name = "kind"
kind = "multiclass"
outputs = 3
head = [6]

[[tasks]]
name = "flags"
kind = "binary"
outputs = 2

[[tasks]]
name = "value"
kind = "regression"
weight = 0.3

[train]
epochs = 4
batch_size = 20
shuffle = true
seed = 5
{train}

[train.optimizer]
kind = "adam"
lr = 0.01

[data]
features = "{features}"
validation = 0.2

[data.targets]
kind = "kind.npy"
flags = "flags.npy"
value = "value.npy"
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The rows of a `--log` file: step, epoch, loss, each task's loss.
fn read_log(path: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// The largest relative difference of the logged losses (steps and epochs equal).
fn log_difference(a: &[Vec<f64>], b: &[Vec<f64>], what: &str) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: step counts differ");
    let mut worst = 0.0f64;
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra[..2], rb[..2], "{what}: step or epoch differ");
        for (x, y) in ra[2..].iter().zip(&rb[2..]) {
            worst = worst.max((x - y).abs() / y.abs().max(1e-3));
        }
    }
    worst
}

/// The largest absolute difference of two model files' weights.
fn weight_difference(a: &Path, b: &Path) -> f32 {
    let (a, b) = (
        tandem::Model::load(a).unwrap(),
        tandem::Model::load(b).unwrap(),
    );
    assert_eq!(a.params.len(), b.params.len());
    (a.params.iter().zip(&b.params))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Trains `cfg` as one process and with each of `ranks` ranks on `backend`;
/// asserts the losses and weights agree within (`rtol`, `atol`) and that
/// rank 0 alone printed the metrics. Returns the worst differences seen.
fn same_as_one_process(
    dir: &Path,
    cfg: &Path,
    backend: &str,
    ranks: &[usize],
    (rtol, atol): (f64, f32),
) -> (f64, f32) {
    let _one = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    let run = |p: usize| -> (PathBuf, PathBuf, Output) {
        let (out, log) = (
            dir.join(format!("p{p}.safetensors")),
            dir.join(format!("p{p}.csv")),
        );
        let args = ["train", s(cfg), "--backend", backend, "--quiet"];
        let args = [&args[..], &["--out", s(&out), "--log", s(&log)]].concat();
        let o = match p {
            1 => {
                let mut c = tandem_cmd(&args);
                c.env("TANDEM_CPU_THREADS", "1");
                ok(c, "one process")
            }
            _ => ok(mpirun(p, &args), &format!("mpirun -n {p}")),
        };
        (out, log, o)
    };
    let (ref_out, ref_log, _) = run(1);
    let reference = read_log(&ref_log);
    let mut worst = (0.0f64, 0.0f32);
    for &p in ranks {
        let (out, log, o) = run(p);
        let what = format!("{} on {backend}, {p} ranks", cfg.display());
        let dl = log_difference(&read_log(&log), &reference, &what);
        let dw = weight_difference(&out, &ref_out);
        println!("{what}: losses within {dl:.1e} relative, weights within {dw:.1e}");
        assert!(dl <= rtol, "{what}: losses differ by {dl:.2e} relative");
        assert!(dw <= atol, "{what}: weights differ by {dw:.2e}");
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            stdout.matches("validation metrics after").count(),
            1,
            "{what}: rank 0 alone prints the metrics:\n{stdout}"
        );
        worst = (worst.0.max(dl), worst.1.max(dw));
    }
    worst
}

#[test]
fn two_and_three_ranks_train_a_multitask_model_as_one_process() {
    let dir = scratch("mpi", "multitask");
    write_data(&dir, "x.npy");
    let cfg = config(&dir, "trunk = [16]", "", "x.npy");
    same_as_one_process(&dir, &cfg, "cpu", &[2, 3], (1e-5, 1e-5));
}

#[test]
fn ranks_streaming_shards_train_as_one_process_streaming_them() {
    // 96 training rows in shards of 40 (2 global batches), shuffled: every
    // rank streams every shard and trains its part of each batch.
    let dir = scratch("mpi", "streamed");
    write_data(&dir, "x.npy");
    let streamed = "x.npy\"\nstream = true\nshard_rows = 40\n#";
    let cfg = config(&dir, "trunk = [16]", "", streamed);
    same_as_one_process(&dir, &cfg, "cpu", &[2], (1e-5, 1e-5));
}

#[test]
fn two_and_three_ranks_train_an_mmoe_with_uncertainty_weighting_as_one_process() {
    let dir = scratch("mpi", "mmoe-uw");
    write_data(&dir, "x.npy");
    let model = "experts = 3\nexpert = [8]";
    let cfg = config(&dir, model, "weighting = \"uncertainty\"", "x.npy");
    same_as_one_process(&dir, &cfg, "cpu", &[2, 3], (1e-5, 1e-5));
}

#[test]
fn gradnorm_and_dwa_with_early_stopping_decide_as_one_process() {
    let dir = scratch("mpi", "weightings");
    write_data(&dir, "x.npy");
    let stop = "epochs = 6\n[train.early_stopping]\npatience = 1\nmin_delta = 0.5";
    for (name, train) in [
        ("gradnorm", "weighting = \"gradnorm\""),
        ("dwa", "weighting = \"dwa\""),
    ] {
        let cfg = config(&dir, "trunk = [16]", train, "x.npy");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let text = text.replace("epochs = 4\n", "").replace(
            "\n[train.optimizer]",
            &format!("\n{stop}\n\n[train.optimizer]"),
        );
        std::fs::write(&cfg, text).unwrap();
        println!("weighting = {name}:");
        same_as_one_process(&dir, &cfg, "cpu", &[2], (1e-5, 1e-5));
        // Early stopping ended both runs at the same epoch, before the sixth.
        let last_epoch = read_log(&dir.join("p2.csv")).last().unwrap()[1];
        assert!(last_epoch < 5.0, "{name}: early stopping did not trigger");
    }
}

#[test]
fn gpu_ranks_train_as_one_process_within_the_parity_tolerance() {
    if common::gpu().is_none() {
        return;
    }
    let dir = scratch("mpi", "gpu");
    write_data(&dir, "x.npy");
    let model = "experts = 3\nexpert = [8]";
    let cfg = config(&dir, model, "weighting = \"uncertainty\"", "x.npy");
    same_as_one_process(&dir, &cfg, "gpu", &[2], (1e-4, 1e-4));
}

#[test]
fn a_rank_that_cannot_read_its_data_stops_the_job_within_10_s() {
    let dir = scratch("mpi", "bad-shard");
    // `{rank}` in a data path: each rank reads its own copy; rank 1's is missing.
    write_data(&dir, "x0.npy");
    let cfg = config(&dir, "trunk = [16]", "", "x{rank}.npy");
    let out = dir.join("model.safetensors");
    let _one = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let args = ["train", s(&cfg), "--backend", "cpu", "--out", s(&out)];
    let mut child = mpirun(2, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the job still runs after 10 s: a rank is waiting for the failed one");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the job succeeded:\n{err}");
    assert!(
        err.contains("error: rank 1 of 2:") && err.contains("x1.npy"),
        "the message names neither the rank nor the file:\n{err}"
    );
    assert!(!err.contains("panicked"), "a rank panicked:\n{err}");
    assert!(!out.exists(), "a model was written");
    println!("rank 1 failed; the job ended in {took:.1?} ({})", o.status);
}
