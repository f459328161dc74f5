//! The operating-system side: clocks, memory, CPUs, and the duties of PID 1 (mounts, console,
//! power-off).

use std::ffi::CString;
use std::io;
use std::ptr::NonNull;
use std::sync::mpsc;
use std::time::Duration;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// CLOCK_MONOTONIC in ns (a vDSO call, no system call).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_MONOTONIC in ms.
pub fn monotonic_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// Sleeps until CLOCK_MONOTONIC reads `ms` (as [`monotonic_ms`] gives it); at once if it has
/// passed. An absolute deadline, so time spent before the call is not slept again.
pub fn sleep_until_ms(ms: f64) {
    if !ms.is_finite() {
        return;
    }
    let ts = libc::timespec {
        tv_sec: (ms / 1e3).floor() as libc::time_t,
        tv_nsec: ((ms / 1e3).fract() * 1e9) as libc::c_long,
    };
    // SAFETY: clock_nanosleep reads the timespec we own; no remainder is asked for.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// CLOCK_REALTIME in ns since the epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// The wall clock in ms since the epoch (`guest_ms` of the `@gp` lines).
pub fn wall_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// The calling thread's kernel thread id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Whether this process is the init process of its PID namespace (asked once).
pub fn is_pid1() -> bool {
    static PID1: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: getpid has no preconditions.
    *PID1.get_or_init(|| unsafe { libc::getpid() == 1 })
}

/// Online CPUs (at least 1).
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// Memory the workload may take: free plus buffer memory from sysinfo(2). In a guest running
/// from an initramfs this is what /proc/meminfo calls MemAvailable (there is no page cache to
/// reclaim); on a host it leaves the page cache alone, so it is a little lower than MemAvailable.
pub fn free_memory_bytes() -> io::Result<u64> {
    // SAFETY: sysinfo fills the zeroed struct we own.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = u64::from(si.mem_unit.max(1));
    Ok((si.freeram as u64 + si.bufferram as u64).saturating_mul(unit))
}

/// Pins the calling thread to one CPU; best effort.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// An anonymous private mapping, seen as 64-bit words; unmapped on drop.
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u64>,
    words: usize,
}

// SAFETY: the Region owns its mapping exclusively; moving it to another thread moves that
// ownership.
unsafe impl Send for Region {}

impl Region {
    /// Maps `bytes` (a multiple of 8, > 0). Pages are not touched yet: see [`Region::populate`].
    pub fn map(bytes: usize) -> io::Result<Region> {
        assert!(bytes > 0 && bytes % 8 == 0, "bad region size {bytes}");
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u64>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Region {
            ptr,
            words: bytes / 8,
        })
    }

    /// Faults in the pages of `bytes` bytes at byte offset `start` for writing, in one system
    /// call (`MADV_POPULATE_WRITE`, Linux >= 5.14) instead of two faults per page (a read fault
    /// mapping the zero page, then a copy-on-write fault) when the xor first touches them.
    /// Best effort: on older kernels the xor faults the pages in itself.
    pub fn populate(&mut self, start: usize, bytes: usize) {
        if start >= self.words * 8 {
            return;
        }
        let bytes = bytes.min(self.words * 8 - start);
        // SAFETY: the range lies inside our mapping; madvise does not change its contents.
        unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast::<u8>().add(start).cast(),
                bytes,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }

    /// The whole region.
    pub fn words(&mut self) -> &mut [u64] {
        // SAFETY: the mapping is `words` u64s long, page-aligned, readable and writable, and
        // exclusively ours for as long as `self` is borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.words) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we created.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.words * 8) };
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in a literal path")
}

fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    // Creating the mount point may fail because it exists; mount says what really matters.
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::mkdir(cstr(target).as_ptr(), 0o755) };
    let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            cstr(source).as_ptr(),
            cstr(target).as_ptr(),
            cstr(fstype).as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        return Ok(()); // already mounted
    }
    Err(e)
}

fn fd_is_open(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD on any number is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// PID 1 set-up: mounts /proc, /sys and /dev, and makes sure fds 0-2 are the console.
/// Returns the warnings to print once the console works; a failure to mount /proc is an error,
/// because the settings come from /proc/cmdline.
pub fn init_pid1() -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    mount("proc", "/proc", "proc").map_err(|e| format!("cannot mount /proc: {e}"))?;
    if let Err(e) = mount("sysfs", "/sys", "sysfs") {
        warnings.push(format!("stress: cannot mount /sys: {e}; continuing"));
    }
    if let Err(e) = mount("devtmpfs", "/dev", "devtmpfs") {
        warnings.push(format!(
            "stress: cannot mount devtmpfs on /dev: {e}; continuing"
        ));
    }
    // The kernel opens /dev/console as fds 0-2 if the initrd has it; otherwise find it now.
    if !fd_is_open(1) {
        for dev in ["/dev/console", "/dev/ttyS0"] {
            // SAFETY: valid path; the fd is checked before use.
            let fd = unsafe { libc::open(cstr(dev).as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
            if fd >= 0 {
                for target in 0..=2 {
                    // SAFETY: dup2 onto the standard fds.
                    unsafe { libc::dup2(fd, target) };
                }
                if fd > 2 {
                    // SAFETY: closing the fd we opened.
                    unsafe { libc::close(fd) };
                }
                break;
            }
        }
    }
    Ok(warnings)
}

/// The kernel command line, from /proc/cmdline.
pub fn kernel_cmdline() -> Result<String, String> {
    std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("cannot read /proc/cmdline: {e}"))
}

/// Waits (at most `limit`) until the console has sent what was written to it, so the last line
/// is not lost when the machine powers off.
pub fn drain_console(limit: Duration) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            // SAFETY: tcdrain on fd 1; harmless if it is not a terminal.
            unsafe { libc::tcdrain(1) };
            let _ = tx.send(());
        });
    if spawned.is_ok() {
        let _ = rx.recv_timeout(limit);
    }
}

/// Powers the machine off (PID 1 only); returns only if the kernel refused, with its error.
pub fn power_off() -> io::Error {
    drain_console(Duration::from_secs(2));
    // SAFETY: sync and reboot have no memory-safety preconditions.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    io::Error::last_os_error()
}
