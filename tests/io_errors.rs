//! Bad-input tests for config and data loading: every user mistake is an error whose message
//! names the key / file / row / column, never a panic. Plus positive loads (npy and penguins CSV).
//!
//! Data files are written into a fresh directory under `std::env::temp_dir()` per test.

use std::path::{Path, PathBuf};

use tandem::io::config::{
    AdamStyle, Combine, Config, FeatureSource, OptimizerKind, TargetSource, Weighting,
};
use tandem::io::dataset::{load_all, load_split, split_rows};
use tandem::io::npy;
use tandem::io::preprocess::Preprocess;
use tandem::model::spec::{Activation, TaskKind};
use tandem::Error;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-io-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The message of an error, asserting its variant with `is`.
fn message(err: Error, is: fn(&Error) -> bool) -> String {
    assert!(is(&err), "unexpected error variant: {err:?}");
    err.to_string()
}

fn is_config(e: &Error) -> bool {
    matches!(e, Error::Config { .. })
}

fn is_data(e: &Error) -> bool {
    matches!(e, Error::Data { .. })
}

fn is_io(e: &Error) -> bool {
    matches!(e, Error::Io { .. })
}

/// Asserts `text` contains every one of `parts`.
fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "`{p}` not in message:\n{text}");
    }
}

/// A valid npy config: `inputs`, one binary task `click` and one regression task `value`.
const NPY_CONFIG: &str = r#"[model]
inputs = 4
trunk = [8]
activation = "relu"

[[tasks]]
name = "click"
kind = "binary"
weight = 0.5
head = []

[[tasks]]
name = "value"
kind = "regression"
weight = 0.5
head = [4]

[train]
epochs = 2
batch_size = 4
shuffle = false
seed = 0

[train.optimizer]
kind = "adam"
lr = 0.001

[data]
features = "x.npy"
validation = 0.0

[data.targets]
click = "y_click.npy"
value = "y_value.npy"
"#;

/// Writes a consistent npy data set of `rows` rows next to a config built from [`NPY_CONFIG`].
fn npy_case(name: &str, rows: usize, validation: f32) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let x: Vec<f32> = (0..rows * 4).map(|i| i as f32 * 0.1).collect();
    let click: Vec<f32> = (0..rows).map(|r| (r % 2) as f32).collect();
    let value: Vec<f32> = (0..rows).map(|r| r as f32 * 2.0).collect();
    npy::write_f32(dir.join("x.npy"), &[rows, 4], &x).unwrap();
    npy::write_f32(dir.join("y_click.npy"), &[rows, 1], &click).unwrap();
    npy::write_f32(dir.join("y_value.npy"), &[rows], &value).unwrap();
    let text = NPY_CONFIG.replace("validation = 0.0", &format!("validation = {validation:?}"));
    let config = write(&dir, "config.toml", &text);
    (dir, config)
}

/// Loads the config at `path` and its data, returning the error.
fn load_err(path: &Path) -> Error {
    let mut config = Config::load(path).unwrap();
    load_split(&mut config).unwrap_err()
}

/// A small CSV config over `data.csv` with features `a`, `b` and a multiclass task `kind`.
const CSV_CONFIG: &str = r#"[model]
trunk = [4]
activation = "relu"

[[tasks]]
name = "kind"
kind = "multiclass"

[train]
epochs = 1
batch_size = 2

[train.optimizer]
kind = "sgd"
lr = 0.1
momentum = 0.9

[data]
path = "data.csv"
features = ["a", "b"]

[data.targets]
kind = "label"
"#;

// ---------------------------------------------------------------------------------------------
// Config errors
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_key_names_key_and_line() {
    let text = NPY_CONFIG.replace("trunk = [8]", "trnk = [8]");
    let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
    let msg = message(err, is_config);
    assert_contains(&msg, &["c.toml", "unknown field `trnk`", "line 3"]);
}

#[test]
fn unknown_key_in_nested_table_names_line() {
    let text = NPY_CONFIG.replace("lr = 0.001", "lr = 0.001\nbeta3 = 0.5");
    let line = text.lines().position(|l| l.starts_with("beta3")).unwrap() + 1;
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["beta3", &format!("line {line}")]);
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = NPY_CONFIG.replace("epochs = 2", "epochs = \"two\"");
    let line = text.lines().position(|l| l.starts_with("epochs")).unwrap() + 1;
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["epochs", &format!("line {line}"), "invalid type"]);
}

