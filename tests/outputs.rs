//! Output handling through the real `tandem` binary: every destination is
//! checked before any work, with a message naming the path and the flag; a
//! failed command leaves every existing file byte-identical and no temporary
//! file behind; temporary files never take a user's file name; identical runs
//! write identical model files; a missing input's OS message appears once;
//! a model save that fails after training leaves an existing `--log` alone.
//! (The commit helper has its own unit tests in the binary's `output` module.)

mod common;

use common::cli::{fails, s, tandem};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("outputs", name)
}

fn succeeds(args: &[&str]) -> String {
    let o = tandem(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "tandem {args:?}:\n{err}");
    err
}

/// Every file under `dir` with its bytes (folders by their files).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files.extend(snapshot(&p));
        } else {
            files.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    files
}

/// Every file in `before` is still there, byte-identical, and none was added.
fn unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = snapshot(dir);
    for (p, bytes) in before {
        assert!(
            after.get(p) == Some(bytes),
            "{} changed or vanished",
            p.display()
        );
    }
    let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(added.is_empty(), "files left behind: {added:?}");
}

/// The message names the flag and the path, and training never started.
fn names(err: &str, flag: &str, path: &Path, what: &str) {
    assert!(
        err.contains(&format!("{flag} {}", path.display())) && err.contains(what),
        "expected `{flag} {}: … {what}`, got:\n{err}",
        path.display()
    );
    assert!(
        !err.contains("training "),
        "the check came after work:\n{err}"
    );
}

const CONFIG: &str = r#"[model]
trunk = [4]
activation = "relu"

[[tasks]]
name = "species"
kind = "multiclass"

[[tasks]]
name = "sex"
kind = "binary"

[train]
epochs = 2
batch_size = 32
seed = 3

[data]
path = "penguins.csv"
features = ["bill_length_mm", "flipper_length_mm", "island"]
validation = 0.2

[data.targets]
species = "species"
sex = "sex"
"#;

