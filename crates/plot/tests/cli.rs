//! gp-plot end to end: report files in, image files out, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gp_records::report::Report;
use gp_testkit::synth::{self, Spec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gp_plot(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gp-plot"));
    for a in args {
        cmd.arg(a);
    }
    gp_testkit::bins::run_logged(&mut cmd, None)
}

fn write_report(dir: &Path, name: &str, report: &Report) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(report).unwrap()).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// gp-plot with every optional series, the SVG named by `output_flag` (`--output` or `-o`): it
/// must succeed; the SVG's text.
fn svg_with_every_series(output_flag: &str, svg: &Path, input: &Path) -> String {
    let out = gp_plot(&[
        &output_flag,
        &svg,
        &"--split-guest-cpu",
        &"--qemu-cpu",
        &"--vcpu-cpu",
        &"--migration-cpu",
        &"--migration-iters",
        &input,
    ]);
    assert!(out.status.success());
    std::fs::read_to_string(svg).unwrap()
}

/// gp-plot of `inputs` to `png` with no size given: it must succeed and the PNG be 1280x800.
fn assert_default_size_png(png: &Path, inputs: &[&Path]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"-o", &png];
    args.extend(inputs.iter().map(|i| i as &dyn AsRef<std::ffi::OsStr>));
    assert!(gp_plot(&args).status.success());
    assert_eq!(png_size(png), (1280, 800));
}

/// Decodes a PNG and returns its size.
fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).expect("the PNG decodes");
    (img.width(), img.height())
}

#[test]
fn svg_of_one_report_has_lines_axes_annotations_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let report = synth::report(&Spec {
        records: 3000,
        ..Spec::default()
    });
    let input = write_report(dir.path(), "precopy-run.json", &report);
    let svg = dir.path().join("chart.svg");
    let text = svg_with_every_series("--output", &svg, &input);
    assert!(text.starts_with("<svg"));
    for want in [
        // axis titles
        "Time since start of run (s)",
        "Guest memory update speed (ms/GB)",
        "Host CPU utilization (%)",
        // series, source and destination
        "guest thread 0",
        "guest thread 1 (dst)",
        "QEMU dst",
        "vCPU 1",
        "migration threads",
        "migration iterations",
        // status changes and the downtime window
        "active",
        "device",
        "completed",
        "downtime 62 ms",
        // the table
        "scenario",
        "precopy",
        "675.07 MiB",
        "62 ms",
        // title
        "Migration of precopy-run (precopy)",
    ] {
        assert!(text.contains(want), "{want:?} missing from the SVG");
    }
    // A shaded downtime window (translucent rectangle) is drawn.
    assert!(text.contains("<rect") && text.contains("opacity=\"0.22\""));
}

#[test]
fn png_decodes_to_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let report = synth::report(&Spec {
        records: 3000,
        post_copy: true,
        ..Spec::default()
    });
    let input = write_report(dir.path(), "postcopy.json", &report);
    for (w, h) in [(1280, 800), (900, 600), (1920, 1200)] {
        let png = dir.path().join(format!("chart-{w}x{h}.png"));
        let out = gp_plot(&[
            &"-o",
            &png,
            &"--width",
            &w.to_string(),
            &"--height",
            &h.to_string(),
            &input,
        ]);
        assert!(out.status.success());
        assert_eq!(png_size(&png), (w, h));
    }
}

#[test]
fn png_has_text_drawn_with_the_embedded_font() {
    // No system font is consulted; if text were missing the title row would be blank.
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("original-precopy.json");
    let png = dir.path().join("chart.png");
    assert!(gp_plot(&[&"-o", &png, &input]).status.success());
    let img = image::open(&png).unwrap().to_rgb8();
    // The title sits in the top 40 px, centred: count dark pixels there.
    let dark = (0..40)
        .flat_map(|y| (440..840).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|c| *c < 100))
        .count();
    assert!(
        dark > 200,
        "only {dark} dark pixels where the title should be"
    );
}

