//! Property tests (proptest, a bounded number of cases: `PROPTEST_CASES` raises it for a longer
//! local fuzzing run) of the library readers behind every stage:
//!
//! - the NDJSON reader over arbitrary bytes: no panic, every error names a line that exists,
//!   every good line comes back verbatim;
//! - every record truncated at every byte: refused with its line named, never a panic;
//! - streams of structurally valid records with extreme values (0, negative, 1e300, u64::MAX,
//!   times out of order) mixed with hostile lines, through gp-collect's collector: the report it
//!   writes must read back as a report, and gp-plot must draw it; through gp-sample's filter:
//!   every line comes out verbatim, in order.

use std::io::Cursor;
use std::time::Duration;

use gp_faults::corpus;
use gp_records::ndjson::{parse_line, Reader};
use gp_records::report::Report;
use proptest::prelude::*;
use serde_json::{json, Value};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        // No regression files in the source tree: a failure prints its input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like NDJSON often enough to get past the first character.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"\"type\":".to_vec()),
        Just(b"\"console\"".to_vec()),
        Just(b"\"vm\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b",".to_vec()),
        Just(b"[".to_vec()),
        Just(b"\\u".to_vec()),
        Just(vec![0xff]),
        Just(vec![0]),
        any::<u8>().prop_map(|b| vec![b]),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_reader_survives_any_bytes_and_names_real_lines(bytes in soup()) {
        let physical = bytes.split(|b| *b == b'\n').count() as u64;
        let mut last = 0;
        for item in Reader::new(Cursor::new(bytes.clone())) {
            let number = match item {
                Ok(line) => {
                    prop_assert!(!line.raw.contains('\n'));
                    line.number
                }
                Err(e) => {
                    // The error names its line, and that is all it says of where it is.
                    let text = e.to_string();
                    let named = format!("input line {}: ", e.line());
                    prop_assert!(text.starts_with(&named), "{}", text);
                    e.line()
                }
            };
            prop_assert!(number > last && number <= physical, "line {} of {}", number, physical);
            last = number;
        }
    }
}

/// Valid lines to cut: the odd corpus, gp-collect's recorded precopy run, one of each type.
fn valid_lines() -> Vec<String> {
    let mut lines: Vec<String> = corpus::odd_lines()
        .into_iter()
        .filter_map(|l| String::from_utf8(l).ok())
        .collect();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../collect/tests/fixtures/precopy.ndjson");
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut seen = std::collections::HashSet::new();
    for l in text.lines() {
        let ty = serde_json::from_str::<Value>(l).unwrap()["type"].to_string();
        if seen.insert(ty) {
            lines.push(l.to_string());
        }
    }
    lines
}

#[test]
fn every_record_cut_at_every_byte_is_refused_with_its_line() {
    let mut cuts = 0;
    // Every cut of a line is parsed: leave out the 100 KB one (quadratic).
    for line in valid_lines().into_iter().filter(|l| l.len() < 4096) {
        for end in 1..line.len() {
            if !line.is_char_boundary(end) {
                continue;
            }
            let cut = &line[..end];
            // A cut that happens to be complete JSON (a number, a closed object) may parse, and
            // a blank one is skipped.
            if serde_json::from_str::<Value>(cut).is_ok() || cut.trim().is_empty() {
                continue;
            }
            let input = format!("{}\n{cut}", corpus::GOOD_LINE);
            let items: Vec<_> = Reader::new(Cursor::new(input)).collect();
            assert_eq!(items.len(), 2, "{cut}");
            let err = items[1].as_ref().expect_err(cut).to_string();
            assert!(err.starts_with("input line 2: "), "{err}");
            cuts += 1;
        }
    }
    assert!(cuts > 1000, "only {cuts} cuts");
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(-1.0),
        Just(1e-300),
        Just(1e300),
        Just(-1e300),
        Just(f64::MAX),
        Just(f64::MIN),
        -1e6..1e6f64,
        1.75e9..1.75e9 + 60.0,
    ]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u32::MAX as u64),
        0..(1u64 << 40)
    ]
}

