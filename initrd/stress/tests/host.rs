//! Runs the `stress` binary as a host process, as a benchmark would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use gp_records::stress::StressLine;

fn stress() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stress"))
}

#[test]
fn runs_for_a_duration_and_prints_parseable_lines() {
    let out = stress()
        .args([
            "--ramsize",
            "16M",
            "--threads",
            "2",
            "--grain-ms",
            "5",
            "--duration-s",
            "0.3",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<StressLine> = stdout
        .lines()
        .map(|l| StressLine::parse(l).unwrap_or_else(|| panic!("unparseable line {l:?}")))
        .collect();
    match lines.first() {
        Some(StressLine::Start {
            threads: 2,
            ram_bytes,
            grain_ms,
            ..
        }) => {
            assert_eq!((*ram_bytes, *grain_ms), (16 << 20, 5.0));
        }
        other => panic!("first line {other:?}, want a start line for 2 threads"),
    }
    for thread in 0..2 {
        let n = lines
            .iter()
            .filter(|l| matches!(l, StressLine::Progress { thread: t, elapsed_ms, .. } if *t == thread && *elapsed_ms >= 5.0))
            .count();
        assert!(n >= 1, "thread {thread}: no progress lines in\n{stdout}");
    }
    let Some(StressLine::Done { reason }) = lines.last() else {
        panic!("no done line last:\n{stdout}")
    };
    assert!(reason.starts_with("duration_s=0.3 "), "{reason}");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (&["--threads", "0"][..], "--threads=0"),
        (&["--ramsize", "lots"][..], "ramsize"),
        (&["--frobnicate"][..], "unknown argument"),
    ] {
        let out = stress().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn too_much_memory_is_a_fatal_line_and_status_1() {
    let out = stress()
        .args(["--ramsize", "1000T", "--duration-s", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    match StressLine::parse(stdout.trim_end()) {
        Some(StressLine::Fatal { message }) => {
            assert!(message.contains("lower ramsize"), "{message}")
        }
        other => panic!("want one fatal line, got {other:?} from {stdout:?}"),
    }
}

#[test]
fn a_closed_stdout_ends_it_quietly() {
    // `stress | head -n 2`: once the reader is gone the next write fails with EPIPE.
    let mut child = stress()
        .args(["--ramsize", "16M", "--threads", "1", "--grain-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("@gp start "), "{first}");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
