//! Live processes, found by command line: how a test proves that no QEMU outlived a run.

/// A kernel argument unique to one run (`gp_test_marker=<pid>_<n>_<µs>`): give it to every QEMU
/// a test starts, so leftovers are found by scanning processes even when no record named them.
pub fn marker() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "gp_test_marker={}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    )
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    gp_qemu::process::is_running(pid)
}

/// Pids of live (not zombie) processes, other than this one, whose command line contains
/// `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter(|p| p.pid() as u32 != std::process::id())
        .filter(|p| {
            p.cmdline()
                .is_ok_and(|args| args.iter().any(|a| a.contains(needle)))
        })
        .map(|p| p.pid() as u32)
        .filter(|&pid| pid_alive(pid))
        .collect()
}

/// Whether `pid` is a live process running QEMU (so a reused pid is not mistaken for one).
pub fn qemu_alive(pid: u32) -> bool {
    pid_alive(pid)
        && procfs::process::Process::new(pid as i32)
            .and_then(|p| p.cmdline())
            .is_ok_and(|args| args.iter().any(|a| a.contains("qemu")))
}
