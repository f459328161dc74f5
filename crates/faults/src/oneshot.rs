//! The one-shot `guestperf` under faults: started as a user starts it (its own process group,
//! stdout and stderr to files), watched through its stderr (gp-launch's `--verbose` lines say
//! when the workload runs), signalled, and checked like a hand-built [`crate::Pipeline`].
//!
//! Every QEMU of the run is marked by the path of its initrd: a symlink to the stress initrd
//! with a name unique to the run (QEMU and gp-launch carry it on their command lines), so the
//! clean-up check finds whatever was started, announced or not.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gp_records::report::Report;

use crate::cleanup;
use crate::pipeline::RECORD_WAIT;
use gp_testkit::bin;

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    ended: bool,
}

/// A running `guestperf`. Dropping it kills whatever is still running.
pub struct OneShot {
    child: Child,
    dir: tempfile::TempDir,
    stderr: Arc<(Mutex<Lines>, Condvar)>,
    started: Instant,
    signalled: Option<(Instant, i32)>,
    status: Option<ExitStatus>,
    /// The initrd path that marks this run's processes.
    pub marker: String,
    /// gp-launch's pid, once seen.
    launch_pid: Option<u32>,
}

impl OneShot {
    /// Starts `guestperf --verbose` on a 256 MiB, 1-vCPU TCG guest with `args`, the report to a
    /// file in the run's directory.
    pub fn start(args: &[&str]) -> OneShot {
        gp_testkit::require_qemu();
        let initrd = gp_qemu::paths::default_initrd();
        assert!(
            initrd.exists(),
            "{} is missing: the fault suite needs the stress initrd (run initrd/build.sh)",
            initrd.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("gp-faults-oneshot-")
            .tempdir()
            .expect("a temporary directory");
        let name = gp_testkit::marker().replace('=', "-");
        let link = dir.path().join(format!("{name}.img"));
        std::os::unix::fs::symlink(&initrd, &link).expect("link the initrd");
        let mut cmd = Command::new(bin("guestperf"));
        cmd.args(gp_testkit::SMALL_TCG_GUEST)
            // The faults, not the settle (see Spec::new).
            .args(["--verbose", "--cold"])
            .arg("--initrd")
            .arg(&link)
            .arg("--output")
            .arg(dir.path().join("report.json"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(Stdio::piped())
            // As a shell starts a job: its own process group.
            .process_group(0);
        let mut child = gp_testkit::end_with_test(&mut cmd)
            .spawn()
            .expect("start guestperf");
        let stderr = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let shared = Arc::clone(&stderr);
        let mut copy = File::create(dir.path().join("stderr")).expect("stderr file");
        std::thread::Builder::new()
            .name("guestperf-stderr".into())
            .spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(copy, "{line}");
                    shared.0.lock().unwrap().lines.push(line);
                    shared.1.notify_all();
                }
                shared.0.lock().unwrap().ended = true;
                shared.1.notify_all();
            })
            .expect("spawn the stderr reader");
        OneShot {
            child,
            dir,
            stderr,
            started: Instant::now(),
            signalled: None,
            status: None,
            marker: link.to_string_lossy().into_owned(),
            launch_pid: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When guestperf was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits (up to [`RECORD_WAIT`]) for a stderr line containing `needle`. Panics with the
    /// logs when guestperf's stderr ends first.
    pub fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + RECORD_WAIT;
        let (lock, cond) = &*self.stderr;
        let mut s = lock.lock().unwrap();
        loop {
            if s.lines.iter().any(|l| l.contains(needle)) {
                break;
            }
            let now = Instant::now();
            if s.ended || now >= deadline {
                drop(s);
                panic!("waiting for {needle:?} on stderr\n{}", self.logs());
            }
            s = cond.wait_timeout(s, deadline - now).unwrap().0;
        }
        drop(s);
        // gp-launch carries the marker on its command line; note its pid for the clean-up check.
        self.launch_pid = gp_testkit::processes_with(&self.marker)
            .into_iter()
            .find(|&pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "gp-launch")
            });
    }

    /// Sends `sig` to guestperf alone, as `kill` does (a closed terminal sends SIGHUP).
    pub fn signal(&mut self, sig: i32) {
        // SAFETY: kill(2) on our own unreaped child.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill -{sig} {}", self.child.id());
        self.signalled = Some((Instant::now(), sig));
    }

    /// Waits for guestperf to exit, `bound` after the signal at most (killing everything and
    /// failing the test otherwise). Returns the exit status and the time from the signal.
    pub fn finish(&mut self, bound: Duration) -> (ExitStatus, Duration) {
        let from = self.signalled.map_or(self.started, |(at, _)| at);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for guestperf") {
                self.status = Some(status);
                return (status, from.elapsed());
            }
            if from.elapsed() > bound {
                let logs = self.logs();
                self.kill_everything();
                panic!("guestperf still running {bound:?} after the signal\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code, or 128 + the signal that killed guestperf.
    pub fn code(status: ExitStatus) -> i32 {
        status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }

    pub fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }

    /// The report gp-collect wrote. Panics with the logs when there is none.
    pub fn report(&self) -> Report {
        let path = self.report_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no report at {}: {e}\n{}", path.display(), self.logs()));
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{} ({} bytes) is not a report: {e}\n{}",
                path.display(),
                text.len(),
                self.logs()
            )
        })
    }

    /// guestperf's stderr so far.
    pub fn logs(&self) -> String {
        let s = self.stderr.0.lock().unwrap();
        format!("--- guestperf stderr ---\n{}\n", s.lines.join("\n"))
    }

    /// Nothing of the run remains (see [`cleanup::check`]).
    pub fn assert_clean(&self) {
        let launch = self
            .launch_pid
            .unwrap_or_else(|| panic!("gp-launch was never seen\n{}", self.logs()));
        if let Err(e) = cleanup::check(launch, &self.marker, &[]) {
            panic!("{e}\n{}", self.logs());
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn kill_everything(&mut self) {
        // SAFETY: kill(2) on our child (its stages are in their own group, killed by marker
        // below or by PR_SET_PDEATHSIG when guestperf dies).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
        for pid in gp_testkit::processes_with(&self.marker) {
            // SAFETY: kill(2) on this run's processes, found by the marker.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

impl Drop for OneShot {
    fn drop(&mut self) {
        if self.status.is_none() || !gp_testkit::processes_with(&self.marker).is_empty() {
            self.kill_everything();
        }
    }
}
