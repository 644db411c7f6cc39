//! Checkpoints and resume through the `tandem` binary: `--checkpoint`,
//! `--resume` and `--log` across a resume give the uninterrupted run's files
//! byte for byte; SIGTERM mid-epoch exits 130 with a checkpoint; SIGKILL at a
//! random moment leaves the last checkpoint whole; bad checkpoints and
//! changed configs are errors naming the file and the key.

mod common;

use common::cli::{fails, s, tandem, tandem_cmd};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use tandem::io::npy;

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("resume-cli", name)
}

/// 3000 rows at batch 4: 750 steps (24 submissions) per epoch.
const ROWS: usize = 3000;

fn ok(args: &[&str]) -> Output {
    let o = tandem(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "tandem {args:?} failed:\n{err}");
    o
}

const CONFIG: &str = r#"[model]
inputs = 6
trunk = [16, 8]
activation = "relu"

[[tasks]]
name = "b"
kind = "binary"

[[tasks]]
name = "c"
kind = "multiclass"
outputs = 3

[train]
epochs = EPOCHS
batch_size = 4
shuffle = true
seed = 3

[train.early_stopping]
patience = 5

[train.optimizer]
kind = "adam"
lr = 0.01

[data]
features = "x.npy"
validation = 0.1

[data.targets]
b = "y_b.npy"
c = "y_c.npy"
"#;

/// Writes the data and `config-{epochs}.toml` for each of `epochs` into `dir`.
fn case(dir: &Path, epochs: &[usize]) -> Vec<PathBuf> {
    let x = common::random(1, ROWS * 6, -1.0, 1.0);
    let noise = common::random(2, ROWS, -0.5, 0.5);
    let rows = x.chunks_exact(6).zip(&noise);
    let b: Vec<f32> = rows
        .clone()
        .map(|(r, n)| (r[0] + r[1] + n > 0.0) as u8 as f32)
        .collect();
    let c: Vec<f32> = rows
        .map(|(r, n)| ((r[2] + n > 0.0) as u8 + (r[3] > 0.5) as u8) as f32)
        .collect();
    npy::write_f32(dir.join("x.npy"), &[ROWS, 6], &x).unwrap();
    npy::write_f32(dir.join("y_b.npy"), &[ROWS, 1], &b).unwrap();
    npy::write_f32(dir.join("y_c.npy"), &[ROWS, 1], &c).unwrap();
    epochs
        .iter()
        .map(|e| {
            let p = dir.join(format!("config-{e}.toml"));
            std::fs::write(&p, CONFIG.replace("EPOCHS", &e.to_string())).unwrap();
            p
        })
        .collect()
}

fn backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if common::gpu().is_some() {
        b.push("gpu");
    }
    b
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// No hidden temporary file is left in `dir`.
fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tandem-"), "left behind: {name}");
    }
}

/// The uninterrupted run: 3 epochs with a checkpoint each epoch.
fn full_run(dir: &Path, config: &Path, backend: &str) -> (Vec<u8>, Vec<u8>) {
    let (out, log, ck) = (
        dir.join("full.st"),
        dir.join("full.csv"),
        dir.join("full.ckpt"),
    );
    ok(&[
        "train",
        s(config),
        "--backend",
        backend,
        "--quiet",
        "--out",
        s(&out),
        "--log",
        s(&log),
        "--checkpoint",
        s(&ck),
    ]);
    (read(&out), read(&log))
}

