//! Live processes, found by command line: how a test proves that no QEMU outlived a run; and
//! tools started so that they end with the test that started them.

use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// Every descendant of `pid` (its children, theirs, ...) with its command name (`comm`).
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let stats: Vec<procfs::process::Stat> = all
        .filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![pid as i32];
    while let Some(parent) = parents.pop() {
        for s in stats.iter().filter(|s| s.ppid == parent) {
            found.push((s.pid as u32, s.comm.clone()));
            parents.push(s.pid);
        }
    }
    found
}

/// Whether `pid` is a live process running QEMU (so a reused pid is not mistaken for one).
pub fn qemu_alive(pid: u32) -> bool {
    pid_alive(pid)
        && procfs::process::Process::new(pid as i32)
            .and_then(|p| p.cmdline())
            .is_ok_and(|args| args.iter().any(|a| a.contains("qemu")))
}

/// Makes the process `cmd` starts get SIGTERM when the test thread that starts it ends, however
/// it ends: passed, panicked, or the whole test binary killed (a CI timeout, `kill`). A tool
/// under test then ends its run and stops its QEMUs, as on any SIGTERM, instead of running on as
/// an orphan with its VMs. Start the command from the test's own thread (the signal follows the
/// thread, not the process).
pub fn end_with_test(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe calls (request_death_signal).
    unsafe { cmd.pre_exec(move || gp_qemu::process::request_death_signal(libc::SIGTERM, parent)) }
}

/// `bash ARGS...` (add them: a script and its arguments, or `-c` and a command), ending with the
/// test like [`end_with_test`], and with everything it starts: it runs under a shell that leads
/// a process group of its own and, on the SIGTERM, passes it to the whole group (the
/// parent-death signal reaches only the process it was set in). The exit status is the inner
/// bash's.
pub fn bash_ending_with_test() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(r#"trap 'trap - TERM; kill -TERM 0' TERM; bash "$@" & wait $!"#)
        .arg("bash")
        .process_group(0);
    end_with_test(&mut cmd);
    cmd
}
