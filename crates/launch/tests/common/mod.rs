//! Running gp-launch as the user would, and checking that nothing outlives it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use gp_records::Record;
pub use gp_testkit::{marker, processes_with};

pub const BIN: &str = env!("CARGO_BIN_EXE_gp-launch");

/// Generous: TCG on two busy cores.
pub const BOOT_WAIT: Duration = Duration::from_secs(180);
pub const EXIT_WAIT: Duration = Duration::from_secs(60);

/// A running gp-launch with its output collected on threads.
pub struct Launch {
    pub args: Vec<String>,
    pub marker: String,
    child: Option<Child>,
    lines_rx: Receiver<String>,
    pub lines: Vec<String>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Launch {
    /// Starts gp-launch with `args` plus a marker kernel argument.
    pub fn start(args: &[&str]) -> Launch {
        Launch::start_with_env(args, &[])
    }

    /// [`Launch::start`] with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Launch {
        let marker = marker();
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push(format!("--kernel-arg={marker}"));
        let mut child = gp_testkit::end_with_test(&mut Command::new(BIN))
            .args(&all)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gp-launch");
        let (tx, lines_rx) = unbounded();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Launch {
            args: all,
            marker,
            child: Some(child),
            lines_rx,
            lines: Vec::new(),
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything known, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "command: {} {}\nstatus: {:?}\nstdout ({} lines):\n{}\nstderr:\n{}",
            BIN,
            self.args.join(" "),
            self.status,
            self.lines.len(),
            self.lines
                .iter()
                .map(|l| truncate(l, 400))
                .collect::<Vec<_>>()
                .join("\n"),
            self.stderr()
        )
    }

    /// Reads records until one satisfies `pred` (returned), failing after `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&Record) -> bool,
    ) -> Record {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    let rec = gp_records::ndjson::parse_line(&line)
                        .unwrap_or_else(|e| panic!("bad line {line}: {e}\n{}", self.report()))
                        .unwrap_or_else(|| {
                            panic!("unknown record type: {line}\n{}", self.report())
                        });
                    if pred(&rec) {
                        return rec;
                    }
                }
                Err(_) => panic!("no {what} within {timeout:?}\n{}", self.report()),
            }
        }
    }

    /// Collects the rest of stdout and the exit status, failing after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines_rx
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) => self.lines.push(line),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().unwrap().wait().unwrap();
                    self.status = Some(status);
                    return status;
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        panic!(
                            "gp-launch did not exit within {timeout:?}\n{}",
                            self.report()
                        );
                    }
                }
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// All records read so far.
    pub fn records(&self) -> Vec<Record> {
        self.lines
            .iter()
            .filter_map(|l| gp_records::ndjson::parse_line(l).ok().flatten())
            .collect()
    }

    pub fn vm_records(&self) -> Vec<gp_records::Vm> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Vm(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// Asserts no QEMU of this run is alive (by pid and by marker) and its runtime dir is gone.
    pub fn assert_clean(&self) {
        let vms = self.vm_records();
        let ok = gp_testkit::wait_until(Duration::from_secs(30), || {
            vms.iter().all(|v| !gp_testkit::pid_alive(v.pid))
                && processes_with(&self.marker).is_empty()
        });
        assert!(
            ok,
            "QEMU outlived gp-launch: pids {:?} / by marker {:?}\n{}",
            vms.iter()
                .map(|v| v.pid)
                .filter(|p| gp_testkit::pid_alive(*p))
                .collect::<Vec<_>>(),
            processes_with(&self.marker),
            self.report()
        );
        for v in &vms {
            let dir = Path::new(&v.qmp_socket).parent().unwrap();
            assert!(
                !dir.exists(),
                "runtime dir {} left behind\n{}",
                dir.display(),
                self.report()
            );
        }
        let leftovers = runtime_dirs_of(self.pid());
        assert!(
            leftovers.is_empty(),
            "runtime dirs left: {leftovers:?}\n{}",
            self.report()
        );
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Never leave a QEMU behind, even when a test failed half-way.
        for pid in processes_with(&self.marker) {
            // SAFETY: killing a leftover QEMU this test started (found by its unique marker).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        for dir in runtime_dirs_of(self.pid()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// gp-launch runtime directories named after `pid`.
pub fn runtime_dirs_of(pid: u32) -> Vec<PathBuf> {
    let base = gp_qemu::runtime::base_dir();
    let prefix = format!("gp-launch-{pid}-");
    std::fs::read_dir(&base)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

/// Runs gp-launch to completion (bad-input cases) and returns (status, stdout, stderr).
pub fn run_to_end(args: &[&str]) -> (ExitStatus, String, String, String) {
    let marker = marker();
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push(format!("--kernel-arg={marker}"));
    let mut child = gp_testkit::end_with_test(&mut Command::new(BIN))
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gp-launch");
    let pid = child.id();
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut e = String::new();
        let _ = se.read_to_string(&mut e);
        e
    });
    let _ = so.read_to_string(&mut out);
    err.push_str(&t.join().unwrap());
    let status = child.wait().unwrap();
    assert!(
        runtime_dirs_of(pid).is_empty(),
        "runtime dir left behind by {all:?}"
    );
    (status, out, err, marker)
}

/// The QMP helper a later stage would use: connect to a public socket.
pub fn qmp(path: &str) -> gp_qemu::qmp::Qmp {
    gp_qemu::qmp::Qmp::connect(
        Path::new(path),
        Instant::now() + Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("connect {path}: {e}"))
}