#[test]
fn syntax_error_names_line() {
    let text = NPY_CONFIG.replace("trunk = [8]", "trunk = [8");
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["c.toml", "line "]);
}

#[test]
fn bad_enum_value_names_line() {
    let text = NPY_CONFIG.replace("activation = \"relu\"", "activation = \"rellu\"");
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["rellu", "line 4"]);
}

#[test]
fn target_for_missing_task_is_named() {
    let text = NPY_CONFIG.replace(
        "value = \"y_value.npy\"",
        "value = \"y_value.npy\"\nclicks = \"y.npy\"",
    );
    let line = text.lines().position(|l| l.starts_with("clicks")).unwrap() + 1;
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(
        &msg,
        &[
            "`clicks`",
            "not among the [[tasks]]",
            &format!("line {line}"),
        ],
    );
}

#[test]
fn task_without_target_is_named() {
    let text = NPY_CONFIG.replace("value = \"y_value.npy\"\n", "");
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["task `value`", "[data.targets]"]);
}

#[test]
fn bad_values_name_key_and_line() {
    let cases = [
        ("batch_size = 4", "batch_size = 0", "train.batch_size"),
        ("epochs = 2", "epochs = 0", "train.epochs"),
        ("lr = 0.001", "lr = 0.0", "train.optimizer.lr"),
        ("validation = 0.0", "validation = 1.0", "data.validation"),
        ("trunk = [8]", "trunk = [8, 0]", "model.trunk"),
        ("name = \"value\"", "name = \"va lue\"", "va lue"),
        ("name = \"value\"", "name = \"click\"", "used twice"),
    ];
    for (from, to, needle) in cases {
        let text = NPY_CONFIG.replace(from, to);
        let line = text
            .lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| l.contains(to))
            .unwrap()
            + 1;
        let msg = message(
            Config::parse(&text, Path::new("c.toml")).unwrap_err(),
            is_config,
        );
        assert_contains(&msg, &[needle, &format!("line {line}")]);
    }
}

#[test]
fn multiclass_without_outputs_needs_them_for_npy() {
    let text = NPY_CONFIG.replace("kind = \"binary\"", "kind = \"multiclass\"");
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["task `click`", "outputs"]);
    let text = text.replace(
        "kind = \"multiclass\"",
        "kind = \"multiclass\"\noutputs = 1",
    );
    let msg = message(
        Config::parse(&text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["outputs ≥ 2"]);
}

#[test]
fn no_tasks_is_an_error() {
    let text =
        "[train]\nepochs = 1\nbatch_size = 1\n[train.optimizer]\nkind = \"adam\"\nlr = 0.1\n\
                [data]\nfeatures = \"x.npy\"\n";
    let msg = message(
        Config::parse(text, Path::new("c.toml")).unwrap_err(),
        is_config,
    );
    assert_contains(&msg, &["at least one task"]);
}

#[test]
fn missing_config_file_is_io_error() {
    let dir = temp_dir("missing-config");
    let err = Config::load(dir.join("nope.toml")).unwrap_err();
    assert_contains(&message(err, is_io), &["nope.toml"]);
}

// ---------------------------------------------------------------------------------------------
// Config: the golden configs' forms parse (text copied here, so the test stands on its own)
// ---------------------------------------------------------------------------------------------

#[test]
fn npy_config_parses_with_defaults_and_resolved_paths() {
    let text = NPY_CONFIG.replace("validation = 0.0", "validation = 0.25");
    let c = Config::parse(&text, Path::new("runs/a/config.toml")).unwrap();
    assert_eq!(c.dir, Path::new("runs/a"));
    assert_eq!(c.model.inputs, 4);
    assert_eq!(c.model.trunk(), vec![8]);
    assert_eq!(c.model.activation, Activation::Relu);
    assert_eq!(c.model.tasks.len(), 2);
    assert_eq!(c.model.tasks[1].head, vec![4]);
    assert_eq!(c.model.tasks[0].outputs, 1);
    assert_eq!(c.train.optimizer.kind, OptimizerKind::Adam);
    assert_eq!(c.train.optimizer.style, AdamStyle::Keras);
    assert_eq!(c.train.optimizer.beta1, 0.9);
    assert_eq!(c.train.optimizer.beta2, 0.999);
    assert_eq!(c.train.optimizer.eps, 1e-7);
    assert_eq!(c.train.weighting, Weighting::Fixed);
    assert!(!c.train.shuffle);
    assert_eq!(c.data.validation, 0.25);
    assert_eq!(
        c.data.features,
        FeatureSource::Npy(PathBuf::from("runs/a/x.npy"))
    );
    assert_eq!(
        c.data.targets[1],
        (
            "value".to_string(),
            TargetSource::Npy(PathBuf::from("runs/a/y_value.npy"))
        )
    );
    assert!(
        c.model.members().is_empty() && c.model.ensemble().is_none() && c.model.experts().is_none()
    );
}

