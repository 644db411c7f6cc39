//! Validated inputs and sizes: non-finite weights and features, model specs
//! that cannot be built, configs whose tasks are not the model's, numeric CSV
//! columns with a text cell, tasks without a label, and sizes that used to
//! panic or abort. Each case asserts a clean exit (status 1, never 101 or a
//! signal) or a library error, and a message that names the offending file,
//! key, row, column or tensor.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{s, tandem};
use tandem::cpu::CpuBackend;
use tandem::io::npy;
use tandem::model::network::Network;
use tandem::model::spec::check::{MAX_PARAMETERS, MAX_WIDTH};
use tandem::model::{
    Activation, Architecture, Combine, EnsembleSpec, ExpertsSpec, MemberSpec, PleSpec,
};
use tandem::train::step::StepShape;
use tandem::{Backend, Config, Model, ModelSpec, TaskKind, TaskSpec};

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("bad", name)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs a command that must fail with status 1 (an error, not a panic or a
/// signal) and whose stderr holds every one of `parts`; returns the stderr.
fn fails_naming(args: &[&str], parts: &[&str]) -> String {
    let o = tandem(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(1),
        "tandem {args:?}: {:?}\n{err}",
        o.status
    );
    assert!(
        !err.contains("panicked"),
        "tandem {args:?} panicked:\n{err}"
    );
    for p in parts {
        assert!(
            err.contains(p),
            "`{p}` not in the message of tandem {args:?}:\n{err}"
        );
    }
    err
}

/// Runs a command that must succeed; returns its stderr.
fn succeeds(args: &[&str]) -> String {
    let o = tandem(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "tandem {args:?}: {:?}\n{err}", o.status);
    err
}

/// The backends to run the CLI on: the CPU, and the GPU where an adapter exists
/// (required with `TANDEM_REQUIRE_GPU=1`).
fn backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if common::gpu().is_some() {
        b.push("gpu");
    }
    b
}

fn task(name: &str, kind: TaskKind, outputs: usize) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        weight: 1.0,
        head: Vec::new(),
        outputs,
    }
}

/// 3 inputs, trunk [4], tasks `y` (binary) and `r` (regression).
fn small_spec() -> ModelSpec {
    ModelSpec {
        inputs: 3,
        activation: Activation::Relu,
        tasks: vec![
            task("y", TaskKind::Binary, 1),
            task("r", TaskKind::Regression, 1),
        ],
        architecture: Architecture::Shared { trunk: vec![4] },
        ..Default::default()
    }
}

/// 20 rows of npy data for `small_spec` in `dir` (x, y, r) and a config over
/// them with `extra` appended to [train] and the tasks in `tasks` order.
fn npy_case(dir: &Path, train: &str, tasks: &[(&str, &str)]) -> PathBuf {
    let x: Vec<f32> = (0..60).map(|i| (i % 7) as f32 / 7.0).collect();
    let y: Vec<f32> = (0..20).map(|i| (i % 2) as f32).collect();
    let r: Vec<f32> = (0..20).map(|i| i as f32 / 10.0).collect();
    npy::write_f32(dir.join("x.npy"), &[20, 3], &x).unwrap();
    npy::write_f32(dir.join("y.npy"), &[20, 1], &y).unwrap();
    npy::write_f32(dir.join("r.npy"), &[20, 1], &r).unwrap();
    let mut text = String::from("[model]\ntrunk = [4]\nactivation = \"relu\"\n");
    for (name, kind) in tasks {
        text.push_str(&format!(
            "[[tasks]]\nname = \"{name}\"\nkind = \"{kind}\"\n"
        ));
    }
    text.push_str(&format!("[train]\nepochs = 1\n{train}\n"));
    text.push_str("[data]\nfeatures = \"x.npy\"\n[data.targets]\ny = \"y.npy\"\nr = \"r.npy\"\n");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const YR: &[(&str, &str)] = &[("y", "binary"), ("r", "regression")];

/// Rewrites the safetensors file `src` into `dst`, editing its header JSON
/// (tensors and `__metadata__`) with `edit_header` and its data with `edit_data`.
fn craft(
    src: &Path,
    dst: &Path,
    edit_header: impl Fn(&mut serde_json::Value),
    edit_data: impl Fn(&serde_json::Value, &mut Vec<u8>),
) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes[8 + n..].to_vec();
    edit_header(&mut header);
    edit_data(&header, &mut data);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&data);
    std::fs::write(dst, out).unwrap();
}

