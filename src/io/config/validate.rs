//! Checks shared by every section, and the error positions: byte spans → "line N", toml's own
//! errors → the key's dotted path and the offending line.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use crate::error::{Error, Result};
use crate::model::spec::check::MAX_WIDTH;

/// The config text and its path, to turn byte spans into "line N" in errors.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
}

impl Source<'_> {
    /// 1-based line of byte `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A config error about the value at `span`: "`message` at line N".
    pub(super) fn err(&self, span: Range<usize>, message: impl std::fmt::Display) -> Error {
        Error::config(
            self.path,
            format!("{message} at line {}", self.line(span.start)),
        )
    }

    /// A config error with no position (something is absent).
    pub(super) fn err_plain(&self, message: impl Into<String>) -> Error {
        Error::config(self.path, message)
    }

    /// Converts a `toml` error (syntax, unknown key, wrong type, missing key) into
    /// "<toml's message> (in `a.b`) at line N: `<source line>`".
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> Error {
        let mut bare = e.clone();
        bare.set_input(None);
        // Without its input, toml renders "<message>\nin `a.b`\n" where it knows the key path.
        let rendered = bare.to_string();
        let key = rendered
            .lines()
            .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
            .map(|k| format!(" (in `{k}`)"))
            .unwrap_or_default();
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let line = self.line(span.start);
                let shown = self.text.lines().nth(line - 1).unwrap_or("").trim();
                Error::config(
                    self.path,
                    format!("{message}{key} at line {line}: `{shown}`"),
                )
            }
            None => Error::config(self.path, format!("{message}{key}")),
        }
    }
}

/// Letters, digits, '_' and '-', non-empty.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a name's characters and that it was not seen before.
pub(super) fn check_name(
    src: &Source,
    what: &str,
    name: &Spanned<String>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    if !valid_name(name.get_ref()) {
        return Err(src.err(
            name.span(),
            format!(
                "{what} name `{}` may only hold letters, digits, '_' and '-'",
                name.get_ref()
            ),
        ));
    }
    if !seen.insert(name.get_ref().clone()) {
        return Err(src.err(
            name.span(),
            format!("{what} name `{}` is used twice", name.get_ref()),
        ));
    }
    Ok(())
}

/// Checks every layer size of `sizes` (written as `key`) is > 0 and at most `MAX_WIDTH`.
pub(super) fn check_sizes(src: &Source, key: &str, sizes: &Spanned<Vec<usize>>) -> Result<()> {
    if sizes.get_ref().contains(&0) {
        return Err(src.err(
            sizes.span(),
            format!(
                "{key} = {:?}: every layer size must be > 0",
                sizes.get_ref()
            ),
        ));
    }
    check_width(src, key, sizes)
}

/// Checks every value of `v` (written as `key`) is at most `MAX_WIDTH` units.
pub(super) fn check_width<T: AsRef<[usize]>>(
    src: &Source,
    key: &str,
    v: &Spanned<T>,
) -> Result<()> {
    match v.get_ref().as_ref().iter().find(|&&h| h > MAX_WIDTH) {
        Some(h) => Err(src.err(
            v.span(),
            format!("{key}: {h} units exceed the limit {MAX_WIDTH}"),
        )),
        None => Ok(()),
    }
}

/// Checks `lo ≤ x < hi` (or `lo < x` when `strict_lo`) and finiteness.
pub(super) fn check_range(
    src: &Source,
    key: &str,
    x: &Spanned<f32>,
    lo: f32,
    strict_lo: bool,
    hi: f32,
) -> Result<f32> {
    let v = *x.get_ref();
    let low_ok = if strict_lo { v > lo } else { v >= lo };
    if !v.is_finite() || !low_ok || v >= hi {
        let lo_s = if strict_lo { "(" } else { "[" };
        return Err(src.err(
            x.span(),
            format!("{key} = {v} must be in {lo_s}{lo}, {hi})"),
        ));
    }
    Ok(v)
}

/// Feature columns: at least one, no duplicates.
pub(super) fn check_columns(src: &Source, span: Range<usize>, cols: &[String]) -> Result<()> {
    if cols.is_empty() {
        return Err(src.err(span, "data.features must list at least one column"));
    }
    let mut seen = BTreeSet::new();
    match cols.iter().find(|c| !seen.insert(c.as_str())) {
        Some(dup) => Err(src.err(span, format!("data.features lists column `{dup}` twice"))),
        None => Ok(()),
    }
}