#[test]
fn png_lines_stay_inside_the_plot() {
    // The post-copy phase decimates to a line doubling back in every pixel column; drawn as one
    // thick polygon it grew spikes up through the top of the plot (issue seen at 9.6 s).
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        records: 2000,
        post_copy: true,
        seed: 2,
        ..Spec::default()
    };
    let input = write_report(dir.path(), "post.json", &synth::report(&spec));
    let png = dir.path().join("post.png");
    assert!(gp_plot(&[&"-o", &png, &input]).status.success());
    let img = image::open(&png).unwrap().to_rgb8();
    // Between the title (ends near y = 32) and the plot's top edge (y = 47): white.
    let inked: Vec<(u32, u32)> = (36..46)
        .flat_map(|y| (100..1190).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0 != [255, 255, 255])
        .collect();
    assert!(
        inked.is_empty(),
        "{} pixels drawn above the plot, e.g. {:?}",
        inked.len(),
        &inked[..inked.len().min(5)]
    );
}

#[test]
fn original_guestperf_results_render() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["original-precopy.json", "original-postcopy.json"] {
        let input = fixture(name);
        let svg = dir.path().join(format!("{name}.svg"));
        let out = gp_plot(&[
            &"-o",
            &svg,
            &"--migration-iters",
            &"--split-guest-cpu",
            &"--qemu-cpu",
            &"--vcpu-cpu",
            &input,
        ]);
        assert!(out.status.success());
        let text = std::fs::read_to_string(&svg).unwrap();
        for want in [
            "guest thread 0",
            "guest thread 1",
            "QEMU",
            "vCPU 0 (tid 4250)",
            "completed",
            "(est.)",
            "migration iterations",
        ] {
            assert!(
                text.contains(want),
                "{want:?} missing from the chart of {name}"
            );
        }
        assert_default_size_png(&dir.path().join(format!("{name}.png")), &[&input]);
    }
    let text = std::fs::read_to_string(dir.path().join("original-postcopy.json.svg")).unwrap();
    assert!(text.contains("postcopy-active"));
}

#[test]
fn a_real_gp_collect_report_renders() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("gp-collect-tcg-precopy.json");
    let svg = dir.path().join("real.svg");
    let text = svg_with_every_series("-o", &svg, &input);
    for want in [
        "guest thread 0 (dst)",
        "QEMU dst",
        "vCPU 0 dst",
        "migration threads",
        "device",
        "downtime 274 ms",
        "703 ms",
        "216.47 MiB",
        "default",
    ] {
        assert!(text.contains(want), "{want:?} missing");
    }
    // The 300 ms stall in one 20 ms chunk is cut off at the top and its peak labelled.
    assert!(text.contains("\u{2191} 44728 ms/GB"));
    assert_default_size_png(&dir.path().join("real.png"), &[&input]);
}

#[test]
fn several_reports_share_one_chart() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_report(dir.path(), "a.json", &synth::report(&Spec::default()));
    let b = write_report(
        dir.path(),
        "b.json",
        &synth::report(&Spec {
            post_copy: true,
            scenario: "postcopy".into(),
            seed: 7,
            ..Spec::default()
        }),
    );
    let c = fixture("original-precopy.json");
    let svg = dir.path().join("cmp.svg");
    assert!(gp_plot(&[&"-o", &svg, &a, &b, &c]).status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Migration comparison: 3 reports"));
    // Legend rows name each report; the table lists each file.
    for want in [
        "a (precopy)",
        "b (postcopy)",
        "original-precopy",
        "a.json",
        "b.json",
        "original-precopy.json",
        "postcopy-active",
    ] {
        assert!(text.contains(want), "{want:?} missing");
    }
    // Each report has its own colour: the first three of the palette all appear.
    for colour in ["#0072B2", "#D55E00", "#009E73"] {
        assert!(text.contains(colour), "colour {colour} missing");
    }
    assert_default_size_png(&dir.path().join("cmp.png"), &[&a, &b, &c]);
}

