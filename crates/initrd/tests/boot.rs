//! Boots the initrd of this source tree (built by `initrd/build.sh` into the target directory)
//! in a real QEMU (TCG, 2 vCPUs) and checks what `stress` prints on the serial console: the
//! start line, progress from both threads, each thread's end of its first pass, `@gp done` and a
//! clean power-off; and that a bad setting ends in `@gp fatal` and a power-off, not a hang or a
//! kernel panic.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gp_qemu::process::{self, Exit, Hooks, OutputLine, Spec};
use gp_records::stress::StressLine;

/// Kernel command line the tests boot with, before the workload settings. See docs/stress.md,
/// "Kernel command line".
const CMDLINE: &str = "console=ttyS0 quiet panic=-1 tsc=reliable cryptomgr.notests no_timer_check";

/// Generous: TCG on two busy cores can be slow.
const BOOT_DEADLINE: Duration = Duration::from_secs(120);

enum Event {
    Line(OutputLine),
    Exit(Exit),
}

/// A QEMU booted with the initrd. Dropping it kills and reaps QEMU (gp_qemu's `Child` does).
struct Guest {
    child: process::Child,
    events: mpsc::Receiver<Event>,
    spawned: Instant,
    transcript: Vec<(f64, String)>,
    exit: Option<Exit>,
}

fn kernel() -> PathBuf {
    gp_qemu::kernel::find_kernel(None).unwrap_or_else(|e| panic!("{e}"))
}

impl Guest {
    fn boot(initrd: &std::path::Path, settings: &str) -> Guest {
        let mut spec = Spec::new("qemu-boot-test", "qemu-system-x86_64");
        spec.args([
            "-accel",
            "tcg",
            "-smp",
            "2",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
        ]);
        spec.args(["-no-user-config", "-no-reboot", "-serial", "stdio"]);
        spec.arg("-kernel").arg(kernel()).arg("-initrd").arg(initrd);
        spec.arg("-append").arg(format!("{CMDLINE} {settings}"));
        let (tx, events) = mpsc::channel();
        let exit_tx = tx.clone();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |line| {
                let _ = tx.send(Event::Line(line));
            }),
            on_stderr_line: None,
            on_exit: Some(Box::new(move |exit| {
                let _ = exit_tx.send(Event::Exit(exit));
            })),
        };
        let child = process::spawn(&spec, hooks)
            .unwrap_or_else(|e| panic!("{e}: install QEMU with scripts/setup-host.sh"));
        Guest {
            child,
            events,
            spawned: Instant::now(),
            transcript: Vec::new(),
            exit: None,
        }
    }

    /// The next console line, or `None` once QEMU has exited; panics at the deadline.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        if self.exit.is_some() {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(Event::Line(l)) => {
                let at = self.spawned.elapsed().as_secs_f64();
                self.transcript.push((at, l.text.clone()));
                Some(l.text)
            }
            Ok(Event::Exit(e)) => {
                self.exit = Some(e);
                None
            }
            Err(_) => self.fail("deadline passed waiting for the guest"),
        }
    }

    /// Waits for QEMU to exit by itself; panics at the deadline.
    fn wait_exit(&mut self, deadline: Instant) -> Exit {
        while self.next_line(deadline).is_some() {}
        self.exit
            .expect("next_line returns None only after the exit")
    }

    fn fail(&self, why: &str) -> ! {
        let lines: Vec<String> = self
            .transcript
            .iter()
            .map(|(t, l)| format!("  {t:7.3}s {l}"))
            .collect();
        panic!(
            "{why}\nconsole ({} lines):\n{}\nQEMU stderr:\n{}",
            lines.len(),
            lines.join("\n"),
            process::format_tail(&self.child.stderr_tail())
        )
    }
}

