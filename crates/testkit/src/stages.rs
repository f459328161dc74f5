//! A pipeline of tools a test starts as a shell would (`a | b | c`): one process group, each
//! stage's stdin the previous stage's stdout, each stage's stderr in a file of its own, all of
//! it ending with the test, or killed at its deadline.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The running stages, in pipeline order. Dropping it kills whatever still runs.
#[derive(Debug)]
pub struct Stages {
    dir: PathBuf,
    children: Vec<(&'static str, Child)>,
    /// The last stage's stdout, when it was started with [`Stages::pipe`].
    stdout: Option<ChildStdout>,
    started: Instant,
    deadline: Duration,
    /// Set when [`Stages::read_lines`] killed the pipeline at its deadline.
    killed: Arc<AtomicBool>,
}

impl Stages {
    /// An empty pipeline whose stages write their stderr to `dir/NAME`, and that may run for
    /// `deadline` in all before [`Stages::wait`] kills it and fails the test.
    pub fn new(dir: &Path, deadline: Duration) -> Stages {
        Stages {
            dir: dir.to_path_buf(),
            children: Vec::new(),
            stdout: None,
            started: Instant::now(),
            deadline,
            killed: Arc::default(),
        }
    }

    /// Starts `cmd` as the next stage, its stdout piped to the stage after it (or, for the last
    /// stage, read by [`Stages::read_lines`]).
    pub fn pipe(&mut self, name: &'static str, cmd: &mut Command) -> &mut Self {
        self.start(name, cmd.stdout(Stdio::piped()))
    }

    /// Starts `cmd` as the last stage, its stdout discarded (it writes a file, say).
    pub fn last(&mut self, name: &'static str, cmd: &mut Command) -> &mut Self {
        self.start(name, cmd.stdout(Stdio::null()))
    }

