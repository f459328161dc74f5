//! The stage binaries and where to find them.
//!
//! A stage is looked up in `$GUESTPERF_STAGE_DIR` when it is set, then next to the running
//! executable (so `target/release/guestperf` runs `target/release/gp-launch`, never an older one
//! on `PATH`), then on `PATH`.

use std::env;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The stage binaries the one-shot and the batch run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Launch,
    Sample,
    Migrate,
    Collect,
    Plot,
}

impl Stage {
    /// The binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Stage::Launch => "gp-launch",
            Stage::Sample => "gp-sample",
            Stage::Migrate => "gp-migrate",
            Stage::Collect => "gp-collect",
            Stage::Plot => "gp-plot",
        }
    }
}

/// A stage binary could not be found.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot find {binary}: not next to this program{here} and not on PATH; \
     build the stages with `cargo build --release -p gp-launch -p gp-sample -p gp-migrate \
     -p gp-collect -p gp-plot` or install them on PATH"
)]
pub struct NotFound {
    pub binary: String,
    here: String,
}

/// Environment variable naming a directory searched for stage binaries before all others.
pub const STAGE_DIR_ENV: &str = "GUESTPERF_STAGE_DIR";

/// Finds `stage`'s binary: in `$GUESTPERF_STAGE_DIR`, next to the current executable, else on
/// `PATH`.
pub fn locate(stage: Stage) -> Result<PathBuf, NotFound> {
    if let Some(dir) = env::var_os(STAGE_DIR_ENV).filter(|d| !d.is_empty()) {
        let candidate = Path::new(&dir).join(stage.binary());
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    let exe_dir = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    locate_in(
        stage.binary(),
        exe_dir.as_deref(),
        env::var_os("PATH").as_deref(),
    )
}

/// [`locate`] with the search places given explicitly.
pub fn locate_in(
    binary: &str,
    exe_dir: Option<&Path>,
    path: Option<&OsStr>,
) -> Result<PathBuf, NotFound> {
    if let Some(dir) = exe_dir {
        let candidate = dir.join(binary);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    if let Some(path) = path {
        for dir in env::split_paths(path) {
            let candidate = dir.join(binary);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(NotFound {
        binary: binary.to_string(),
        here: exe_dir
            .map(|d| format!(" ({})", d.display()))
            .unwrap_or_default(),
    })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn make_exe(path: &Path) {
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn prefers_the_executable_directory_over_path() {
        let here = tempfile::tempdir().unwrap();
        let on_path = tempfile::tempdir().unwrap();
        make_exe(&here.path().join("gp-launch"));
        make_exe(&on_path.path().join("gp-launch"));
        let path = env::join_paths([on_path.path()]).unwrap();
        let found = locate_in("gp-launch", Some(here.path()), Some(&path)).unwrap();
        assert_eq!(found, here.path().join("gp-launch"));
    }

    #[test]
    fn falls_back_to_path_and_skips_non_executables() {
        let here = tempfile::tempdir().unwrap();
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        fs::write(here.path().join("gp-sample"), "not executable").unwrap();
        fs::write(first.path().join("gp-sample"), "not executable").unwrap();
        make_exe(&second.path().join("gp-sample"));
        let path = env::join_paths([first.path(), second.path()]).unwrap();
        let found = locate_in("gp-sample", Some(here.path()), Some(&path)).unwrap();
        assert_eq!(found, second.path().join("gp-sample"));
    }

    #[test]
    fn missing_binary_says_where_it_looked_and_how_to_build_it() {
        let here = tempfile::tempdir().unwrap();
        let err = locate_in("gp-collect", Some(here.path()), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot find gp-collect: not next to this program ("),
            "{msg}"
        );
        assert!(msg.contains("cargo build --release -p gp-launch"), "{msg}");
    }
}
