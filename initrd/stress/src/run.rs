//! Putting it together: settings, one worker thread per share, the `@gp` lines, and the ways a
//! run ends (duration reached, fatal error, panic).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use gp_records::stress::StressLine;

use crate::console::{emit, write_line};
use crate::meter::Meter;
use crate::settings::{self, HostCommand, Machine, Settings, MIB};
use crate::system::{self, is_pid1, Region};
use crate::work::{Step, Work};
use crate::xor::{xor_words, Pattern, RandomSource};

/// Collapses a message onto one line, so it stays one `@gp fatal` line.
pub fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reports a fatal error and ends: `@gp fatal <message>` on the console, then power-off as PID
/// 1, or exit status 1 on a host (with the message on stderr too).
pub fn fatal(msg: &str) -> ! {
    let msg = one_line(msg);
    let _ = write_line(
        &StressLine::Fatal {
            message: msg.clone(),
        }
        .to_string(),
    );
    if is_pid1() {
        power_off()
    }
    eprintln!("stress: {msg}");
    std::process::exit(1)
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current().name().unwrap_or("main").to_string();
        fatal(&format!("panic in thread {thread}: {info}"))
    }));
}

/// The whole program; returns the exit status (on a host) or never returns (as PID 1).
pub fn main() -> i32 {
    let pid1 = is_pid1();
    install_panic_hook();
    let req = if pid1 {
        let warnings = system::init_pid1().unwrap_or_else(|e| fatal(&e));
        for w in warnings {
            let _ = write_line(&w);
        }
        let cmdline = system::kernel_cmdline().unwrap_or_else(|e| fatal(&e));
        settings::from_cmdline(&cmdline).unwrap_or_else(|e| fatal(&e.0))
    } else {
        match settings::from_args(std::env::args().skip(1)) {
            Ok(HostCommand::Run(req)) => req,
            Ok(HostCommand::Help) => {
                println!("{}", settings::USAGE);
                return 0;
            }
            Ok(HostCommand::Version) => {
                println!("stress {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            Err(e) => {
                eprintln!("stress: {e}");
                return 2;
            }
        }
    };
    let free_bytes = system::free_memory_bytes()
        .unwrap_or_else(|e| fatal(&format!("cannot read free memory (sysinfo): {e}")));
    let machine = Machine {
        online_cpus: system::online_cpus(),
        free_bytes,
    };
    let settings = settings::resolve(&req, machine).unwrap_or_else(|e| fatal(&e.0));
    run(&settings, machine.online_cpus)
}

/// Runs the workload; returns 0 after `duration_s` (on a host) or powers off (as PID 1).
pub fn run(settings: &Settings, online_cpus: u32) -> i32 {
    let threads = settings.threads as usize;
    let stop = Arc::new(AtomicBool::new(false));
    // `ready`: every thread has its memory and pattern; `go`: the start line is out.
    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let (stop, ready, go) = (stop.clone(), ready.clone(), go.clone());
        let s = settings.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("stress-{index}"))
            .spawn(move || worker(index as u32, &s, online_cpus, &ready, &go, &stop));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => fatal(&format!("cannot start thread {index}: {e}")),
        }
    }
    ready.wait();
    emit(&StressLine::Start {
        threads: settings.threads,
        ram_bytes: settings.ram_bytes(),
        grain_ms: settings.grain_ms,
        guest_ms: system::wall_ms(),
        workload: settings.start_workload(),
    });
    go.wait();
    let started_ms = system::monotonic_ms();
    if let Some(d) = settings.duration_s {
        std::thread::sleep(Duration::from_secs_f64(d));
        stop.store(true, Ordering::Relaxed);
    }
    let mut bytes = 0u64;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(n) => bytes += n,
            Err(_) => fatal(&format!("thread {i} panicked")),
        }
    }
    let elapsed_ms = system::monotonic_ms() - started_ms;
    let d = settings.duration_s.unwrap_or(0.0);
    emit(&StressLine::Done {
        reason: format!("duration_s={d} elapsed_ms={elapsed_ms:.1} bytes={bytes}"),
    });
    if is_pid1() {
        power_off()
    }
    0
}

