//! What the host offers: provenance for the header, and the checks behind --huge-pages,
//! --locked-pages and --transport rdma, each refusing with the reason and the fix. `/proc` is read
//! through procfs.

use std::path::{Path, PathBuf};

use gp_records::launch::HostInfo;
use procfs::Current;

/// Why the host cannot do what the options ask.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "--huge-pages: no hugetlbfs is mounted (as root: mkdir -p /dev/hugepages && mount -t \
         hugetlbfs none /dev/hugepages)"
    )]
    NoHugetlbfs,
    #[error("--huge-pages: this kernel reports no huge page size (no hugetlb support)")]
    NoHugePageSize,
    #[error(
        "--huge-pages: --mem {} MiB is not a multiple of the {} KiB huge page size of {}",
        mem_bytes >> 20, page_bytes >> 10, mount.display()
    )]
    NotPageMultiple {
        mem_bytes: u64,
        page_bytes: u64,
        mount: PathBuf,
    },
    #[error(
        "--huge-pages: needs {needed} free {} KiB huge pages ({per_vm} per VM, {vms} VMs) but only \
         {free} are free (as root: echo {pool} > /proc/sys/vm/nr_hugepages, or use smaller --mem)",
        page_bytes >> 10
    )]
    TooFewHugePages {
        page_bytes: u64,
        needed: u64,
        per_vm: u64,
        vms: u64,
        free: u64,
        /// The pool size that would leave `needed` free.
        pool: u64,
    },
    #[error("--locked-pages: cannot read RLIMIT_MEMLOCK")]
    MemlockLimit(#[source] std::io::Error),
    #[error(
        "--locked-pages: each QEMU must lock {} MiB but the locked-memory limit is {} KiB and this \
         process lacks CAP_IPC_LOCK (raise it: ulimit -l unlimited, or run as root)",
        need_bytes >> 20, limit_bytes >> 10
    )]
    MemlockTooLow { need_bytes: u64, limit_bytes: u64 },
    #[error(
        "--transport rdma: this host has no RDMA device (/sys/class/infiniband is empty or \
         missing); use --transport tcp or unix"
    )]
    NoRdmaDevice,
    #[error(
        "--transport rdma: {} was built without RDMA migration (it does not link librdmacm); use \
         --transport tcp or unix, or a QEMU built with RDMA",
        binary.display()
    )]
    NoRdmaInQemu { binary: PathBuf },
    #[error(
        "--transport rdma: no IPv4 address on the network interface of RDMA device(s) {}; \
         configure one, or use --transport tcp",
        devices.join(", ")
    )]
    NoRdmaAddress { devices: Vec<String> },
}

/// Hostname, CPU model, kernel release and online CPU count.
pub fn host_info() -> HostInfo {
    let cpu_model = procfs::CpuInfo::current()
        .ok()
        .and_then(|c| c.model_name(0).map(str::to_string))
        .unwrap_or_default();
    let cpus = gp_qemu::bind::Topology::host()
        .map(|t| t.cpus.len() as u32)
        .unwrap_or(0);
    HostInfo {
        hostname: gp_qemu::kernel::uname_nodename(),
        cpu_model,
        kernel_release: gp_qemu::kernel::uname_release(),
        cpus,
    }
}

/// A mounted hugetlbfs and the state of its page pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugePool {
    pub mount: PathBuf,
    pub page_bytes: u64,
    pub free_pages: u64,
}

/// The hugetlbfs mounts among `mounts` (procfs's `/proc/mounts`): (mount point, pagesize option
/// in bytes if set).
pub fn hugetlbfs_mounts(mounts: &[procfs::MountEntry]) -> Vec<(PathBuf, Option<u64>)> {
    mounts
        .iter()
        .filter(|m| m.fs_vfstype == "hugetlbfs")
        .map(|m| {
            let pagesize = m
                .fs_mntops
                .get("pagesize")
                .and_then(|v| v.as_deref())
                .and_then(parse_page_size);
            // procfs unescapes tabs, newlines, backslashes and '#' but not the kernel's `\040`
            // for a space.
            (PathBuf::from(m.fs_file.replace("\\040", " ")), pagesize)
        })
        .collect()
}

