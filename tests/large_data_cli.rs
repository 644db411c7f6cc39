//! `tandem train` with `[data] stream`: without shuffling, a streamed run
//! (shards forced small with `shard_rows`) writes the same `--log` and
//! `--out` bytes as a resident run, on the CPU and on the GPU; the run says
//! which way it held the rows; a streamed validation split reports the same
//! metrics.

mod common;

use common::cli::{s, scratch, tandem};
use std::path::Path;

/// 1,000 rows × 5 features, a binary and a regression task (10% missing).
fn write_data(dir: &Path) {
    let rows = 1000;
    let x = common::random(3, rows * 5, -1.0, 1.0);
    let mut click = Vec::new();
    let mut value = Vec::new();
    for r in 0..rows {
        let v = &x[r * 5..r * 5 + 5];
        click.push(f32::from(u8::from(v[0] + v[1] > 0.0)));
        value.push(if r % 10 == 3 { f32::NAN } else { v[2] - 0.5 * v[3] });
    }
    tandem::io::npy::write_f32(dir.join("x.npy"), &[rows, 5], &x).unwrap();
    tandem::io::npy::write_f32(dir.join("click.npy"), &[rows, 1], &click).unwrap();
    tandem::io::npy::write_f32(dir.join("value.npy"), &[rows, 1], &value).unwrap();
}

fn config(stream: &str) -> String {
    format!(
        r#"[model]
trunk = [8]
activation = "relu"

[[tasks]]
name = "click"
kind = "binary"

[[tasks]]
name = "value"
kind = "regression"

[train]
epochs = 2
batch_size = 32
shuffle = false

[data]
features = "x.npy"
validation = 0.2
{stream}

[data.targets]
click = "click.npy"
value = "value.npy"
"#
    )
}

/// Trains `name.toml` on `backend`; returns (stderr, log bytes, model bytes).
fn train(dir: &Path, name: &str, stream: &str, backend: &str) -> (String, Vec<u8>, Vec<u8>) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config(stream)).unwrap();
    let (log, out) = (dir.join(format!("{name}.csv")), dir.join(format!("{name}.st")));
    let o = tandem(&[
        "train",
        s(&cfg),
        "--backend",
        backend,
        "--log",
        s(&log),
        "--out",
        s(&out),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{name} on {backend}:\n{err}");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    (
        err + &stdout,
        std::fs::read(log).unwrap(),
        std::fs::read(out).unwrap(),
    )
}

#[test]
fn streamed_and_resident_runs_write_the_same_bytes() {
    let dir = scratch("large-cli", "same");
    write_data(&dir);
    let mut backends = vec!["cpu"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let (said, log, out) = train(&dir, "resident", "stream = false", backend);
        assert!(said.contains("rows resident"), "{said}");
        // 800 training rows in shards of 96 (3 batches): the last shard is short.
        let streamed = "stream = true\nshard_rows = 100";
        let (said_s, log_s, out_s) = train(&dir, "streamed", streamed, backend);
        assert!(said_s.contains("streamed in shards of 96 rows"), "{said_s}");
        assert!(log == log_s, "{backend}: the --log files differ");
        assert!(out == out_s, "{backend}: the --out files differ");
        // The validation metrics printed per epoch are the same too.
        let metrics = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.trim_start().starts_with(char::is_numeric))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(metrics(&said), metrics(&said_s), "{backend}");
        // A budget smaller than the data streams it on its own ("auto").
        let (said_a, log_a, _) = train(&dir, "auto", "memory_budget = \"16KiB\"", backend);
        assert!(said_a.contains("streamed in shards of"), "{said_a}");
        assert!(said_a.contains("> memory_budget"), "{said_a}");
        assert!(log == log_a, "{backend}: auto-streamed --log differs");
    }
    std::fs::remove_dir_all(&dir).ok();
}