/// Powers the guest off. If the kernel refuses, PID 1 exits instead: the kernel then panics, and
/// with `panic=-1` and QEMU's `-no-reboot` the VM still ends.
fn power_off() -> ! {
    let e = system::power_off();
    let _ = write_line(&format!("stress: power-off failed: {e}; exiting"));
    std::process::exit(1)
}

/// Longest a thread sleeps between two looks at the stop flag (when progress lines are off or
/// rare, or its rate is very low).
const MAX_SLEEP_MS: f64 = 100.0;

/// One thread: map its share, write all of it once (faulting it in), say so, then write its
/// pattern at its rate, reporting as it goes.
/// Returns the bytes xored once told to stop.
fn worker(
    index: u32,
    s: &Settings,
    online_cpus: u32,
    ready: &Barrier,
    go: &Barrier,
    stop: &AtomicBool,
) -> u64 {
    if is_pid1() {
        // One thread per vCPU, so thread i's records are vCPU i's.
        system::pin_to_cpu(index as usize % online_cpus.max(1) as usize);
    }
    let share = s.share_bytes;
    let mut region = Region::map(share as usize).unwrap_or_else(|e| {
        fatal(&format!(
            "thread {index}: cannot map its {} MiB share: {e}; lower ramsize",
            share / MIB
        ))
    });
    let (pattern, source) = Pattern::random();
    if source == RandomSource::TimeSeeded && index == 0 {
        let _ = write_line("stress: the kernel gave no random bytes without blocking; using a clock-seeded generator");
    }
    let seed = pattern.0[0] ^ u64::from(index);
    let mut work = Work::new(share, s.wss_share_bytes, s.pattern, s.thread_rate(), seed);
    let tid = system::gettid();
    ready.wait();
    go.wait();
    let start_ms = system::monotonic_ms();
    let mut meter = Meter::new(start_ms, s.grain_ms);
    let mut warm_said = false;
    loop {
        // The first pass faults the share in chunk by chunk just before xoring it, so the work
        // starts at once instead of after the whole share is allocated (~10 ms per MiB under
        // TCG).
        let step = work.step(
            system::monotonic_ms(),
            meter.to_gb(),
            |start, len, first| {
                if first {
                    region.populate(start as usize, len as usize);
                }
                let words = &mut region.words()[(start / 8) as usize..((start + len) / 8) as usize];
                xor_words(words, &pattern);
            },
        );
        let (bytes, warmed) = match step {
            Step::Wrote { bytes, warmed } => (bytes, warmed),
            Step::WaitUntil(t) => {
                let now = system::monotonic_ms();
                system::sleep_until_ms(t.min(meter.next_progress_ms()).min(now + MAX_SLEEP_MS));
                (0, false)
            }
            Step::Idle => {
                let now = system::monotonic_ms();
                system::sleep_until_ms(meter.next_progress_ms().min(now + MAX_SLEEP_MS));
                (0, false)
            }
        };
        let now = system::monotonic_ms();
        let mut due = meter.add(bytes, now);
        if warmed {
            // The warm line ends the first pass's progress lines: the next one counts only
            // writes after it.
            due.progress = due.progress.or_else(|| meter.flush(now));
        }
        if due.progress.is_some() || due.gb_elapsed_ms.is_some() || warmed {
            let guest_ms = system::wall_ms();
            if let Some(p) = due.progress {
                emit(&StressLine::Progress {
                    thread: index,
                    guest_ms,
                    bytes: p.bytes,
                    elapsed_ms: p.elapsed_ms,
                    touched_bytes: (!warm_said).then(|| work.touched()),
                });
            }
            if let Some(elapsed_ms) = due.gb_elapsed_ms {
                emit(&StressLine::Gb {
                    thread: index,
                    tid,
                    guest_ms,
                    elapsed_ms,
                });
            }
            if warmed {
                emit(&StressLine::Warm {
                    thread: index,
                    guest_ms,
                    elapsed_ms: now - start_ms,
                    touched_bytes: work.touched(),
                });
                warm_said = true;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return meter.total_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_newlines() {
        assert_eq!(
            one_line("panicked at src/x.rs:1:2:\nboom\r\n"),
            "panicked at src/x.rs:1:2: boom"
        );
    }
}
