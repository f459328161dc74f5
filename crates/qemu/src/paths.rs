//! Well-known locations: the cache where set-up puts the guest kernel and the initrd, where an
//! installed toolkit keeps its initrd (`<prefix>/share/guestperf`, `/usr/share/guestperf`), and
//! where the tools keep what they learn about the host.

use std::path::{Path, PathBuf};

/// The initrd's file name, in the cache and in every installed `share/guestperf` directory.
pub const INITRD_NAME: &str = "initrd-stress.img";

/// Where a system-wide install (the Debian package) puts the initrd.
pub const SYSTEM_DATA_DIR: &str = "/usr/share/guestperf";

/// The guestperf cache: `$GUESTPERF_CACHE`, else `$XDG_CACHE_HOME/guestperf`, else
/// `$HOME/.cache/guestperf`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GUESTPERF_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("guestperf");
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".cache").join("guestperf")
}

/// Where `scripts/setup-host.sh` unpacks Debian's cloud kernel.
pub fn kernel_cache_dir() -> PathBuf {
    cache_dir().join("kernel")
}

/// Where `gp-initrd` writes the stress initrd by default, and where `gp-launch` looks for it.
pub fn default_initrd() -> PathBuf {
    cache_dir().join(INITRD_NAME)
}

/// Where the tools look for the initrd when no `--initrd` is given, in order: the cache
/// ([`default_initrd`], what `initrd/build.sh` writes), the install prefix of the running program
/// (`<prefix>/share/guestperf/` for `<prefix>/bin/<tool>`, what `cargo xtask install` writes), and
/// the system-wide [`SYSTEM_DATA_DIR`] (the Debian package). Duplicates are dropped.
pub fn initrd_search() -> Vec<PathBuf> {
    let exe = std::env::current_exe().ok();
    initrd_search_from(default_initrd(), exe.as_deref())
}

/// [`initrd_search`] for a given cache path and program path.
pub fn initrd_search_from(cached: PathBuf, exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![cached];
    if let Some(dir) = exe.and_then(prefix_data_dir) {
        out.push(dir.join(INITRD_NAME));
    }
    out.push(Path::new(SYSTEM_DATA_DIR).join(INITRD_NAME));
    let mut seen = Vec::with_capacity(out.len());
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
    out
}

/// `<prefix>/share/guestperf` for a program at `<prefix>/bin/<name>`; `None` when the program is
/// not in a directory named `bin` (a `target/debug` build, for one).
pub fn prefix_data_dir(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    Some(bin.parent()?.join("share").join("guestperf"))
}

/// The first existing file of [`initrd_search`], or every place looked at.
pub fn find_initrd() -> Result<PathBuf, Vec<PathBuf>> {
    let search = initrd_search();
    match search.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(search),
    }
}

/// Where gp-launch keeps its KVM probe verdicts (one per host boot, QEMU binary and kernel).
pub fn kvm_probe_cache_dir() -> PathBuf {
    cache_dir().join("kvm-probe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_is_cache_then_prefix_then_system() {
        let got = initrd_search_from(
            "/home/u/.cache/guestperf/initrd-stress.img".into(),
            Some(Path::new("/opt/gp/bin/gp-launch")),
        );
        assert_eq!(
            got,
            [
                PathBuf::from("/home/u/.cache/guestperf/initrd-stress.img"),
                PathBuf::from("/opt/gp/share/guestperf/initrd-stress.img"),
                PathBuf::from("/usr/share/guestperf/initrd-stress.img"),
            ]
        );
    }

    #[test]
    fn usr_bin_prefix_is_not_listed_twice() {
        let got = initrd_search_from(
            "/c/initrd-stress.img".into(),
            Some(Path::new("/usr/bin/gp-launch")),
        );
        assert_eq!(
            got,
            [
                PathBuf::from("/c/initrd-stress.img"),
                PathBuf::from("/usr/share/guestperf/initrd-stress.img"),
            ]
        );
    }

    #[test]
    fn a_build_tree_has_no_prefix() {
        assert_eq!(
            prefix_data_dir(Path::new("/src/target/debug/gp-launch")),
            None
        );
        let got = initrd_search_from(
            "/c/initrd-stress.img".into(),
            Some(Path::new("/src/target/release/gp-launch")),
        );
        assert_eq!(got.len(), 2);
    }
}
