//! The real binaries over hostile input: every NDJSON reader (gp-sample, gp-migrate, gp-collect)
//! over each line of the corpus and over generated streams too large to keep (lines over the
//! 16 MiB limit, nesting past the parser's recursion limit, endless input without a newline),
//! and gp-plot over hostile report files. No panic, no crash, bounded memory, and an error that
//! names the line (or the file).

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gp_faults::corpus;
use gp_records::report::Report;
use gp_testkit::bins::bin;

/// The NDJSON readers and the arguments that make them end as soon as their input does.
const READERS: &[(&str, &[&str])] = &[
    ("gp-sample", &[]),
    ("gp-migrate", &["--sleep", "0", "--workload-timeout", "30"]),
    ("gp-collect", &[]),
];

struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
}

/// Runs `cmd` with `input` on stdin.
fn run_with(cmd: &mut Command, input: Vec<u8>) -> Run {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    // A reader that gives up early closes its input: that is fine, not a test failure.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waitpid on our own unreaped child; `child` is not waited for afterwards (dropping
    // a Child does not wait).
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    feeder.join().unwrap();
    drop(child);
    Run {
        status: ExitStatus::from_raw(status),
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        took: started.elapsed(),
    }
}

/// Address space a reader may use. Unbounded reading would hit it and abort; a reader holding a
/// 16 MiB line a few times over stays far below (glibc reserves 64 MiB per thread arena).
const READER_MEMORY: u64 = 768 << 20;

fn reader(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin(name));
    cmd.args(args);
    limit_memory(&mut cmd, READER_MEMORY);
    cmd
}

/// Caps the child's address space (RLIMIT_AS): an allocation past it fails.
fn limit_memory(cmd: &mut Command, bytes: u64) {
    // SAFETY: setrlimit in the child before exec; no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// No panic, no crash by a signal, a non-zero exit.
fn assert_clean_failure(what: &str, r: &Run) {
    assert!(
        r.status.signal().is_none(),
        "{what}: killed by signal {:?}\n{}",
        r.status.signal(),
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        r.stderr
    );
    assert!(
        !r.status.success(),
        "{what}: exit 0 on bad input\n{}",
        r.stderr
    );
}

fn stream(lines: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in lines {
        v.extend_from_slice(l);
        v.push(b'\n');
    }
    v
}

fn show(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], line.len())
    } else {
        s.into_owned()
    }
}

#[test]
fn every_reader_refuses_each_bad_line_and_names_it() {
    let good = corpus::GOOD_LINE.as_bytes();
    for bad in corpus::bad_lines() {
        let input = stream(&[good, &bad, good]);
        for (name, args) in READERS {
            let what = format!("{name} on line 2 = {}", show(&bad));
            let r = run_with(&mut reader(name, args), input.clone());
            assert_clean_failure(&what, &r);
            assert!(
                r.stderr.contains("input line 2:"),
                "{what}: stderr does not name line 2\n{}",
                r.stderr
            );
            let out = String::from_utf8_lossy(&r.stdout);
            match *name {
                // Filters pass the good lines on, with a stage_error in the bad one's place.
                "gp-sample" | "gp-migrate" => {
                    let lines: Vec<&str> = out.lines().collect();
                    assert_eq!(lines.first(), Some(&corpus::GOOD_LINE), "{what}\n{out}");
                    assert!(
                        lines[1].contains("\"stage_error\"")
                            && lines[1].contains(&format!("\"stage\":\"{name}\""))
                            && lines[1].contains("input line 2"),
                        "{what}\n{out}"
                    );
                    assert_eq!(lines.get(2), Some(&corpus::GOOD_LINE), "{what}\n{out}");
                }
                _ => {
                    let report: Report = serde_json::from_slice(&r.stdout)
                        .unwrap_or_else(|e| panic!("{what}: no report ({e})\n{}", r.stderr));
                    let input = &report.guestperf_rs.as_ref().unwrap().input;
                    assert_eq!(input.records, 2, "{what}: the good lines are kept");
                    assert_eq!(input.errors.len(), 1, "{what}");
                    assert_eq!(input.errors[0].line, 2, "{what}");
                }
            }
        }
    }
}

/// Each line a stage prints names the stage once, and the cause once: the reader's error
/// describes only the line, and the stage's main adds its name (no `gp-sample: gp-sample:`, no
/// `warning: gp-migrate:`, no cause repeated in the chain).
#[test]
fn every_reader_names_itself_and_the_cause_once() {
    for (name, args) in READERS {
        let r = run_with(&mut reader(name, args), b"not json\n".to_vec());
        assert_clean_failure(name, &r);
        let about: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.contains("input line 1"))
            .collect();
        assert!(
            !about.is_empty(),
            "{name}: no line names the input line\n{}",
            r.stderr
        );
        for line in about {
            assert!(line.starts_with(&format!("{name}: ")), "{name}: {line}");
            assert_eq!(line.matches(*name).count(), 1, "{name} named twice: {line}");
            assert_eq!(line.matches("input line 1").count(), 1, "{line}");
            assert_eq!(line.matches("not valid JSON").count(), 1, "{line}");
        }
    }
}