#[test]
fn resume_through_the_cli_gives_the_same_files() {
    for backend in backends() {
        let dir = scratch(&format!("same-{backend}"));
        let cfgs = case(&dir, &[1, 3]);
        let (model, log) = full_run(&dir, &cfgs[1], backend);
        let (out, split_log, ck) = (
            dir.join("split.st"),
            dir.join("split.csv"),
            dir.join("s.ckpt"),
        );
        ok(&[
            "train",
            s(&cfgs[0]),
            "--backend",
            backend,
            "--quiet",
            "--log",
            s(&split_log),
            "--checkpoint",
            s(&ck),
        ]);
        ok(&[
            "train",
            s(&cfgs[1]),
            "--backend",
            backend,
            "--quiet",
            "--resume",
            s(&ck),
            "--checkpoint",
            s(&ck),
            "--out",
            s(&out),
            "--log",
            s(&split_log),
        ]);
        assert!(read(&split_log) == log, "{backend}: the logs differ");
        assert!(read(&out) == model, "{backend}: the model files differ");
        // A checkpoint is a model file too: `eval` and `--init` read its weights.
        ok(&["eval", s(&ck), "--data", s(&cfgs[1]), "--backend", "cpu"]);
        no_temp_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Waits until `path` exists (the first checkpoint), at most a minute.
fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn(args: &[&str]) -> Child {
    tandem_cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_mid_epoch_exits_130_with_a_checkpoint_that_resumes_exactly() {
    for backend in backends() {
        let dir = scratch(&format!("term-{backend}"));
        let cfgs = case(&dir, &[3]);
        let (model, log) = full_run(&dir, &cfgs[0], backend);
        let (out, cut_log, ck) = (dir.join("cut.st"), dir.join("cut.csv"), dir.join("c.ckpt"));
        let mut child = spawn(&[
            "train",
            s(&cfgs[0]),
            "--backend",
            backend,
            "--quiet",
            "--log",
            s(&cut_log),
            "--checkpoint",
            s(&ck),
            "--out",
            s(&out),
        ]);
        wait_for(&ck, &mut child);
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(130), "{backend}: {err}");
        assert!(
            err.contains("--resume"),
            "{backend}: no resume command in\n{err}"
        );
        assert!(!out.exists(), "{backend}: an interrupted run saved --out");
        // Stopped inside an epoch: the log ends between epoch boundaries.
        let rows = std::str::from_utf8(&read(&cut_log))
            .unwrap()
            .lines()
            .count()
            - 1;
        let steps = ROWS * 9 / 10 / 4;
        println!("{backend}: stopped after step {rows} ({steps} per epoch)");
        assert!(
            !rows.is_multiple_of(steps),
            "{backend}: stopped at an epoch boundary, not mid-epoch"
        );
        // The printed command resumes it.
        let cmd = err.lines().last().unwrap().trim();
        let args: Vec<&str> = cmd.split(' ').skip(1).collect();
        let mut args = args.to_vec();
        args.extend(["--backend", backend, "--quiet"]);
        ok(&args);
        assert!(read(&cut_log) == log, "{backend}: the logs differ");
        assert!(read(&out) == model, "{backend}: the model files differ");
        no_temp_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn sigkill_at_a_random_moment_then_resume_gives_the_same_model() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for backend in backends() {
        let dir = scratch(&format!("kill-{backend}"));
        // Long enough on the CPU to be killed mid-run; lavapipe is slower.
        let cfgs = case(&dir, &[if backend == "cpu" { 12 } else { 5 }]);
        let start = Instant::now();
        let (model, _) = full_run(&dir, &cfgs[0], backend);
        let whole = start.elapsed();
        let (out, ck) = (dir.join("k.st"), dir.join("k.ckpt"));
        let args = [
            "train",
            s(&cfgs[0]),
            "--backend",
            backend,
            "--quiet",
            "--checkpoint",
            s(&ck),
        ];
        let start = Instant::now();
        let mut child = spawn(&args);
        wait_for(&ck, &mut child);
        // A moment between the first checkpoint and about 3/4 of the run.
        let left = (whole * 3 / 4).saturating_sub(start.elapsed());
        let delay = left.mul_f64((nanos % 1000) as f64 / 1000.0);
        std::thread::sleep(delay);
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        println!(
            "{backend}: SIGKILL {:?} into a run of {whole:?} (still running: {running})",
            start.elapsed()
        );
        ok(&[
            "train",
            s(&cfgs[0]),
            "--backend",
            backend,
            "--quiet",
            "--resume",
            s(&ck),
            "--checkpoint",
            s(&ck),
            "--out",
            s(&out),
        ]);
        assert!(read(&out) == model, "{backend}: the model files differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn bad_checkpoints_and_changed_configs_are_named() {
    let dir = scratch("bad");
    let cfgs = case(&dir, &[1, 2]);
    let ck = dir.join("good.ckpt");
    let model = dir.join("model.st");
    ok(&[
        "train",
        s(&cfgs[0]),
        "--backend",
        "cpu",
        "--quiet",
        "--checkpoint",
        s(&ck),
        "--out",
        s(&model),
    ]);
    let good = read(&ck);
    let resume = |ckpt: &Path, config: &Path| {
        fails(&[
            "train",
            s(config),
            "--backend",
            "cpu",
            "--quiet",
            "--resume",
            s(ckpt),
        ])
    };
    let with = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // A flipped bit in the tensor data: the checksum.
    let mut bad = good.clone();
    let at = bad.len() - 9;
    bad[at] ^= 0x10;
    let e = resume(&with("flipped.ckpt", &bad), &cfgs[1]);
    assert!(e.contains("flipped.ckpt") && e.contains("corrupted"), "{e}");
    // Truncated.
    let e = resume(&with("short.ckpt", &good[..good.len() / 2]), &cfgs[1]);
    assert!(e.contains("short.ckpt"), "{e}");
    // A model file is not a checkpoint.
    let e = resume(&model, &cfgs[1]);
    assert!(
        e.contains("model.st") && e.contains("not a checkpoint"),
        "{e}"
    );
    // Another architecture.
    let other = dir.join("other.toml");
    let text = std::fs::read_to_string(&cfgs[1]).unwrap();
    std::fs::write(&other, text.replace("trunk = [16, 8]", "trunk = [16, 9]")).unwrap();
    let e = resume(&ck, &other);
    assert!(
        e.contains("good.ckpt") && e.contains("model.architecture"),
        "{e}"
    );
    // Another optimizer.
    std::fs::write(&other, text.replace("kind = \"adam\"", "kind = \"sgd\"")).unwrap();
    let e = resume(&ck, &other);
    assert!(e.contains("`train.optimizer.kind`"), "{e}");
    std::fs::write(&other, text.replace("lr = 0.01", "lr = 0.02")).unwrap();
    let e = resume(&ck, &other);
    assert!(e.contains("`train.optimizer.lr`"), "{e}");
    // Patience may change.
    std::fs::write(&other, text.replace("patience = 5", "patience = 7")).unwrap();
    ok(&[
        "train",
        s(&other),
        "--backend",
        "cpu",
        "--quiet",
        "--resume",
        s(&ck),
    ]);
    // --init with --resume is a usage error.
    let e = fails(&[
        "train",
        s(&cfgs[1]),
        "--init",
        s(&model),
        "--resume",
        s(&ck),
    ]);
    assert!(e.contains("--init") && e.contains("--resume"), "{e}");
    // None of this touched the checkpoint.
    assert!(read(&ck) == good);
    no_temp_files(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_signal_exits_at_once_and_the_last_checkpoint_still_resumes() {
    let dir = scratch("twice");
    let cfgs = case(&dir, &[3]);
    let (model, _) = full_run(&dir, &cfgs[0], "cpu");
    let (out, ck) = (dir.join("t.st"), dir.join("t.ckpt"));
    let args = [
        "train",
        s(&cfgs[0]),
        "--backend",
        "cpu",
        "--quiet",
        "--checkpoint",
        s(&ck),
    ];
    let mut child = spawn(&args);
    wait_for(&ck, &mut child);
    for _ in 0..2 {
        // SAFETY: signals to our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    ok(&[
        "train",
        s(&cfgs[0]),
        "--backend",
        "cpu",
        "--quiet",
        "--resume",
        s(&ck),
        "--checkpoint",
        s(&ck),
        "--out",
        s(&out),
    ]);
    assert!(read(&out) == model, "the model files differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_says_init_is_weights_only_and_shows_the_long_run_flags() {
    let o = ok(&["train", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    for want in [
        "weights only",
        "--checkpoint",
        "--checkpoint-every",
        "--resume",
    ] {
        assert!(help.contains(want), "`{want}` missing from\n{help}");
    }
}
