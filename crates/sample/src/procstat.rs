//! Reading one QEMU process's CPU time from /proc, parsed with the procfs crate.
//!
//! Cheap by design: the `stat` and `schedstat` files of the process and of each thread are opened
//! once and re-read with `pread` at offset 0 (proc regenerates them on every read), so a sample
//! costs one directory listing plus two small reads per thread, with no open/close per sample.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use gp_records::sample::{CpuSample, CpuTime, ThreadCpu};
use gp_records::{now_s, Role};
use procfs::process::{Schedstat, Stat};
use procfs::FromRead;

use crate::classify::classify;

/// A local QEMU process being sampled.
///
/// It holds `/proc/PID/stat` open: once the process is reaped, reading it fails even if the pid
/// has been reused by another process.
pub struct Target {
    pub role: Role,
    pub pid: u32,
    vcpu_tids: Vec<u32>,
    stat: File,
    threads: HashMap<u32, ThreadFiles>,
    ms_per_tick: f64,
    buf: Vec<u8>,
    /// Whether the "threads have no names" note was printed.
    warned_unnamed: bool,
}

struct ThreadFiles {
    stat: File,
    schedstat: Option<File>,
}

/// Why a process can no longer be sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Gone(pub String);

/// Reads a whole proc file from offset 0 into `buf`.
fn pread(file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    if buf.capacity() < 4096 {
        buf.reserve(4096);
    }
    loop {
        let len = buf.len();
        let cap = buf.capacity();
        buf.resize(cap, 0);
        let n = file.read_at(&mut buf[len..], len as u64)?;
        buf.truncate(len + n);
        if n == 0 || buf.len() < cap {
            return Ok(());
        }
        buf.reserve(cap);
    }
}

fn parse<T: FromRead>(buf: &[u8]) -> io::Result<T> {
    T::from_read(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl Target {
    /// Opens `/proc/PID/stat`. Fails if the process does not exist (already exited).
    pub fn open(role: Role, pid: u32, vcpu_tids: Vec<u32>) -> Result<Target, Gone> {
        let path = format!("/proc/{pid}/stat");
        let stat = File::open(&path).map_err(|e| Gone(format!("cannot open {path}: {e}")))?;
        Ok(Target {
            role,
            pid,
            vcpu_tids,
            stat,
            threads: HashMap::new(),
            ms_per_tick: 1000.0 / procfs::ticks_per_second() as f64,
            buf: Vec::with_capacity(4096),
            warned_unnamed: false,
        })
    }

    fn cpu_time(&self, stat: &Stat) -> (f64, f64) {
        (
            stat.utime as f64 * self.ms_per_tick,
            stat.stime as f64 * self.ms_per_tick,
        )
    }

    /// Reads one thread; `None` if it exited.
    fn thread(&mut self, tid: u32) -> Option<ThreadCpu> {
        if !self.threads.contains_key(&tid) {
            let dir = format!("/proc/{}/task/{tid}", self.pid);
            let stat = File::open(format!("{dir}/stat")).ok()?;
            let schedstat = File::open(format!("{dir}/schedstat")).ok();
            self.threads.insert(tid, ThreadFiles { stat, schedstat });
        }
        let files = &self.threads[&tid];
        let read = pread(&files.stat, &mut self.buf).and_then(|()| parse::<Stat>(&self.buf));
        let Ok(stat) = read else {
            self.threads.remove(&tid);
            return None;
        };
        let run_ns = files.schedstat.as_ref().and_then(|f| {
            pread(f, &mut self.buf).ok()?;
            parse::<Schedstat>(&self.buf)
                .ok()
                .map(|s| s.sum_exec_runtime)
        });
        let (user_ms, system_ms) = self.cpu_time(&stat);
        let (class, vcpu) = classify(tid, &stat.comm, &self.vcpu_tids);
        Some(ThreadCpu {
            tid,
            name: stat.comm,
            class,
            vcpu,
            cpu: CpuTime {
                user_ms,
                system_ms,
                run_ns,
            },
        })
    }

    /// Reads the process and every thread now. `Err` once the process is gone (exited, a zombie,
    /// or its pid reused).
    pub fn sample(&mut self) -> Result<CpuSample, Gone> {
        let time_s = now_s();
        pread(&self.stat, &mut self.buf).map_err(|e| Gone(format!("process exited ({e})")))?;
        let stat: Stat = parse(&self.buf).map_err(|e| Gone(format!("unreadable stat: {e}")))?;
        if stat.state == 'Z' || stat.state == 'X' {
            return Err(Gone("process exited (zombie)".into()));
        }
        let (user_ms, system_ms) = self.cpu_time(&stat);
        let task_dir = format!("/proc/{}/task", self.pid);
        let entries =
            std::fs::read_dir(&task_dir).map_err(|e| Gone(format!("process exited ({e})")))?;
        let mut tids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        // Forget threads that exited.
        self.threads
            .retain(|tid, _| tids.binary_search(tid).is_ok());
        // A thread may exit between listing and reading: it is skipped.
        let threads: Vec<ThreadCpu> = tids
            .into_iter()
            .filter_map(|tid| self.thread(tid))
            .collect();
        if threads.is_empty() {
            return Err(Gone("process exited (no threads left)".into()));
        }
        if !self.warned_unnamed && threads.len() > 1 + self.vcpu_tids.len() {
            if threads.iter().all(|t| t.name == stat.comm) {
                say!(
                    "gp-sample: the {} QEMU (pid {}) does not name its threads, so its migration \
                     threads count as \"other\"; start QEMU with -name <name>,debug-threads=on",
                    self.role,
                    self.pid
                );
            }
            self.warned_unnamed = true;
        }
        Ok(CpuSample {
            time_s,
            role: self.role,
            pid: self.pid,
            host: None,
            process: CpuTime {
                user_ms,
                system_ms,
                run_ns: None,
            },
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_records::sample::ThreadClass;

    #[test]
    fn samples_this_process_and_a_busy_thread() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let busy = std::thread::Builder::new()
            .name("mig/src/main".into())
            .spawn(move || {
                tx.send(own_tid()).unwrap();
                let mut x = 0u64;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(31).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
            .unwrap();
        let busy_tid = rx.recv().unwrap();
        let pid = std::process::id();
        let mut target = Target::open(Role::Src, pid, vec![busy_tid]).unwrap();
        let first = target.sample().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let second = target.sample().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        busy.join().unwrap();

        assert_eq!(second.pid, pid);
        assert!(second.time_s > first.time_s);
        let find = |s: &CpuSample| {
            s.threads
                .iter()
                .find(|t| t.tid == busy_tid)
                .cloned()
                .unwrap()
        };
        let (a, b) = (find(&first), find(&second));
        // Listed as vCPU 0 because its tid is in vcpu_tids, even though its name says migration.
        assert_eq!((b.class, b.vcpu), (ThreadClass::Vcpu, Some(0)));
        assert_eq!(b.name, "mig/src/main");
        // It spun for 300 ms: schedstat shows most of that.
        let ran_ms = (b.cpu.run_ns.unwrap() - a.cpu.run_ns.unwrap()) as f64 / 1e6;
        assert!(ran_ms > 100.0, "busy thread ran only {ran_ms} ms in 300 ms");
        assert!(second.process.user_ms + second.process.system_ms >= 100.0);
    }

    #[test]
    fn a_missing_process_is_gone() {
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(Target::open(Role::Dst, 5_000_000, vec![]).is_err());
    }

    fn own_tid() -> u32 {
        // The thread's own id, as /proc/self/task lists it.
        std::fs::read_link("/proc/thread-self")
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}