fn role() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("src"), Just("dst")]
}

/// One record of a type gp-collect and gp-plot use, with extreme values. Pids are ones no
/// process has (gp-sample samples `vm` records' pids).
fn record() -> impl Strategy<Value = Value> {
    let t = extreme_f64;
    prop_oneof![
        (t(), role(), 0..4u32, t(), extreme_u64(), t()).prop_map(|(ts, r, th, g, b, e)| json!({
            "type": "guest_progress", "time_s": ts, "role": r, "thread": th,
            "guest_time_ms": g, "bytes": b, "elapsed_ms": e})),
        (t(), role(), 0..4u32, t(), t()).prop_map(|(ts, r, th, g, e)| json!({
            "type": "guest_gb", "time_s": ts, "role": r, "thread": th,
            "guest_time_ms": g, "elapsed_ms": e})),
        (
            t(),
            role(),
            t(),
            t(),
            t(),
            proptest::option::of(extreme_u64())
        )
            .prop_map(|(ts, r, u, s, tu, run)| json!({
                "type": "cpu_sample", "time_s": ts, "role": r, "pid": 4_000_000_000u32,
                "host": null, "process": {"user_ms": u, "system_ms": s},
                "threads": [
                    {"tid": 7, "name": "CPU 0/TCG", "class": "vcpu", "vcpu": 0,
                     "user_ms": tu, "system_ms": s, "run_ns": run},
                    {"tid": 8, "name": "mig/src/main", "class": "migration",
                     "user_ms": u, "system_ms": tu}]})),
        (
            t(),
            prop_oneof![
                Just("active"),
                Just("completed"),
                Just("postcopy-active"),
                Just("failed"),
                Just("setup")
            ],
            extreme_u64(),
            extreme_u64(),
            t()
        )
            .prop_map(|(ts, st, n, tr, mbps)| json!({
                "type": "progress", "time_s": ts, "role": "src", "status": st,
                "iteration": n, "info": {"status": st, "total-time": n, "downtime": tr,
                "ram": {"transferred": tr, "total": n, "remaining": tr, "mbps": mbps,
                        "dirty-sync-count": n}}})),
        (
            t(),
            t(),
            prop_oneof![
                Just("STOP"),
                Just("RESUME"),
                Just("MIGRATION"),
                Just("MIGRATION_PASS")
            ]
        )
            .prop_map(|(ts, q, ev)| json!({
                "type": "qmp_event", "time_s": ts, "role": "src", "event": ev,
                "qemu_time_s": q, "data": {"status": "postcopy-active", "pass": 3}})),
        (
            t(),
            prop_oneof![
                Just("migrate"),
                Just("postcopy"),
                Just("shutdown"),
                Just("cancel")
            ]
        )
            .prop_map(
                |(ts, a)| json!({"type": "action", "time_s": ts, "action": a,
                                        "reason": "x", "role": "src"})
            ),
        (
            t(),
            prop_oneof![
                Just("completed"),
                Just("failed"),
                Just("cancelled"),
                Just("interrupted")
            ],
            extreme_u64()
        )
            .prop_map(
                |(ts, o, n)| json!({"type": "result", "time_s": ts, "outcome": o,
                "reason": "r", "total_time_ms": n, "downtime_ms": n, "transferred_bytes": n})
            ),
        (t(), role(), 0..3u32, t(), extreme_u64(), t()).prop_map(
            |(ts, r, th, g, ram, grain)| json!({
            "type": "guest_start", "time_s": ts, "role": r, "threads": th, "ram_bytes": ram,
            "grain_ms": grain, "guest_time_ms": g})
        ),
        (t(), role()).prop_map(|(ts, r)| json!({
            "type": "vm", "time_s": ts, "role": r, "pid": 4_000_000_001u32, "host": null,
            "qmp_socket": "/nonexistent/qmp.sock", "vcpu_tids": [7], "spawned_s": ts, "argv": []})),
        (t(), role(), any::<i32>()).prop_map(|(ts, r, st)| json!({
            "type": "vm_exit", "time_s": ts, "role": r, "pid": 4_000_000_001u32, "status": st})),
        (t(), extreme_u64()).prop_map(|(ts, mem)| json!({
            "type": "launch", "time_s": ts, "tool": "gp-launch", "version": "0", "argv": [],
            "qemu_binary": "q", "qemu_version": "10.0.2", "accel": "tcg", "kernel": "k",
            "initrd": "i", "kernel_cmdline": "", "transport": "unix", "dst_host": null,
            "hardware": {"cpus": 1, "mem_bytes": mem, "src_cpu_bind": [], "src_mem_bind": [],
                "dst_cpu_bind": [], "dst_mem_bind": [], "prealloc_pages": false,
                "huge_pages": false, "locked_pages": false, "dirty_ring_size": 0},
            "host": {"hostname": "h", "cpu_model": "c", "kernel_release": "r", "cpus": 2}})),
    ]
}