/// A small CSV job in `dir` (the penguins table, two tasks, two epochs);
/// returns its config.
fn job(dir: &Path) -> PathBuf {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.csv");
    std::fs::copy(csv, dir.join("penguins.csv")).unwrap();
    let cfg = dir.join("job.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    cfg
}

fn train(cfg: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["train", s(cfg), "--backend", "cpu", "--quiet"];
    args.extend_from_slice(extra);
    args.iter().map(|a| a.to_string()).collect()
}

fn fails_train(cfg: &Path, extra: &[&str]) -> String {
    let args = train(cfg, extra);
    fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn succeeds_train(cfg: &Path, extra: &[&str]) -> String {
    let args = train(cfg, extra);
    succeeds(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn out_or_log_that_is_a_directory_is_refused_before_training() {
    let dir = scratch("is-dir");
    let cfg = job(&dir);
    let sub = dir.join("models");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("old.safetensors"), "precious").unwrap();
    std::fs::write(dir.join("run.csv"), "old log").unwrap();
    let before = snapshot(&dir);
    let err = fails_train(&cfg, &["--out", s(&sub), "--log", s(&dir.join("run.csv"))]);
    names(&err, "--out", &sub, "is a directory");
    let err = fails_train(&cfg, &["--log", s(&sub), "--out", s(&dir.join("m.st"))]);
    names(&err, "--log", &sub, "is a directory");
    // A trailing separator names a folder, never a file.
    let slash = format!("{}/", dir.join("new").display());
    let err = fails_train(&cfg, &["--out", &slash]);
    assert!(
        err.contains("--out") && err.contains("not a file name"),
        "{err}"
    );
    unchanged(&dir, &before);
}

#[test]
fn out_whose_folder_is_missing_is_refused_before_training() {
    let dir = scratch("no-parent");
    let cfg = job(&dir);
    std::fs::write(dir.join("run.csv"), "old log").unwrap();
    let before = snapshot(&dir);
    let out = dir.join("no/such/m.safetensors");
    let err = fails_train(&cfg, &["--out", s(&out), "--log", s(&dir.join("run.csv"))]);
    names(&err, "--out", &out, "does not exist");
    // A folder that is a file.
    let out = dir.join("run.csv/m.safetensors");
    let err = fails_train(&cfg, &["--out", s(&out)]);
    names(&err, "--out", &out, "not a folder");
    unchanged(&dir, &before);
}

/// A folder that refuses new files: `dir/ro` with its write bits cleared, or
/// where permission bits do not bind (root) a system folder that refuses
/// writes; None (the test prints why it skips) when there is neither.
fn unwritable_folder(dir: &Path) -> Option<PathBuf> {
    let refuses = |d: &Path| std::fs::write(d.join(".tandem-probe"), "").is_err();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::write(ro.join("m.safetensors"), "precious").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        if refuses(&ro) {
            return Some(ro);
        }
        let _ = std::fs::remove_file(ro.join(".tandem-probe"));
    }
    ["/sys", "/proc"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir() && refuses(d))
}

#[test]
fn out_in_a_folder_that_refuses_writes_is_refused_before_training() {
    let dir = scratch("read-only");
    let cfg = job(&dir);
    let Some(ro) = unwritable_folder(&dir) else {
        println!("skipped: running privileged, and no folder here refuses writes");
        return;
    };
    println!("unwritable folder: {}", ro.display());
    let before = snapshot(&dir);
    let out = ro.join("m.safetensors");
    let err = fails_train(&cfg, &["--out", s(&out)]);
    names(&err, "--out", &out, "cannot write in folder");
    unchanged(&dir, &before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = std::fs::Permissions::from_mode(0o755);
        let _ = std::fs::set_permissions(dir.join("ro"), p);
    }
}

#[test]
fn out_and_log_naming_one_file_are_refused() {
    let dir = scratch("same");
    let cfg = job(&dir);
    let a = dir.join("a");
    let err = fails_train(
        &cfg,
        &["--out", s(&a), "--log", s(&dir.join(".").join("a"))],
    );
    assert!(err.contains("--out") && err.contains("--log"), "{err}");
    assert!(err.contains("same file"), "{err}");
    assert!(!a.exists());
}

/// Temporary files are hidden and uniquely named: an unrelated `run.partial`
/// (the name older versions used for `--log run.csv`) is never touched, and
/// a successful run leaves nothing but its outputs.
#[test]
fn a_run_leaves_unrelated_files_alone_and_no_temporary_file() {
    let dir = scratch("partial");
    let cfg = job(&dir);
    std::fs::write(dir.join("run.partial"), "user data").unwrap();
    std::fs::write(dir.join("m.safetensors.partial"), "more user data").unwrap();
    let before = snapshot(&dir);
    let (log, out) = (dir.join("run.csv"), dir.join("m.safetensors"));
    succeeds_train(&cfg, &["--log", s(&log), "--out", s(&out)]);
    let after = snapshot(&dir);
    let mut added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    added.sort();
    assert_eq!(added, [&out, &log], "new files: {added:?}");
    for (p, bytes) in &before {
        assert!(&after[p] == bytes, "{} changed", p.display());
    }
}

/// Saving the model fails after training (its destination turned into a
/// folder once the checks had passed): the command fails naming `--out`, and
/// the log, though written by then, was never renamed over the existing one.
#[test]
fn a_failed_model_save_leaves_an_existing_log_untouched() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("save-fails");
    let cfg = job(&dir);
    let (log, out) = (dir.join("run.csv"), dir.join("m.safetensors"));
    // Long enough runs that the folder appears while training; longer if not.
    for epochs in [2000, 20000] {
        let config = CONFIG.replace("epochs = 2", &format!("epochs = {epochs}"));
        std::fs::write(&cfg, config).unwrap();
        std::fs::write(&log, "old log").unwrap();
        let _ = std::fs::remove_file(&out);
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(train(&cfg, &["--log", s(&log), "--out", s(&out)]))
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // "training …" comes after the checks, before the first step.
        let started = lines.by_ref().any(|l| l.unwrap().starts_with("training "));
        let replaced = started && std::fs::create_dir(&out).is_ok();
        let err: String = lines.map(|l| l.unwrap() + "\n").collect();
        let status = child.wait().unwrap();
        if !replaced {
            continue; // the run ended first
        }
        match status.code() {
            Some(c) => assert!(c != 0 && c != 101, "exit {c}:\n{err}"),
            None => panic!("died from a signal:\n{err}"),
        }
        assert!(err.contains(&format!("--out {}", out.display())), "{err}");
        assert!(
            std::fs::read(&log).unwrap() == b"old log",
            "--log was replaced"
        );
        assert!(out.is_dir());
        let hidden = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(hidden, 0, "temporary files left behind");
        return;
    }
    panic!("training always ended before its --out could be replaced");
}

#[test]
fn identical_runs_write_byte_identical_model_files() {
    let dir = scratch("deterministic");
    let cfg = job(&dir);
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    // The metadata holds four entries (format, spec, preprocess, task weights):
    // in hash order, two runs would agree by chance one time in 24.
    for out in [&a, &b] {
        succeeds_train(&cfg, &["--out", s(out)]);
    }
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(x == y, "two identical runs wrote different model files");
    // … and a model saved again is the same file.
    let model = tandem::Model::load(&a).unwrap();
    assert_eq!(model.to_bytes().unwrap(), x);
    let header =
        String::from_utf8_lossy(&x[8..8 + u64::from_le_bytes(x[..8].try_into().unwrap()) as usize]);
    let keys = [
        "\"format\"",
        "\"preprocess\"",
        "\"spec\"",
        "\"task_weights\"",
    ];
    let at: Vec<usize> = keys.iter().map(|k| header.find(k).unwrap()).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "metadata keys unsorted: {header}"
    );
}