#[test]
fn optimizer_defaults_to_keras_adam_and_sgd_lr() {
    let no_optimizer = NPY_CONFIG.replace("[train.optimizer]\nkind = \"adam\"\nlr = 0.001\n", "");
    assert!(!no_optimizer.contains("[train.optimizer]"));
    let c = Config::parse(&no_optimizer, Path::new("c.toml")).unwrap();
    assert_eq!(c.train.optimizer.kind, OptimizerKind::Adam);
    assert_eq!(c.train.optimizer.lr, 0.001);
    assert_eq!(c.train.optimizer.eps, 1e-7);
    let sgd = NPY_CONFIG.replace("kind = \"adam\"\nlr = 0.001", "kind = \"sgd\"");
    let c = Config::parse(&sgd, Path::new("c.toml")).unwrap();
    assert_eq!(c.train.optimizer.kind, OptimizerKind::Sgd);
    assert_eq!(c.train.optimizer.lr, 0.01);
    assert_eq!(c.train.optimizer.momentum, 0.0);
}

#[test]
fn early_stopping_parses_with_defaults() {
    let text = NPY_CONFIG
        .replace("validation = 0.0", "validation = 0.25")
        .replace(
            "[data]\n",
            "[train.early_stopping]\npatience = 4\n\n[data]\n",
        );
    let c = Config::parse(&text, Path::new("c.toml")).unwrap();
    let es = c.train.early_stopping.expect("parsed");
    assert_eq!((es.patience, es.min_delta, es.restore_best), (4, 0.0, true));
    assert!(Config::parse(NPY_CONFIG, Path::new("c.toml"))
        .unwrap()
        .train
        .early_stopping
        .is_none());
}

#[test]
fn bad_early_stopping_is_named_with_its_line() {
    let with = |table: &str, validation: &str| {
        let text = NPY_CONFIG.replace("validation = 0.0", validation).replace(
            "[data]\n",
            &format!("[train.early_stopping]\n{table}\n\n[data]\n"),
        );
        let err = Config::parse(&text, Path::new("c.toml")).unwrap_err();
        message(err, is_config)
    };
    let line = NPY_CONFIG.lines().position(|l| l == "[data]").unwrap() + 1;
    let m = with("patience = 0", "validation = 0.2");
    assert_contains(
        &m,
        &[
            "train.early_stopping.patience",
            &format!("line {}", line + 1),
        ],
    );
    let m = with("patience = 3\nmin_delta = -1.0", "validation = 0.2");
    assert_contains(
        &m,
        &[
            "train.early_stopping.min_delta",
            &format!("line {}", line + 2),
        ],
    );
    let m = with("patience = 3\nmonitor = \"loss\"", "validation = 0.2");
    assert_contains(&m, &["monitor", &format!("line {}", line + 2)]);
    let m = with("patience = 3", "validation = 0.0");
    assert_contains(&m, &["train.early_stopping", "data.validation"]);
}

#[test]
fn ensemble_config_parses() {
    let text = r#"[model]
inputs = 8

[[members]]
name = "m1"
trunk = [8]
activation = "relu"
weights = "m1.safetensors"
trainable = true

[[members]]
name = "m2"
trunk = [6]
activation = "tanh"
weights = "m2.safetensors"
trainable = false

[ensemble]
combine = "stack"

[[tasks]]
name = "y"
kind = "binary"
weight = 1.0
head = []

[train]
epochs = 2
batch_size = 16
shuffle = false
seed = 0

[train.optimizer]
kind = "adam"
lr = 0.001
beta1 = 0.9
beta2 = 0.999
eps = 1e-07

[data]
features = "x.npy"

[data.targets]
y = "y_y.npy"
"#;
    let c = Config::parse(text, Path::new("g/config.toml")).unwrap();
    assert_eq!(c.model.members().len(), 2);
    assert_eq!(c.model.members()[1].name, "m2");
    assert_eq!(c.model.members()[1].activation, Activation::Tanh);
    assert!(!c.model.members()[1].trainable);
    assert_eq!(
        c.model.members()[0].weights,
        Some(PathBuf::from("g/m1.safetensors"))
    );
    assert_eq!(c.model.ensemble().unwrap().combine, Combine::Stack);
    assert!(c.model.trunk().is_empty());
}

