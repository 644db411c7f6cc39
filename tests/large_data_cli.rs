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
        value.push(if r % 10 == 3 {
            f32::NAN
        } else {
            v[2] - 0.5 * v[3]
        });
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
    let (log, out) = (
        dir.join(format!("{name}.csv")),
        dir.join(format!("{name}.st")),
    );
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

#[test]
fn predict_reads_and_writes_a_block_at_a_time() {
    let dir = scratch("large-cli", "predict");
    write_data(&dir);
    let (_, _, _) = train(&dir, "model", "stream = false", "cpu");
    let model_path = dir.join("model.st");
    // 140,000 rows: three blocks of 65,536 rows, the last one short.
    let rows = 140_000;
    let x = common::random(9, rows * 5, -1.0, 1.0);
    let features = dir.join("big.npy");
    tandem::io::npy::write_f32(&features, &[rows, 5], &x).unwrap();
    let (as_npy, as_csv) = (dir.join("p.npy"), dir.join("p.csv"));
    for out in [&as_npy, &as_csv] {
        let args = ["predict", s(&model_path), "--features", s(&features)];
        let o = tandem(&[&args[..], &["--out", s(out), "--backend", "cpu"]].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The same values as one prediction of every row in memory.
    let model = tandem::Model::load(&model_path).unwrap();
    let mut b = tandem::open_backend(tandem::BackendChoice::Cpu).unwrap();
    let p = tandem::predict(&model, &x, rows, b.as_mut()).unwrap();
    let (shape, got) = tandem::io::npy::read_f32(&as_npy).unwrap();
    assert_eq!(shape, vec![rows, 2]);
    for r in [0, 1, 65_535, 65_536, 131_072, rows - 1] {
        for (j, t) in p.tasks.iter().enumerate() {
            assert_eq!(
                got[r * 2 + j].to_bits(),
                t.values[r].to_bits(),
                "row {r} task {j}"
            );
        }
    }
    let text = std::fs::read_to_string(&as_csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "click,value");
    assert_eq!(lines.len(), rows + 1);
    let last: Vec<f32> = lines[rows].split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(last, vec![got[(rows - 1) * 2], got[(rows - 1) * 2 + 1]]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn streamed_tables_train_as_resident_tables() {
    // The penguins table as CSV and as Parquet, read in blocks and streamed in
    // shards of 3 batches, against the table loaded whole.
    let dir = scratch("large-cli", "tables");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins");
    for file in ["penguins.csv", "penguins.parquet"] {
        std::fs::copy(here.join(file), dir.join(file)).unwrap();
    }
    let base = std::fs::read_to_string(here.join("parquet.toml"))
        .unwrap()
        .replace("epochs = 100", "epochs = 3")
        .replace("shuffle = true", "shuffle = false");
    for table in ["penguins.csv", "penguins.parquet"] {
        let mut logs = Vec::new();
        for (name, keys) in [
            ("whole", "stream = false"),
            ("blocks", "stream = true\nshard_rows = 48"),
        ] {
            let cfg = base.replace(
                "path = \"penguins.parquet\"",
                &format!("path = \"{table}\"\n{keys}"),
            );
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, cfg).unwrap();
            let log = dir.join(format!("{name}.csv"));
            let o = tandem(&[
                "train",
                s(&path),
                "--backend",
                "cpu",
                "--log",
                s(&log),
                "--quiet",
            ]);
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(o.status.success(), "{table} {name}:\n{err}");
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            logs.push((std::fs::read(&log).unwrap(), out, err));
        }
        assert!(
            logs[1].2.contains("streamed in shards of 48 rows"),
            "{}",
            logs[1].2
        );
        assert!(logs[0].0 == logs[1].0, "{table}: the --log files differ");
        assert_eq!(logs[0].1, logs[1].1, "{table}: the printed metrics differ");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn predict_reads_a_table_a_block_at_a_time() {
    // 70,000 penguins rows (the file repeated): two blocks of 65,536 rows.
    let dir = scratch("large-cli", "table-predict");
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins");
    let csv = std::fs::read_to_string(here.join("penguins.csv")).unwrap();
    let (header, body) = csv.split_once('\n').unwrap();
    let body: Vec<&str> = body.lines().filter(|l| !l.contains("NA")).collect();
    let mut big = format!("{header}\n");
    for i in 0..70_000 {
        big.push_str(body[i % body.len()]);
        big.push('\n');
    }
    std::fs::write(dir.join("big.csv"), big).unwrap();
    std::fs::copy(here.join("penguins.csv"), dir.join("penguins.csv")).unwrap();
    let cfg = std::fs::read_to_string(here.join("penguins.toml"))
        .unwrap()
        .replace("epochs = 100", "epochs = 2");
    std::fs::write(dir.join("run.toml"), cfg).unwrap();
    let model = dir.join("m.st");
    let o = tandem(&[
        "train",
        s(&dir.join("run.toml")),
        "--backend",
        "cpu",
        "--out",
        s(&model),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (out, big) = (dir.join("p.npy"), dir.join("big.csv"));
    let args = [
        "predict",
        s(&model),
        "--features",
        s(&big),
        "--out",
        s(&out),
    ];
    let o = tandem(&[&args[..], &["--backend", "cpu"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same values as the whole table encoded and predicted in memory.
    let m = tandem::Model::load(&model).unwrap();
    let f = m
        .preprocess
        .as_ref()
        .unwrap()
        .apply_features(dir.join("big.csv"))
        .unwrap();
    let mut b = tandem::open_backend(tandem::BackendChoice::Cpu).unwrap();
    let p = tandem::predict(&m, &f.data, f.rows, b.as_mut()).unwrap();
    let (shape, got) = tandem::io::npy::read_f32(&out).unwrap();
    assert_eq!(shape[0], 70_000);
    let width = shape[1];
    for r in [0, 65_535, 65_536, 69_999] {
        let species = &p.tasks[0].values[r * 3..r * 3 + 3];
        assert_eq!(&got[r * width..r * width + 3], species, "row {r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
