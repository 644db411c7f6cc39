//! Writing a file so that a failure loses nothing: the one place the library
//! replaces a user's file (model files, figures).

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a hidden, uniquely named temporary file
/// (`.tandem-XXXXXX.tmp`) in the same folder, flushed to disk and renamed over
/// `path` once complete: a failed write leaves an existing file as it was and
/// removes the temporary file, and the name never collides with a user's file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tandem-").suffix(".tmp");
    #[cfg(unix)]
    {
        // A new file's usual permissions (less the umask), not tempfile's 0o600.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