#[test]
fn mmoe_config_parses() {
    let text = r#"[model]
inputs = 8
experts = 3
expert = [8]
activation = "relu"

[[tasks]]
name = "click"
kind = "binary"
weight = 1.0
head = []

[[tasks]]
name = "time"
kind = "regression"
weight = 1.0
head = []

[train]
epochs = 2
batch_size = 32
shuffle = false
seed = 0
weighting = "uncertainty"

[train.optimizer]
kind = "adam"
style = "torch"
lr = 0.003
beta1 = 0.9
beta2 = 0.999
eps = 1e-08

[data]
features = "x.npy"

[data.targets]
click = "y_click.npy"
time = "y_time.npy"
"#;
    let c = Config::parse(text, Path::new("config.toml")).unwrap();
    let e = c.model.experts().cloned().unwrap();
    assert_eq!((e.count, e.layers), (3, vec![8]));
    assert_eq!(c.train.weighting, Weighting::Uncertainty);
    assert_eq!(c.train.optimizer.style, AdamStyle::Torch);
    assert_eq!(c.train.optimizer.eps, 1e-8);
    assert_eq!(c.dir, Path::new("."));
}

const PLE_CONFIG: &str = r#"[model]
inputs = 8
shared_experts = 2
task_experts = 1
expert = [16, 8]
activation = "relu"

[[tasks]]
name = "click"
kind = "binary"

[[tasks]]
name = "time"
kind = "regression"

[train]
epochs = 2
batch_size = 32
weighting = "dwa"

[train.optimizer]
kind = "adam"
lr = 0.003

[data]
features = "x.npy"

[data.targets]
click = "y_click.npy"
time = "y_time.npy"
"#;

#[test]
fn ple_config_parses() {
    let c = Config::parse(PLE_CONFIG, Path::new("config.toml")).unwrap();
    let p = c.model.ple().cloned().unwrap();
    assert_eq!((p.shared, p.per_task, p.levels), (2, 1, vec![16, 8]));
    assert!(c.model.experts().is_none() && c.model.experts().is_none());
    assert_eq!(c.train.weighting, Weighting::Dwa);
    assert!(!c.model.log_vars);
}

#[test]
fn bad_ple_keys_are_named_with_their_line() {
    let cases = [
        (
            "task_experts = 1\n",
            "",
            &["shared_experts", "task_experts", "line 3"][..],
        ),
        (
            "task_experts = 1",
            "task_experts = 0",
            &["model.task_experts must be ≥ 1", "line 4"][..],
        ),
        ("expert = [16, 8]\n", "", &["model.expert", "line 3"][..]),
        (
            "task_experts = 1",
            "task_experts = 1\nexperts = 3",
            &["cannot be combined", "line 5"][..],
        ),
    ];
    for (from, to, want) in cases {
        let text = PLE_CONFIG.replacen(from, to, 1);
        let err = Config::parse(&text, Path::new("config.toml")).unwrap_err();
        assert_contains(&err.to_string(), want);
    }
}

// ---------------------------------------------------------------------------------------------
// npy data errors
// ---------------------------------------------------------------------------------------------

#[test]
fn feature_count_differs_from_inputs() {
    let (dir, config) = npy_case("inputs", 6, 0.0);
    npy::write_f32(dir.join("x.npy"), &[6, 3], &[0.5; 18]).unwrap();
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["x.npy", "3 features", "inputs = 4"]);
}

#[test]
fn class_label_out_of_range_names_value_and_row() {
    let (dir, config) = npy_case("class-range", 5, 0.0);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("kind = \"binary\"", "kind = \"multiclass\"\noutputs = 3");
    std::fs::write(&config, text).unwrap();
    npy::write_f32(dir.join("y_click.npy"), &[5], &[0.0, 1.0, 2.0, 3.0, 1.0]).unwrap();
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["y_click.npy", "label 3", "row 3", "0..2"]);
}

