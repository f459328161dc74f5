//! Private runtime directories for sockets: mode 0700, unpredictable name, removed on drop.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest path a unix socket address can hold (`sun_path` less the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A runtime directory or a socket path in it could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create a private runtime directory in {}", base.display())]
    Create {
        base: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no free name for a private runtime directory in {} after 16 tries", base.display())]
    NoFreeName { base: PathBuf },
    #[error(
        "socket path {} is longer than {MAX_SOCKET_PATH} bytes: set XDG_RUNTIME_DIR or TMPDIR to a \
         shorter directory",
        path.display()
    )]
    SocketPathTooLong { path: PathBuf },
}

/// A private directory, removed with its contents when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    keep: bool,
}

/// `$XDG_RUNTIME_DIR` when set to an existing directory, else the temp dir (`$TMPDIR`, `/tmp`).
pub fn base_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl RuntimeDir {
    /// Creates `<base>/<prefix>-<pid>-<random>` with mode 0700.
    pub fn new(prefix: &str) -> Result<RuntimeDir, RuntimeError> {
        RuntimeDir::new_in(&base_dir(), prefix)
    }

    pub fn new_in(base: &Path, prefix: &str) -> Result<RuntimeDir, RuntimeError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        for _ in 0..16 {
            let nonce = random_u64() ^ COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!(
                "{prefix}-{}-{:08x}",
                std::process::id(),
                nonce as u32
            ));
            // mode() is applied before the umask; 0700 survives any sane umask. create() fails if
            // the path exists, so an attacker's directory or link is never reused.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(RuntimeDir { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(RuntimeError::Create {
                        base: base.to_path_buf(),
                        source,
                    })
                }
            }
        }
        Err(RuntimeError::NoFreeName {
            base: base.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path for a unix socket in this directory, checked against the address length limit.
    pub fn socket_path(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        let p = self.path.join(name);
        if p.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(RuntimeError::SocketPathTooLong { path: p });
        }
        Ok(p)
    }

    /// Gives up ownership: the directory is no longer removed on drop. Returns its path.
    pub fn into_path_kept(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }

    /// Removes the directory now, reporting failure (drop ignores it).
    pub fn remove(mut self) -> io::Result<()> {
        self.keep = true;
        std::fs::remove_dir_all(&self.path)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// 64 unpredictable bits from the kernel, or a time-based fallback.
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n == buf.len() as isize {
        return u64::from_ne_bytes(buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (std::process::id() as u64) << 32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_and_removed_on_drop() {
        let dir = RuntimeDir::new("gp-test").unwrap();
        let p = dir.path().to_path_buf();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::write(p.join("x.sock"), b"").unwrap();
        let other = RuntimeDir::new("gp-test").unwrap();
        assert_ne!(other.path(), p.as_path());
        drop(dir);
        assert!(!p.exists());
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let dir = RuntimeDir::new("gp-test").unwrap();
        assert!(dir.socket_path("qmp.sock").is_ok());
        let e = dir.socket_path(&"x".repeat(120)).unwrap_err();
        assert!(e.to_string().contains("XDG_RUNTIME_DIR"), "{e}");
    }
}
