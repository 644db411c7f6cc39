//! The command's output files. Every destination is checked before any work
//! ([`check`]); the outputs are then written to hidden, uniquely named
//! temporary files beside their destinations ([`Outputs::stage`]) and renamed
//! into place together once all of them are written ([`Outputs::commit`]).
//! A failure before the commit leaves every existing file as it was, and no
//! temporary file behind: each is removed when dropped.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// The folder a destination's temporary file goes in: its parent, or `.`.
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Where an output really goes: a symbolic link is followed, so the link
/// stays and the file it points to is replaced.
fn target(path: &Path) -> PathBuf {
    let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match link {
        true => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        false => path.to_path_buf(),
    }
}

/// A new temporary file for `dest` in `dir`: `.NAME.XXXXXX.tmp`, hidden, and
/// created exclusively, so it never takes the name of an existing file. Its
/// permissions are those of the file it will replace, or a new file's
/// (0o666 less the umask, as `fs::write` gives), not `tempfile`'s private 0o600.
fn temp_in(dir: &Path, dest: &Path) -> std::io::Result<NamedTempFile> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let prefix = format!(".{}.", name.chars().take(64).collect::<String>());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    let file = builder.tempfile_in(dir)?;
    if let Some(m) = fs::metadata(dest).ok().filter(|m| m.is_file()) {
        fs::set_permissions(file.path(), m.permissions())?;
    }
    Ok(file)
}

/// The OS message of a temporary file's error, without the ` at path "…"`
/// that `tempfile` appends: the temporary name means nothing to the user.
fn os_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.split_once(" at path \"") {
        Some((os, _)) => os.to_string(),
        None => text,
    }
}

/// Fails, naming `flag` and `path`, unless `path` can be written: its folder
/// exists and takes new files, and `path` is not a directory, some other
/// non-regular file, or read-only. Runs before any work, so a bad
/// destination never costs a training run.
pub fn check(path: &Path, flag: &str) -> Result<()> {
    let shown = path.display();
    let text = path.as_os_str().to_string_lossy();
    if text.is_empty() || text.ends_with(std::path::is_separator) {
        bail!("{flag} {shown}: not a file name");
    }
    let path = &target(path);
    let dir = folder(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{flag} {shown}: {} is not a folder", dir.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("{flag} {shown}: folder {} does not exist", dir.display())
        }
        Err(e) => bail!("{flag} {shown}: folder {}: {e}", dir.display()),
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{flag} {shown}: is a directory"),
        Ok(m) if !m.is_file() => bail!("{flag} {shown}: not a regular file"),
        Ok(m) if m.permissions().readonly() => bail!("{flag} {shown}: the file is read-only"),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("{flag} {shown}: {e}"),
    }
    // The write's own first step, undone at once: a temporary file in the folder.
    temp_in(dir, path).map(drop).map_err(|e| {
        anyhow!(
            "{flag} {shown}: cannot write in folder {}: {}",
            dir.display(),
            os_message(&e)
        )
    })
}

/// [`check`] for an optional destination.
pub fn check_some(path: &Option<PathBuf>, flag: &str) -> Result<()> {
    path.as_deref().map_or(Ok(()), |p| check(p, flag))
}

/// Fails when two flags name the same file: one output would replace the other.
pub fn check_distinct(outputs: &[(&Path, &str)]) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(target(p)).ok();
    for (k, (a, fa)) in outputs.iter().enumerate() {
        for (b, fb) in &outputs[k + 1..] {
            if absolute(a).is_some() && absolute(a) == absolute(b) {
                bail!(
                    "{fa} {} and {fb} {} are the same file",
                    a.display(),
                    b.display()
                );
            }
        }
    }
    Ok(())
}

/// One written output waiting for the commit.
struct Staged {
    file: NamedTempFile,
    dest: PathBuf,
    shown: PathBuf,
    flag: String,
}

/// Outputs written to temporary files but not yet in place.
#[derive(Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

impl Outputs {
    /// Writes the output `flag` names to a new temporary file beside `path`,
    /// through `write` (given the temporary file's path). On error the
    /// temporary file is removed and the message names `flag` and `path`.
    pub fn stage(
        &mut self,
        path: &Path,
        flag: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let dest = target(path);
        let dir = folder(&dest);
        let shown = path.display();
        let file = temp_in(dir, &dest).map_err(|e| {
            anyhow!(
                "{flag} {shown}: cannot write in folder {}: {}",
                dir.display(),
                os_message(&e)
            )
        })?;
        write(file.path())
            .and_then(|()| Ok(file.as_file().sync_all()?))
            .with_context(|| format!("{flag} {shown}: not written"))?;
        self.staged.push(Staged {
            file,
            dest,
            shown: path.to_path_buf(),
            flag: flag.to_string(),
        });
        Ok(())
    }

    /// [`Outputs::stage`] of `bytes`.
    pub fn stage_bytes(&mut self, path: &Path, flag: &str, bytes: &[u8]) -> Result<()> {
        self.stage(path, flag, |tmp| Ok(fs::write(tmp, bytes)?))
    }

