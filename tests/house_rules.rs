//! The house rules of `src/` that a reviewer would otherwise check by eye:
//! no file over 600 lines, no function over 120 lines outside tests, and no
//! comment that sends the reader to a document outside the repository.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 120;

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

fn src_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    assert!(
        files.len() > 20,
        "src/ has only {} files: the scan is broken",
        files.len()
    );
    files
}

/// The code of a line without string or char literals and `//` comments, so
/// that braces inside them do not count.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            '\'' if !in_str => {
                // A char literal ('{', '\n') or a lifetime ('a): skip a literal only.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            _ if !in_str => out.push(c),
            _ => {}
        }
    }
    out
}

/// `(name, first line, length)` of every `fn` with a body outside `#[cfg(test)]` modules.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let mut out = Vec::new();
    let mut test_from = usize::MAX;
    for (i, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with("#[cfg(test)]") {
            test_from = test_from.min(i);
        }
        let code = &lines[i];
        let Some(at) = code.find("fn ") else { continue };
        let before = &code[..at];
        let is_item = before.split_whitespace().all(|w| {
            matches!(w, "pub" | "const" | "unsafe" | "async" | "extern") || w.starts_with("pub(")
        });
        if !is_item || i >= test_from {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i32, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration without a body (trait method)
            }
            if opened && depth <= 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    out
}

#[test]
fn no_file_over_600_lines() {
    let long: Vec<String> = src_files()
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines (split them by job):\n{}",
        long.join("\n")
    );
}

#[test]
fn no_function_over_120_lines_outside_tests() {
    let mut long = Vec::new();
    let mut seen = 0;
    for f in src_files() {
        for (name, line, len) in functions(&std::fs::read_to_string(&f).unwrap()) {
            seen += 1;
            if len > MAX_FN_LINES {
                long.push(format!("{}:{line}: fn {name} is {len} lines", f.display()));
            }
        }
    }
    assert!(
        seen > 200,
        "only {seen} functions found: the scan is broken"
    );
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them into named steps):\n{}",
        long.join("\n")
    );
}

#[test]
fn no_comment_cites_a_document_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = src_files();
    for dir in ["tests", "examples", "shaders"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut wgsl = Vec::new();
    for entry in std::fs::read_dir(root.join("shaders")).unwrap() {
        wgsl.push(entry.unwrap().path());
    }
    files.extend(wgsl);
    let this = Path::new(file!()).file_name().unwrap();
    let cites: Vec<String> = files
        .iter()
        .filter(|f| f.file_name() != Some(this))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("DESIGN.md") || l.contains("../shared"))
                .map(|(i, l)| format!("{}:{}: {}", f.display(), i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        cites.is_empty(),
        "comments citing documents outside the repository (state the fact, or point to docs/):\n{}",
        cites.join("\n")
    );
}

#[test]
fn the_function_scan_measures_bodies() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n\npub fn b<'x>(v: &'x str) -> &'x str {\n    v\n}\ntrait T {\n    fn c(&self);\n}\n";
    let found = functions(text);
    assert_eq!(
        found,
        [("a".to_string(), 1, 4), ("b".to_string(), 6, 3)],
        "{found:?}"
    );
}
