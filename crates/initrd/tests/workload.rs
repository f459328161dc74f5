//! A paced workload in a real guest, booted the way users boot it: `gp-launch --accel tcg
//! --stress-dirty-rate 32M --stress-wss 50%` with the initrd of this source tree. Its records must
//! state the workload asked for (`launch`) and done (`guest_start`), show each source thread's
//! first pass (`touched_bytes`, then `guest_warm`), and an achieved rate near 32 MiB/s after it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gp_records::stress::{Pattern, Written};
use gp_records::{Record, Role};

/// Generous: TCG on two busy cores can be slow to boot.
const RUN_DEADLINE: Duration = Duration::from_secs(240);

/// gp-launch and its output; dropping it stops gp-launch (which stops its QEMUs) and reaps it.
struct Launch {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Launch {
    fn start(args: &[&str]) -> Launch {
        let bin = common::workspace_binary("gp-launch", "gp-launch");
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gp-launch");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Launch {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Every record until gp-launch closes its output; panics at the deadline.
    fn records_to_end(&mut self, deadline: Instant) -> Vec<Record> {
        let mut records = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match gp_records::ndjson::parse_line(&line) {
                    Ok(Some(r)) => records.push(r),
                    Ok(None) => panic!("unknown record type: {line}"),
                    Err(e) => panic!("bad record {line}: {e}"),
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => return records,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("gp-launch still running at the deadline; records so far:\n{records:#?}")
                }
            }
        }
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: signalling our own child; gp-launch stops its QEMUs on SIGTERM.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let stopped = gp_testkit::wait_until(Duration::from_secs(30), || {
                self.child.try_wait().ok().flatten().is_some()
            });
            if !stopped {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

#[test]
fn paced_workload_reports_its_rate_and_each_thread_warm() {
    const RATE: u64 = 32 << 20;
    const RAM: u64 = 128 << 20;
    gp_testkit::require_qemu();
    let initrd = common::initrd();
    let _lock = gp_testkit::vm_test_lock();
    let initrd = initrd.to_str().expect("a UTF-8 target directory");
    let mut launch = Launch::start(&[
        "--accel",
        "tcg",
        "--mem",
        "256M",
        "--cpus",
        "2",
        "--initrd",
        initrd,
        "--stress-ram",
        "128M",
        "--stress-dirty-rate",
        "32M",
        "--stress-wss",
        "50%",
        "--stress-duration-s",
        "10",
    ]);
    let records = launch.records_to_end(Instant::now() + RUN_DEADLINE);
    let status = launch.child.wait().unwrap();
    let stderr = launch.stderr.take().unwrap().join().unwrap();
    let dump = || format!("status {status}\nstderr:\n{stderr}\nrecords:\n{records:#?}");
    assert!(status.success(), "{}", dump());

    // What was asked.
    let Some(Record::Launch(header)) = records.first() else {
        panic!("no launch header first\n{}", dump())
    };
    let asked = &header.hardware.workload;
    assert_eq!((asked.ram_bytes, asked.threads), (RAM, 2));
    assert_eq!(asked.dirty_rate_bytes_per_s, Some(RATE));
    assert_eq!((asked.wss_pct, asked.wss_bytes), (Some(50.0), None));
    assert!(
        header
            .kernel_cmdline
            .contains("stress.wss=50% stress.dirty_rate=32M"),
        "{}",
        header.kernel_cmdline
    );

    // What the guest says it does.
    let start = records
        .iter()
        .find_map(|r| match r {
            Record::GuestStart(s) if s.role == Role::Src => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no guest_start\n{}", dump()));
    assert_eq!((start.threads, start.ram_bytes), (2, RAM));
    assert_eq!(start.pattern, Pattern::Seq);
    assert_eq!(start.wss_bytes, Some(RAM / 2));
    assert_eq!(start.dirty_rate_bytes_per_s, Some(RATE));

    // Each thread: touched_bytes growing to its share, then one warm record, then the rate.
    let share = RAM / 2;
    let mut warm_s = [None, None];
    let mut touched = [0u64; 2];
    let mut written = Written::new();
    for r in &records {
        match r {
            Record::GuestProgress(p) if p.role == Role::Src => {
                let t = p.thread as usize;
                match (warm_s[t], p.touched_bytes) {
                    (None, Some(b)) => {
                        assert!(b >= touched[t] && b <= share, "{p:?}");
                        touched[t] = b;
                    }
                    (Some(_), None) => {
                        written.push(p.thread, p.guest_time_ms, p.elapsed_ms, p.bytes)
                    }
                    _ => panic!("touched_bytes on the wrong side of warm: {p:?}\n{}", dump()),
                }
            }
            Record::GuestWarm(w) if w.role == Role::Src => {
                let t = w.thread as usize;
                assert_eq!(w.touched_bytes, share, "{w:?}");
                assert_eq!(touched[t], share, "thread {t}: progress before warm");
                assert!(
                    warm_s[t].replace(w.time_s).is_none(),
                    "thread {t} warm twice"
                );
            }
            _ => {}
        }
    }
    assert!(
        warm_s.iter().all(Option::is_some),
        "warm per thread: {warm_s:?}\n{}",
        dump()
    );
    let spread = written
        .spread(RATE as f64, 100.0, 10.0)
        .unwrap_or_else(|| panic!("no whole 100 ms window after warm\n{}", dump()));
    eprintln!("achieved rate in the guest (2 threads, TCG): {spread:?}");
    // A TCG guest on a shared host loses its vCPUs now and then (whole windows at high load):
    // the median window and the mean hold, every window stays below the catch-up bound.
    assert!(spread.span_ms >= 5_000.0, "{spread:?}");
    assert!((spread.median_pct - 100.0).abs() <= 10.0, "{spread:?}");
    assert!((spread.mean_pct - 100.0).abs() <= 15.0, "{spread:?}");
    assert!(spread.max_pct <= 160.0, "{spread:?}");
}