#[test]
fn a_report_without_guest_records_plots_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = synth::report(&Spec::default());
    report.guest_timings.clear();
    let ext = report.guestperf_rs.as_mut().unwrap();
    ext.guest_progress.clear();
    ext.guest_gb.clear();
    let input = write_report(dir.path(), "noguest.json", &report);
    let svg = dir.path().join("c.svg");
    assert!(gp_plot(&[&"-o", &svg, &input]).status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("QEMU") && text.contains("completed"));
    assert!(!text.contains("guest thread"));
}

#[test]
fn a_large_report_renders_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_report(
        dir.path(),
        "big.json",
        &synth::report(&Spec {
            records: 100_000,
            ..Spec::default()
        }),
    );
    for ext in ["svg", "png"] {
        let out_path = dir.path().join(format!("big.{ext}"));
        assert!(gp_plot(&[&"-o", &out_path, &input]).status.success());
        // Decimated: the file stays small whatever the record count.
        let size = std::fs::metadata(&out_path).unwrap().len();
        assert!(size < 1_500_000, "{ext}: {size} bytes");
    }
}

/// Runs gp-plot expecting failure; returns stderr.
fn fails(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let out = gp_plot(args);
    assert!(!out.status.success(), "gp-plot should have failed");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.starts_with("gp-plot: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn faults_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = fixture("original-precopy.json");
    let out = d.join("x.svg");

    let missing = d.join("no-such-report.json");
    let e = fails(&[&"-o", &out, &missing]);
    assert!(
        e.contains("no-such-report.json") && e.contains("No such file"),
        "{e}"
    );
    assert_eq!(e.matches("No such file").count(), 1, "the cause once: {e}");

    let not_json = d.join("notes.json");
    std::fs::write(&not_json, "this is not json\n").unwrap();
    let e = fails(&[&"-o", &out, &not_json]);
    assert!(e.contains("notes.json") && e.contains("is not JSON"), "{e}");
    assert_eq!(
        e.matches("at line 1 column").count(),
        1,
        "the cause once: {e}"
    );

    let other = d.join("package.json");
    std::fs::write(&other, r#"{"name": "left-pad", "version": "1.3.0"}"#).unwrap();
    let e = fails(&[&"-o", &out, &other]);
    assert!(
        e.contains("package.json") && e.contains("not a guestperf report"),
        "{e}"
    );
    assert!(e.contains("missing field"), "{e}");

    let empty = d.join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let e = fails(&[&"-o", &out, &empty]);
    assert!(e.contains("empty.json") && e.contains("is empty"), "{e}");

    // A report with every list empty: nothing to draw.
    let mut hollow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    for k in [
        "progress_history",
        "guest_timings",
        "qemu_timings",
        "vcpu_timings",
    ] {
        hollow[k] = serde_json::json!([]);
    }
    let hollow_path = d.join("hollow.json");
    std::fs::write(&hollow_path, hollow.to_string()).unwrap();
    let e = fails(&[&"-o", &out, &hollow_path]);
    assert!(
        e.contains("hollow.json") && e.contains("no data to plot"),
        "{e}"
    );

    // An NDJSON stream given where a report belongs.
    let stream = d.join("stream.ndjson");
    std::fs::write(
        &stream,
        "{\"type\":\"launch\",\"time_s\":1}\n{\"type\":\"vm\"}\n",
    )
    .unwrap();
    let e = fails(&[&"-o", &out, &stream]);
    assert!(
        e.contains("stream.ndjson") && e.contains("gp-collect"),
        "{e}"
    );

    // Unwritable output: a missing directory, and a directory in the way.
    let nodir = d.join("no/such/dir/chart.png");
    let e = fails(&[&"-o", &nodir, &good]);
    assert!(e.contains("cannot write") && e.contains("chart.png"), "{e}");
    let e = fails(&[&"-o", &d, &good]);
    assert!(e.contains("image format"), "{e}");
    let dir_svg = d.join("taken.svg");
    std::fs::create_dir(&dir_svg).unwrap();
    let e = fails(&[&"-o", &dir_svg, &good]);
    assert!(e.contains("cannot write") && e.contains("taken.svg"), "{e}");

    // Unknown extension.
    let e = fails(&[&"-o", &d.join("chart.jpg"), &good]);
    assert!(e.contains("chart.jpg") && e.contains(".svg or .png"), "{e}");

    // The error names the bad file even when others are fine, and nothing is written.
    let e = fails(&[&"-o", &out, &good, &missing]);
    assert!(e.contains("no-such-report.json"), "{e}");
    assert!(!out.exists());
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let out = gp_plot(&[&"-o", &"x.svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("REPORT"));
    let out = gp_plot(&[&"-o", &"x.svg", &"--width", &"12", &"r.json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_downtime_breakdown_is_a_bar_under_the_timeline() {
    use gp_records::report::{BreakdownStep, DeviceTime, DowntimeBreakdown};
    use gp_records::Role;
    let dir = tempfile::tempdir().unwrap();
    let mut report = synth::report(&Spec {
        records: 400,
        ..Spec::default()
    });
    let plain = write_report(dir.path(), "plain.json", &report);
    // The steps of a real QEMU 10.0.2 precopy switchover (docs/report.md).
    let steps = [
        ("src-vm-stopped", "src-downtime-start", 0.086),
        ("src-iterable-saved", "src-vm-stopped", 6.892),
        ("src-non-iterable-saved", "src-iterable-saved", 0.752),
        ("src-downtime-end", "src-non-iterable-saved", 1.131),
        ("dst-precopy-loadvm-completed", "src-downtime-end", 0.909),
        (
            "dst-precopy-bh-vm-started",
            "dst-precopy-loadvm-completed",
            0.08,
        ),
    ];
    let device = |name: &str, ms| DeviceTime {
        device: name.into(),
        kind: "iterable".into(),
        ms,
    };
    report.summary.as_mut().unwrap().downtime_breakdown = Some(DowntimeBreakdown {
        available: true,
        steps: steps
            .iter()
            .map(|&(step, from, ms)| BreakdownStep {
                step: step.into(),
                from: from.into(),
                role: if step.starts_with("dst") {
                    Role::Dst
                } else {
                    Role::Src
                },
                start_s: 0.0,
                ms,
            })
            .collect(),
        qemu_window_ms: Some(8.861),
        total_ms: Some(9.85),
        top_save: vec![device("ram", 6.785)],
        top_load: vec![device("ram", 8.202)],
        ..DowntimeBreakdown::default()
    });
    let traced = write_report(dir.path(), "traced.json", &report);
    let svg = dir.path().join("chart.svg");
    assert!(gp_plot(&[&"--output", &svg, &traced]).status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    for want in [
        "Downtime breakdown (QEMU&apos;s vmstate_downtime tracepoints)",
        "src-iterable-saved 6.9",
        "traced (precopy): 9.9 ms (QEMU&apos;s window 8.9 ms); longest step src-iterable-saved 6.9 \
         ms; slowest save ram 6.8 ms; slowest load ram 8.2 ms",
    ] {
        assert!(text.contains(want), "{want:?} missing from the SVG");
    }
    // Without a breakdown there is no bar, and both draw as PNG at the requested size.
    assert!(gp_plot(&[&"--output", &svg, &plain]).status.success());
    assert!(!std::fs::read_to_string(&svg)
        .unwrap()
        .contains("Downtime breakdown"));
    let png = dir.path().join("chart.png");
    assert!(gp_plot(&[&"--output", &png, &traced, &plain])
        .status
        .success());
    assert_eq!(png_size(&png), (1280, 800));
}
