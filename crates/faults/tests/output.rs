//! The report cannot be written where it was asked for: a full device, a read-only directory, a
//! full filesystem, a full stdout, and nowhere at all. gp-collect must say so clearly and save
//! the report elsewhere (and say where), never drop it silently nor destroy the target.
//!
//! The read-only and full filesystems are small tmpfs mounts (root, as CI runs); without root
//! the read-only case uses a mode-0555 directory and the full-filesystem case is covered by the
//! full device only (said on stderr).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gp_records::report::Report;
use gp_testkit::bins::bin;

/// A recorded precopy run (gp-collect's own fixture): about 100 records, a 20 KB report.
fn stream() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../collect/tests/fixtures/precopy.ndjson");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lines(stream: &[u8]) -> u64 {
    stream
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no failure mode.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted at `dir` with `options`, unmounted on drop. `None` when mounting is not
/// allowed here.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        if !is_root() {
            return None;
        }
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                options,
                "gp-faults",
                &dir.to_string_lossy(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

struct Collect {
    out: Output,
    cache: tempfile::TempDir,
}

impl Collect {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// The file the report was saved to instead, from the message, checked.
    fn saved(&self, stream: &[u8]) -> PathBuf {
        let err = self.stderr();
        let path = err
            .split("the report was saved to ")
            .nth(1)
            .and_then(|rest| rest.split(" instead").next())
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("the error does not say where the report went: {err}"));
        assert!(
            path.starts_with(self.cache.path().join("unsaved-reports")),
            "saved outside the guestperf cache: {}",
            path.display()
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the saved report is not private");
        let r: Report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .expect("the saved report is a report");
        assert_eq!(
            r.guestperf_rs.unwrap().input.records,
            lines(stream),
            "records missing from the saved report"
        );
        path
    }
}

/// gp-collect `args` < `stream`, stdout to `stdout`, with its fallback in a private cache.
fn collect(args: &[&str], stdout: Stdio, extra_env: &[(&str, &str)]) -> Collect {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("gp-collect"))
        .args(args)
        .env("GUESTPERF_CACHE", cache.path())
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&stream()).unwrap();
    let out = child.wait_with_output().unwrap();
    let c = Collect { out, cache };
    assert!(!c.stderr().contains("panicked"), "{}", c.stderr());
    assert_eq!(c.out.status.code(), Some(1), "{}", c.stderr());
    c
}

#[test]
fn a_full_device_is_written_in_place_and_the_report_saved_elsewhere() {
    // Root could replace the node: use a private copy of /dev/full then.
    let dir = tempfile::tempdir().unwrap();
    let device = if is_root() {
        let node = dir.path().join("full");
        let c = std::ffi::CString::new(node.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: mknod(2) with a valid path; 1:7 is /dev/full's device number.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 7)) };
        assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
        node
    } else {
        PathBuf::from("/dev/full")
    };
    let c = collect(&["--output", &device.to_string_lossy()], Stdio::null(), &[]);
    let err = c.stderr();
    assert!(
        err.contains(&format!("writing the report to {}", device.display()))
            && err.contains("No space left on device"),
        "{err}"
    );
    c.saved(&stream());
    assert!(
        std::fs::metadata(&device)
            .unwrap()
            .file_type()
            .is_char_device(),
        "{} was replaced",
        device.display()
    );
}

#[test]
fn a_read_only_directory_is_named_and_the_report_saved_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let _mount = Mount::tmpfs(&ro, "ro,size=64k");
    if _mount.is_none() {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let target = ro.join("report.json");
    let c = collect(&["--output", &target.to_string_lossy()], Stdio::null(), &[]);
    let err = c.stderr();
    assert!(err.contains(&ro.display().to_string()), "{err}");
    assert!(
        err.contains("Read-only file system") || err.contains("Permission denied"),
        "{err}"
    );
    c.saved(&stream());
    assert!(!target.exists());
}

#[test]
fn a_full_filesystem_leaves_no_partial_file_and_the_report_is_saved_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let Some(_mount) = Mount::tmpfs(&small, "size=8k") else {
        eprintln!("not root: the full-filesystem case is covered by the full device only");
        return;
    };
    let target = small.join("report.json");
    let c = collect(&["--output", &target.to_string_lossy()], Stdio::null(), &[]);
    let err = c.stderr();
    assert!(err.contains("No space left on device"), "{err}");
    c.saved(&stream());
    // Neither the report nor gp-collect's temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert!(left.is_empty(), "left in the full filesystem: {left:?}");
}

#[test]
fn a_full_stdout_is_said_and_the_report_saved_elsewhere() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let c = collect(&[], Stdio::from(full), &[]);
    let err = c.stderr();
    assert!(
        err.contains("writing the report to stdout") && err.contains("No space left"),
        "{err}"
    );
    c.saved(&stream());
}

#[test]
fn when_nowhere_takes_the_report_the_error_says_it_is_lost() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let c = collect(
        &[],
        Stdio::from(full),
        &[
            ("GUESTPERF_CACHE", "/proc/gp-nowhere"),
            ("TMPDIR", "/proc/gp-nowhere"),
        ],
    );
    let err = c.stderr();
    assert!(err.contains("the report is lost"), "{err}");
    assert!(err.contains("/proc/gp-nowhere"), "{err}");
}

#[test]
fn gp_plot_says_when_it_cannot_write_the_chart() {
    let report = gp_faults::corpus::odd_reports()
        .into_iter()
        .find(|p| p.ends_with("unknown-fields.json"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("chart.svg");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    let full = full.to_string_lossy().into_owned();
    for target in [full.as_str(), "/proc/gp-nowhere/chart.svg"] {
        let out = Command::new(bin("gp-plot"))
            .args(["--output", target])
            .arg(&report)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {err}");
        assert!(err.contains(&format!("cannot write {target}")), "{err}");
    }
}
