//! gp-sample as a process: sampling a real child, stopping at its exit, ending with its input.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gp_records::{CpuSample, Record};

const DEADLINE: Duration = Duration::from_secs(20);

struct Sample {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Sample {
    fn start(args: &[&str]) -> Sample {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gp-sample"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gp-sample");
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Sample {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("gp-sample wrote nothing for 20 s")
    }

    /// Reads lines until one satisfies `pred`; returns all read.
    fn until(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            let done = pred(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "gp-sample did not exit within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_record(role: &str, pid: u32, vcpu_tids: &[u32]) -> String {
    serde_json::json!({
        "type": "vm", "time_s": gp_records::now_s(), "role": role, "pid": pid,
        "qmp_socket": "/nonexistent", "vcpu_tids": vcpu_tids, "spawned_s": 0.0, "argv": []
    })
    .to_string()
}

fn exit_record(role: &str, pid: u32) -> String {
    serde_json::json!({
        "type": "vm_exit", "time_s": gp_records::now_s(), "role": role, "pid": pid, "status": 0
    })
    .to_string()
}

fn as_sample(line: &str) -> Option<CpuSample> {
    match serde_json::from_str::<Record>(line) {
        Ok(Record::CpuSample(s)) => Some(s),
        _ => None,
    }
}

/// A busy child: a shell spinning in a loop.
fn busy_child() -> Child {
    Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn sh")
}

#[test]
fn samples_a_child_until_its_vm_exit_then_ends_with_input() {
    let mut busy = busy_child();
    let pid = busy.id();
    let mut gp = Sample::start(&["--interval", "50ms"]);
    let vm = vm_record("src", pid, &[pid]);
    gp.send(&vm);
    assert_eq!(gp.next_line(), vm, "the vm record passes through first");

    // Samples arrive as they are taken (flushed per record), and the spinning thread shows.
    let mut samples = Vec::new();
    while samples.len() < 6 {
        let line = gp.next_line();
        samples.push(as_sample(&line).unwrap_or_else(|| panic!("not a sample: {line}")));
    }
    let (first, last) = (&samples[0], samples.last().unwrap());
    assert!(samples.iter().all(|s| s.pid == pid && s.threads.len() == 1));
    assert_eq!(last.threads[0].vcpu, Some(0));
    let ran_ms =
        (last.threads[0].cpu.run_ns.unwrap() - first.threads[0].cpu.run_ns.unwrap()) as f64 / 1e6;
    let wall_ms = (last.time_s - first.time_s) * 1e3;
    assert!(
        ran_ms > 0.2 * wall_ms,
        "busy child ran {ran_ms:.0} ms in {wall_ms:.0} ms"
    );

    busy.kill().unwrap();
    busy.wait().unwrap();
    let exit = exit_record("src", pid);
    gp.send(&exit);
    let seen = gp.until(|l| l == exit);
    for line in &seen[..seen.len() - 1] {
        assert!(
            as_sample(line).is_some(),
            "unexpected line before vm_exit: {line}"
        );
    }
    // Nothing for that VM after its exit record.
    let extra = gp.lines.recv_timeout(Duration::from_millis(400));
    assert!(extra.is_err(), "line after vm_exit: {extra:?}");

    // Closing stdin ends the stage cleanly.
    gp.stdin.take();
    assert!(gp.wait_exit().success());
}

#[test]
fn stops_sampling_a_process_that_is_gone_without_vm_exit() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    let mut gp = Sample::start(&["--interval", "20ms"]);
    gp.send(&vm_record("dst", pid, &[]));
    gp.next_line();
    assert_eq!(as_sample(&gp.next_line()).unwrap().pid, pid);
    child.kill().unwrap();
    child.wait().unwrap();
    // After the process is gone, samples stop within a few intervals.
    let start = Instant::now();
    let mut quiet = false;
    while start.elapsed() < DEADLINE {
        if gp.lines.recv_timeout(Duration::from_millis(500)).is_err() {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "gp-sample kept sampling a dead process");
    gp.stdin.take();
    assert!(gp.wait_exit().success());
}

#[test]
fn sigterm_flushes_and_exits_after_the_grace_period() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let mut gp = Sample::start(&["--interval", "20ms", "--grace", "300ms"]);
    gp.send(&vm_record("src", child.id(), &[]));
    gp.next_line();
    gp.next_line();
    let status = Command::new("kill")
        .args(["-TERM", &gp.child.id().to_string()])
        .status();
    assert!(status.unwrap().success());
    // Input keeps passing during the grace period.
    gp.send("{\"type\":\"late\"}");
    gp.until(|l| l == "{\"type\":\"late\"}");
    let status = gp.wait_exit();
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn closed_stdout_is_a_clean_exit() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let mut gp = Command::new(env!("CARGO_BIN_EXE_gp-sample"))
        .args(["--interval", "10ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gp.stdin.take().unwrap();
    writeln!(stdin, "{}", vm_record("src", child.id(), &[])).unwrap();
    let mut out = BufReader::new(gp.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    drop(out); // Like `gp-sample | head -1`.
    let start = Instant::now();
    let status = loop {
        if let Some(s) = gp.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gp-sample did not notice its closed stdout"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut gp.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status:?} {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    child.kill().unwrap();
    child.wait().unwrap();
}
