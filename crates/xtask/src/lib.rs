//! Installing and packaging guestperf-rs (`cargo xtask install|uninstall|deb`, docs/install.md).
//!
//! - [`tools`]: every binary the toolkit installs, with its clap definition.
//! - [`generate`]: man pages (clap_mangen) and bash/zsh/fish completions (clap_complete) from
//!   those definitions, and the hand-written page of `gp-stress` (stress has no clap).
//! - [`layout`]: which file goes where under a prefix or in the Debian package; one list, used
//!   by install, uninstall and the package, so uninstall removes exactly what install wrote.
//! - [`compile`]: the release build and the initrd.
//! - [`deb`]: the Debian package, built with dpkg-deb.

pub mod compile;
pub mod deb;
pub mod generate;
pub mod layout;
pub mod tools;

use std::path::PathBuf;

/// What can go wrong; every message names what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source} ({hint})")]
    Spawn {
        program: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}){detail}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        detail: String,
    },
    #[error("--prefix {0} is not an absolute path (pass e.g. --prefix $HOME/.local)")]
    RelativePrefix(PathBuf),
    #[error("{0}")]
    Other(String),
}

impl gp_stage::Failure for Error {}

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// The workspace root (this crate lives in `<root>/crates/xtask`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The toolkit's version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
