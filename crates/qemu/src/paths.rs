//! Well-known locations: the cache where set-up puts the guest kernel and the initrd, and where
//! the tools keep what they learn about the host.

use std::path::PathBuf;

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
    cache_dir().join("initrd-stress.img")
}

/// Where gp-launch keeps its KVM probe verdicts (one per host boot, QEMU binary and kernel).
pub fn kvm_probe_cache_dir() -> PathBuf {
    cache_dir().join("kvm-probe")
}
