//! The binaries under test. A test binary of this crate cannot name other packages' binaries
//! through `CARGO_BIN_EXE_*`, so they are built once (`cargo build -p ...`, same profile and
//! target directory) and found next to the test binary's own profile directory. [`run_logged`]
//! runs one and shows what it did when a test fails.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Once;

/// Every binary of the workspace, with the package that builds it.
pub const ALL: &[(&str, &str)] = &[
    ("gp-launch", "gp-launch"),
    ("gp-sample", "gp-sample"),
    ("gp-migrate", "gp-migrate"),
    ("gp-collect", "gp-collect"),
    ("gp-plot", "gp-plot"),
    ("guestperf", "guestperf"),
    ("gp-batch", "guestperf"),
    ("gp-initrd", "gp-initrd"),
    ("stress", "stress"),
];

/// `target/<profile>`: the directory the running test binary was built into.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of binary `name`, built first (once per process) if need be.
pub fn bin(name: &str) -> PathBuf {
    assert!(
        ALL.iter().any(|(b, _)| *b == name),
        "{name} is not a binary of this workspace"
    );
    build_all();
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing after building the workspace's binaries",
        path.display()
    );
    path
}

/// Builds every binary of the workspace in the test binary's profile, once per process.
pub fn build_all() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build").current_dir(env!("CARGO_MANIFEST_DIR"));
        let profile = profile_dir();
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let mut packages: Vec<&str> = ALL.iter().map(|(_, p)| *p).collect();
        packages.dedup();
        for p in packages {
            cmd.args(["-p", p]);
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the stage binaries failed");
    });
}

/// Runs `cmd` to the end, feeding it `stdin` (or nothing), and prints what it did to the test's
/// stderr (shown when the test fails): the command, its status and time, its stderr and the
/// start of its stdout. Fails the test if the tool panicked: a panic is never an answer. The
/// tool ends with the test ([`crate::end_with_test`]).
pub fn run_logged(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    crate::end_with_test(cmd);
    eprintln!("running {cmd:?}");
    let start = std::time::Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Fed from a thread, so a tool that writes before it has read everything cannot deadlock
    // against us; a tool may rightly stop reading early (bad input): a closed pipe is no failure.
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{:?} after {:.1} s\n--- stderr ---\n{stderr}--- stdout ({} bytes) ---\n{}",
        out.status,
        start.elapsed().as_secs_f64(),
        out.stdout.len(),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)]),
    );
    assert!(!stderr.contains("panicked"), "{cmd:?} panicked");
    out
}
