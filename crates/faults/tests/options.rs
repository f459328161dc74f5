//! Option values at and beyond their limits, for every binary of the workspace: zero where zero
//! means nothing, negative, huge, non-numeric, not-a-number, infinite, empty, unknown enum
//! names. Each must end in a usage error: a non-zero exit, no panic, and a message naming the
//! option. No VM is started: every run also gets an argument that would stop it before
//! anything starts, should a bad value slip through (`--dry-run`, a kernel that does not
//! exist), so a value that is wrongly accepted fails the test instead of booting a guest.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use gp_testkit::bins::bin;

/// Not numbers, out of any range, or not finite.
const NOT_NUMBERS: &[&str] = &["abc", "", "1.5.5", "0x10", "nan", "inf", "-inf", "1e400"];
const NEGATIVE: &[&str] = &["-1", "-0.5"];
const HUGE: &[&str] = &["99999999999999999999999"];

/// One option and the values it must refuse.
struct Opt {
    name: &'static str,
    bad: Vec<&'static str>,
}

fn opt(name: &'static str, groups: &[&[&'static str]]) -> Opt {
    Opt {
        name,
        bad: groups.iter().flat_map(|g| g.iter().copied()).collect(),
    }
}

/// An unsigned count where 0 means nothing.
fn count(name: &'static str) -> Opt {
    opt(name, &[&["0"], NEGATIVE, HUGE, NOT_NUMBERS])
}

/// An unsigned number where 0 is meaningful.
fn number(name: &'static str) -> Opt {
    opt(name, &[NEGATIVE, HUGE, NOT_NUMBERS])
}

/// An enum.
fn choice(name: &'static str) -> Opt {
    opt(name, &[&["bogus", "", "UNIX ", "1"]])
}

