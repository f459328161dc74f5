//! What the host offers: provenance for the header, and the checks behind --huge-pages,
//! --locked-pages and --transport rdma, each refusing with the reason and the fix.

use std::path::{Path, PathBuf};

use gp_records::launch::HostInfo;

/// Hostname, CPU model, kernel release and online CPU count.
pub fn host_info() -> HostInfo {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let cpus = gp_qemu::bind::Topology::host()
        .map(|t| t.cpus.len() as u32)
        .unwrap_or(0);
    HostInfo {
        hostname,
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

/// Parses `/proc/mounts` for hugetlbfs mounts: (mount point, pagesize option in bytes if set).
pub fn hugetlbfs_mounts(mounts: &str) -> Vec<(PathBuf, Option<u64>)> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[2] != "hugetlbfs" {
                return None;
            }
            let pagesize = f[3]
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize="))
                .and_then(parse_page_size);
            Some((PathBuf::from(unescape_mount(f[1])), pagesize))
        })
        .collect()
}

/// `/proc/mounts` escapes spaces and the like as octal (`\040`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The default huge page size (`Hugepagesize:` in /proc/meminfo), bytes.
fn default_huge_page_bytes(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("Hugepagesize:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb << 10)
    })
}

fn free_huge_pages(page_bytes: u64) -> u64 {
    let p = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/free_hugepages",
        page_bytes >> 10
    );
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Finds a hugetlbfs with enough free pages for `vms` guests of `mem_bytes` each.
pub fn check_huge_pages(mem_bytes: u64, vms: u64) -> Result<HugePool, String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let default = default_huge_page_bytes(&meminfo);
    let found = hugetlbfs_mounts(&mounts);
    let Some((mount, pagesize)) = found.first().cloned() else {
        return Err(
            "--huge-pages: no hugetlbfs is mounted (as root: mkdir -p /dev/hugepages && mount -t \
             hugetlbfs none /dev/hugepages)"
                .to_string(),
        );
    };
    let Some(page_bytes) = pagesize.or(default) else {
        return Err(
            "--huge-pages: this kernel reports no huge page size (no hugetlb support)".into(),
        );
    };
    if mem_bytes % page_bytes != 0 {
        return Err(format!(
            "--huge-pages: --mem {} MiB is not a multiple of the {} KiB huge page size of {}",
            mem_bytes >> 20,
            page_bytes >> 10,
            mount.display()
        ));
    }
    let per_vm = mem_bytes / page_bytes;
    let needed = per_vm * vms;
    let free = free_huge_pages(page_bytes);
    if free < needed {
        return Err(format!(
            "--huge-pages: needs {needed} free {} KiB huge pages ({per_vm} per VM, {vms} VMs) but \
             only {free} are free (as root: echo {} > /proc/sys/vm/nr_hugepages, or use smaller --mem)",
            page_bytes >> 10,
            needed + hugepages_total(page_bytes).saturating_sub(free),
        ));
    }
    Ok(HugePool {
        mount,
        page_bytes,
        free_pages: free,
    })
}

fn hugepages_total(page_bytes: u64) -> u64 {
    let p = format!(
        "/sys/kernel/mm/hugepages/hugepages-{}kB/nr_hugepages",
        page_bytes >> 10
    );
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether this process may lock `bytes` of memory: CAP_IPC_LOCK, or RLIMIT_MEMLOCK high enough.
pub fn check_locked_pages(bytes: u64) -> Result<(), String> {
    if has_cap_ipc_lock() {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to a local rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err("--locked-pages: cannot read RLIMIT_MEMLOCK".to_string());
    }
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= bytes {
        return Ok(());
    }
    Err(format!(
        "--locked-pages: each QEMU must lock {} MiB but the locked-memory limit is {} KiB and this \
         process lacks CAP_IPC_LOCK (raise it: ulimit -l unlimited, or run as root)",
        bytes >> 20,
        lim.rlim_cur >> 10
    ))
}

fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
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
pub fn rdma_ipv4(devices: &[String]) -> Result<String, String> {
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
    Err(format!(
        "--transport rdma: no IPv4 address on the network interface of RDMA device(s) {}; \
         configure one, or use --transport tcp",
        devices.join(", ")
    ))
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
        let mounts = "proc /proc proc rw 0 0\n\
                      hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
                      none /mnt/huge\\0401g hugetlbfs rw,pagesize=1024M 0 0\n\
                      none /mnt/h hugetlbfs rw 0 0\n";
        let m = hugetlbfs_mounts(mounts);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], (PathBuf::from("/dev/hugepages"), Some(2 << 20)));
        assert_eq!(m[1], (PathBuf::from("/mnt/huge 1g"), Some(1 << 30)));
        assert_eq!(m[2], (PathBuf::from("/mnt/h"), None));
        assert_eq!(
            default_huge_page_bytes("Hugepagesize:       2048 kB\n"),
            Some(2 << 20)
        );
    }

    #[test]
    fn host_info_is_filled() {
        let h = host_info();
        assert!(h.cpus >= 1);
        assert!(!h.kernel_release.is_empty());
    }

    #[test]
    fn no_rdma_here_is_an_empty_list() {
        assert!(rdma_devices_in(Path::new("/dev/null/no-such-dir")).is_empty());
        assert_eq!(interface_ipv4("lo").as_deref(), Some("127.0.0.1"));
    }
}