    /// Renames every staged file onto its destination, in the order staged.
    /// Called once every output is written, so a run that failed earlier
    /// replaced nothing. A rename within one folder fails only when the
    /// destination changed since [`check`] (it became a directory, say): the
    /// error names it, outputs renamed before it stay, the rest are removed.
    pub fn commit(self) -> Result<()> {
        for s in self.staged {
            s.file
                .persist(&s.dest)
                .map_err(|e| anyhow!("{} {}: {}", s.flag, s.shown.display(), e.error))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    fn failing(_: &Path) -> Result<()> {
        bail!("the disk is full")
    }

    /// `train`'s order: the model, then the log, then the commit. When the
    /// model's write fails, the log written before it is never renamed.
    #[test]
    fn a_failed_write_replaces_nothing_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let (log, model) = (dir.path().join("run.csv"), dir.path().join("m.safetensors"));
        fs::write(&log, "old log").unwrap();
        fs::write(&model, "old model").unwrap();
        let mut out = Outputs::default();
        out.stage_bytes(&log, "--log", b"new log").unwrap();
        let err = out.stage(&model, "--out", failing).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("--out") && msg.contains("m.safetensors"),
            "{msg}"
        );
        assert!(msg.contains("the disk is full"), "{msg}");
        drop(out); // what `?` does in `train`: no commit
        assert_eq!(fs::read(&log).unwrap(), b"old log");
        assert_eq!(fs::read(&model).unwrap(), b"old model");
        assert_eq!(names(dir.path()), ["m.safetensors", "run.csv"]);
    }

    #[test]
    fn nothing_is_replaced_before_the_commit_and_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.png"));
        fs::write(&a, "old a").unwrap();
        let mut out = Outputs::default();
        out.stage_bytes(&a, "--log", b"new a").unwrap();
        out.stage_bytes(&b, "--heatmap", b"new b").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert!(!b.exists());
        let hidden: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(hidden.len(), 2, "{hidden:?}");
        assert!(hidden.iter().all(|n| n.ends_with(".tmp")), "{hidden:?}");
        out.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(names(dir.path()), ["a.csv", "b.png"]);
    }

    /// Temporary names never collide with files already there, including a
    /// previous version's `run.partial` and another stage of the same output.
    #[test]
    fn temporary_files_never_take_an_existing_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.csv");
        fs::write(dir.path().join("run.partial"), "user data").unwrap();
        let mut out = Outputs::default();
        out.stage_bytes(&log, "--log", b"first").unwrap();
        out.stage_bytes(&log, "--log", b"second").unwrap();
        assert_eq!(names(dir.path()).len(), 3, "{:?}", names(dir.path()));
        out.commit().unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"second");
        assert_eq!(
            fs::read(dir.path().join("run.partial")).unwrap(),
            b"user data"
        );
        assert_eq!(names(dir.path()), ["run.csv", "run.partial"]);
    }

    /// Outputs get a new file's usual permissions, and a replaced file keeps its own.
    #[cfg(unix)]
    #[test]
    fn outputs_keep_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let (plain, new, old) = (
            dir.path().join("plain"),
            dir.path().join("new.csv"),
            dir.path().join("old.csv"),
        );
        fs::write(&plain, "").unwrap();
        fs::write(&old, "").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o640)).unwrap();
        let mut out = Outputs::default();
        out.stage_bytes(&new, "--out", b"n").unwrap();
        out.stage_bytes(&old, "--log", b"o").unwrap();
        out.commit().unwrap();
        assert_eq!(mode(&new), mode(&plain));
        assert_eq!(mode(&old), 0o640);
    }

    #[test]
    fn a_failed_rename_names_the_flag_and_path_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        let mut out = Outputs::default();
        out.stage_bytes(&a, "--log", b"a").unwrap();
        out.stage_bytes(&b, "--out", b"b").unwrap();
        // The destination turns into a folder after the check.
        fs::create_dir(&a).unwrap();
        fs::write(a.join("inside"), "kept").unwrap();
        let msg = format!("{:#}", out.commit().unwrap_err());
        assert!(msg.contains("--log") && msg.contains("a.csv"), "{msg}");
        assert_eq!(fs::read(a.join("inside")).unwrap(), b"kept");
        assert_eq!(names(dir.path()), ["a.csv"]);
    }

    #[test]
    fn check_names_the_flag_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |p: &Path| format!("{:#}", check(p, "--out").unwrap_err());
        let m = msg(dir.path());
        assert!(m.contains("--out") && m.contains("is a directory"), "{m}");
        let m = msg(&dir.path().join("no/such/m.safetensors"));
        assert!(m.contains("--out") && m.contains("does not exist"), "{m}");
        let ro = dir.path().join("ro.csv");
        fs::write(&ro, "x").unwrap();
        let mut p = fs::metadata(&ro).unwrap().permissions();
        p.set_readonly(true);
        fs::set_permissions(&ro, p).unwrap();
        let m = msg(&ro);
        assert!(m.contains("ro.csv") && m.contains("read-only"), "{m}");
        check(&dir.path().join("new.csv"), "--out").unwrap();
        assert_eq!(names(dir.path()), ["ro.csv"], "the probe is removed");
        let same = dir.path().join("x.csv");
        let m = format!(
            "{:#}",
            check_distinct(&[(&same, "--out"), (&same, "--log")]).unwrap_err()
        );
        assert!(m.contains("--out") && m.contains("--log"), "{m}");
    }
}
