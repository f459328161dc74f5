//! The achieved dirty rate of a `stress` run: how every 100 ms window compares with its target.
//!
//! ```sh
//! stress --dirty-rate 200M --grain-ms 10 --duration-s 10 | cargo run -q --example dirty-rate
//! gp-launch ... --stress-dirty-rate 32M | cargo run -q -p stress --example dirty-rate
//! ```
//!
//! Reads `@gp` lines or gp-launch records (`guest_start`, `guest_progress`, `guest_warm`) on
//! stdin, keeps the progress after each thread's first pass (the lines without
//! `touched_bytes`), and prints one JSON object: the target rate (from the start line, or
//! `--target RATE`), threads warm, and the spread of the achieved rate over sliding windows
//! (`--window-ms`, default 100; `--step-ms`, default 10) as percent of the target
//! ([`gp_records::stress::RateSpread`]). Used by bench/stress-rate.sh.

use std::io::BufRead;

use gp_records::stress::{parse_dirty_rate, StressLine, Written};
use gp_records::Record;

fn main() {
    if let Err(e) = run() {
        eprintln!("dirty-rate: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut target: Option<u64> = None;
    let (mut window_ms, mut step_ms) = (100.0, 10.0);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--target" => target = Some(parse_dirty_rate(&value()?)?),
            "--window-ms" => window_ms = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            "--step-ms" => step_ms = value()?.parse().map_err(|e| format!("{a}: {e}"))?,
            _ => return Err(format!("unknown argument {a} (see the source's header)")),
        }
    }
    let mut written = Written::new();
    let (mut threads, mut warm, mut stated) = (0u32, 0u32, None);
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.starts_with('{') {
            match gp_records::ndjson::parse_line(&line)? {
                Some(Record::GuestStart(s)) => {
                    threads = s.threads;
                    stated = stated.or(s.dirty_rate_bytes_per_s);
                }
                Some(Record::GuestWarm(_)) => warm += 1,
                Some(Record::GuestProgress(p)) if p.touched_bytes.is_none() => {
                    written.push(p.thread, p.guest_time_ms, p.elapsed_ms, p.bytes)
                }
                _ => {}
            }
            continue;
        }
        match StressLine::parse(&line) {
            Some(StressLine::Start {
                threads: t,
                workload,
                ..
            }) => {
                threads = t;
                stated = stated.or(workload.and_then(|w| w.dirty_rate_bytes_per_s));
            }
            Some(StressLine::Warm { .. }) => warm += 1,
            Some(StressLine::Progress {
                thread,
                guest_ms,
                bytes,
                elapsed_ms,
                touched_bytes: None,
            }) => written.push(thread, guest_ms, elapsed_ms, bytes),
            _ => {}
        }
    }
    let target = target
        .or(stated)
        .ok_or("no target rate: the run had no dirty rate; pass --target RATE")?;
    let spread = written
        .spread(target as f64, window_ms, step_ms)
        .ok_or("no whole window of progress after the first pass")?;
    let out = serde_json::json!({
        "target_bytes_per_s": target,
        "threads": threads,
        "threads_warm": warm,
        "spread": spread,
        "worst_pct": spread.worst_pct(),
    });
    println!("{out}");
    Ok(())
}
