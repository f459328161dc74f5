//! Running things on another host through OpenSSH: quoting, one multiplexed connection, unix
//! socket forwarding, and the clock offset between the hosts.
//!
//! Everything goes through the `ssh` client, so the user's `~/.ssh/config` (host aliases, users,
//! ports, keys, jump hosts) applies. It always runs in batch mode: it never asks for a password or
//! a host key, it fails instead, and [`Master::connect`] turns its words into an error that says
//! what to fix.
//!
//! One [`Master`] connection (`ControlMaster`) carries every session and forward of a run, with
//! its control socket in the caller's private runtime directory. Killing it ends all of them,
//! which is how a remote QEMU is tied to the run: the remote helper kills QEMU when its stdin
//! (the ssh channel) reaches EOF.
//!
//! Remote commands are one string parsed by the remote user's login shell; [`quote`] and
//! [`command_line`] make every word a single POSIX-shell word whatever it contains.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::process::{self, format_tail, Child, Hooks, OutputLine, Spec};

/// The ssh client.
pub const SSH: &str = "ssh";

/// Seconds ssh may take to reach the host (`ConnectTimeout`).
pub const CONNECT_TIMEOUT_S: u32 = 10;

/// How long [`Master::connect`] waits for the connection to be up (reaching the host,
/// authenticating), beyond which it gives up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// How long an `ssh -O` control command may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// This host's clock as it reports it to a peer over ssh (clock probe answers, a remote QEMU's
/// spawn and exit times, a remote gp-sample's samples): [`gp_records::now_s`].
///
/// Built with the `test-clock-skew` feature (only the remote tests build it: `cargo build
/// --features gp-launch/test-clock-skew,gp-sample/test-clock-skew`), it adds
/// `$GUESTPERF_TEST_CLOCK_SKEW_S` seconds, which the tests' sshd sets so that its "remote" host
/// has a clock of its own and offset measurement and correction are tested for real. Release and
/// installed builds have no such knob.
pub fn remote_now_s() -> f64 {
    gp_records::now_s() + test_clock::skew_s()
}

/// [`remote_now_s`]'s correction to a time taken on this host's clock (`now_s` earlier): the
/// same skew, so that a time reported to a peer is on the clock the peer measured.
pub fn reported_time_s(local_s: f64) -> f64 {
    local_s + test_clock::skew_s()
}

#[cfg(feature = "test-clock-skew")]
pub mod test_clock {
    /// The variable the tests' sshd sets: seconds to add to every time reported to a peer.
    pub const ENV: &str = "GUESTPERF_TEST_CLOCK_SKEW_S";

    /// The skew of [`ENV`], 0 when unset or unparsable.
    pub fn skew_s() -> f64 {
        static SKEW: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        *SKEW.get_or_init(|| {
            std::env::var(ENV)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .unwrap_or(0.0)
        })
    }
}

#[cfg(not(feature = "test-clock-skew"))]
mod test_clock {
    /// No skew outside the test build.
    #[inline(always)]
    pub const fn skew_s() -> f64 {
        0.0
    }
}

/// Checks a `[user@]host` destination: ssh would take a leading `-` as an option, and blanks or
/// control characters are never part of a host name.
pub fn check_destination(dest: &str) -> Result<(), String> {
    if dest.is_empty() {
        return Err("the destination host is empty (give [user@]HOST)".into());
    }
    if dest.starts_with('-') {
        return Err(format!(
            "{dest:?} starts with '-', which ssh would read as an option (give [user@]HOST)"
        ));
    }
    if let Some(c) = dest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{dest:?} contains {c:?}, which no host name has (give [user@]HOST, or a Host alias \
             from ~/.ssh/config)"
        ));
    }
    let host = dest.rsplit_once('@').map_or(dest, |(_, h)| h);
    if host.is_empty() {
        return Err(format!("{dest:?} names no host after '@'"));
    }
    Ok(())
}

/// One word for a POSIX shell: unchanged when it has only safe characters, else in single quotes
/// (a `'` inside becomes `'\''`). Works for any bytes, including newlines.
pub fn quote(word: &OsStr) -> OsString {
    let bytes = word.as_bytes();
    let safe = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:,@+%".contains(b));
    if safe {
        return word.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// [`quote`] for text.
pub fn quote_str(word: &str) -> String {
    quote(OsStr::new(word)).to_string_lossy().into_owned()
}

/// Words joined by spaces, each quoted.
pub fn command_line<I, S>(words: I) -> OsString
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut out = OsString::new();
    for (i, w) in words.into_iter().enumerate() {
        if i > 0 {
            out.push(" ");
        }
        out.push(quote(w.as_ref()));
    }
    out
}

/// A remote command that runs `words` with `~/.cargo/bin` (where `cargo install` puts the stage
/// binaries) added to the non-interactive `PATH`.
pub fn stage_command<I, S>(words: I) -> OsString
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = OsString::from("PATH=\"$PATH:$HOME/.cargo/bin\"; export PATH; exec ");
    cmd.push(command_line(words));
    cmd
}