    fn start(&mut self, name: &'static str, cmd: &mut Command) -> &mut Self {
        let stderr = File::create(self.dir.join(name))
            .unwrap_or_else(|e| panic!("stderr file for {name} in {}: {e}", self.dir.display()));
        let stdin = self.stdout.take().map_or_else(Stdio::null, Stdio::from);
        let group = self.children.first().map_or(0, |(_, c)| c.id() as i32);
        cmd.stdin(stdin).stderr(stderr).process_group(group);
        crate::end_with_test(cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.stdout = child.stdout.take();
        self.children.push((name, child));
        self
    }

    /// The process group every stage is in (the first stage's pid): where Ctrl-C goes.
    pub fn pgid(&self) -> u32 {
        self.children.first().expect("a started stage").1.id()
    }

    /// The pid of the stage named `name`.
    pub fn pid(&self, name: &str) -> u32 {
        let stage = self.children.iter().find(|(n, _)| *n == name);
        stage
            .unwrap_or_else(|| panic!("no stage named {name}"))
            .1
            .id()
    }

    /// Reads the last stage's output line by line, handing each line to `each` until it returns
    /// false (the output is then closed: the last stage finds its reader gone) or the output
    /// ends. A pipeline still writing at its deadline is killed, which ends the output, and
    /// [`Stages::wait`] then fails the test.
    pub fn read_lines(&mut self, mut each: impl FnMut(&str) -> bool) {
        let output = self
            .stdout
            .take()
            .expect("the last stage was started with pipe()");
        let (done, ended) = mpsc::channel::<()>();
        let left = self.deadline.saturating_sub(self.started.elapsed());
        let (pgid, killed) = (self.pgid() as i32, self.killed.clone());
        let watchdog = std::thread::spawn(move || {
            if ended.recv_timeout(left) == Err(mpsc::RecvTimeoutError::Timeout) {
                killed.store(true, Ordering::SeqCst);
                // SAFETY: kill(2) on our own process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        });
        for line in BufReader::new(output).lines() {
            let line = line.expect("read the last stage's output");
            if !each(&line) {
                break;
            }
        }
        let _ = done.send(());
        watchdog.join().expect("the watchdog thread");
    }

    /// Since the first stage started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every stage's stderr so far, each under its name: for a failing assertion's message.
    pub fn stderr(&self) -> String {
        let mut all = String::new();
        for (name, _) in &self.children {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            all.push_str(&format!("--- {name} stderr ---\n{text}"));
        }
        all
    }

    /// Waits for every stage to end and returns their statuses in pipeline order. Past the
    /// deadline, kills the whole group and fails the test with every stage's stderr.
    pub fn wait(&mut self) -> Vec<(&'static str, ExitStatus)> {
        let left = self.deadline.saturating_sub(self.started.elapsed());
        let all_ended = crate::wait_until(left, || {
            self.children
                .iter_mut()
                .all(|(_, child)| child.try_wait().unwrap().is_some())
        });
        if !all_ended || self.killed.load(Ordering::SeqCst) {
            // SAFETY: kill(2) on our own process group.
            unsafe { libc::kill(-(self.pgid() as i32), libc::SIGKILL) };
            panic!(
                "pipeline still running after {:?}\n{}",
                self.deadline,
                self.stderr()
            );
        }
        self.children
            .iter_mut()
            .map(|(name, child)| (*name, child.wait().unwrap()))
            .collect()
    }

    /// Waits as [`Stages::wait`] does and fails the test unless every stage exited with
    /// success; returns every stage's stderr.
    pub fn wait_success(&mut self) -> String {
        let statuses = self.wait();
        let logs = self.stderr();
        for (name, status) in &statuses {
            assert!(status.success(), "{name} exited with {status}\n{logs}");
        }
        logs
    }
}

impl Drop for Stages {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_pass_their_output_on_and_keep_their_stderr_apart() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut stages = Stages::new(dir.path(), Duration::from_secs(60));
        stages
            .pipe(
                "first",
                Command::new("sh").args(["-c", "echo hello; echo oops >&2"]),
            )
            .pipe("upper", Command::new("tr").args(["a-z", "A-Z"]))
            .last(
                "write",
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("cat > {}", out.display())),
            );
        let statuses = stages.wait();
        let names: Vec<&str> = statuses.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["first", "upper", "write"]);
        assert!(statuses.iter().all(|(_, s)| s.success()), "{statuses:?}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "HELLO\n");
        assert!(stages.stderr().contains("--- first stderr ---\noops\n"));
    }

    #[test]
    #[should_panic(expected = "failing exited with exit status: 3")]
    fn a_stage_that_fails_fails_wait_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut stages = Stages::new(dir.path(), Duration::from_secs(60));
        stages
            .pipe("fine", &mut Command::new("true"))
            .last("failing", Command::new("sh").args(["-c", "exit 3"]));
        stages.wait_success();
    }

    #[test]
    fn read_lines_hands_over_each_line_until_told_to_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut stages = Stages::new(dir.path(), Duration::from_secs(60));
        stages.pipe(
            "lines",
            Command::new("sh").args(["-c", "seq 3; seq 100000"]),
        );
        let mut seen = Vec::new();
        stages.read_lines(|line| {
            seen.push(line.to_string());
            seen.len() < 3
        });
        assert_eq!(seen, ["1", "2", "3"]);
        // The writer found its reader gone.
        let statuses = stages.wait();
        assert!(!statuses[0].1.success(), "{statuses:?}");
    }

    #[test]
    #[should_panic(expected = "pipeline still running after")]
    fn a_pipeline_still_writing_at_its_deadline_is_killed_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut stages = Stages::new(dir.path(), Duration::from_millis(300));
        stages.pipe(
            "ticker",
            Command::new("sh").args(["-c", "while :; do echo; sleep 0.05; done"]),
        );
        let started = Instant::now();
        stages.read_lines(|_| true);
        assert!(started.elapsed() < Duration::from_secs(30));
        stages.wait();
    }

    #[test]
    #[should_panic(expected = "pipeline still running after")]
    fn a_pipeline_past_its_deadline_is_killed_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut stages = Stages::new(dir.path(), Duration::from_millis(200));
        stages.last("sleeper", Command::new("sleep").arg("600"));
        stages.wait();
    }
}