#[test]
fn binary_label_outside_zero_one_names_row() {
    let (dir, config) = npy_case("binary-range", 5, 0.0);
    npy::write_f32(
        dir.join("y_click.npy"),
        &[5],
        &[0.0, 1.0, f32::NAN, 0.5, 1.0],
    )
    .unwrap();
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["y_click.npy", "label 0.5", "row 3", "0 or 1"]);
}

#[test]
fn non_finite_feature_names_row_and_column() {
    let (dir, config) = npy_case("non-finite", 3, 0.0);
    let mut x = vec![0.0f32; 12];
    x[4 + 2] = f32::NAN; // row 1, column 2
    npy::write_f32(dir.join("x.npy"), &[3, 4], &x).unwrap();
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["x.npy", "non-finite feature", "row 1", "column 2"]);
}

#[test]
fn target_row_count_differs() {
    let (dir, config) = npy_case("row-count", 6, 0.0);
    npy::write_f32(dir.join("y_value.npy"), &[5, 1], &[0.0; 5]).unwrap();
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["y_value.npy", "5 label rows", "6 rows", "x.npy"]);
}

#[test]
fn missing_data_file_is_io_error_naming_path() {
    let (dir, config) = npy_case("missing-file", 4, 0.0);
    std::fs::remove_file(dir.join("y_value.npy")).unwrap();
    let msg = message(load_err(&config), is_io);
    assert_contains(&msg, &["y_value.npy"]);
}

#[test]
fn not_an_npy_file_is_data_error() {
    let (dir, config) = npy_case("garbage", 4, 0.0);
    write(&dir, "x.npy", "this is not numpy");
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["x.npy", "npy"]);
}

// ---------------------------------------------------------------------------------------------
// CSV data errors
// ---------------------------------------------------------------------------------------------

/// A CSV case: [`CSV_CONFIG`] (after `edit`) and `csv` as data.csv.
fn csv_case(name: &str, csv: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = temp_dir(name);
    write(&dir, "data.csv", csv);
    write(&dir, "config.toml", &edit(CSV_CONFIG.to_string()))
}

#[test]
fn empty_csv_says_no_rows() {
    let config = csv_case("empty-csv", "", |c| c);
    assert_contains(
        &message(load_err(&config), is_data),
        &["data.csv", "no rows"],
    );
    let config = csv_case("header-only-csv", "a,b,label\n", |c| c);
    assert_contains(
        &message(load_err(&config), is_data),
        &["data.csv", "no rows"],
    );
}

#[test]
fn missing_column_lists_available_columns() {
    let config = csv_case("missing-column", "a,bee,label\n1,2,x\n3,4,y\n", |c| c);
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["data.csv", "no column `b`", "a, bee, label"]);
}

#[test]
fn missing_csv_is_io_error() {
    let dir = temp_dir("missing-csv");
    let config = write(&dir, "config.toml", CSV_CONFIG);
    assert_contains(&message(load_err(&config), is_io), &["data.csv"]);
}

#[test]
fn csv_numeric_class_label_out_of_range_names_row() {
    let csv = "a,b,label\n1,2,0\n3,4,1\n5,6,7\n7,8,2\n";
    let config = csv_case("csv-class", csv, |c| {
        c.replace(
            "kind = \"multiclass\"",
            "kind = \"multiclass\"\noutputs = 3",
        )
    });
    let msg = message(load_err(&config), is_data);
    assert_contains(
        &msg,
        &[
            "data.csv",
            "data row 2",
            "line 4",
            "`label`",
            "class label 7",
            "0..2",
        ],
    );
}

#[test]
fn csv_fewer_outputs_than_classes_is_an_error() {
    let csv = "a,b,label\n1,2,x\n3,4,y\n5,6,z\n";
    let config = csv_case("csv-outputs", csv, |c| {
        c.replace(
            "kind = \"multiclass\"",
            "kind = \"multiclass\"\noutputs = 2",
        )
    });
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["`label`", "3 classes", "x, y, z", "outputs = 2"]);
}

#[test]
fn csv_non_number_regression_label_names_row() {
    let csv = "a,b,label\n1,2,0.5\n3,4,heavy\n";
    let config = csv_case("csv-regression", csv, |c| {
        c.replace("\"multiclass\"", "\"regression\"")
    });
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["data row 1", "`label`", "heavy"]);
}

#[test]
fn csv_binary_with_three_values_is_an_error() {
    let csv = "a,b,label\n1,2,x\n3,4,y\n5,6,z\n";
    let config = csv_case("csv-binary", csv, |c| {
        c.replace("\"multiclass\"", "\"binary\"")
    });
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["`label`", "exactly two", "x, y, z"]);
}