/// How to run ssh: the user's config (`-F`) and options (`-o`), on top of ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfig {
    /// `ssh -F FILE` instead of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// `ssh -o OPTION` each; they win over our defaults (ssh keeps the first value it sees).
    pub options: Vec<String>,
}

impl SshConfig {
    /// Options every ssh invocation gets. Batch mode comes first so nothing can turn it off.
    pub fn common_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["-o".into(), "BatchMode=yes".into()];
        if let Some(f) = &self.config_file {
            a.push("-F".into());
            a.push(f.as_os_str().to_owned());
        }
        for o in &self.options {
            a.push("-o".into());
            a.push(o.into());
        }
        for o in [
            format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            // A host that vanishes is noticed within 15 s, not at the next TCP timeout.
            "ServerAliveInterval=5".into(),
            "ServerAliveCountMax=3".into(),
        ] {
            a.push("-o".into());
            a.push(o.into());
        }
        a
    }
}

/// Why ssh failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot run ssh (install OpenSSH's client, e.g. the openssh-client package)")]
    Spawn(#[source] process::SpawnError),
    #[error("ssh to {dest}: {message}")]
    Failed { dest: String, message: String },
    #[error("interrupted")]
    Interrupted,
}

/// Explains why ssh could not connect, from its stderr, with the fix.
pub fn explain_failure(
    dest: &str,
    config: &SshConfig,
    status: Option<i32>,
    stderr: &[String],
) -> String {
    let text = stderr.join("\n");
    let has = |s: &str| text.contains(s);
    let mut check = String::from("check with: ssh -o BatchMode=yes");
    if let Some(f) = &config.config_file {
        check.push_str(&format!(" -F {}", quote_str(&f.to_string_lossy())));
    }
    for o in &config.options {
        check.push_str(&format!(" -o {}", quote_str(o)));
    }
    check.push_str(&format!(" {} true", quote_str(dest)));
    let why = if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "authentication refused. guestperf-rs runs ssh in batch mode and never asks for a \
             password: set up key authentication (ssh-copy-id {dest}) or an ssh-agent; {check}"
        )
    } else if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        format!(
            "the host key is unknown or has changed, and batch mode does not ask: connect once \
             with ssh {dest} to accept it (or fix ~/.ssh/known_hosts); {check}"
        )
    } else if has("Could not resolve hostname") || has("Name or service not known") {
        format!(
            "cannot resolve the host name: check it, or add a Host entry to ~/.ssh/config; \
             {check}"
        )
    } else if has("Connection refused") {
        format!("connection refused: is sshd running there, on the port ssh uses? {check}")
    } else if has("timed out") || has("No route to host") || has("Network is unreachable") {
        format!("the host cannot be reached: {}; {check}", last_line(&text))
    } else if has("Connection closed") || has("closed by remote host") || has("Broken pipe") {
        format!("the connection was closed: {}", last_line(&text))
    } else {
        let status = status.map_or("did not finish".to_string(), |s| format!("exit status {s}"));
        format!(
            "ssh failed ({status}); its stderr:\n{}\n{check}",
            format_tail(stderr)
        )
    };
    why
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// What a finished command left: exit status (`None` when it was killed at the deadline), its
/// stdout lines, and its stderr tail.
pub type Finished = (Option<i32>, Vec<String>, Vec<String>);

/// Runs `spec` to completion, with `input` written to its stdin, giving up at `timeout`.
pub fn run_to_end(spec: &Spec, input: &[u8], timeout: Duration) -> Result<Finished, SshError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let hooks = Hooks {
        on_stdout_line: Box::new(move |l: OutputLine| {
            let _ = tx.send(l.text);
        }),
        on_stderr_line: None,
        on_exit: None,
    };
    let mut spec = spec.clone();
    spec.keep_stdin = true;
    let child = process::spawn(&spec, hooks).map_err(SshError::Spawn)?;
    if let Some(mut stdin) = child.take_stdin() {
        let _ = stdin.write_all(input);
    }
    let exit = child.wait_until(Instant::now() + timeout);
    let status = match exit {
        Some(e) => Some(e.status),
        None => {
            child.kill_and_reap();
            None
        }
    };
    let stderr = child.stderr_tail_after_exit();
    Ok((status, rx.try_iter().collect(), stderr))
}