#[test]
fn boots_reports_from_both_vcpus_and_powers_off() {
    let initrd = common::initrd();
    let _lock = gp_testkit::vm_test_lock();
    let mut guest = Guest::boot(&initrd, "ramsize=128M stress.duration_s=4");
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut start = None;
    let mut first_progress = [None, None];
    let mut progress_lines = [0u32; 2];
    let mut warm = [None, None];
    let mut done = None;
    while let Some(line) = guest.next_line(deadline) {
        if !line.starts_with("@gp ") {
            continue;
        }
        let Some(parsed) = StressLine::parse(&line) else {
            guest.fail(&format!("garbled @gp line: {line:?}"));
        };
        let at = guest.spawned.elapsed().as_secs_f64();
        match parsed {
            StressLine::Start {
                threads,
                ram_bytes,
                grain_ms,
                workload,
                ..
            } => {
                assert_eq!((threads, ram_bytes), (2, 128 << 20), "{line}");
                assert!(grain_ms > 0.0);
                // No workload setting: the original's start line.
                assert_eq!(workload, None, "{line}");
                start = Some((at, grain_ms));
            }
            StressLine::Progress {
                thread,
                bytes,
                elapsed_ms,
                touched_bytes,
                ..
            } => {
                let Some((_, grain_ms)) = start else {
                    guest.fail("progress before start")
                };
                assert!(thread < 2, "{line}");
                let t = thread as usize;
                // Until a thread is warm its lines say how much it has touched; the one that
                // ends the first pass may be shorter than the grain.
                match (warm[t], touched_bytes) {
                    (None, Some(b)) => assert!(b > 0 && b <= 64 << 20, "{line}"),
                    (Some(_), None) => assert!(elapsed_ms >= grain_ms, "{line}"),
                    _ => guest.fail(&format!("touched_bytes on the wrong side of warm: {line}")),
                }
                assert!(bytes > 0, "{line}");
                progress_lines[t] += 1;
                first_progress[t].get_or_insert(at);
            }
            StressLine::Warm {
                thread,
                touched_bytes,
                ..
            } => {
                assert!(thread < 2, "{line}");
                assert_eq!(touched_bytes, 64 << 20, "{line}");
                if warm[thread as usize].replace(at).is_some() {
                    guest.fail(&format!("thread {thread} warm twice"));
                }
            }
            StressLine::Gb { thread, .. } => assert!(thread < 2, "{line}"),
            StressLine::Done { reason } => done = Some(reason),
            StressLine::Fatal { message } => guest.fail(&format!("stress failed: {message}")),
        }
    }
    let exit = guest.exit.expect("loop ends at exit");
    let Some((start_s, _)) = start else {
        guest.fail("no @gp start line")
    };
    if first_progress.iter().any(Option::is_none) {
        guest.fail(&format!(
            "progress lines per thread: {progress_lines:?}, want both > 0"
        ));
    }
    if warm.iter().any(Option::is_none) {
        guest.fail(&format!("warm lines per thread: {warm:?}, want one each"));
    }
    if done.is_none() {
        guest.fail("no @gp done line");
    }
    if !exit.success() {
        guest.fail(&format!(
            "QEMU ended with {exit}, want exit status 0 (guest power-off)"
        ));
    }
    eprintln!(
        "boot-to-start {start_s:.2}s, first progress {:?}, warm {warm:?}, progress lines \
         {progress_lines:?}, {}",
        first_progress,
        done.unwrap_or_default()
    );
}

/// Boots with `settings`, expects `@gp fatal` containing `needle`, then a power-off.
fn expect_fatal(initrd: &std::path::Path, settings: &str, needle: &str) {
    let mut guest = Guest::boot(initrd, settings);
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut fatal = None;
    while let Some(line) = guest.next_line(deadline) {
        match StressLine::parse(&line) {
            Some(StressLine::Fatal { message }) => fatal = Some(message),
            Some(StressLine::Start { .. }) => {
                guest.fail("the workload started despite a bad setting")
            }
            _ => {}
        }
        if line.contains("Kernel panic") {
            guest.fail("kernel panic instead of a power-off");
        }
    }
    let exit = guest.wait_exit(deadline);
    let Some(message) = fatal else {
        guest.fail("no @gp fatal line")
    };
    assert!(
        message.contains(needle),
        "fatal message {message:?} should mention {needle:?}"
    );
    if !exit.success() {
        guest.fail(&format!(
            "QEMU ended with {exit}, want exit status 0 (guest power-off)"
        ));
    }
}

#[test]
fn bad_setting_is_fatal_and_powers_off() {
    let initrd = common::initrd();
    let _lock = gp_testkit::vm_test_lock();
    expect_fatal(&initrd, "ramsize=garbage", "ramsize");
    expect_fatal(
        &initrd,
        "ramsize=64M stress.dirty_rate=0",
        "stress.dirty_rate=0: \"0\" is zero",
    );
    expect_fatal(
        &initrd,
        "ramsize=64M stress.pattern=once stress.wss=50%",
        "drop stress.wss",
    );
}

#[test]
fn more_memory_than_the_guest_has_is_fatal() {
    let initrd = common::initrd();
    let _lock = gp_testkit::vm_test_lock();
    expect_fatal(&initrd, "ramsize=1G", "lower ramsize");
}