/// A copy of `src` whose metadata spec is edited by `edit`.
fn craft_spec(src: &Path, dst: &Path, edit: impl Fn(&mut serde_json::Value)) {
    craft(
        src,
        dst,
        |h| {
            let meta = &mut h["__metadata__"]["spec"];
            let mut spec: serde_json::Value = serde_json::from_str(meta.as_str().unwrap()).unwrap();
            edit(&mut spec);
            *meta = serde_json::Value::String(spec.to_string());
        },
        |_, _| {},
    );
}

/// A copy of `src` whose element `k` of tensor `name` is `v`.
fn craft_value(src: &Path, dst: &Path, name: &str, k: usize, v: f32) {
    craft(
        src,
        dst,
        |_| {},
        |h, data| {
            let at = h[name]["data_offsets"][0].as_u64().unwrap() as usize + 4 * k;
            data[at..at + 4].copy_from_slice(&v.to_le_bytes());
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Model specs: validated before anything is allocated
// ---------------------------------------------------------------------------------------------

/// `ModelSpec::size` counts what `Network::new` places, for every architecture.
#[test]
fn spec_size_counts_the_layout_of_every_architecture() {
    let member = |name: &str, trunk: Vec<usize>| MemberSpec {
        name: name.into(),
        trunk,
        activation: Activation::Tanh,
        trainable: true,
        weights: None,
    };
    let mut fused = small_spec();
    fused.tasks.iter_mut().for_each(|t| t.head = vec![5, 2]);
    let mut multi = small_spec();
    multi.tasks.push(task("c", TaskKind::Multiclass, 4));
    multi.tasks[0].head = vec![3];
    let archs = vec![
        Architecture::Shared { trunk: vec![] },
        Architecture::Shared { trunk: vec![4, 6] },
        Architecture::Mmoe(ExpertsSpec {
            count: 3,
            layers: vec![5, 2],
        }),
        Architecture::Ple(PleSpec {
            shared: 2,
            per_task: 1,
            levels: vec![4, 3],
        }),
    ];
    let mut specs = vec![fused];
    for a in archs {
        let mut spec = multi.clone();
        spec.architecture = a;
        spec.log_vars = true;
        specs.push(spec.clone());
        spec.gradnorm = true;
        spec.log_vars = false;
        specs.push(spec);
    }
    for combine in [
        Combine::Stack,
        Combine::Gate,
        Combine::Mean,
        Combine::Concat,
    ] {
        let mut spec = multi.clone();
        spec.architecture = Architecture::Ensemble(EnsembleSpec {
            combine,
            members: vec![
                member("a", vec![4]),
                member("b", vec![4]),
                member("c", vec![]),
            ],
            bagging: false,
        });
        specs.push(spec);
    }
    for spec in specs {
        let size = spec.check().unwrap();
        let layout = Network::new(&spec).layout;
        assert_eq!(size.parameters, layout.len, "{spec:?}");
        assert_eq!(size.tensors, layout.tensors.len(), "{spec:?}");
    }
}

#[test]
fn impossible_specs_are_errors_naming_the_field() {
    type Case = (fn(&mut ModelSpec), &'static str);
    let cases: Vec<Case> = vec![
        (|s| s.tasks.clear(), "no tasks"),
        (|s| s.tasks[0].outputs = 0, "task `y` (binary): outputs = 0"),
        (
            |s| s.tasks[1] = task("r", TaskKind::Multiclass, 1),
            "task `r` (multiclass): outputs = 1 must be in 2..",
        ),
        (
            |s| s.inputs = 1_000_000_000_000,
            "inputs = 1000000000000 exceeds the limit",
        ),
        (|s| s.inputs = 0, "inputs must be ≥ 1"),
        (
            |s| s.architecture = Architecture::Shared { trunk: vec![0] },
            "every layer size must be in 1..",
        ),
        (
            |s| {
                s.architecture = Architecture::Shared {
                    trunk: vec![MAX_WIDTH, MAX_WIDTH],
                }
            },
            "parameters",
        ),
        (
            |s| s.tasks[1].name = "y".into(),
            "task name `y` is used twice",
        ),
        (|s| s.tasks[0].weight = f32::NAN, "task `y`: weight = NaN"),
    ];
    for (edit, expected) in cases {
        let mut spec = small_spec();
        edit(&mut spec);
        let err = Model::try_new(spec, 0).unwrap_err().to_string();
        assert!(err.contains(expected), "`{expected}` not in: {err}");
    }
    let wide = ModelSpec {
        architecture: Architecture::Shared {
            trunk: vec![10_000_000, 10_000_000],
        },
        ..small_spec()
    };
    let err = wide.check().unwrap_err().to_string();
    assert!(
        err.contains(&format!("exceed the limit {MAX_PARAMETERS}")),
        "{err}"
    );
    assert!(err.contains("bytes"), "{err}");
}

/// A crafted model file (a spec with `inputs = 1e12`, no tasks, outputs = 0,
/// one class, or a NaN weight) is refused by predict, eval and inspect.
#[test]
fn crafted_model_files_are_refused_by_predict_eval_and_inspect() {
    let dir = scratch("crafted");
    let config = npy_case(&dir, "batch_size = 4", YR);
    let good = dir.join("good.safetensors");
    Model::new(small_spec(), 0).save(&good).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let specs: [(&str, Edit, &str); 4] = [
        (
            "inputs",
            |s| s["inputs"] = serde_json::json!(1_000_000_000_000u64),
            "inputs = 1000000000000 exceeds the limit",
        ),
        (
            "notasks",
            |s| s["tasks"] = serde_json::json!([]),
            "no tasks",
        ),
        (
            "zero",
            |s| s["tasks"][0]["outputs"] = serde_json::json!(0),
            "task `y` (binary): outputs = 0",
        ),
        (
            "oneclass",
            |s| {
                s["tasks"][1]["kind"] = serde_json::json!("multiclass");
                s["tasks"][1]["outputs"] = serde_json::json!(1);
            },
            "task `r` (multiclass): outputs = 1",
        ),
    ];
    let mut files = Vec::new();
    for (name, edit, expected) in specs {
        let path = dir.join(format!("{name}.safetensors"));
        craft_spec(&good, &path, edit);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 2000, "a small crafted file: {size} bytes");
        files.push((path, vec!["metadata `spec`", expected]));
    }
    let nan = dir.join("nan.safetensors");
    craft_value(&good, &nan, "trunk.0.weight", 5, f32::NAN);
    files.push((
        nan,
        vec![
            "tensor `trunk.0.weight`",
            "non-finite value NaN at index [1, 2]",
        ],
    ));
    let inf = dir.join("inf.safetensors");
    craft_value(&good, &inf, "heads.r.0.bias", 0, f32::INFINITY);
    files.push((inf, vec!["tensor `heads.r.0.bias`", "non-finite value inf"]));
    let out = dir.join("p.csv");
    for (file, parts) in &files {
        let mut parts = parts.clone();
        parts.push(s(file));
        fails_naming(
            &[
                "predict",
                s(file),
                "--features",
                s(&dir.join("x.npy")),
                "--out",
                s(&out),
                "--backend",
                "cpu",
            ],
            &parts,
        );
        fails_naming(
            &["eval", s(file), "--data", s(&config), "--backend", "cpu"],
            &parts,
        );
        fails_naming(
            &[
                "inspect",
                s(file),
                "--data",
                s(&config),
                "--backend",
                "cpu",
                "--heatmap",
                s(&dir.join("a.png")),
                "--weights-plot",
                s(&dir.join("w.png")),
            ],
            &parts,
        );
    }
    assert!(!out.exists(), "no predictions were written");
}

/// `--init` with a NaN tensor names the tensor (the CLI and the library).
#[test]
fn init_file_with_a_non_finite_tensor_names_it() {
    let dir = scratch("init-nan");
    let config = npy_case(&dir, "batch_size = 4", YR);
    let good = dir.join("good.safetensors");
    Model::new(small_spec(), 0).save(&good).unwrap();
    let bad = dir.join("init.safetensors");
    craft_value(&good, &bad, "heads.y.0.weight", 3, f32::NEG_INFINITY);
    fails_naming(
        &[
            "train",
            s(&config),
            "--init",
            s(&bad),
            "--backend",
            "cpu",
            "--quiet",
        ],
        &[
            "init.safetensors",
            "tensor `heads.y.0.weight`",
            "non-finite value -inf at index [0, 3]",
        ],
    );
    let mut model = Model::new(small_spec(), 0);
    let err = model.load_init(&bad).unwrap_err().to_string();
    assert!(err.contains("tensor `heads.y.0.weight`"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Features: NaN and Inf at predict and eval time
// ---------------------------------------------------------------------------------------------

#[test]
fn non_finite_features_name_the_row_and_column() {
    let dir = scratch("nan-features");
    let config = npy_case(&dir, "batch_size = 4", YR);
    let model = dir.join("m.safetensors");
    Model::new(small_spec(), 0).save(&model).unwrap();
    let mut x: Vec<f32> = vec![0.5; 12];
    x[7] = f32::NAN;
    let xs = dir.join("nan.npy");
    npy::write_f32(&xs, &[4, 3], &x).unwrap();
    let out = dir.join("p.csv");
    fails_naming(
        &[
            "predict",
            s(&model),
            "--features",
            s(&xs),
            "--out",
            s(&out),
            "--backend",
            "cpu",
        ],
        &[
            "nan.npy",
            "non-finite feature NaN at row 2 (0-based), column 1",
        ],
    );
    assert!(!out.exists());
    // eval reads its features through the config: an infinite one in x.npy.
    let mut x: Vec<f32> = (0..60).map(|i| i as f32).collect();
    x[31] = f32::INFINITY;
    npy::write_f32(dir.join("x.npy"), &[20, 3], &x).unwrap();
    fails_naming(
        &["eval", s(&model), "--data", s(&config), "--backend", "cpu"],
        &[
            "x.npy",
            "non-finite feature inf at row 10 (0-based), column 1",
        ],
    );
    // CSV features: an infinite cell names the file, the line and the column.
    let csv = dir.join("f.csv");
    std::fs::write(&csv, "a,b\n1,2\n3,inf\n").unwrap();
    let spec = ModelSpec {
        inputs: 2,
        ..small_spec()
    };
    let mut m = Model::new(spec, 0);
    m.preprocess = Some(tandem::io::Preprocess {
        features: ["a", "b"]
            .iter()
            .map(|c| tandem::io::FeatureTransform::Numeric {
                column: c.to_string(),
                mean: 0.0,
                std: 1.0,
            })
            .collect(),
        targets: ["y", "r"]
            .iter()
            .map(|t| tandem::io::TargetTransform {
                task: t.to_string(),
                column: t.to_string(),
                kind: TaskKind::Regression,
                outputs: 1,
                classes: None,
                scale: None,
            })
            .collect(),
    });
    let csv_model = dir.join("csv.safetensors");
    m.save(&csv_model).unwrap();
    fails_naming(
        &[
            "predict",
            s(&csv_model),
            "--features",
            s(&csv),
            "--out",
            s(&out),
            "--backend",
            "cpu",
        ],
        &[
            "f.csv",
            "line 3 of the file",
            "column `b`",
            "non-finite feature inf",
        ],
    );
    // The library refuses them too.
    let mut cpu = CpuBackend::new();
    let model = Model::new(small_spec(), 0);
    let mut x = vec![0.0f32; 6];
    x[4] = f32::NAN;
    let err = tandem::predict(&model, &x, 2, &mut cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-finite value NaN at row 1 (0-based), column 1"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// eval / inspect: the config's tasks must be the model's
// ---------------------------------------------------------------------------------------------

#[test]
fn eval_with_tasks_other_than_the_models_names_the_first_difference() {
    let dir = scratch("tasks");
    let model = dir.join("m.safetensors");
    Model::new(small_spec(), 0).save(&model).unwrap();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("r", "regression"), ("y", "binary")],
            "task 1 is named `r` where the model's is `y`",
        ),
        (
            &[("y", "regression"), ("r", "regression")],
            "task 1 is regression where the model's is `y` (binary",
        ),
        (
            &[("y", "binary")],
            "1 task(s) (y) where the model has 2 (y, r)",
        ),
    ];
    for (tasks, expected) in cases {
        let config = npy_case(&dir, "batch_size = 4", tasks);
        // A config with one task only needs its one target.
        if tasks.len() == 1 {
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace("r = \"r.npy\"\n", "");
            std::fs::write(&config, text).unwrap();
        }
        fails_naming(
            &["eval", s(&model), "--data", s(&config), "--backend", "cpu"],
            &["config.toml", "m.safetensors", expected],
        );
    }
    // Outputs differ: a two-label binary task in the config.
    let config = npy_case(&dir, "batch_size = 4", YR);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("kind = \"binary\"\n", "kind = \"binary\"\noutputs = 2\n");
    std::fs::write(&config, text).unwrap();
    fails_naming(
        &[
            "inspect",
            s(&model),
            "--data",
            s(&config),
            "--backend",
            "cpu",
            "--heatmap",
            s(&dir.join("a.png")),
            "--weights-plot",
            s(&dir.join("w.png")),
        ],
        &["task 1 has outputs = 2 where the model's is `y` (binary, outputs = 1)"],
    );
    // The same tasks evaluate.
    let config = npy_case(&dir, "batch_size = 4", YR);
    let o = tandem(&["eval", s(&model), "--data", s(&config), "--backend", "cpu"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

// ---------------------------------------------------------------------------------------------
// CSV: a numeric column with a text cell; declared categorical columns
// ---------------------------------------------------------------------------------------------

/// A CSV of 12 rows: `a` numeric, `b` numeric with one text cell at line 6,
/// `c` text in every row, label `y`.
fn csv_case(dir: &Path, categorical: &str) -> PathBuf {
    let mut text = String::from("a,b,c,y\n");
    for i in 0..12 {
        let b = if i == 4 {
            "abc".to_string()
        } else {
            format!("{}", i * 3)
        };
        text.push_str(&format!("{i},{b},{},{}\n", ["x", "z"][i % 2], i % 2));
    }
    std::fs::write(dir.join("t.csv"), text).unwrap();
    let config = format!(
        "[model]\ntrunk = [4]\nactivation = \"relu\"\n[[tasks]]\nname = \"y\"\nkind = \"binary\"\n\
         [train]\nepochs = 1\nbatch_size = 4\n[data]\npath = \"t.csv\"\n\
         features = [\"a\", \"b\", \"c\"]\n{categorical}[data.targets]\ny = \"y\"\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn a_text_cell_in_a_numeric_csv_column_is_an_error_unless_declared_categorical() {
    let dir = scratch("csv-mixed");
    let config = csv_case(&dir, "");
    let err = tandem::io::load_split(&mut Config::load(&config).unwrap())
        .unwrap_err()
        .to_string();
    for part in [
        "t.csv",
        "line 6 of the file",
        "column `b`",
        "`abc` is not a number",
        "data.categorical",
    ] {
        assert!(err.contains(part), "`{part}` not in: {err}");
    }
    fails_naming(
        &["train", s(&config), "--backend", "cpu", "--quiet"],
        &["t.csv", "line 6", "column `b`", "`abc`"],
    );
    // Declared categorical: one-hot, 1 (a) + 12 (b's values) + 2 (c, all text) inputs.
    let config = csv_case(&dir, "categorical = [\"b\"]\n");
    let mut cfg = Config::load(&config).unwrap();
    let split = tandem::io::load_split(&mut cfg).unwrap();
    assert_eq!(cfg.model.inputs, 1 + 12 + 2);
    assert_eq!(split.train.inputs, 15);
    succeeds(&["train", s(&config), "--backend", "cpu", "--quiet"]);
}

#[test]
fn data_categorical_is_checked_with_its_line() {
    let dir = scratch("csv-categorical-key");
    let config = csv_case(&dir, "categorical = [\"d\"]\n");
    fails_naming(
        &["train", s(&config), "--backend", "cpu", "--quiet"],
        &[
            "config.toml",
            "data.categorical names `d`",
            "not among data.features",
            "line 13",
        ],
    );
    let config = csv_case(&dir, "categorical = [\"c\", \"c\"]\n");
    fails_naming(
        &["train", s(&config), "--backend", "cpu", "--quiet"],
        &["data.categorical lists `c` twice", "line 13"],
    );
    let config = csv_case(&dir, "categorica = [\"c\"]\n");
    fails_naming(
        &["train", s(&config), "--backend", "cpu", "--quiet"],
        &["unknown field `categorica`", "line 13"],
    );
    let npy = npy_case(&dir, "batch_size = 4", YR);
    let text = std::fs::read_to_string(&npy).unwrap().replace(
        "features = \"x.npy\"\n",
        "features = \"x.npy\"\ncategorical = [\"x0\"]\n",
    );
    std::fs::write(&npy, text).unwrap();
    fails_naming(
        &["train", s(&npy), "--backend", "cpu", "--quiet"],
        &["data.categorical names CSV columns"],
    );
}

/// The bundled penguins config: `island` is text in every row, so it stays
/// categorical without being declared (3 numeric + 3 islands = 6 inputs).
#[test]
fn an_all_text_column_is_still_categorical() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.toml");
    let mut cfg = Config::load(&path).unwrap();
    cfg.data.categorical.clear();
    let split = tandem::io::load_split(&mut cfg).unwrap();
    assert_eq!(cfg.model.inputs, 6);
    let island: Vec<&String> = split
        .train
        .feature_names
        .iter()
        .filter(|n| n.starts_with("island="))
        .collect();
    assert_eq!(island.len(), 3, "{:?}", split.train.feature_names);
}

// ---------------------------------------------------------------------------------------------
// A task without any label in the training rows
// ---------------------------------------------------------------------------------------------

#[test]
fn a_task_with_no_present_label_is_an_error_naming_it() {
    let dir = scratch("no-labels");
    let config = npy_case(&dir, "batch_size = 4", YR);
    npy::write_f32(dir.join("r.npy"), &[20, 1], &[f32::NAN; 20]).unwrap();
    fails_naming(
        &["train", s(&config), "--backend", "cpu", "--quiet"],
        &[
            "r.npy",
            "task `r`",
            "no label is present in the 20 training rows",
        ],
    );
    // CSV: every label of the binary task missing.
    let mut text = String::from("a,y\n");
    for i in 0..10 {
        text.push_str(&format!("{i},NA\n"));
    }
    std::fs::write(dir.join("t.csv"), text).unwrap();
    std::fs::write(
        dir.join("c.toml"),
        "[model]\ntrunk = [2]\nactivation = \"relu\"\n[[tasks]]\nname = \"y\"\nkind = \"binary\"\n\
         [train]\nepochs = 1\nbatch_size = 4\n[data]\npath = \"t.csv\"\nfeatures = [\"a\"]\n\
         [data.targets]\ny = \"y\"\n",
    )
    .unwrap();
    let err = tandem::io::load_split(&mut Config::load(dir.join("c.toml")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t.csv") && err.contains("task `y` (column `y`)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------------

/// batch_size = 1e9 and 2^62 on 20 rows train, clamped with a warning, on both backends.
#[test]
fn a_batch_larger_than_the_rows_is_clamped_with_a_warning() {
    let dir = scratch("batch");
    for batch in ["1000000000", "4611686018427387904"] {
        let config = npy_case(&dir, &format!("batch_size = {batch}"), YR);
        for backend in backends() {
            let err = succeeds(&["train", s(&config), "--backend", backend, "--quiet"]);
            assert!(
                err.contains(&format!(
                    "train.batch_size = {batch} is larger than the 20 training rows"
                )),
                "{backend}: {err}"
            );
        }
    }
    let shape = StepShape::new(160, 1 << 62, 3).unwrap();
    assert_eq!(
        (shape.batch, shape.steps_per_epoch, shape.order_len()),
        (160, 1, 160)
    );
    let shape = StepShape::new(160, 1_000_000_000, 3).unwrap();
    assert_eq!(shape.batch, 160);
    let err = StepShape::new(u32::MAX as usize, 32, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("training rows"), "{err}");
}

/// A trunk too wide for the limits: a config error with its line; a model too
/// large in parameters: an error with the count and the bytes, on both backends.
#[test]
fn a_model_too_large_is_an_error_before_any_allocation() {
    let dir = scratch("wide");
    let config = npy_case(&dir, "batch_size = 4", YR);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("trunk = [4]", "trunk = [100000000]")).unwrap();
    for backend in backends() {
        fails_naming(
            &["train", s(&config), "--backend", backend, "--quiet"],
            &[
                "config.toml",
                "model.trunk: 100000000 units exceed the limit 16777216",
                "line 2",
            ],
        );
    }
    std::fs::write(
        &config,
        text.replace("trunk = [4]", "trunk = [16000000, 16000000]"),
    )
    .unwrap();
    for backend in backends() {
        fails_naming(
            &["train", s(&config), "--backend", backend, "--quiet"],
            &[
                "config.toml",
                "256000112000002 parameters (1024000448000008 bytes as f32) exceed the limit",
            ],
        );
    }
}

/// An impossible buffer is an error naming the buffer and its bytes on the
/// CPU (past the u32 element limit; a byte count past usize) and on the GPU
/// (where `len · 4` used to wrap).
#[test]
fn impossible_buffers_are_errors_naming_the_buffer_and_the_bytes() {
    let mut cpu = CpuBackend::new();
    let err = cpu.alloc(1 << 40, "huge").unwrap_err().to_string();
    assert!(
        err.contains("buffer `huge` needs 4398046511104 bytes"),
        "{err}"
    );
    let err = cpu.alloc(usize::MAX, "wrap").unwrap_err().to_string();
    assert!(
        err.contains("buffer `wrap` needs 73786976294838206460 bytes"),
        "{err}"
    );
    assert!(cpu.alloc(3, "fine").is_ok());
    let Some(gpu) = common::gpu() else { return };
    let mut gpu = gpu.lock().unwrap();
    for (len, bytes) in [
        (usize::MAX, "73786976294838206460"),
        (1usize << 62, "18446744073709551616"),
    ] {
        let err = gpu.alloc(len, "wrap").unwrap_err().to_string();
        assert!(
            err.contains(&format!("buffer `wrap` needs {bytes} bytes")),
            "{err}"
        );
    }
}
