//! The bad-input suite: the `tandem` binary given hostile or mistaken input,
//! one line per case. Every case must exit with status 1 (an error) or 2 (a
//! usage error) — never 101 (a panic) or a signal — print a message naming
//! the offending file, key, line, row, column or tensor, and leave every file
//! that existed before byte-identical.
//!
//! A case is: its name, the files of its scratch folder (on top of a valid
//! penguins config, its CSV and Parquet tables, an npy config with its arrays
//! and a trained model), the command line (`{dir}` is the scratch folder), the expected exit
//! status, and the words the message must contain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Case {
    name: &'static str,
    /// Files written into the scratch folder before the run: (name, contents).
    files: &'static [(&'static str, Content)],
    args: &'static [&'static str],
    status: i32,
    says: &'static [&'static str],
}

#[derive(Clone, Copy)]
enum Content {
    Text(&'static str),
    /// The base penguins config with each `from` replaced by its `to`.
    Penguins(&'static [(&'static str, &'static str)]),
    /// The base npy config with `from` replaced by `to`.
    NpyConfig(&'static str, &'static str),
    /// The penguins CSV with `from` replaced by `to` (first occurrence).
    Csv(&'static str, &'static str),
    /// Raw bytes.
    Bytes(&'static [u8]),
    /// The trained model file with its first occurrence of `from` replaced by `to`
    /// (same length, so the header stays consistent).
    Model(&'static str, &'static str),
}

use Content::*;

const PENGUINS: &str = r#"[model]
trunk = [8]
activation = "relu"

[[tasks]]
name = "species"
kind = "multiclass"
weight = 1.0

[[tasks]]
name = "sex"
kind = "binary"
weight = 1.0

[train]
epochs = 1
batch_size = 16
seed = 0

[data]
path = "penguins.csv"
features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "island"]
validation = 0.2

[data.targets]
species = "species"
sex = "sex"
"#;

const NPY_CONFIG: &str = r#"[model]
inputs = 3
trunk = [4]
activation = "tanh"

[[tasks]]
name = "click"
kind = "binary"
weight = 1.0

[train]
epochs = 1
batch_size = 4

[data]
features = "x.npy"
[data.targets]
click = "y.npy"
"#;

/// A config over tests/fixtures/parquet's small table (columns x, n, label).
const SMALL_PARQUET: &str = "[model]\ntrunk = [4]\nactivation = \"relu\"\n[[tasks]]\nname = \"label\"\nkind = \"binary\"\n[train]\nepochs = 1\nbatch_size = 2\n[data]\npath = \"small.parquet\"\nfeatures = [\"x\", \"n\"]\n[data.targets]\nlabel = \"label\"\n";

/// A config whose feature is the list column of tests/fixtures/parquet/unsupported.parquet.
const LIST_PARQUET: &str = "[model]\ntrunk = [4]\nactivation = \"relu\"\n[[tasks]]\nname = \"ok\"\nkind = \"regression\"\n[train]\nepochs = 1\nbatch_size = 2\n[data]\npath = \"small.parquet\"\nfeatures = [\"tags\"]\n[data.targets]\nok = \"ok\"\n";

/// A config whose feature is the timestamp column of tests/fixtures/parquet/unsupported.parquet.
const TIMESTAMP_PARQUET: &str = "[model]\ntrunk = [4]\nactivation = \"relu\"\n[[tasks]]\nname = \"ok\"\nkind = \"regression\"\n[train]\nepochs = 1\nbatch_size = 2\n[data]\npath = \"small.parquet\"\nfeatures = [\"when\"]\n[data.targets]\nok = \"ok\"\n";

/// Every case. Keep one line of intent per case; add new ones at the end of their group.
const CASES: &[Case] = &[
    // --- config: syntax, keys, types, values -----------------------------------------------
    c("config missing", &[], &["train", "{dir}/nope.toml"], 1, &["nope.toml"]),
    c("config is a folder", &[], &["train", "{dir}"], 1, &["tandem-bad"]),
    c("config empty", &[("run.toml", Text(""))], &["train", "{dir}/run.toml"], 1, &["run.toml"]),
    c("config syntax error", &[("run.toml", Penguins(&[("[model]", "[model")]))], &["train", "{dir}/run.toml"], 1, &["run.toml", "line 1"]),
    c("config binary garbage", &[("run.toml", Bytes(b"\xff\xfe\x00\x01"))], &["train", "{dir}/run.toml"], 1, &["run.toml"]),
    c("unknown top-level table", &[("run.toml", Penguins(&[("[train]", "[trian]")]))], &["train", "{dir}/run.toml"], 1, &["trian"]),
    c("unknown model key", &[("run.toml", Penguins(&[("trunk = [8]", "trunks = [8]")]))], &["train", "{dir}/run.toml"], 1, &["trunks", "line 2"]),
    c("unknown task key", &[("run.toml", Penguins(&[("weight = 1.0\n\n[[tasks]]\nname = \"sex\"", "wieght = 1.0\n\n[[tasks]]\nname = \"sex\"")]))], &["train", "{dir}/run.toml"], 1, &["wieght"]),
    c("unknown train key", &[("run.toml", Penguins(&[("epochs = 1", "epoch = 1")]))], &["train", "{dir}/run.toml"], 1, &["epoch"]),
    c("unknown data key", &[("run.toml", Penguins(&[("validation = 0.2", "valdation = 0.2")]))], &["train", "{dir}/run.toml"], 1, &["valdation"]),
    c("trunk not a list", &[("run.toml", Penguins(&[("trunk = [8]", "trunk = 8")]))], &["train", "{dir}/run.toml"], 1, &["trunk", "line 2"]),
    c("trunk width zero", &[("run.toml", Penguins(&[("trunk = [8]", "trunk = [0]")]))], &["train", "{dir}/run.toml"], 1, &["trunk"]),
    c("trunk width negative", &[("run.toml", Penguins(&[("trunk = [8]", "trunk = [-3]")]))], &["train", "{dir}/run.toml"], 1, &["trunk"]),
    c("activation unknown", &[("run.toml", Penguins(&[("activation = \"relu\"", "activation = \"gelu2\"")]))], &["train", "{dir}/run.toml"], 1, &["activation", "line 3"]),
    c("task kind unknown", &[("run.toml", Penguins(&[("kind = \"binary\"", "kind = \"binomial\"")]))], &["train", "{dir}/run.toml"], 1, &["kind"]),
    c("task name with space", &[("run.toml", Penguins(&[("name = \"sex\"", "name = \"s x\"")]))], &["train", "{dir}/run.toml"], 1, &["s x"]),
    c("task names repeat", &[("run.toml", Penguins(&[("name = \"sex\"", "name = \"species\"")]))], &["train", "{dir}/run.toml"], 1, &["species"]),
    c("task weight negative", &[("run.toml", Penguins(&[("weight = 1.0\n\n[[tasks]]\nname = \"sex\"", "weight = -1.0\n\n[[tasks]]\nname = \"sex\"")]))], &["train", "{dir}/run.toml"], 1, &["weight"]),
    c("task weight not a number", &[("run.toml", Penguins(&[("weight = 1.0\n\n[[tasks]]\nname = \"sex\"", "weight = \"one\"\n\n[[tasks]]\nname = \"sex\"")]))], &["train", "{dir}/run.toml"], 1, &["weight"]),
    c("no tasks", &[("run.toml", Text("[model]\ntrunk = [4]\n[data]\nfeatures = \"x.npy\"\n"))], &["train", "{dir}/run.toml"], 1, &["task"]),
    c("epochs zero", &[("run.toml", Penguins(&[("epochs = 1", "epochs = 0")]))], &["train", "{dir}/run.toml"], 1, &["epochs"]),
    c("epochs negative", &[("run.toml", Penguins(&[("epochs = 1", "epochs = -5")]))], &["train", "{dir}/run.toml"], 1, &["epochs"]),
    c("batch size zero", &[("run.toml", Penguins(&[("batch_size = 16", "batch_size = 0")]))], &["train", "{dir}/run.toml"], 1, &["batch_size"]),
    c("batch size a float", &[("run.toml", Penguins(&[("batch_size = 16", "batch_size = 1.5")]))], &["train", "{dir}/run.toml"], 1, &["batch_size"]),
    c("seed negative", &[("run.toml", Penguins(&[("seed = 0", "seed = -1")]))], &["train", "{dir}/run.toml"], 1, &["seed"]),
    c("validation above one", &[("run.toml", Penguins(&[("validation = 0.2", "validation = 1.5")]))], &["train", "{dir}/run.toml"], 1, &["validation"]),
    c("validation negative", &[("run.toml", Penguins(&[("validation = 0.2", "validation = -0.1")]))], &["train", "{dir}/run.toml"], 1, &["validation"]),
    c("optimizer kind unknown", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nkind = \"lion\"\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["kind"]),
    c("learning rate zero", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nlr = 0.0\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["lr"]),
    c("learning rate negative", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nlr = -0.1\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["lr"]),
    c("beta1 of one", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nbeta1 = 1.0\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["beta1"]),
    c("eps zero", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\neps = 0.0\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["eps"]),
    c("momentum with adam", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nkind = \"adam\"\nmomentum = 0.9\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["momentum"]),
    c("adam style unknown", &[("run.toml", Penguins(&[("[data]\n", "[train.optimizer]\nstyle = \"jax\"\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["style"]),
    c("weighting unknown", &[("run.toml", Penguins(&[("seed = 0", "seed = 0\nweighting = \"magic\"")]))], &["train", "{dir}/run.toml"], 1, &["weighting"]),
    c("gradnorm alpha without gradnorm", &[("run.toml", Penguins(&[("seed = 0", "seed = 0\ngradnorm_alpha = 1.5")]))], &["train", "{dir}/run.toml"], 1, &["gradnorm_alpha"]),
    c("early stopping without validation", &[("run.toml", Penguins(&[("validation = 0.2", "validation = 0.0"), ("seed = 0", "seed = 0\n\n[train.early_stopping]\npatience = 2")]))], &["train", "{dir}/run.toml"], 1, &["early_stopping"]),
    c("patience zero", &[("run.toml", Penguins(&[("[data]\n", "[train.early_stopping]\npatience = 0\n\n[data]\n")]))], &["train", "{dir}/run.toml"], 1, &["patience"]),
    c("experts zero", &[("run.toml", Penguins(&[("trunk = [8]", "experts = 0\nexpert = [4]")]))], &["train", "{dir}/run.toml"], 1, &["experts"]),
    c("experts with trunk", &[("run.toml", Penguins(&[("trunk = [8]", "trunk = [8]\nexperts = 2\nexpert = [4]")]))], &["train", "{dir}/run.toml"], 1, &["trunk"]),
    c("expert layers empty", &[("run.toml", Penguins(&[("trunk = [8]", "experts = 2\nexpert = []")]))], &["train", "{dir}/run.toml"], 1, &["expert"]),
    c("ple without task experts", &[("run.toml", Penguins(&[("trunk = [8]", "shared_experts = 1\nexpert = [4]")]))], &["train", "{dir}/run.toml"], 1, &["task_experts"]),
    c("ensemble without members", &[("run.toml", Penguins(&[("[train]", "[ensemble]\ncombine = \"stack\"\n\n[train]")]))], &["train", "{dir}/run.toml"], 1, &["members"]),
    c("ensemble combine unknown", &[("run.toml", Text("[model]\ninputs = 3\n[[members]]\nname = \"a\"\ntrunk = [2]\nactivation = \"relu\"\n[ensemble]\ncombine = \"vote\"\n[[tasks]]\nname = \"click\"\nkind = \"binary\"\n[train]\nepochs = 1\nbatch_size = 4\n[data]\nfeatures = \"x.npy\"\n[data.targets]\nclick = \"y.npy\"\n"))], &["train", "{dir}/run.toml"], 1, &["combine"]),
    c("member weights missing", &[("run.toml", Text("[model]\ninputs = 3\n[[members]]\nname = \"a\"\ntrunk = [2]\nactivation = \"relu\"\nweights = \"gone.safetensors\"\n[ensemble]\ncombine = \"mean\"\n[[tasks]]\nname = \"click\"\nkind = \"binary\"\n[train]\nepochs = 1\nbatch_size = 4\n[data]\nfeatures = \"x.npy\"\n[data.targets]\nclick = \"y.npy\"\n"))], &["train", "{dir}/run.toml"], 1, &["gone.safetensors"]),
    c("member names repeat", &[("run.toml", Text("[model]\ninputs = 3\n[[members]]\nname = \"a\"\ntrunk = [2]\nactivation = \"relu\"\n[[members]]\nname = \"a\"\ntrunk = [2]\nactivation = \"relu\"\n[ensemble]\ncombine = \"mean\"\n[[tasks]]\nname = \"click\"\nkind = \"binary\"\n[train]\nepochs = 1\nbatch_size = 4\n[data]\nfeatures = \"x.npy\"\n[data.targets]\nclick = \"y.npy\"\n"))], &["train", "{dir}/run.toml"], 1, &["`a`", "line 8"]),
    // --- CSV data ----------------------------------------------------------------------------
    c("csv missing", &[("run.toml", Penguins(&[("penguins.csv", "gone.csv")]))], &["train", "{dir}/run.toml"], 1, &["gone.csv"]),
    c("csv feature column missing", &[("run.toml", Penguins(&[("\"island\"]", "\"iland\"]")]))], &["train", "{dir}/run.toml"], 1, &["iland"]),
    c("csv target column missing", &[("run.toml", Penguins(&[("sex = \"sex\"", "sex = \"gender\"")]))], &["train", "{dir}/run.toml"], 1, &["gender"]),
    c("csv target for unknown task", &[("run.toml", Penguins(&[("sex = \"sex\"", "sex = \"sex\"\nmass = \"body_mass_g\"")]))], &["train", "{dir}/run.toml"], 1, &["mass"]),
    c("csv task without target", &[("run.toml", Penguins(&[("sex = \"sex\"\n", "")]))], &["train", "{dir}/run.toml"], 1, &["sex"]),
    c("csv empty file", &[("penguins.csv", Text(""))], &["train", "{dir}/run.toml"], 1, &["penguins.csv"]),
    c("csv header only", &[("penguins.csv", Text("species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year\n"))], &["train", "{dir}/run.toml"], 1, &["penguins.csv"]),
    c("csv ragged row", &[("penguins.csv", Csv("Adelie,Torgersen,39.1,18.7,181,3750,male,2007", "Adelie,Torgersen,39.1"))], &["train", "{dir}/run.toml"], 1, &["penguins.csv", "line 2"]),
    c("csv binary target with three values", &[("penguins.csv", Csv("Adelie,Torgersen,39.1,18.7,181,3750,male,2007", "Adelie,Torgersen,39.1,18.7,181,3750,other,2007"))], &["train", "{dir}/run.toml"], 1, &["sex"]),
    // --- Parquet data ------------------------------------------------------------------------
    c("parquet missing", &[("run.toml", Penguins(&[("penguins.csv", "gone.parquet")]))], &["train", "{dir}/run.toml"], 1, &["gone.parquet"]),
    c("parquet not parquet", &[("run.toml", Penguins(&[("penguins.csv", "bad.parquet")])), ("bad.parquet", Text("PAR1 and nothing else"))], &["train", "{dir}/run.toml"], 1, &["bad.parquet", "not a readable Parquet file"]),
    c("parquet feature column missing", &[("run.toml", Penguins(&[("penguins.csv", "penguins.parquet"), ("\"island\"]", "\"iland\"]")]))], &["train", "{dir}/run.toml"], 1, &["penguins.parquet", "iland"]),
    c("parquet pattern matches nothing", &[("run.toml", Penguins(&[("penguins.csv", "part-*.parquet")]))], &["train", "{dir}/run.toml"], 1, &["part-*.parquet", "no file matches"]),
    c("parquet zstd codec", &[("run.toml", Text(SMALL_PARQUET)), ("small.parquet", Bytes(include_bytes!("fixtures/parquet/zstd.parquet")))], &["train", "{dir}/run.toml"], 1, &["small.parquet", "ZSTD"]),
    c("parquet list column", &[("run.toml", Text(LIST_PARQUET)), ("small.parquet", Bytes(include_bytes!("fixtures/parquet/unsupported.parquet")))], &["train", "{dir}/run.toml"], 1, &["small.parquet", "`tags`", "a list"]),
    c("parquet timestamp feature", &[("run.toml", Text(TIMESTAMP_PARQUET)), ("small.parquet", Bytes(include_bytes!("fixtures/parquet/unsupported.parquet")))], &["train", "{dir}/run.toml"], 1, &["small.parquet", "`when`", "Timestamp"]),
    // --- npy data ----------------------------------------------------------------------------
    c("npy features missing", &[("npy.toml", NpyConfig("x.npy", "gone.npy"))], &["train", "{dir}/npy.toml"], 1, &["gone.npy"]),
    c("npy not an array", &[("x.npy", Text("not numpy at all"))], &["train", "{dir}/npy.toml"], 1, &["x.npy"]),
    c("npy truncated", &[("x.npy", Bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (8, 3), }"))], &["train", "{dir}/npy.toml"], 1, &["x.npy"]),
    c("npy unsupported dtype", &[("x.npy", Bytes(b"\x93NUMPY\x01\x00\x76\x00{'descr': '<c8', 'fortran_order': False, 'shape': (1, 1), }                                              \n\0\0\0\0\0\0\0\0"))], &["train", "{dir}/npy.toml"], 1, &["x.npy"]),
    c("npy inputs disagree", &[("npy.toml", NpyConfig("inputs = 3", "inputs = 5"))], &["train", "{dir}/npy.toml"], 1, &["inputs"]),
    c("npy target rows differ", &[("npy.toml", NpyConfig("y.npy", "y_short.npy"))], &["train", "{dir}/npy.toml"], 1, &["y_short.npy"]),
    c("npy label outside 0..1", &[("npy.toml", NpyConfig("y.npy", "y_bad.npy"))], &["train", "{dir}/npy.toml"], 1, &["y_bad.npy"]),
    c("npy NaN feature", &[("npy.toml", NpyConfig("x.npy", "x_nan.npy"))], &["train", "{dir}/npy.toml"], 1, &["x_nan.npy", "row"]),
    c("data stream not a mode", &[("npy.toml", NpyConfig("features = \"x.npy\"", "features = \"x.npy\"\nstream = \"sometimes\""))], &["train", "{dir}/npy.toml"], 1, &["data.stream", "line"]),
    c("data memory budget not a size", &[("npy.toml", NpyConfig("features = \"x.npy\"", "features = \"x.npy\"\nmemory_budget = \"lots\""))], &["train", "{dir}/npy.toml"], 1, &["data.memory_budget", "line"]),
    c("data shard rows zero", &[("npy.toml", NpyConfig("features = \"x.npy\"", "features = \"x.npy\"\nshard_rows = 0"))], &["train", "{dir}/npy.toml"], 1, &["data.shard_rows", "line"]),
    c("npy NaN feature, streamed", &[("npy.toml", NpyConfig("features = \"x.npy\"", "features = \"x_nan.npy\"\nstream = true\nshard_rows = 4"))], &["train", "{dir}/npy.toml"], 1, &["x_nan.npy", "row"]),
    c("npy multiclass without outputs", &[("npy.toml", NpyConfig("kind = \"binary\"", "kind = \"multiclass\""))], &["train", "{dir}/npy.toml"], 1, &["outputs"]),
    // --- model files: predict, eval, inspect, --init -----------------------------------------
    c("predict model missing", &[], &["predict", "{dir}/gone.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["gone.safetensors"]),
    c("predict model not safetensors", &[("m.safetensors", Text("hello"))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["m.safetensors"]),
    c("predict model empty", &[("m.safetensors", Text(""))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["m.safetensors"]),
    c("predict model header length huge", &[("m.safetensors", Bytes(b"\xff\xff\xff\xff\xff\xff\xff\x7f{}"))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["m.safetensors"]),
    c("predict model without spec", &[("m.safetensors", Bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}"))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["m.safetensors"]),
    c("predict model tensor renamed", &[("m.safetensors", Model("trunk.0.weight", "trunk.9.weight"))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["trunk"]),
    c("predict model spec format unknown", &[("m.safetensors", Model("tandem-2", "tandem-9"))], &["predict", "{dir}/m.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["tandem-9"]),
    c("predict features missing", &[], &["predict", "{dir}/model.safetensors", "--features", "{dir}/gone.npy", "--out", "{dir}/p.csv"], 1, &["gone.npy"]),
    c("predict features wrong width", &[], &["predict", "{dir}/model.safetensors", "--features", "{dir}/x.npy", "--out", "{dir}/p.csv"], 1, &["x.npy"]),
    c("predict parquet not parquet", &[("x.parquet", Text("PAR1"))], &["predict", "{dir}/model.safetensors", "--features", "{dir}/x.parquet", "--out", "{dir}/p.csv"], 1, &["x.parquet"]),
    c("predict csv column missing", &[("few.csv", Text("species,island\nAdelie,Dream\n"))], &["predict", "{dir}/model.safetensors", "--features", "{dir}/few.csv", "--out", "{dir}/p.csv"], 1, &["bill_length_mm"]),
    c("predict parquet column missing", &[("few.parquet", Bytes(include_bytes!("fixtures/parquet/plain.parquet")))], &["predict", "{dir}/model.safetensors", "--features", "{dir}/few.parquet", "--out", "{dir}/p.csv"], 1, &["few.parquet", "bill_length_mm"]),
    c("eval model missing", &[], &["eval", "{dir}/gone.safetensors", "--data", "{dir}/run.toml"], 1, &["gone.safetensors"]),
    c("eval config missing", &[], &["eval", "{dir}/model.safetensors", "--data", "{dir}/gone.toml"], 1, &["gone.toml"]),
    c("eval parquet not parquet", &[("run.toml", Penguins(&[("penguins.csv", "bad.parquet")])), ("bad.parquet", Bytes(b"PAR1\x00\x00PAR1"))], &["eval", "{dir}/model.safetensors", "--data", "{dir}/run.toml"], 1, &["bad.parquet"]),
    c("inspect model missing", &[], &["inspect", "{dir}/gone.safetensors", "--data", "{dir}/run.toml"], 1, &["gone.safetensors"]),
    c("init missing", &[], &["train", "{dir}/run.toml", "--init", "{dir}/gone.safetensors"], 1, &["gone.safetensors"]),
    c("init not safetensors", &[("init.safetensors", Text("nope"))], &["train", "{dir}/run.toml", "--init", "{dir}/init.safetensors"], 1, &["init.safetensors"]),
    c("init from another model", &[], &["train", "{dir}/npy.toml", "--init", "{dir}/model.safetensors"], 1, &["model.safetensors"]),
    // --- CLI misuse -----------------------------------------------------------------------------
    c("no subcommand", &[], &[], 2, &["Usage"]),
    c("unknown subcommand", &[], &["fit", "{dir}/run.toml"], 2, &["fit"]),
    c("unknown flag", &[], &["train", "{dir}/run.toml", "--epochs", "3"], 2, &["--epochs"]),
    c("backend unknown", &[], &["train", "{dir}/run.toml", "--backend", "tpu"], 1, &["tpu"]),
    c("predict without out", &[], &["predict", "{dir}/model.safetensors", "--features", "{dir}/x.npy"], 2, &["--out"]),
    c("eval without data", &[], &["eval", "{dir}/model.safetensors"], 2, &["--data"]),
    c("train out is a folder", &[], &["train", "{dir}/run.toml", "--backend", "cpu", "--out", "{dir}"], 1, &["tandem-bad"]),
    c("train out folder missing", &[], &["train", "{dir}/run.toml", "--backend", "cpu", "--out", "{dir}/no/such/m.safetensors"], 1, &["no/such"]),
];

/// Builder for one table row.
const fn c(
    name: &'static str,
    files: &'static [(&'static str, Content)],
    args: &'static [&'static str],
    status: i32,
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        files,
        args,
        status,
        says,
    }
}

/// The valid files every case starts from, made once: configs, data and a trained model.
fn base() -> &'static BTreeMap<String, Vec<u8>> {
    static BASE: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    BASE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("tandem-bad-base-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let csv = std::fs::read(root.join("examples/penguins/penguins.csv")).unwrap();
        std::fs::write(dir.join("penguins.csv"), &csv).unwrap();
        let parquet = std::fs::read(root.join("examples/penguins/penguins.parquet")).unwrap();
        std::fs::write(dir.join("penguins.parquet"), &parquet).unwrap();
        std::fs::write(dir.join("run.toml"), PENGUINS).unwrap();
        std::fs::write(dir.join("npy.toml"), NPY_CONFIG).unwrap();
        let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..8).map(|i| (i % 2) as f32).collect();
        let npy = |name: &str, shape: &[usize], data: &[f32]| {
            tandem::io::npy::write_f32(dir.join(name), shape, data).unwrap()
        };
        npy("x.npy", &[8, 3], &x);
        npy("y.npy", &[8, 1], &y);
        npy("y_short.npy", &[5, 1], &y[..5]);
        let mut y_bad = y.clone();
        y_bad[3] = 7.0;
        npy("y_bad.npy", &[8, 1], &y_bad);
        let mut x_nan = x.clone();
        x_nan[7] = f32::NAN;
        npy("x_nan.npy", &[8, 3], &x_nan);
        let out = run(
            &dir,
            &[
                "train",
                "{dir}/run.toml",
                "--backend",
                "cpu",
                "--quiet",
                "--out",
                "{dir}/model.safetensors",
            ],
        );
        assert!(
            out.status.success(),
            "the base model trains: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read(&p).unwrap());
        }
        let _ = std::fs::remove_dir_all(&dir);
        files
    })
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let d = dir.to_str().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", d)).collect();
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(&args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .expect("the tandem binary runs")
}

fn replace_first(text: &[u8], from: &str, to: &str, what: &str) -> Vec<u8> {
    let hay = String::from_utf8_lossy(text);
    assert!(
        hay.contains(from),
        "{what}: `{from}` is not in the base file"
    );
    hay.replacen(from, to, 1).into_bytes()
}

fn bytes_of(content: Content, base: &BTreeMap<String, Vec<u8>>, what: &str) -> Vec<u8> {
    match content {
        Text(t) => t.as_bytes().to_vec(),
        Bytes(b) => b.to_vec(),
        Penguins(edits) => edits
            .iter()
            .fold(base["run.toml"].clone(), |text, (from, to)| {
                replace_first(&text, from, to, what)
            }),
        NpyConfig(from, to) => replace_first(&base["npy.toml"], from, to, what),
        Csv(from, to) => replace_first(&base["penguins.csv"], from, to, what),
        Model(from, to) => {
            assert_eq!(
                from.len(),
                to.len(),
                "{what}: a model edit keeps the length"
            );
            let m = &base["model.safetensors"];
            let at = m
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap_or_else(|| panic!("{what}: `{from}` is not in the model file"));
            let mut v = m.clone();
            v[at..at + to.len()].copy_from_slice(to.as_bytes());
            v
        }
    }
}

/// Runs one case in its own scratch folder; returns what went wrong, if anything.
fn check(case: &Case) -> Option<String> {
    let base = base();
    let dir: PathBuf = std::env::temp_dir()
        .join(format!("tandem-bad-{}", std::process::id()))
        .join(case.name.replace(' ', "-"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in base {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    for (name, content) in case.files {
        std::fs::write(dir.join(name), bytes_of(*content, base, case.name)).unwrap();
    }
    let before: BTreeMap<PathBuf, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let out = run(&dir, case.args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut wrong = Vec::new();
    match out.status.code() {
        Some(code) if code == case.status => {}
        Some(code) => wrong.push(format!("exit status {code}, expected {}", case.status)),
        None => wrong.push("killed by a signal".to_string()),
    }
    if err.contains("panicked") {
        wrong.push("panicked".to_string());
    }
    for word in case.says {
        if !err.contains(word) {
            wrong.push(format!("message lacks `{word}`"));
        }
    }
    for (path, bytes) in &before {
        if std::fs::read(path).ok().as_ref() != Some(bytes) {
            wrong.push(format!("{} changed", path.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (!wrong.is_empty()).then(|| {
        format!(
            "{}: {}\n    stderr: {}",
            case.name,
            wrong.join("; "),
            err.trim()
        )
    })
}

#[test]
fn every_bad_input_gets_a_clear_error_and_loses_nothing() {
    let failures: Vec<String> = CASES.iter().filter_map(check).collect();
    println!(
        "bad input: {} cases, {} failed",
        CASES.len(),
        failures.len()
    );
    assert!(CASES.len() >= 80, "the suite has {} cases", CASES.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
