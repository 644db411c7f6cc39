//! Running the `tandem` binary from tests: the command, its output, a
//! failure that must be clean, and a scratch folder per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `tandem ARGS` as a command to run (with a valid XDG_RUNTIME_DIR for Mesa).
pub fn tandem_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// Runs `tandem ARGS` to the end.
pub fn tandem(args: &[&str]) -> Output {
    tandem_cmd(args).output().expect("the tandem binary runs")
}

/// Runs a command that must fail cleanly: a non-zero exit status that is not
/// a panic's (101) nor a signal, and no panic message. Returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let o = tandem(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    match o.status.code() {
        Some(c) => assert!(c != 0 && c != 101, "tandem {args:?} exited {c}:\n{err}"),
        None => panic!("tandem {args:?} died from a signal:\n{err}"),
    }
    assert!(
        !err.contains("panicked"),
        "tandem {args:?} panicked:\n{err}"
    );
    err
}

/// A fresh, empty folder `tandem-{suite}-{pid}-{name}` in the temp folder.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