/// One multiplexed ssh connection to a host (`ssh -M -N`), its control socket in a private
/// directory. Dropping it kills the connection and with it every session and forward.
#[derive(Debug)]
pub struct Master {
    child: Child,
    control: PathBuf,
    dest: String,
    config: SshConfig,
}

impl Master {
    /// Connects to `dest`, with the control socket at `control`. Waits until the connection is
    /// up (authenticated), ssh gives up, `keep_trying` says stop (e.g. a signal), or
    /// [`CONNECT_DEADLINE`] passes.
    pub fn connect(
        dest: &str,
        config: &SshConfig,
        control: &Path,
        mut keep_trying: impl FnMut() -> Result<(), String>,
    ) -> Result<Master, SshError> {
        check_destination(dest).map_err(SshError::Usage)?;
        let mut spec = Spec::new("ssh-master", SSH);
        spec.arg("-M").arg("-S").arg(control.as_os_str());
        spec.args(config.common_args());
        spec.args([
            "-o",
            "ControlPersist=no",
            "-o",
            "StreamLocalBindUnlink=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-T",
            "--",
            dest,
        ]);
        let child = process::spawn(&spec, Hooks::discard()).map_err(SshError::Spawn)?;
        let deadline = Instant::now() + CONNECT_DEADLINE;
        let mut pause = Duration::from_millis(5);
        loop {
            // The control socket appears once ssh has authenticated (it is bound under a
            // temporary name and renamed into place).
            if control.exists() {
                return Ok(Master {
                    child,
                    control: control.to_path_buf(),
                    dest: dest.to_string(),
                    config: config.clone(),
                });
            }
            if let Some(exit) = child.try_exit() {
                let stderr = child.stderr_tail_after_exit();
                return Err(SshError::Failed {
                    dest: dest.to_string(),
                    message: explain_failure(dest, config, Some(exit.status), &stderr),
                });
            }
            if keep_trying().is_err() {
                child.kill_and_reap();
                return Err(SshError::Interrupted);
            }
            if Instant::now() >= deadline {
                child.kill_and_reap();
                return Err(SshError::Failed {
                    dest: dest.to_string(),
                    message: format!(
                        "no connection within {} s (ssh still had not authenticated); its \
                         stderr:\n{}",
                        CONNECT_DEADLINE.as_secs(),
                        format_tail(&child.stderr_tail())
                    ),
                });
            }
            // ssh offers no event for "authenticated": poll the socket, briefly.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    pub fn dest(&self) -> &str {
        &self.dest
    }

    /// The control socket other processes can run sessions through (`ssh -S PATH`).
    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// The master ssh's pid (killing it drops the connection).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Whether the connection is still up.
    pub fn alive(&self) -> bool {
        !self.child.has_exited()
    }

    /// Why the connection ended, when it has.
    pub fn failure(&self) -> Option<String> {
        let exit = self.child.try_exit()?;
        Some(explain_failure(
            &self.dest,
            &self.config,
            Some(exit.status),
            &self.child.stderr_tail(),
        ))
    }

    /// A session running `remote_command` through this connection, its stdin a pipe held by
    /// the returned [`Child`] (the remote end sees EOF when it is dropped or the child dies).
    pub fn session(&self, name: &str, remote_command: &OsStr) -> Spec {
        session_spec(
            name,
            &self.dest,
            &self.config,
            Some(&self.control),
            remote_command,
        )
    }

    /// Forwards the unix socket `local` (created by ssh) to `remote` on the host. Each
    /// connection to `local` opens one to `remote`.
    pub fn forward(&self, local: &Path, remote: &Path) -> Result<(), SshError> {
        for p in [local, remote] {
            if p.as_os_str().as_bytes().contains(&b':') {
                return Err(SshError::Usage(format!(
                    "cannot forward {}: ssh cannot forward a socket path that contains ':' (set \
                     XDG_RUNTIME_DIR or TMPDIR to a directory without one)",
                    p.display()
                )));
            }
        }
        let mut spec_arg = local.as_os_str().to_owned();
        spec_arg.push(":");
        spec_arg.push(remote.as_os_str());
        let spec = self.control_spec("forward", &["-L".into(), spec_arg]);
        let (status, _, stderr) = run_to_end(&spec, b"", CONTROL_TIMEOUT)?;
        if status != Some(0) {
            return Err(SshError::Failed {
                dest: self.dest.clone(),
                message: format!(
                    "forwarding {} to {} failed: {}",
                    local.display(),
                    remote.display(),
                    last_line(&stderr.join("\n"))
                ),
            });
        }
        Ok(())
    }

    /// `ssh -S CONTROL -O COMMAND [EXTRA...] -- DEST`.
    fn control_spec(&self, command: &str, extra: &[OsString]) -> Spec {
        let mut spec = Spec::new(format!("ssh-{command}"), SSH);
        spec.arg("-S").arg(self.control.as_os_str());
        spec.args(self.config.common_args());
        spec.args(["-O", command]);
        spec.args(extra);
        spec.arg("--").arg(&self.dest);
        spec
    }

    /// Ends the connection (and every session on it): `ssh -O exit`, then SIGTERM, then
    /// SIGKILL, bounded.
    pub fn close(self) {
        if !self.alive() {
            return;
        }
        let exit = self.control_spec("exit", &[]);
        let _ = run_to_end(&exit, b"", Duration::from_secs(5));
        self.child.stop(
            || {
                self.child.signal(libc::SIGTERM);
            },
            Duration::from_secs(5),
        );
    }
}

/// An ssh session spec: through `control` when given (`ControlMaster=no` makes ssh use it),
/// else a connection of its own. Its stdin is a pipe held by the child.
pub fn session_spec(
    name: &str,
    dest: &str,
    config: &SshConfig,
    control: Option<&Path>,
    remote_command: &OsStr,
) -> Spec {
    let mut spec = Spec::new(name, SSH);
    if let Some(c) = control {
        spec.arg("-S").arg(c.as_os_str());
        spec.args(["-o", "ControlMaster=no"]);
    }
    spec.args(config.common_args());
    spec.args(["-T", "--", dest]);
    spec.arg(remote_command);
    spec.keep_stdin = true;
    spec
}

/// A clock offset estimate: remote clock minus local clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockEstimate {
    pub offset_s: f64,
    /// Round trip of the probe the estimate comes from; the offset is good to half of it.
    pub rtt_s: f64,
    /// Probes that answered.
    pub probes: usize,
}

