//! Writing the command's output files safely.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Fails before any work when an output's folder does not exist.
pub fn check_output(path: &Option<PathBuf>, what: &str) -> Result<()> {
    if let Some(p) = path {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            if !d.is_dir() {
                bail!(
                    "{what} {}: folder {} does not exist",
                    p.display(),
                    d.display()
                );
            }
        }
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file, so a failure leaves the old file.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
