//! Finding the guest kernel.
//!
//! Order: an explicit path; the host's own kernel `/boot/vmlinuz-$(uname -r)`; the newest
//! `/boot/vmlinuz-*`; the newest kernel in [`crate::paths::kernel_cache_dir`] (where
//! `scripts/setup-host.sh` unpacks Debian's cloud kernel).

use std::io::Read;
use std::path::{Path, PathBuf};

/// No usable kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("kernel {path} does not exist (pass --kernel with a guest kernel image, or run scripts/setup-host.sh)")]
    Missing { path: PathBuf },
    #[error(
        "kernel {path} is a directory, not a kernel image (pass --kernel with the vmlinuz file)"
    )]
    Directory { path: PathBuf },
    #[error("kernel {path} cannot be read: {reason} (run as a user that can read it, or copy it and pass --kernel)")]
    Unreadable { path: PathBuf, reason: String },
    #[error("kernel {path} is not a Linux kernel image (no bzImage header and not ELF); pass --kernel with a vmlinuz file")]
    NotAKernel { path: PathBuf },
    #[error("no guest kernel found (looked for /boot/vmlinuz-{release}, /boot/vmlinuz-*, and {cache}/vmlinuz-*): run scripts/setup-host.sh or pass --kernel")]
    NotFound { release: String, cache: String },
}

/// Where to look; [`Search::host`] fills it for this machine.
#[derive(Debug, Clone)]
pub struct Search {
    pub release: String,
    pub boot_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Search {
    pub fn host() -> Search {
        Search {
            release: uname_release(),
            boot_dir: PathBuf::from("/boot"),
            cache_dir: crate::paths::kernel_cache_dir(),
        }
    }
}

/// The kernel to boot: `explicit` if given (checked), else the first found by [`Search::host`].
pub fn find_kernel(explicit: Option<&Path>) -> Result<PathBuf, KernelError> {
    find_kernel_in(explicit, &Search::host())
}

pub fn find_kernel_in(explicit: Option<&Path>, search: &Search) -> Result<PathBuf, KernelError> {
    if let Some(path) = explicit {
        check_kernel(path)?;
        return Ok(path.to_path_buf());
    }
    let own = search.boot_dir.join(format!("vmlinuz-{}", search.release));
    let candidates = std::iter::once(own)
        .chain(newest(&search.boot_dir))
        .chain(newest(&search.cache_dir));
    for path in candidates {
        // A kernel that exists but that we cannot read (Debian's /boot is root-only) is skipped
        // in the search; an explicit --kernel reports why.
        if check_kernel(&path).is_ok() {
            return Ok(path);
        }
    }
    Err(KernelError::NotFound {
        release: search.release.clone(),
        cache: search.cache_dir.display().to_string(),
    })
}

/// Checks that `path` is a readable file that looks like a kernel (bzImage or ELF).
pub fn check_kernel(path: &Path) -> Result<(), KernelError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KernelError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(KernelError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    if meta.is_dir() {
        return Err(KernelError::Directory {
            path: path.to_path_buf(),
        });
    }
    let mut head = [0u8; 0x206];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| KernelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let bzimage = n >= 0x206 && &head[0x202..0x206] == b"HdrS";
    let elf = n >= 4 && &head[..4] == b"\x7fELF";
    if !(bzimage || elf) {
        return Err(KernelError::NotAKernel {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// `vmlinuz-*` files in `dir`, newest (by modification time, then name) first.
fn newest(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file()
                .then(|| (m.modified().unwrap_or(std::time::UNIX_EPOCH), e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The running kernel's release (`uname -r`).
pub fn uname_release() -> String {
    uname_field(|u| &u.release)
}

/// This host's name as the kernel knows it (`uname -n`), empty if unknown.
pub fn uname_nodename() -> String {
    uname_field(|u| &u.nodename)
}

fn uname_field(field: fn(&libc::utsname) -> &[libc::c_char; 65]) -> String {
    // SAFETY: utsname is plain data filled by uname.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    // SAFETY: uname NUL-terminates every field.
    unsafe { std::ffi::CStr::from_ptr(field(&uts).as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeDir;

    fn fake_kernel(path: &Path) {
        let mut data = vec![0u8; 0x300];
        data[0x202..0x206].copy_from_slice(b"HdrS");
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn search_order() {
        let root = RuntimeDir::new("gp-kernel-test").unwrap();
        let boot = root.path().join("boot");
        let cache = root.path().join("cache");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(&cache).unwrap();
        let s = Search {
            release: "6.1.0-test".into(),
            boot_dir: boot.clone(),
            cache_dir: cache.clone(),
        };

        let e = find_kernel_in(None, &s).unwrap_err().to_string();
        assert!(
            e.contains("scripts/setup-host.sh") && e.contains("--kernel"),
            "{e}"
        );

        fake_kernel(&cache.join("vmlinuz-6.1.0-cloud"));
        assert_eq!(
            find_kernel_in(None, &s).unwrap(),
            cache.join("vmlinuz-6.1.0-cloud")
        );

        fake_kernel(&boot.join("vmlinuz-5.10"));
        assert_eq!(find_kernel_in(None, &s).unwrap(), boot.join("vmlinuz-5.10"));

        fake_kernel(&boot.join("vmlinuz-6.1.0-test"));
        assert_eq!(
            find_kernel_in(None, &s).unwrap(),
            boot.join("vmlinuz-6.1.0-test")
        );

        let explicit = cache.join("vmlinuz-6.1.0-cloud");
        assert_eq!(find_kernel_in(Some(&explicit), &s).unwrap(), explicit);
    }

    #[test]
    fn explicit_kernel_errors_name_the_problem() {
        let root = RuntimeDir::new("gp-kernel-test").unwrap();
        let missing = root.path().join("nope");
        let e = find_kernel_in(Some(&missing), &Search::host())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not exist") && e.contains("--kernel"),
            "{e}"
        );
        let e = check_kernel(root.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let junk = root.path().join("junk");
        std::fs::write(&junk, b"hello").unwrap();
        let e = check_kernel(&junk).unwrap_err().to_string();
        assert!(e.contains("not a Linux kernel image"), "{e}");
    }
}
