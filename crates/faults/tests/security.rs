//! Where a run puts things, and with which modes (docs/threat-model.md): runtime sockets only in
//! a private (0700) directory with an unpredictable name, nothing else in the shared temp
//! directory, nothing left after; and paths with spaces, quotes and non-UTF-8 bytes for the
//! kernel, the initrd, the QEMU binary and the report. Real QEMU under TCG.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use gp_faults::{log_whole_run, Pipeline, Spec, Stage};
use gp_records::{Outcome, Role};
use gp_testkit::vm_test_lock;

const BOUND: Duration = Duration::from_secs(180);

fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[test]
fn runtime_sockets_live_in_a_private_directory_and_nothing_is_left() {
    let _lock = vm_test_lock();
    // A temp directory of our own, so everything the run puts there can be seen.
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec::new(&["--sleep", "1"])
        .env("TMPDIR", tmp.path())
        .env("XDG_RUNTIME_DIR", "");
    let mut p = Pipeline::start(&spec);
    let src = p.vm(Role::Src);
    let dst = p.vm(Role::Dst);
    let dir = PathBuf::from(&src.qmp_socket)
        .parent()
        .unwrap()
        .to_path_buf();

    // While the run is live.
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir() && !meta.file_type().is_symlink());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o700,
        "{}",
        dir.display()
    );
    // SAFETY: geteuid(2) has no failure mode.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    assert_eq!(dir.parent(), Some(tmp.path()), "sockets outside TMPDIR");
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!("gp-launch-{}-", p.pid(Stage::Launch));
    assert!(
        name.starts_with(&prefix) && name.len() >= prefix.len() + 8,
        "predictable runtime directory name {name}"
    );
    for sock in [
        PathBuf::from(&src.qmp_socket),
        PathBuf::from(&dst.qmp_socket),
        PathBuf::from(
            dst.migrate_uri
                .as_deref()
                .unwrap()
                .trim_start_matches("unix:"),
        ),
    ] {
        assert_eq!(sock.parent(), Some(dir.as_path()), "{}", sock.display());
    }
    let in_tmp: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(in_tmp, vec![OsString::from(&name)], "other files in TMPDIR");

    let ended = p.finish(BOUND);
    p.assert_clean();
    log_whole_run("runtime directory check (whole run)", ended.total, BOUND);
    // Nothing left in TMPDIR; the report has the mode a new file gets.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    let mode = std::fs::metadata(p.report_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666 & !umask());
}

#[test]
fn paths_with_spaces_quotes_and_non_utf8_bytes_work() {
    let _lock = vm_test_lock();
    gp_testkit::require_qemu();
    let base = tempfile::tempdir().unwrap();
    // `it's a "run" dir <0xff>`: a space, both quotes, a byte that is not UTF-8.
    let mut weird = b"it's a \"run\" dir ".to_vec();
    weird.push(0xff);
    let dir = base.path().join(OsString::from_vec(weird));
    std::fs::create_dir(&dir).unwrap();
    let link = |name: &[u8], to: PathBuf| {
        let path = dir.join(OsString::from_vec(name.to_vec()));
        std::os::unix::fs::symlink(&to, &path).unwrap();
        path
    };
    let kernel = link(
        b"vmlinuz 'k' \xfe",
        gp_qemu::kernel::find_kernel(None).expect("a guest kernel"),
    );
    let initrd = link(b"initrd \"i\".img", gp_qemu::paths::default_initrd());
    // The binary goes into the records and ssh command lines: spaces and quotes work, a
    // non-UTF-8 path is refused by name (below).
    let plain = base.path().join("qemu's \"bin\" dir");
    std::fs::create_dir(&plain).unwrap();
    let binary = plain.join("qemu system x86");
    std::os::unix::fs::symlink(which("qemu-system-x86_64"), &binary).unwrap();
    let report = dir.join(OsString::from_vec(b"re port \"x\" \xfc.json".to_vec()));

    let mut spec = Spec::new(&["--sleep", "0.5"]);
    spec.report = Some(report.clone());
    let launch: Vec<OsString> = vec![
        "--accel".into(),
        "tcg".into(),
        "--mem".into(),
        "256M".into(),
        "--kernel".into(),
        kernel.into_os_string(),
        "--initrd".into(),
        initrd.into_os_string(),
        "--binary".into(),
        binary.into_os_string(),
    ];
    let mut p = Pipeline::start_with(&spec, launch);
    let ended = p.finish(BOUND);
    p.assert_clean();
    log_whole_run(
        "paths with spaces, quotes, non-UTF-8 (whole run)",
        ended.total,
        BOUND,
    );
    for e in &ended.exits {
        assert!(e.status.success(), "{}\n{}", ended.describe(), p.logs());
    }
    let r = p.report();
    assert!(report.exists());
    let result = r.guestperf_rs.unwrap().result.unwrap();
    assert_eq!(result.outcome, Outcome::Completed);
}

#[test]
fn a_binary_path_that_is_not_utf8_is_refused_by_name() {
    let path = OsString::from_vec(b"/tmp/qemu \xfd".to_vec());
    for (bin, opt) in [("gp-launch", "--binary"), ("guestperf", "--binary")] {
        let out = std::process::Command::new(gp_testkit::bins::bin(bin))
            .arg(opt)
            .arg(&path)
            .arg("--kernel")
            .arg("/nonexistent/guard/vmlinuz")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !err.contains("panicked"),
            "{bin}: {err}"
        );
        assert!(
            err.contains("--binary") && err.contains("UTF-8"),
            "{bin}: {err}"
        );
    }
}

fn which(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not on PATH: run scripts/setup-host.sh"))
}