/// (binary, guard arguments that stop a run early, the options).
fn table() -> Vec<(&'static str, Vec<&'static str>, Vec<Opt>)> {
    let scenario = || {
        vec![
            count("--max-iters"),
            count("--max-time"),
            number("--bandwidth"),
            number("--downtime"),
            // 0 passes: at once, as 1.
            number("--pause-iters"),
            number("--post-copy-iters"),
            opt(
                "--auto-converge-step",
                &[&["0", "101"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            count("--compression-mt-threads"),
            opt(
                "--compression-xbzrle-cache",
                &[&["0", "101"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            count("--multifd-channels"),
            choice("--multifd-compression"),
            number("--x-vcpu-dirty-limit-period"),
            number("--vcpu-dirty-limit"),
            opt(
                "--capability",
                &[&["", "=on", "xbzrle=maybe", "bogus name"]],
            ),
            opt(
                "--parameter",
                &[&["", "=5", "max-bandwidth", "bogus name=1"]],
            ),
            opt("--sleep", &[NEGATIVE, HUGE, NOT_NUMBERS]),
        ]
    };
    let hardware = || {
        vec![
            opt("--cpus", &[&["0", "256"], NEGATIVE, HUGE, NOT_NUMBERS]),
            opt(
                "--mem",
                &[&["0", "0M", "12Q", "-1G"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            opt(
                "--src-cpu-bind",
                &[&["", "a", "3-1", "1,,2", "-1", "99999999999"]],
            ),
            opt("--dst-mem-bind", &[&["", "a", "3-1", "-1"]]),
            opt(
                "--dirty-ring-size",
                &[&["1000", "100"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            choice("--transport"),
            choice("--accel"),
        ]
    };
    let launch_table = || {
        let mut launch = hardware();
        launch.extend([
            opt(
                "--stress-ram",
                &[&["0", "12Q"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            opt(
                "--stress-threads",
                &[&["0", "4097"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
            opt("--stress-grain-ms", &[NEGATIVE, NOT_NUMBERS]),
            opt("--stress-duration-s", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            opt("--boot-timeout-s", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            choice("--bind-method"),
            choice("--stress-pattern"),
            opt(
                "--stress-wss",
                &[&["50", "0%", "101%", "12Q", "%"], NEGATIVE, NOT_NUMBERS],
            ),
            opt(
                "--stress-dirty-rate",
                &[&["0", "12Q"], NEGATIVE, HUGE, NOT_NUMBERS],
            ),
        ]);
        launch
    };
    let migrate_table = || {
        let mut migrate = scenario();
        migrate.extend([
            opt("--poll-ms", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            opt("--qmp-timeout", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            opt("--workload-timeout", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            opt("--drain-timeout", &[&["0"], NEGATIVE, NOT_NUMBERS]),
        ]);
        migrate
    };
    // The wrappers take gp-launch's and gp-migrate's options with the stages' own parsers: the
    // same tables.
    let mut oneshot = launch_table();
    oneshot.extend(migrate_table());
    oneshot.push(opt(
        "--sample-interval",
        &[&["0", "100", "1ms", "2h"], NEGATIVE, NOT_NUMBERS],
    ));
    let mut batch = launch_table();
    batch.extend(migrate_table());
    batch.extend([
        // gp-batch names every run after its scenario.
        opt("--name", &[&["mine"]]),
        count("--repeat"),
        choice("--chart-format"),
        opt(
            "--sample-interval",
            &[&["0", "100", "1ms"], NEGATIVE, NOT_NUMBERS],
        ),
    ]);
    vec![
        (
            "gp-launch",
            vec!["--kernel", "/dev/null/guard/vmlinuz"],
            launch_table(),
        ),
        (
            "gp-sample",
            vec![],
            vec![
                opt(
                    "--interval",
                    &[
                        &["0", "0ms", "5ms", "2h", "100", "1x"],
                        NEGATIVE,
                        NOT_NUMBERS,
                    ],
                ),
                opt("--grace", &[&["100", "2h", "3601s"], NEGATIVE, NOT_NUMBERS]),
            ],
        ),
        ("gp-migrate", vec![], migrate_table()),
        (
            "gp-collect",
            vec![],
            vec![
                opt("--grace", &[&["100", "2h", "3601s"], NEGATIVE, NOT_NUMBERS]),
                // Its older spelling, in seconds without a unit, kept for scripts.
                opt("--grace-s", &[&["3601"], NEGATIVE, HUGE, NOT_NUMBERS]),
            ],
        ),
        (
            "gp-plot",
            vec![
                "--output",
                "/dev/null/guard/chart.svg",
                "/dev/null/guard/report.json",
            ],
            vec![
                opt(
                    "--width",
                    &[&["0", "479", "10001"], NEGATIVE, HUGE, NOT_NUMBERS],
                ),
                opt(
                    "--height",
                    &[&["0", "359", "10001"], NEGATIVE, HUGE, NOT_NUMBERS],
                ),
            ],
        ),
        // The wrappers refuse a bad value themselves, with the owning stage's parser. Should one
        // slip through, --dry-run exits 0 (and a kernel that does not exist would stop gp-launch
        // before it boots).
        (
            "guestperf",
            vec!["--dry-run", "--kernel", "/dev/null/guard/vmlinuz"],
            oneshot,
        ),
        (
            "gp-batch",
            vec![
                "--dry-run",
                "--kernel",
                "/dev/null/guard/vmlinuz",
                "--filter",
                "pause-iters/*",
                "--output",
                "/tmp/gp-faults-option-table/batch",
            ],
            batch,
        ),
        (
            "stress",
            vec![],
            vec![
                opt(
                    "--ramsize",
                    &[&["0", "12Q", "1T"], NEGATIVE, HUGE, NOT_NUMBERS],
                ),
                opt(
                    "--threads",
                    &[&["0", "100000"], NEGATIVE, HUGE, NOT_NUMBERS],
                ),
                opt("--grain-ms", &[NEGATIVE, NOT_NUMBERS]),
                opt("--duration-s", &[&["0"], NEGATIVE, NOT_NUMBERS]),
            ],
        ),
    ]
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `binary args`, killed after 20 s and confined to 1 GiB of address space (a value that
/// slips through must not make a guest or a 1 TiB workload).
fn run(binary: &str, args: &[String]) -> Outcome {
    let mut cmd = Command::new(bin(binary));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit in the child before exec; no allocation.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on our child, still unreaped (its waiter has not returned).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("{binary} {args:?} was still running after 20 s");
        }
    };
    Outcome {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether `stderr` names the option.
fn names_option(stderr: &str, name: &str) -> bool {
    stderr.contains(name.trim_start_matches('-'))
}

#[test]
fn every_binary_refuses_bad_option_values_naming_the_option() {
    let mut cases: Vec<(&'static str, &'static str, Vec<String>)> = Vec::new();
    for (binary, guard, opts) in table() {
        for o in opts {
            for value in &o.bad {
                let mut args = vec![format!("{}={value}", o.name)];
                args.extend(guard.iter().map(|s| s.to_string()));
                if binary == "stress" {
                    // Should a value slip through: a short run over little memory.
                    for (k, v) in [("--duration-s", "0.01"), ("--ramsize", "1M")] {
                        if o.name != k {
                            args.extend([k.to_string(), v.to_string()]);
                        }
                    }
                }
                cases.push((binary, o.name, args));
            }
        }
    }
    // Each gp-batch run gets its own output directory: runs go four at a time, and gp-batch
    // locks its directory.
    let batch_root = tempfile::tempdir().unwrap();
    for (i, (binary, _, args)) in cases.iter_mut().enumerate() {
        if *binary == "gp-batch" {
            if let Some(at) = args.iter().position(|a| a == "--output") {
                args[at + 1] = batch_root
                    .path()
                    .join(format!("batch-{i}"))
                    .to_string_lossy()
                    .into_owned();
            }
        }
    }
    gp_testkit::bins::build_all();
    // Four at a time: each is a process start or two.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((binary, name, args)) = cases.get(i) else {
                    return;
                };
                let r = run(binary, args);
                let problem = if r.signal.is_some() {
                    Some(format!("killed by signal {:?}", r.signal))
                } else if r.stderr.contains("panicked") {
                    Some("panicked".to_string())
                } else if r.code == Some(0) {
                    Some("accepted (exit 0)".to_string())
                } else if !names_option(&r.stderr, name) {
                    Some(format!("exit {:?}, message does not name {name}", r.code))
                } else {
                    None
                };
                if let Some(p) = problem {
                    let first = r.stderr.lines().take(3).collect::<Vec<_>>().join(" | ");
                    let out: String = r.stdout.chars().take(200).collect();
                    failures.lock().unwrap().push(format!(
                        "{binary} {}: {p}\n    stderr: {first}\n    stdout: {out}",
                        args.join(" ")
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!("{} bad option values tried", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} bad values were not refused cleanly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_binary_refuses_unknown_options_and_stray_arguments() {
    for (binary, _) in gp_testkit::bins::ALL {
        for args in [vec!["--no-such-option"], vec!["--help-me"], vec!["-Z"]] {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let r = run(binary, &args);
            assert!(
                r.signal.is_none() && !r.stderr.contains("panicked"),
                "{binary} {args:?}\n{}",
                r.stderr
            );
            assert_eq!(
                r.code,
                Some(2),
                "{binary} {args:?}: exit {:?}\n{}",
                r.code,
                r.stderr
            );
            assert!(
                r.stderr.contains(&args[0]),
                "{binary} {args:?}: {}",
                r.stderr
            );
        }
    }
}

/// A stage whose stdout carries records says a bad command line in the stream too, so the
/// report downstream tells why the run never started; gp-collect's stdout is the report, and
/// stays empty.
#[test]
fn record_stages_say_a_bad_command_line_in_the_stream() {
    for binary in ["gp-launch", "gp-sample", "gp-migrate", "gp-collect"] {
        let r = run(binary, &["--no-such-option".to_string()]);
        assert_eq!(r.code, Some(2), "{binary}\n{}", r.stderr);
        if binary == "gp-collect" {
            assert_eq!(
                r.stdout, "",
                "gp-collect wrote a report for a bad command line"
            );
            continue;
        }
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{binary}: {}", r.stdout);
        let record: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(record["type"], "stage_error", "{binary}: {}", lines[0]);
        assert_eq!(record["stage"], binary);
        assert_eq!(
            record["message"],
            "unexpected argument '--no-such-option' found"
        );
    }
}

/// `--opt -1`, with a space, is a bad value of `--opt` (named in the message), not an unknown
/// option `-1`: every binary's first option that must refuse -1, tried that way.
#[test]
fn a_negative_number_after_a_space_is_a_bad_value_of_its_option() {
    for (binary, guard, opts) in table() {
        let Some(o) = opts.iter().find(|o| o.bad.contains(&"-1")) else {
            continue;
        };
        let mut args = vec![o.name.to_string(), "-1".to_string()];
        args.extend(guard.iter().map(|s| s.to_string()));
        if binary == "stress" {
            args.extend(["--duration-s", "0.01", "--ramsize", "1M"].map(String::from));
        }
        let r = run(binary, &args);
        assert_eq!(r.code, Some(2), "{binary} {args:?}\n{}", r.stderr);
        assert!(
            !r.stderr.contains("unexpected argument") && names_option(&r.stderr, o.name),
            "{binary} {args:?}: the message does not name {}\n{}",
            o.name,
            r.stderr
        );
    }
}
