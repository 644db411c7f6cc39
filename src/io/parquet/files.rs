//! Which files a Parquet path names: one `.parquet` file, every `*.parquet` file of a folder, or
//! the files matching a pattern with `*` (any run of characters) and `?` (one character) in its
//! final component (`data/part-*.parquet`). Folder and pattern matches are sorted by name;
//! names starting with `.` or `_` (Spark's `_SUCCESS`, checksum files) are left out.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether `path` names Parquet data: a `.parquet` file, a folder, or a pattern.
pub fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
        || path.is_dir()
        || is_pattern(path)
}

/// Whether the final component of `path` holds a wildcard.
fn is_pattern(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(['*', '?']))
}

/// The files `path` names, in the order their rows are read; at least one.
pub fn part_files(path: &Path) -> Result<Vec<PathBuf>> {
    if is_pattern(path) {
        let pattern = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let files = listed(folder, |name| matches(pattern, name))?;
        if files.is_empty() {
            return Err(Error::data(path, "no file matches this pattern"));
        }
        return Ok(files);
    }
    if path.is_dir() {
        let files = listed(path, |name| name.to_ascii_lowercase().ends_with(".parquet"))?;
        if files.is_empty() {
            return Err(Error::data(path, "the folder holds no .parquet file"));
        }
        return Ok(files);
    }
    Ok(vec![path.to_path_buf()])
}

/// The files of `folder` whose names `keep` accepts, sorted by name (hidden and `_` names left
/// out).
fn listed(folder: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(|e| Error::io(folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(folder, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(['.', '_']) || !keep(name) {
            continue;
        }
        let p = entry.path();
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `name` matches `pattern`: `*` any run of characters, `?` one, the rest itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Greedy matching with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_names() {
        assert!(matches("part-*.parquet", "part-00001.parquet"));
        assert!(matches("*.parquet", "a.parquet"));
        assert!(matches("p?rt*", "part-1"));
        assert!(matches("*a*b", "xxaxxb"));
        assert!(!matches("part-*.parquet", "part-1.csv"));
        assert!(!matches("a*", "ba"));
        assert!(matches("*", ""));
    }
}