/// Prefix of a clock probe answer.
pub const CLOCK_REPLY: &str = "@gp-clock ";

/// The estimate from probes `(local send time, remote reading, local receive time)`: the one
/// with the shortest round trip, assuming the reading was taken half-way (NTP's reasoning: its
/// error is at most half the round trip).
pub fn best_estimate(probes: &[(f64, f64, f64)]) -> Option<ClockEstimate> {
    probes
        .iter()
        .filter(|(t0, r, t1)| t0.is_finite() && r.is_finite() && t1 >= t0)
        .min_by(|a, b| (a.2 - a.0).total_cmp(&(b.2 - b.0)))
        .map(|(t0, r, t1)| ClockEstimate {
            offset_s: r - (t0 + t1) / 2.0,
            rtt_s: t1 - t0,
            probes: probes.len(),
        })
}

/// Probes a remote clock `rounds` times: writes a line to `to_remote`, waits for the
/// `@gp-clock T` answer among `lines` (others are skipped), each bounded by `timeout`.
pub fn measure_clock(
    to_remote: &mut impl Write,
    lines: &Receiver<OutputLine>,
    rounds: usize,
    timeout: Duration,
) -> Result<ClockEstimate, String> {
    let mut probes = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = gp_records::now_s();
        to_remote
            .write_all(b"t\n")
            .and_then(|()| to_remote.flush())
            .map_err(|e| format!("clock probe: cannot write to ssh: {e}"))?;
        let deadline = Instant::now() + timeout;
        let reply = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = line.text.strip_prefix(CLOCK_REPLY) {
                        let r: f64 = v
                            .trim()
                            .parse()
                            .map_err(|_| format!("clock probe: bad answer {:?}", line.text))?;
                        break (r, line.time_s);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "clock probe: no answer within {:.0} s",
                        timeout.as_secs_f64()
                    ))
                }
            }
        };
        probes.push((t0, reply.0, reply.1));
    }
    best_estimate(&probes).ok_or_else(|| "clock probe: no usable answer".to_string())
}