/// A stream: records with extreme values, now and then a hostile line from the corpus.
fn stream() -> impl Strategy<Value = (Vec<u8>, usize)> {
    let bad = corpus::bad_lines();
    let line = prop_oneof![
        8 => record().prop_map(|r| Some(serde_json::to_vec(&r).unwrap())),
        1 => (0..bad.len()).prop_map(move |i| {
            let l = bad[i].clone();
            // The 100000-element line is valid to keep but slow to draw from: skip it.
            (l.len() < 10_000).then_some(l)
        }),
    ];
    proptest::collection::vec(line, 1..60).prop_map(|lines| {
        let lines: Vec<Vec<u8>> = lines.into_iter().flatten().collect();
        let n = lines.len();
        let mut out = Vec::new();
        for l in lines {
            out.extend(l);
            out.push(b'\n');
        }
        (out, n)
    })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn collected_reports_read_back_and_draw((input, lines) in stream()) {
        let (_tx, signals) = crossbeam_channel::unbounded();
        let opts = gp_collect::Options { output: None, pretty: false, grace: Duration::ZERO };
        let (report, _, _) = gp_collect::collect(&opts, Cursor::new(input), &signals).unwrap();
        let ext = report.guestperf_rs.as_ref().unwrap();
        prop_assert_eq!(ext.input.records + ext.input.errors.len() as u64, lines as u64);
        // What gp-collect writes must be what gp-plot (and anyone) can read.
        let text = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("the report does not read back: {e}\n{text}")))?;
        if gp_plot::series::has_data(&back) {
            let chart = gp_plot::build_chart(&[("r.json".into(), back)], None, None);
            let svg = gp_plot::render_bytes(&chart, gp_plot::Format::Svg, 640, 480)
                .map_err(|e| TestCaseError::fail(format!("render: {e}")))?;
            prop_assert!(svg.starts_with(b"<svg"));
        }
    }

    #[test]
    fn gp_sample_passes_every_line_on_verbatim((input, _) in stream()) {
        let (_tx, signals) = crossbeam_channel::unbounded();
        let opts = gp_sample::Options { interval: Duration::from_millis(10), grace: Duration::ZERO };
        let buf = gp_testkit::SharedBuf::default();
        let _ = gp_sample::run(&opts, Cursor::new(input.clone()), buf.clone(), signals);
        let out = buf.text().into_bytes();
        // Every good input line is in the output, in order; a bad one became a stage_error.
        let outs: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut at = 0;
        for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let good = std::str::from_utf8(line).ok().is_some_and(|s| parse_line(s.trim_end_matches('\r')).is_ok());
            let Some(found) = outs[at..].iter().position(|o| {
                if good { *o == line.strip_suffix(b"\r").unwrap_or(line) } else { o.windows(12).any(|w| w == b"stage_error\"") }
            }) else {
                return Err(TestCaseError::fail(format!(
                    "lost: {}", String::from_utf8_lossy(line))));
            };
            at += found + 1;
        }
    }
}
