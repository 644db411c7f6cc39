//! The `tandem` binary as a user runs it: golden traces through `train --log`,
//! train → save → eval → predict, and bad input that must produce a clear
//! message (never a panic) and leave existing outputs alone.

mod common;

use common::cli::{fails, s, tandem};
use std::path::{Path, PathBuf};
use std::process::Output;
use tandem::io::npy;

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("cli", name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// `tandem train CONFIG --out MODEL --backend cpu --quiet`, which must
/// succeed; returns what it printed.
fn train_on_cpu(config: &Path, model: &Path) -> String {
    let o = tandem(&[
        "train",
        s(config),
        "--out",
        s(model),
        "--backend",
        "cpu",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `tandem inspect MODEL --data CONFIG` on the CPU, writing both PNGs into `dir` as `NAME-*.png`.
fn inspect(model: &Path, config: &Path, dir: &Path, name: &str) -> Output {
    tandem(&[
        "inspect",
        s(model),
        "--data",
        s(config),
        "--heatmap",
        s(&dir.join(format!("{name}-alloc.png"))),
        "--weights-plot",
        s(&dir.join(format!("{name}-weights.png"))),
        "--backend",
        "cpu",
    ])
}

/// `tandem train --init --log` reproduces a Keras trace; compares the log's loss column.
fn golden_through_cli(case: &str, backend: &str) {
    let dir = golden(case);
    let out = scratch(&format!("{case}-{backend}"));
    let log = out.join("losses.csv");
    let o = tandem(&[
        "train",
        s(&dir.join("config.toml")),
        "--init",
        s(&dir.join("init.safetensors")),
        "--log",
        s(&log),
        "--out",
        s(&out.join("model.safetensors")),
        "--backend",
        backend,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(&log).unwrap();
    let want = std::fs::read_to_string(dir.join("expected_losses.csv")).unwrap();
    assert!(
        got.starts_with("step,epoch,loss,"),
        "log header: {}",
        got.lines().next().unwrap()
    );
    // Compare every value column the reference has, by name (`loss`, or `<task>_loss`).
    let got_header: Vec<&str> = got.lines().next().unwrap().split(',').collect();
    let want_header: Vec<&str> = want.lines().next().unwrap().split(',').collect();
    let (g, w): (Vec<&str>, Vec<&str>) = (
        got.lines().skip(1).collect(),
        want.lines().skip(1).collect(),
    );
    assert_eq!(g.len(), w.len());
    for (a, b) in g.iter().zip(&w) {
        let a: Vec<&str> = a.split(',').collect();
        let b: Vec<&str> = b.split(',').collect();
        assert_eq!(a[..2], b[..2], "step/epoch columns");
        for (c, name) in want_header.iter().enumerate().skip(2) {
            let at = got_header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{case}: no column `{name}` in the log"));
            let (x, y): (f32, f32) = (a[at].parse().unwrap(), b[c].parse().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{case} on {backend}: step {} {name}: {x} vs reference {y}",
                a[0]
            );
        }
    }
    // The saved model holds every final weight (weighting state included).
    let model = tandem::Model::load(out.join("model.safetensors")).unwrap();
    let expected = tandem::model::weights::read_tensors(
        &dir.join("expected_final.safetensors"),
        model.layout(),
    )
    .unwrap();
    for t in &model.layout().tensors {
        let range = t.offset..t.offset + t.len();
        for (a, b) in model.params[range.clone()].iter().zip(&expected[range]) {
            assert!(
                (a - b).abs() <= 1e-4,
                "{case} on {backend}: saved `{}` {a} vs reference {b}",
                t.name
            );
        }
    }
}

#[test]
fn golden_cases_through_the_cli_on_the_cpu() {
    golden_through_cli("seed-small", "cpu");
    golden_through_cli("binary-regression", "cpu");
    golden_through_cli("mmoe-uw-small", "cpu");
}

#[test]
fn golden_cases_through_the_cli_on_the_gpu() {
    if common::gpu().is_some() {
        golden_through_cli("seed-small", "gpu");
        golden_through_cli("binary-regression", "gpu");
        golden_through_cli("mmoe-uw-small", "gpu");
    }
}

/// The README's main job on one backend: validation metrics must reach the
/// targets (species accuracy ≥ 0.95, sex accuracy ≥ 0.78, body-mass R² ≥ 0.75).
fn penguins_on(backend: &str, model: &Path) {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.toml");
    let o = tandem(&[
        "train",
        s(&cfg),
        "--backend",
        backend,
        "--out",
        s(model),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let metric = |task: &str, key: &str| -> f64 {
        let line = text.lines().rev().find(|l| l.starts_with(task)).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let k = words.iter().position(|w| *w == key).unwrap();
        words[k + 1].parse().unwrap()
    };
    assert!(metric("species", "acc") >= 0.95, "{backend}: {text}");
    assert!(metric("sex", "acc") >= 0.78, "{backend}: {text}");
    assert!(metric("body_mass", "R²") >= 0.75, "{backend}: {text}");
    assert!(
        stderr(&o).contains("dropped 2 of 344 rows"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn penguins_on_the_gpu() {
    if common::gpu().is_some() {
        penguins_on("gpu", &scratch("penguins-gpu").join("p.safetensors"));
    }
}

#[test]
fn penguins_train_eval_predict() {
    let out = scratch("penguins");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.toml");
    let model = out.join("penguins.safetensors");
    penguins_on("cpu", &model);

    let o = tandem(&[
        "eval",
        s(&model),
        "--data",
        s(&cfg),
        "--validation",
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = String::from_utf8_lossy(&o.stdout);
    assert!(
        eval.contains("species") && eval.contains("68 rows"),
        "{eval}"
    );

    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.csv");
    let pred = out.join("pred.csv");
    let o = tandem(&[
        "predict",
        s(&model),
        "--features",
        s(&csv),
        "--out",
        s(&pred),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = std::fs::read_to_string(&pred).unwrap();
    let header = p.lines().next().unwrap();
    assert_eq!(
        header,
        "species,species_p_Adelie,species_p_Chinstrap,species_p_Gentoo,sex,body_mass"
    );
    assert_eq!(p.lines().count(), 345, "one prediction per input row");
    assert!(
        p.lines().nth(1).unwrap().starts_with("Adelie,"),
        "{}",
        p.lines().nth(1).unwrap()
    );
}

/// Early stopping through the CLI: it says where the best epoch was, and the
/// saved model is that epoch's (eval gives the metrics printed for it).
#[test]
fn penguins_with_early_stopping_saves_the_best_epoch() {
    let out = scratch("penguins-early");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins");
    std::fs::copy(examples.join("penguins.csv"), out.join("penguins.csv")).unwrap();
    let text = std::fs::read_to_string(examples.join("penguins.toml")).unwrap();
    let text = text.replace(
        "[data]\n",
        "[train.early_stopping]\npatience = 5\n\n[data]\n",
    );
    let cfg = out.join("early.toml");
    std::fs::write(&cfg, text).unwrap();
    let model = out.join("best.safetensors");
    let train = train_on_cpu(&cfg, &model);
    let summary = train
        .lines()
        .find(|l| l.contains("best validation loss"))
        .unwrap_or_else(|| panic!("no early-stopping line:\n{train}"));
    let best: usize = summary.split("at epoch ").nth(1).unwrap()[..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        train.contains(&format!("validation metrics after {best} epochs")),
        "{train}"
    );
    let o = tandem(&[
        "eval",
        s(&model),
        "--data",
        s(&cfg),
        "--validation",
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = String::from_utf8_lossy(&o.stdout);
    let number_after = |text: &str, key: &str| -> f32 {
        let rest = text
            .split(key)
            .nth(1)
            .unwrap_or_else(|| panic!("no `{key}` in {text}"));
        let word = rest.split_whitespace().next().unwrap();
        word.trim_end_matches([',', ';']).parse().unwrap()
    };
    let best_loss = number_after(summary, "best validation loss ");
    let eval_loss = number_after(&eval, "loss ");
    assert!(
        (best_loss - eval_loss).abs() <= 2e-5,
        "best epoch's validation loss {best_loss}, the saved model's {eval_loss}"
    );
    for task in ["species", "sex", "body_mass"] {
        let printed = train.lines().rev().find(|l| l.starts_with(task)).unwrap();
        let again = eval.lines().find(|l| l.starts_with(task)).unwrap();
        assert_eq!(
            printed.trim(),
            again.trim(),
            "train:\n{train}\neval:\n{eval}"
        );
    }
}

/// The bundled ensemble job: three members trained together from scratch;
/// predict writes every task's output and the members' spread.
#[test]
fn penguins_ensemble_trains_and_predicts_with_spread() {
    let out = scratch("penguins-ensemble");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins");
    let model = out.join("ens.safetensors");
    let o = tandem(&[
        "train",
        s(&examples.join("ensemble.toml")),
        "--backend",
        "cpu",
        "--out",
        s(&model),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let species = text
        .lines()
        .rev()
        .find(|l| l.starts_with("species"))
        .unwrap();
    let words: Vec<&str> = species.split_whitespace().collect();
    let k = words.iter().position(|w| *w == "acc").unwrap();
    let acc: f64 = words[k + 1].parse().unwrap();
    assert!(acc >= 0.95, "{text}");
    let pred = out.join("pred.csv");
    let o = tandem(&[
        "predict",
        s(&model),
        "--features",
        s(&examples.join("penguins.csv")),
        "--out",
        s(&pred),
        "--backend",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = std::fs::read_to_string(&pred).unwrap();
    assert_eq!(
        p.lines().next().unwrap(),
        "species,species_p_Adelie,species_p_Chinstrap,species_p_Gentoo,\
         species_spread_0,species_spread_1,species_spread_2,sex,sex_spread,body_mass,body_mass_spread"
    );
    // Spreads of probabilities lie in [0, 0.5]; somewhere the members disagree.
    let row: Vec<f32> = p
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(4)
        .take(3)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(row.iter().all(|s| (0.0..=0.5).contains(s)), "{row:?}");
    let any_spread = p
        .lines()
        .skip(1)
        .any(|l| l.split(',').nth(8).unwrap().parse::<f32>().unwrap() > 1e-3);
    assert!(any_spread, "the members never disagree on sex");
}

/// A small npy case: x [20, 4], one binary and one 3-class task.
fn npy_case(dir: &Path, config: &str, x: &[f32], cls: &[f32]) -> PathBuf {
    npy::write_f32(dir.join("x.npy"), &[x.len() / 4, 4], x).unwrap();
    npy::write_f32(
        dir.join("y_b.npy"),
        &[x.len() / 4, 1],
        &vec![1.0; x.len() / 4],
    )
    .unwrap();
    npy::write_f32(dir.join("y_c.npy"), &[cls.len(), 1], cls).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

const CONFIG: &str = r#"[model]
inputs = 4
trunk = [5]
activation = "relu"

[[tasks]]
name = "b"
kind = "binary"

[[tasks]]
name = "c"
kind = "multiclass"
outputs = 3

[train]
epochs = 1
batch_size = 8

[train.optimizer]
kind = "adam"
lr = 0.01

[data]
features = "x.npy"

[data.targets]
b = "y_b.npy"
c = "y_c.npy"
"#;

fn good_case(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let cfg = npy_case(
        &dir,
        CONFIG,
        &common::random(1, 80, -1.0, 1.0),
        &[0.0, 1.0, 2.0, 1.0].repeat(5),
    );
    (dir, cfg)
}

#[test]
fn bad_config_keys_and_types_are_named_with_their_line() {
    let (dir, _) = good_case("keys");
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        CONFIG.replace("trunk = [5]", "trunk = [5]\ndropout = 0.1"),
    )
    .unwrap();
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(err.contains("dropout") && err.contains("line 4"), "{err}");

    std::fs::write(&cfg, CONFIG.replace("epochs = 1", "epochs = \"many\"")).unwrap();
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(err.contains("epochs") && err.contains("line 16"), "{err}");

    std::fs::write(
        &cfg,
        CONFIG.replace("c = \"y_c.npy\"", "c = \"y_c.npy\"\nd = \"y_c.npy\""),
    )
    .unwrap();
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(
        err.contains("`d`") || err.contains("\"d\"") || err.contains(" d "),
        "{err}"
    );
}

#[test]
fn bad_data_is_named_with_file_and_row() {
    let (dir, _) = good_case("data");
    // Feature count disagrees with `inputs`.
    let cfg = dir.join("wide.toml");
    std::fs::write(&cfg, CONFIG.replace("inputs = 4", "inputs = 6")).unwrap();
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(
        err.contains("x.npy") && err.contains('6') && err.contains('4'),
        "{err}"
    );
    // A class label outside 0..C−1.
    let d2 = scratch("class");
    let cfg = npy_case(
        &d2,
        CONFIG,
        &common::random(1, 80, -1.0, 1.0),
        &[0.0, 1.0, 3.0, 1.0].repeat(5),
    );
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(err.contains("y_c.npy") && err.contains("row 2"), "{err}");
    // A non-finite feature.
    let d3 = scratch("nan");
    let mut x = common::random(1, 80, -1.0, 1.0);
    x[4 * 7 + 2] = f32::INFINITY;
    let cfg = npy_case(&d3, CONFIG, &x, &[0.0, 1.0, 2.0, 1.0].repeat(5));
    let err = fails(&["train", s(&cfg), "--backend", "cpu"]);
    assert!(err.contains("x.npy") && err.contains("row 7"), "{err}");
    // A path that does not exist.
    let err = fails(&["train", s(&dir.join("nope.toml")), "--backend", "cpu"]);
    assert!(err.contains("nope.toml"), "{err}");
    // An empty CSV.
    let d4 = scratch("empty");
    std::fs::write(d4.join("t.csv"), "").unwrap();
    std::fs::write(
        d4.join("c.toml"),
        "[model]\ntrunk=[4]\nactivation=\"relu\"\n[[tasks]]\nname=\"y\"\nkind=\"binary\"\n[train]\nepochs=1\nbatch_size=4\n[train.optimizer]\nkind=\"adam\"\nlr=0.01\n[data]\npath=\"t.csv\"\nfeatures=[\"a\"]\n[data.targets]\ny=\"b\"\n",
    )
    .unwrap();
    let err = fails(&["train", s(&d4.join("c.toml")), "--backend", "cpu"]);
    assert!(err.contains("t.csv"), "{err}");
}

#[test]
fn bad_init_weights_name_the_tensor_and_both_shapes() {
    let (dir, cfg) = good_case("init");
    let model = dir.join("m.safetensors");
    train_on_cpu(&cfg, &model);
    // The same model with a wider trunk: every trunk tensor has the wrong shape.
    let wide = dir.join("wide.toml");
    std::fs::write(&wide, CONFIG.replace("trunk = [5]", "trunk = [6]")).unwrap();
    let err = fails(&["train", s(&wide), "--init", s(&model), "--backend", "cpu"]);
    assert!(
        err.contains("trunk.0.weight") && err.contains("[6, 4]") && err.contains("[5, 4]"),
        "{err}"
    );
    // A model with a task the file has no head for.
    let more = dir.join("more.toml");
    let text = CONFIG
        .replace(
            "[train]",
            "[[tasks]]\nname = \"e\"\nkind = \"regression\"\n\n[train]",
        )
        .replace("c = \"y_c.npy\"", "c = \"y_c.npy\"\ne = \"y_c.npy\"");
    std::fs::write(&more, text).unwrap();
    let err = fails(&["train", s(&more), "--init", s(&model), "--backend", "cpu"]);
    assert!(
        err.contains("missing tensor") && err.contains("heads.e.0.weight"),
        "{err}"
    );
}

#[test]
fn a_failed_run_leaves_existing_outputs_alone() {
    let (dir, _) = good_case("clobber");
    let out = dir.join("model.safetensors");
    let log = dir.join("log.csv");
    std::fs::write(&out, b"precious").unwrap();
    std::fs::write(&log, b"precious log").unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("inputs = 4", "inputs = 9")).unwrap();
    fails(&[
        "train",
        s(&bad),
        "--out",
        s(&out),
        "--log",
        s(&log),
        "--backend",
        "cpu",
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(std::fs::read(&log).unwrap(), b"precious log");
    // An output folder that does not exist is reported before training starts.
    let err = fails(&[
        "train",
        s(&dir.join("config.toml")),
        "--out",
        s(&dir.join("no/such/m.safetensors")),
    ]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn unknown_backend_is_an_error() {
    let (_, cfg) = good_case("backend");
    let err = fails(&["train", s(&cfg), "--backend", "tpu"]);
    assert!(err.contains("tpu"), "{err}");
}

#[test]
fn inspect_prints_the_allocation_and_writes_both_pngs() {
    let dir = golden("mmoe-uw-small");
    let out = scratch("inspect");
    let model = out.join("model.safetensors");
    train_on_cpu(&dir.join("config.toml"), &model);
    let o = inspect(&model, &dir.join("config.toml"), &out, "mmoe");
    assert!(o.status.success(), "{}", stderr(&o));
    let (heat, plot) = (out.join("mmoe-alloc.png"), out.join("mmoe-weights.png"));
    let text = String::from_utf8_lossy(&o.stdout);
    // One allocation row per task whose three gate means sum to 1, and one weights row per epoch.
    for task in ["click", "time"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(task))
            .unwrap_or_else(|| panic!("no allocation row for {task}:\n{text}"));
        let sum: f32 = row
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse::<f32>().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "{row}");
    }
    assert!(text.contains("task weights by epoch"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("2 ")),
        "{text}"
    );
    for p in [&heat, &plot] {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG",
            p.display()
        );
        assert!(bytes.len() > 500, "{} is nearly empty", p.display());
    }
    // A hard-sharing model has no gates: a clear message.
    let seed = golden("seed-small");
    let shared = out.join("shared.safetensors");
    train_on_cpu(&seed.join("config.toml"), &shared);
    let o = inspect(&shared, &seed.join("config.toml"), &out, "shared");
    let err = stderr(&o);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("no gates"), "{err}");

    // A gated ensemble: attention over its members, by name.
    let ens = golden("ensemble-stack");
    for f in ["m1.safetensors", "m2.safetensors", "x.npy", "y_y.npy"] {
        std::fs::copy(ens.join(f), out.join(f)).unwrap();
    }
    let config = std::fs::read_to_string(ens.join("config.toml"))
        .unwrap()
        .replace("combine = \"stack\"", "combine = \"gate\"");
    assert!(config.contains("\"gate\""));
    std::fs::write(out.join("gate.toml"), config).unwrap();
    let gated = out.join("gated.safetensors");
    train_on_cpu(&out.join("gate.toml"), &gated);
    let o = inspect(&gated, &out.join("gate.toml"), &out, "gated");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("each member"), "{text}");
    let header = text.lines().find(|l| l.starts_with("task")).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["task", "m1", "m2"],
        "{text}"
    );
    let row = text.lines().find(|l| l.starts_with("y ")).unwrap();
    let sum: f32 = row
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<f32>().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3, "{row}");
}