#[test]
fn csv_ragged_row_names_line() {
    let csv = "a,b,label\n1,2,x\n3,4\n";
    let config = csv_case("csv-ragged", csv, |c| c);
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["data.csv", "line 3"]);
}

#[test]
fn csv_inputs_mismatch_names_both() {
    let csv = "a,b,label\n1,2,x\n3,4,y\n";
    let config = csv_case("csv-inputs", csv, |c| {
        c.replace("[model]", "[model]\ninputs = 5")
    });
    let msg = message(load_err(&config), is_data);
    assert_contains(&msg, &["data.csv", "2 features", "inputs = 5"]);
}

// ---------------------------------------------------------------------------------------------
// Positive loads
// ---------------------------------------------------------------------------------------------

#[test]
fn npy_loads_without_validation_in_file_order() {
    let (_dir, config_path) = npy_case("npy-ok", 10, 0.0);
    let mut config = Config::load(&config_path).unwrap();
    let split = load_split(&mut config).unwrap();
    assert!(split.valid.is_none() && split.preprocess.is_none());
    let d = split.train;
    assert_eq!((d.rows, d.inputs), (10, 4));
    assert_eq!(d.features[4 * 9 + 3], 39.0 * 0.1);
    assert_eq!(d.targets.len(), 2);
    assert_eq!(
        d.targets[0],
        (0..10).map(|r| (r % 2) as f32).collect::<Vec<_>>()
    );
    assert_eq!(d.targets[1][7], 14.0); // written 1-D, read as [N, 1]
}

#[test]
fn npy_split_is_seeded_and_adds_up() {
    let (_dir, config_path) = npy_case("npy-split", 10, 0.3);
    let mut config = Config::load(&config_path).unwrap();
    let split = load_split(&mut config).unwrap();
    let valid = split.valid.unwrap();
    assert_eq!((split.train.rows, valid.rows), (7, 3));
    // Rows are identifiable by their regression label 2·r: together they are every row once.
    let mut seen: Vec<f32> = split.train.targets[1]
        .iter()
        .chain(&valid.targets[1])
        .copied()
        .collect();
    seen.sort_by(f32::total_cmp);
    assert_eq!(seen, (0..10).map(|r| r as f32 * 2.0).collect::<Vec<_>>());
    let (train, valid_rows) = split_rows(10, 0.3, 0);
    assert_eq!(
        split.train.targets[1],
        train.iter().map(|&r| r as f32 * 2.0).collect::<Vec<_>>()
    );
    assert_eq!(split_rows(10, 0.3, 0), (train, valid_rows.clone()));
    assert_ne!(
        split_rows(10, 0.3, 1).1,
        valid_rows,
        "a different seed draws other rows"
    );
    assert_eq!(
        split_rows(3, 0.01, 0).1.len(),
        1,
        "at least one validation row"
    );
    assert_eq!(
        split_rows(3, 0.99, 0).0.len(),
        1,
        "at least one training row"
    );
}