/// The remote end of [`measure_clock`]: answers each input line with this host's clock, until
/// the input ends.
pub fn serve_clock(input: impl BufRead, mut out: impl Write) -> io::Result<()> {
    for line in input.lines() {
        line?;
        writeln!(out, "{CLOCK_REPLY}{:.6}", remote_now_s())?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh -c` makes of a quoted command line, one word per line.
    fn sh_words(cmdline: &OsStr) -> Vec<String> {
        let mut script = OsString::from("for w in ");
        script.push(cmdline);
        script.push("; do printf '%s\\n' \"$w\"; done");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn quoting_survives_a_shell() {
        let words = [
            "plain",
            "/path with spaces/vmlinuz",
            "it's \"quoted\"",
            "$(touch /tmp/gp-injected) `id` ; rm -rf / & | > <",
            "back\\slash",
            "*",
            "~",
            "a,b=c",
        ];
        assert_eq!(sh_words(&command_line(words)), words);
        assert_eq!(quote_str("plain-1.0"), "plain-1.0");
        assert_eq!(quote_str(""), "''");
        assert_eq!(quote_str("it's"), "'it'\\''s'");
        assert!(!Path::new("/tmp/gp-injected").exists());
    }

    #[test]
    fn destinations() {
        for ok in ["host", "user@host", "gp-test", "u@10.0.0.1", "a@b@c"] {
            check_destination(ok).unwrap();
        }
        for bad in ["", "-oProxyCommand=x", "host name", "user@", "h\n"] {
            assert!(check_destination(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn batch_mode_first_and_user_options_before_defaults() {
        let c = SshConfig {
            config_file: Some("/tmp/cfg".into()),
            options: vec!["ConnectTimeout=3".into()],
        };
        let a: Vec<String> = c
            .common_args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&a[..4], ["-o", "BatchMode=yes", "-F", "/tmp/cfg"]);
        let user = a.iter().position(|s| s == "ConnectTimeout=3").unwrap();
        let ours = a
            .iter()
            .position(|s| s.starts_with("ConnectTimeout=1"))
            .unwrap();
        assert!(
            user < ours,
            "ssh keeps the first value: the user's must come first"
        );
    }

    #[test]
    fn failures_are_explained() {
        // (host, ssh's last stderr line, what the explanation must say)
        let cases = [
            (
                "h",
                "root@h: Permission denied (publickey).",
                &["authentication refused", "ssh-copy-id"][..],
            ),
            (
                "nowhere.invalid",
                "ssh: Could not resolve hostname nowhere.invalid: Name or service not known",
                &["cannot resolve"],
            ),
            (
                "h",
                "ssh: connect to host h port 1: Connection refused",
                &["sshd running"],
            ),
            ("h", "Host key verification failed.", &["host key"]),
        ];
        for (host, stderr, wanted) in cases {
            let e = explain_failure(host, &SshConfig::default(), Some(255), &[stderr.into()]);
            for w in wanted {
                assert!(e.contains(w), "{stderr}: {e}");
            }
        }
    }

    #[test]
    fn the_shortest_round_trip_wins() {
        // Remote is 100 s ahead; the second probe is the tightest.
        let probes = [(0.0, 100.3, 0.4), (1.0, 101.05, 1.1), (2.0, 102.5, 2.2)];
        let e = best_estimate(&probes).unwrap();
        assert!((e.offset_s - 100.0).abs() < 1e-9, "{e:?}");
        assert!((e.rtt_s - 0.1).abs() < 1e-9);
        assert_eq!(e.probes, 3);
        assert!(best_estimate(&[]).is_none());
    }

    #[test]
    fn clock_probes_through_a_child_with_a_kept_stdin() {
        // `sed` stands in for the remote end: it answers each line with a fixed "clock".
        let mut spec = Spec::new("clock-peer", "/bin/sed");
        spec.args(["-u", "s/.*/@gp-clock 12345.5/"]);
        spec.keep_stdin = true;
        let (tx, rx) = crossbeam_channel::unbounded();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |l| {
                let _ = tx.send(l);
            }),
            on_stderr_line: None,
            on_exit: None,
        };
        let child = process::spawn(&spec, hooks).unwrap();
        let mut stdin = child.take_stdin().unwrap();
        let e = measure_clock(&mut stdin, &rx, 5, Duration::from_secs(20)).unwrap();
        assert_eq!(e.probes, 5);
        assert!(e.rtt_s >= 0.0 && e.rtt_s < 5.0, "{e:?}");
        let expected = 12345.5 - gp_records::now_s();
        assert!((e.offset_s - expected).abs() < 5.0, "{e:?}");
        drop(stdin); // EOF: sed ends
        let exit = child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        assert_eq!(exit.status, 0);
    }

    #[test]
    fn serve_clock_answers_each_line() {
        let mut out = Vec::new();
        serve_clock(&b"a\nb\n"[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let t: f64 = lines[0].strip_prefix(CLOCK_REPLY).unwrap().parse().unwrap();
        assert!((t - gp_records::now_s()).abs() < 60.0);
    }
}
