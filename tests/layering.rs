//! The dependency direction of `src/`, checked by reading the sources.
//!
//! Each module may use only the modules listed for it in `LAYERS` (and its
//! own submodules). The table is the map in docs/ARCHITECTURE.md: a change
//! that makes, say, the model import the trainer, or the CPU kernels import
//! the model, fails here with the file and line of the offending path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module → the modules it may use. A file belongs to the longest module
/// path in this table that prefixes its own (`train::config` before `train`).
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("files", &["error"]),
    ("kernel", &["error"]),
    ("ops", &["kernel", "error"]),
    ("backend", &["ops", "kernel", "error"]),
    ("cpu", &["backend", "ops", "kernel", "error"]),
    ("gpu", &["backend", "ops", "kernel", "error"]),
    (
        "backend::select",
        &["backend", "cpu", "gpu", "ops", "kernel", "error"],
    ),
    ("model::spec", &["kernel", "error"]),
    ("data", &["model::spec", "error"]),
    (
        "model",
        &["model::spec", "backend", "ops", "kernel", "files", "error"],
    ),
    ("train::config", &["error"]),
    ("train::collective", &["error"]),
    ("dist", &["train::collective", "error"]),
    (
        "train",
        &[
            "train::config",
            "train::collective",
            "model",
            "model::spec",
            "data",
            "backend",
            "backend::select",
            "cpu",
            "gpu",
            "ops",
            "kernel",
            "error",
        ],
    ),
    (
        "io",
        &[
            "train::config",
            "model::spec",
            "data",
            "kernel",
            "files",
            "error",
        ],
    ),
];

/// The module a path like `train::config::TrainConfig` falls in.
fn layer_of(path: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| path == *m || path.starts_with(&format!("{m}::")))
        .max_by_key(|m| m.len())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/model/arch/ple.rs` → `model::arch::ple`; `mod.rs` names its folder.
fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Names the crate root re-exports (`pub use model::{Model, …}`), by module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let flat = lib.replace('\n', " ");
    for stmt in flat.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (module, list) = match rest.split_once("::{") {
            Some((m, l)) => (m.trim(), l.trim_end_matches('}').to_string()),
            None => match rest.rsplit_once("::") {
                Some((m, n)) => (m.trim(), n.to_string()),
                None => continue,
            },
        };
        for name in list.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                names.insert(name.to_string(), module.to_string());
            }
        }
    }
    names
}

/// Every `crate::a::b…` path a line names, with `use crate::{a, b::c}` groups
/// expanded one level (enough to find each path's first module).
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let body = group.split('}').next().unwrap_or("");
            for item in body.split(',') {
                let item = item.trim().trim_start_matches('{');
                if !item.is_empty() {
                    out.push(item.split(['{', ' ']).next().unwrap().to_string());
                }
            }
        } else {
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
        }
        rest = &after[1.min(after.len())..];
    }
    out
}

/// Every `super::…` path a line names, resolved against the file's module.
fn super_paths(module: &str, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let mut after = &rest[at..];
        let mut parts: Vec<&str> = module.split("::").collect();
        while let Some(tail) = after.strip_prefix("super::") {
            parts.pop();
            after = tail;
        }
        let path: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':');
        if !path.is_empty() {
            parts.push(path);
        }
        out.push(parts.join("::"));
        rest = after;
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_path(&src, file);
        if module == "lib" || module.starts_with("bin") {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "{}: module `{module}` is in no layer of tests/layering.rs",
                file.display()
            ));
            continue;
        };
        let allowed = LAYERS.iter().find(|(m, _)| *m == own).unwrap().1;
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let relative = super_paths(&module, code).into_iter().map(|p| (p, true));
            let absolute = crate_paths(code).into_iter().map(|p| (p, false));
            for (path, from_super) in absolute.chain(relative) {
                let first = path.split("::").next().unwrap_or("");
                // `crate::Model` → the module the root re-exports it from.
                let full = match reexports.get(first) {
                    Some(m) if !from_super => format!("{m}::{path}"),
                    _ => path.clone(),
                };
                let Some(target) = layer_of(&full) else {
                    problems.push(format!(
                        "{}:{}: `crate::{path}` is in no layer",
                        file.display(),
                        n + 1
                    ));
                    continue;
                };
                checked += 1;
                if target != own && !allowed.contains(&target) {
                    problems.push(format!(
                        "{}:{}: `{own}` uses `crate::{path}` (layer `{target}`), \
                         but may use only {allowed:?}",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} crate paths found: the scan is broken"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_reads_paths_and_groups() {
    assert_eq!(crate_paths("use crate::ops::{BufId, Op};"), ["ops"]);
    assert_eq!(
        super_paths("model::arch::ple", "use super::super::spec::TaskKind;"),
        ["model::spec::TaskKind"]
    );
    assert_eq!(
        crate_paths("use crate::{Error, model::spec::TaskKind};"),
        ["Error", "model::spec::TaskKind"]
    );
    assert_eq!(layer_of("train::config::Weighting"), Some("train::config"));
    assert_eq!(layer_of("train::fit"), Some("train"));
    assert_eq!(layer_of("model::spec"), Some("model::spec"));
    assert_eq!(layer_of("modelx"), None);
}