#[test]
fn npy_dtypes_convert_to_f32() {
    let dir = temp_dir("dtypes");
    let write_as = |name: &str, data: Vec<f64>| {
        npyz::to_file_1d(dir.join(name), data).unwrap();
    };
    write_as("f64.npy", vec![1.5, -2.0]);
    npyz::to_file_1d(dir.join("i64.npy"), vec![3i64, -4]).unwrap();
    npyz::to_file_1d(dir.join("i32.npy"), vec![5i32, 6]).unwrap();
    npyz::to_file_1d(dir.join("u8.npy"), vec![7u8, 8]).unwrap();
    npyz::to_file_1d(dir.join("bool.npy"), vec![true, false]).unwrap();
    let read = |name: &str| npy::read_f32(dir.join(name)).unwrap();
    assert_eq!(read("f64.npy"), (vec![2, 1], vec![1.5, -2.0]));
    assert_eq!(read("i64.npy").1, vec![3.0, -4.0]);
    assert_eq!(read("i32.npy").1, vec![5.0, 6.0]);
    assert_eq!(read("u8.npy").1, vec![7.0, 8.0]);
    assert_eq!(read("bool.npy").1, vec![1.0, 0.0]);
    npy::write_f32(dir.join("m.npy"), &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!(
        read("m.npy"),
        (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
}

/// The penguins example config, loaded from the project's own copy of the data.
fn penguins() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/penguins/penguins.toml");
    Config::load(path).unwrap()
}

#[test]
fn penguins_load_split_and_encode() {
    let mut config = penguins();
    assert_eq!(config.model.inputs, 0, "inputs inferred from the data");
    assert_eq!(
        config.model.tasks[0].outputs, 0,
        "classes inferred from the data"
    );
    let split = load_split(&mut config).unwrap();
    let (train, valid) = (&split.train, split.valid.as_ref().unwrap());
    assert_eq!(
        train.rows + valid.rows,
        342,
        "two rows without measurements dropped"
    );
    assert_eq!(valid.rows, 68, "round(0.2 · 342)");
    assert_eq!(config.model.inputs, 6, "3 numeric + 3 islands");
    assert_eq!(train.inputs, 6);
    assert_eq!(config.model.tasks[0].kind, TaskKind::Multiclass);
    assert_eq!(config.model.tasks[0].outputs, 3);
    let pre = split.preprocess.as_ref().unwrap();
    assert_eq!(
        pre.class_names(0).unwrap(),
        ["Adelie", "Chinstrap", "Gentoo"]
    );
    assert_eq!(pre.class_names(1).unwrap(), ["female", "male"]);
    assert_eq!(pre.class_names(2), None);
    assert_eq!(
        train.feature_names,
        [
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "island=Biscoe",
            "island=Dream",
            "island=Torgersen"
        ]
    );
    // sex: 11 NA in the file, 2 of them in the dropped rows.
    let nan_sex = train.targets[1]
        .iter()
        .chain(&valid.targets[1])
        .filter(|v| v.is_nan())
        .count();
    assert_eq!(nan_sex, 9);
    assert!(train.targets[0]
        .iter()
        .all(|&c| c == 0.0 || c == 1.0 || c == 2.0));
    // Standardised on the training rows: mean ≈ 0, population std ≈ 1 for numeric columns.
    for col in 0..3 {
        let v: Vec<f64> = (0..train.rows)
            .map(|r| f64::from(train.features[r * 6 + col]))
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "column {col}: {mean} {var}"
        );
    }
    // One-hot islands: exactly one 1 per row.
    for r in 0..train.rows {
        assert_eq!(
            train.features[r * 6 + 3..r * 6 + 6].iter().sum::<f32>(),
            1.0
        );
    }
    // Body mass standardised on train, mapped back by unscale_regression.
    let mut mass = train.targets[2].clone();
    let mean = mass.iter().sum::<f32>() / mass.len() as f32;
    assert!(mean.abs() < 1e-4);
    pre.unscale_regression(2, &mut mass);
    assert!(
        mass.iter().all(|&m| (2500.0..=6500.0).contains(&m)),
        "grams again"
    );
}

#[test]
fn penguins_preprocess_round_trips_and_applies() {
    let mut config = penguins();
    let split = load_split(&mut config).unwrap();
    let pre = split.preprocess.unwrap();
    let back = Preprocess::from_json(&pre.to_json()).unwrap();
    assert_eq!(back, pre);
    // eval: every kept row with the stored preprocessing.
    let mut fresh = penguins();
    let all = load_all(&mut fresh, Some(&back)).unwrap();
    assert_eq!((all.rows, all.inputs), (342, 6));
    assert_eq!(fresh.model.tasks[0].outputs, 3);
    assert!(
        load_all(&mut penguins(), None).is_err(),
        "CSV eval needs the stored preprocessing"
    );
    // predict: an unknown island encodes as zeros, a missing number as the mean (0).
    let dir = temp_dir("predict");
    let csv = "island,bill_length_mm,bill_depth_mm,flipper_length_mm\n\
               Dream,40,18,190\nAtlantis,NA,18,190\n";
    let f = back.apply_features(write(&dir, "new.csv", csv)).unwrap();
    assert_eq!((f.rows, f.inputs), (2, 6));
    assert_eq!(&f.data[3..6], &[0.0, 1.0, 0.0]);
    assert_eq!(&f.data[9..12], &[0.0, 0.0, 0.0]);
    assert_eq!(f.data[6], 0.0);
    let err = back
        .apply_features(write(&dir, "bad.csv", "island\nDream\n"))
        .unwrap_err();
    assert_contains(
        &message(err, is_data),
        &["no column `bill_length_mm`", "island"],
    );
}