/// `2M`, `1G`, `2048k` as in mount options.
fn parse_page_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// A number in `/sys/kernel/mm/hugepages/hugepages-<size>kB/<name>`, 0 when unreadable.
fn huge_pages_sysfs(page_bytes: u64, name: &str) -> u64 {
    let p = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/{name}",
        page_bytes >> 10
    );
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Finds a hugetlbfs with enough free pages for `vms` guests of `mem_bytes` each.
pub fn check_huge_pages(mem_bytes: u64, vms: u64) -> Result<HugePool, HostError> {
    let mounts = procfs::mounts().unwrap_or_default();
    // Meminfo's sizes are in bytes.
    let default = procfs::Meminfo::current().ok().and_then(|m| m.hugepagesize);
    let found = hugetlbfs_mounts(&mounts);
    let Some((mount, pagesize)) = found.first().cloned() else {
        return Err(HostError::NoHugetlbfs);
    };
    let Some(page_bytes) = pagesize.or(default) else {
        return Err(HostError::NoHugePageSize);
    };
    if mem_bytes % page_bytes != 0 {
        return Err(HostError::NotPageMultiple {
            mem_bytes,
            page_bytes,
            mount,
        });
    }
    let per_vm = mem_bytes / page_bytes;
    let needed = per_vm * vms;
    let free = huge_pages_sysfs(page_bytes, "free_hugepages");
    if free < needed {
        return Err(HostError::TooFewHugePages {
            page_bytes,
            needed,
            per_vm,
            vms,
            free,
            pool: needed + huge_pages_sysfs(page_bytes, "nr_hugepages").saturating_sub(free),
        });
    }
    Ok(HugePool {
        mount,
        page_bytes,
        free_pages: free,
    })
}

/// Whether this process may lock `bytes` of memory: CAP_IPC_LOCK, or RLIMIT_MEMLOCK high enough.
pub fn check_locked_pages(bytes: u64) -> Result<(), HostError> {
    if has_cap_ipc_lock() {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(HostError::MemlockLimit(std::io::Error::last_os_error()));
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= bytes {
        return Ok(());
    }
    Err(HostError::MemlockTooLow {
        need_bytes: bytes,
        limit_bytes: lim.rlim_cur,
    })
}

fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .is_ok_and(|s| s.capeff & (1 << CAP_IPC_LOCK) != 0)
}

/// RDMA devices under /sys/class/infiniband.
pub fn rdma_devices() -> Vec<String> {
    rdma_devices_in(Path::new("/sys/class/infiniband"))
}

fn rdma_devices_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An IPv4 address on the network interface of the first RDMA device that has one, for the
/// destination to listen on (RDMA connection setup resolves addresses over IP).
pub fn rdma_ipv4(devices: &[String]) -> Result<String, HostError> {
    for dev in devices {
        let ndevs = Path::new("/sys/class/infiniband")
            .join(dev)
            .join("ports/1/gid_attrs/ndevs");
        let Ok(entries) = std::fs::read_dir(&ndevs) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(ifname) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if let Some(addr) = interface_ipv4(ifname.trim()) {
                return Ok(addr);
            }
        }
    }
    Err(HostError::NoRdmaAddress {
        devices: devices.to_vec(),
    })
}

fn interface_ipv4(ifname: &str) -> Option<String> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we free below.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string in the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        // SAFETY: ifa_addr is non-null and starts with a sockaddr.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        if name == ifname && family == libc::AF_INET {
            // SAFETY: AF_INET addresses are sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).to_string());
            break;
        }
    }
    // SAFETY: frees the list from getifaddrs exactly once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_sizes() {
        use procfs::FromBufRead;
        let mounts = "proc /proc proc rw 0 0\n\
                      hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
                      none /mnt/huge\\0401g hugetlbfs rw,pagesize=1024M 0 0\n\
                      none /mnt/h hugetlbfs rw 0 0\n";
        let mounts = Vec::<procfs::MountEntry>::from_buf_read(mounts.as_bytes()).unwrap();
        let m = hugetlbfs_mounts(&mounts);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], (PathBuf::from("/dev/hugepages"), Some(2 << 20)));
        assert_eq!(m[1], (PathBuf::from("/mnt/huge 1g"), Some(1 << 30)));
        assert_eq!(m[2], (PathBuf::from("/mnt/h"), None));
    }

    #[test]
    fn host_info_is_filled() {
        let h = host_info();
        assert!(h.cpus >= 1);
        assert!(!h.kernel_release.is_empty() && !h.hostname.is_empty());
    }

    #[test]
    fn no_rdma_here_is_an_empty_list() {
        assert!(rdma_devices_in(Path::new("/dev/null/no-such-dir")).is_empty());
        assert_eq!(interface_ipv4("lo").as_deref(), Some("127.0.0.1"));
    }
}