#[test]
fn every_reader_takes_odd_lines_and_filters_pass_them_on_verbatim() {
    let odd = corpus::odd_lines();
    let refs: Vec<&[u8]> = odd.iter().map(Vec::as_slice).collect();
    let input = stream(&refs);
    // What a filter writes back: each line as it came, less a trailing CR.
    let expected: Vec<String> = odd
        .iter()
        .map(|l| {
            String::from_utf8(l.clone())
                .unwrap()
                .trim_end_matches('\r')
                .to_string()
        })
        .collect();
    for (name, args) in READERS {
        let r = run_with(&mut reader(name, args), input.clone());
        assert!(
            r.status.signal().is_none() && !r.stderr.contains("panicked"),
            "{name}\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("input line"),
            "{name} refused a valid line\n{}",
            r.stderr
        );
        let out = String::from_utf8(r.stdout.clone()).expect("UTF-8 output");
        match *name {
            "gp-sample" => {
                assert!(r.status.success(), "{}", r.stderr);
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(lines, expected, "gp-sample changed a line");
            }
            "gp-migrate" => {
                // It passes everything on, then says the run cannot go on without gp-launch's
                // VMs (one of the odd lines is a vm_exit).
                assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(
                    &lines[..expected.len()],
                    expected,
                    "gp-migrate changed a line"
                );
                assert!(lines[expected.len()..]
                    .iter()
                    .any(|l| l.contains("\"stage_error\"")));
            }
            _ => {
                assert!(r.status.success(), "{}", r.stderr);
                let report: Report = serde_json::from_str(&out).expect("a report");
                let ext = report.guestperf_rs.unwrap();
                assert_eq!(ext.input.records, odd.len() as u64);
                assert!(ext.input.errors.is_empty());
            }
        }
    }
}

#[test]
fn generated_hostile_streams_end_with_bounded_memory_and_a_named_line() {
    for (stream_name, input) in corpus::generated() {
        let size_mib = input.len() >> 20;
        for (name, args) in READERS {
            let what = format!("{name} on {stream_name} ({size_mib} MiB)");
            let r = run_with(&mut reader(name, args), input.clone());
            assert!(
                r.status.signal().is_none(),
                "{what}: killed by a signal\n{}",
                r.stderr
            );
            assert!(!r.stderr.contains("panicked"), "{what}\n{}", r.stderr);
            if corpus::generated_is_bad(stream_name) {
                assert!(
                    r.stderr.contains("input line 2:"),
                    "{what}: line 2 not named\n{}",
                    r.stderr
                );
            }
            eprintln!(
                "{what}: exit {:?} in {:.2} s under a {} MiB address-space limit",
                r.status.code(),
                r.took.as_secs_f64(),
                READER_MEMORY >> 20
            );
        }
    }
}

/// Endless input without a newline (`< /dev/zero`): memory stays bounded, and a signal still
/// ends gp-collect with a report naming the refused line.
#[test]
fn endless_input_without_a_newline_stays_bounded_and_a_signal_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let child = Command::new(bin("gp-collect"))
        .args(["--grace", "1s", "--output"])
        .arg(&report)
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Let it chew through well over the line limit, watching its memory as it goes.
    let mut peak_kib = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut read_bytes = 0u64;
    while Instant::now() < deadline {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        read_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("rchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(read_bytes);
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        read_bytes > 2 * gp_records::ndjson::MAX_LINE_BYTES as u64,
        "it read only {read_bytes} bytes"
    );
    assert!(peak_kib < 128 * 1024, "peak RSS {} MiB", peak_kib / 1024);
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let input = r.guestperf_rs.unwrap().input;
    assert!(input.ended.contains("SIGTERM"), "{}", input.ended);
    eprintln!(
        "gp-collect < /dev/zero: read {} MiB in 3 s, peak RSS {} MiB",
        read_bytes >> 20,
        peak_kib / 1024
    );
}

fn plot(report: &Path, out: &Path) -> Run {
    let mut cmd = Command::new(bin("gp-plot"));
    cmd.arg("--output").arg(out).arg(report);
    // Whatever the file holds, gp-plot must not need more than this.
    limit_memory(&mut cmd, 4 << 30);
    run_with(&mut cmd, Vec::new())
}

#[test]
fn gp_plot_refuses_each_bad_report_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chart.svg");
    let mut files = corpus::bad_reports();
    // Endless: the size limit, not the memory, must stop it.
    files.push("/dev/zero".into());
    for file in files {
        let what = format!("gp-plot {}", file.display());
        let r = plot(&file, &out);
        assert_clean_failure(&what, &r);
        assert_eq!(r.status.code(), Some(1), "{what}\n{}", r.stderr);
        assert!(
            r.stderr.starts_with("gp-plot: ") && r.stderr.contains(&file.display().to_string()),
            "{what}: the error does not name the file\n{}",
            r.stderr
        );
        assert!(!out.exists(), "{what}: wrote a chart");
        if file == Path::new("/dev/zero") {
            assert!(r.stderr.contains("larger than"), "{what}\n{}", r.stderr);
        }
        eprintln!("{what}: {}", r.stderr.trim());
    }
}

#[test]
fn gp_plot_draws_each_odd_report() {
    let dir = tempfile::tempdir().unwrap();
    for file in corpus::odd_reports() {
        let what = format!("gp-plot {}", file.display());
        let out = dir.path().join(format!(
            "{}.svg",
            file.file_stem().unwrap().to_string_lossy()
        ));
        let r = plot(&file, &out);
        assert!(r.status.signal().is_none(), "{what}: killed\n{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{what}\n{}", r.stderr);
        if r.status.success() {
            let svg = std::fs::read_to_string(&out).unwrap();
            assert!(svg.starts_with("<svg"), "{what}: not an SVG");
        } else {
            assert!(
                r.stderr.contains("holds no data to plot"),
                "{what}: refused a valid report\n{}",
                r.stderr
            );
        }
    }
}