#[test]
fn predict_and_inspect_check_their_destinations_before_any_work() {
    let dir = scratch("predict-inspect");
    let cfg = job(&dir);
    let model = dir.join("m.safetensors");
    succeeds_train(&cfg, &["--out", s(&model)]);
    std::fs::write(dir.join("weights.png"), "old plot").unwrap();
    let before = snapshot(&dir);
    let csv = dir.join("penguins.csv");
    let out = dir.join("missing/p.csv");
    let err = fails(&[
        "predict",
        s(&model),
        "--features",
        s(&csv),
        "--out",
        s(&out),
    ]);
    names(&err, "--out", &out, "does not exist");
    let err = fails(&[
        "predict",
        s(&model),
        "--features",
        s(&csv),
        "--out",
        s(&dir),
    ]);
    names(&err, "--out", &dir, "is a directory");
    let inspect = |heat: &Path, weights: &Path| {
        fails(&[
            "inspect",
            s(&model),
            "--data",
            s(&cfg),
            "--heatmap",
            s(heat),
            "--weights-plot",
            s(weights),
            "--backend",
            "cpu",
        ])
    };
    let err = inspect(&dir, &dir.join("weights.png"));
    names(&err, "--heatmap", &dir, "is a directory");
    let err = inspect(&dir.join("heat.png"), &dir.join("no/w.png"));
    names(
        &err,
        "--weights-plot",
        &dir.join("no/w.png"),
        "does not exist",
    );
    unchanged(&dir, &before);
}

/// The OS message of a missing input appears once: `error: PATH: MESSAGE`.
#[test]
fn a_missing_file_prints_the_os_message_once() {
    let dir = scratch("missing");
    let missing = dir.join("nope.toml");
    let os = std::fs::read(&missing).unwrap_err().to_string();
    let err = fails(&["train", s(&missing), "--backend", "cpu"]);
    assert_eq!(err, format!("error: {}: {os}\n", missing.display()));
    let model = dir.join("nope.safetensors");
    let err = fails(&[
        "predict",
        s(&model),
        "--features",
        "x.npy",
        "--out",
        s(&dir.join("p.csv")),
    ]);
    assert_eq!(err, format!("error: {}: {os}\n", model.display()));
}
