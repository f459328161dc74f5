//! Reading one QEMU process's CPU time from /proc with the procfs crate.

use gp_records::sample::{CpuSample, CpuTime, ThreadCpu};
use gp_records::{now_s, Role};
use procfs::process::{Process, Stat};

use crate::classify::classify;

/// A local QEMU process being sampled.
///
/// It holds `/proc/PID` open, so a sample after the process died fails even if its pid has been
/// reused by another process.
pub struct Target {
    pub role: Role,
    pub pid: u32,
    vcpu_tids: Vec<u32>,
    process: Process,
    ms_per_tick: f64,
    /// Whether the "threads have no names" note was printed.
    warned_unnamed: bool,
}

/// Why a process can no longer be sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Gone(pub String);

impl Target {
    /// Opens `/proc/PID`. Fails if the process does not exist (already exited).
    pub fn open(role: Role, pid: u32, vcpu_tids: Vec<u32>) -> Result<Target, Gone> {
        let process =
            Process::new(pid as i32).map_err(|e| Gone(format!("cannot open /proc/{pid}: {e}")))?;
        Ok(Target {
            role,
            pid,
            vcpu_tids,
            process,
            ms_per_tick: 1000.0 / procfs::ticks_per_second() as f64,
            warned_unnamed: false,
        })
    }

    fn cpu_time(&self, stat: &Stat) -> (f64, f64) {
        (
            stat.utime as f64 * self.ms_per_tick,
            stat.stime as f64 * self.ms_per_tick,
        )
    }

    /// Reads the process and every thread now. `Err` once the process is gone (exited, a zombie,
    /// or its pid reused).
    pub fn sample(&mut self) -> Result<CpuSample, Gone> {
        let time_s = now_s();
        let stat = self
            .process
            .stat()
            .map_err(|e| Gone(format!("process exited ({e})")))?;
        if stat.state == 'Z' || stat.state == 'X' {
            return Err(Gone("process exited (zombie)".into()));
        }
        let (user_ms, system_ms) = self.cpu_time(&stat);
        let process_name = stat.comm;
        let mut threads = Vec::with_capacity(self.vcpu_tids.len() + 8);
        let tasks = self
            .process
            .tasks()
            .map_err(|e| Gone(format!("process exited ({e})")))?;
        // A thread may exit between listing and reading: skip it.
        for task in tasks.flatten() {
            let Ok(tstat) = task.stat() else { continue };
            let (user_ms, system_ms) = self.cpu_time(&tstat);
            let run_ns = task.schedstat().ok().map(|s| s.sum_exec_runtime);
            let tid = task.tid as u32;
            let (class, vcpu) = classify(tid, &tstat.comm, &self.vcpu_tids);
            threads.push(ThreadCpu {
                tid,
                name: tstat.comm,
                class,
                vcpu,
                cpu: CpuTime {
                    user_ms,
                    system_ms,
                    run_ns,
                },
            });
        }
        if threads.is_empty() {
            return Err(Gone("process exited (no threads left)".into()));
        }
        threads.sort_by_key(|t| t.tid);
        if !self.warned_unnamed && threads.len() > 1 + self.vcpu_tids.len() {
            if threads.iter().all(|t| t.name == process_name) {
                eprintln!(
                    "gp-sample: the {} QEMU (pid {}) does not name its threads, so its migration \
                     threads count as \"other\"; start QEMU with -name <name>,debug-threads=on",
                    self.role, self.pid
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
