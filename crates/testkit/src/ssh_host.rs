//! A test host reached over real ssh, with its own sshd (generated host and client
//! keys, its own config) in a network namespace joined to this one by a veth pair, so what
//! crosses to it crosses a real link; where namespaces are not permitted, on loopback (said on
//! stderr).
//!
//! Needs root (sshd, `ip netns`) and OpenSSH (scripts/setup-host.sh installs it).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::procs::processes_with;
use crate::vm::wait_until;
use gp_qemu::runtime::RuntimeDir;

/// The default ssh alias of a test host.
pub const HOST: &str = "gp-remote";

/// Runs `cmd`, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A free TCP port on loopback (free when asked).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A network namespace joined to this one by a veth pair; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub outer: String,
    /// Our end's address.
    pub local_addr: String,
    /// The namespace's end's address.
    pub remote_addr: String,
}

impl Netns {
    /// `None` (with a note) where this machine does not permit it.
    pub fn create() -> Option<Netns> {
        let n = unique();
        let pid = std::process::id();
        let name = format!("gp-rt-{pid}-{n}");
        let outer = format!("gpv{}{n}a", pid % 100_000);
        let inner = format!("gpv{}{n}b", pid % 100_000);
        let octet = (pid % 250) as u8;
        let base = 4 * (n % 60) as u8;
        let local_addr = format!("10.231.{octet}.{}", base + 1);
        let remote_addr = format!("10.231.{octet}.{}", base + 2);
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "note: `ip netns add` is not permitted here: the remote host is on loopback and \
                 the migration does not cross a link"
            );
            return None;
        }
        let ns = Netns {
            name,
            outer,
            local_addr,
            remote_addr,
        };
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        let netns_ip = |args: &[&str]| {
            run(Command::new("ip")
                .args(["netns", "exec", &ns.name, "ip"])
                .args(args))
        };
        ip(&[
            "link", "add", &ns.outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.local_addr),
            "dev",
            &ns.outer,
        ]);
        ip(&["link", "set", &ns.outer, "up"]);
        netns_ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.remote_addr),
            "dev",
            &inner,
        ]);
        netns_ip(&["link", "set", &inner, "up"]);
        netns_ip(&["link", "set", "lo", "up"]);
        Some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it ours.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .stderr(Stdio::null())
            .status();
    }
}

/// How a test host's sessions are set up.
#[derive(Debug, Clone)]
pub struct SshHostOptions {
    /// The alias of the host's main login in its ssh config.
    pub alias: String,
    /// Directories put first on the PATH of the main login's sessions (e.g. the stage binaries
    /// under test).
    pub path: Vec<PathBuf>,
    /// More environment of the main login's sessions (values without spaces).
    pub env: Vec<(String, String)>,
}

impl Default for SshHostOptions {
    fn default() -> Self {
        SshHostOptions {
            alias: HOST.to_string(),
            path: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// An sshd of our own, and an ssh client config for it; everything removed on drop.
///
/// The config has four aliases: the main one ([`SshHostOptions::alias`], with the PATH and
/// environment asked for), `gp-stranger` (a key the host does not accept), `gp-nobin` (a login
/// whose PATH has only the system's directories) and `gp-closed` (a port nothing listens on).
#[derive(Debug)]
pub struct SshHost {
    // Field order: sshd stops before its namespace and directory go.
    pub sshd: Child,
    pub netns: Option<Netns>,
    pub dir: RuntimeDir,
    config: PathBuf,
    /// The address the host is reached at.
    pub addr: String,
    pub alias: String,
}

impl SshHost {
    /// A host whose main login ([`HOST`]) has the system's PATH after `options.path`.
    pub fn start(options: &SshHostOptions) -> SshHost {
        for tool in ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: run scripts/setup-host.sh (it installs OpenSSH)"
            );
        }
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (run the tests as root)");
        let dir = RuntimeDir::new("gp-ssh-test").unwrap();
        let d = dir.path().to_path_buf();
        let keygen = |name: &str| {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "gp-test", "-f"])
                .arg(d.join(name)))
        };
        keygen("host_key");
        keygen("client_key");
        keygen("stranger_key");
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();

        let netns = Netns::create();
        let (addr, port, nobin_port, closed_port) = match &netns {
            Some(ns) => (ns.remote_addr.clone(), 22, 2222, 23),
            None => (
                "127.0.0.1".to_string(),
                free_port(),
                free_port(),
                free_port(),
            ),
        };
        let system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        let path: Vec<String> = options
            .path
            .iter()
            .map(|p| p.display().to_string())
            .chain([system_path.to_string()])
            .collect();
        let env: String = options
            .env
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        let sshd_config = d.join("sshd_config");
        std::fs::write(
            &sshd_config,
            format!(
                "ListenAddress {addr}:{port}\n\
                 ListenAddress {addr}:{nobin_port}\n\
                 HostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 LogLevel INFO\n\
                 Match LocalPort {port}\n\
                 \tSetEnv PATH={path}{env}\n\
                 Match LocalPort {nobin_port}\n\
                 \tSetEnv PATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
                d = d.display(),
                path = path.join(":"),
            ),
        )
        .unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut known = String::new();
        for p in [port, nobin_port, closed_port] {
            // ssh names the default port's entries without brackets.
            let name = if p == 22 {
                addr.clone()
            } else {
                format!("[{addr}]:{p}")
            };
            known.push_str(&format!("{name} {host_pub}"));
        }
        std::fs::write(d.join("known_hosts"), known).unwrap();
        let entry = |alias: &str, port: u16, key: &str| {
            format!(
                "Host {alias}\n  HostName {addr}\n  Port {port}\n  User root\n  IdentityFile \
                 {d}/{key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                d = d.display()
            )
        };
        let config = d.join("ssh_config");
        std::fs::write(
            &config,
            [
                entry(&options.alias, port, "client_key"),
                entry("gp-stranger", port, "stranger_key"),
                entry("gp-nobin", nobin_port, "client_key"),
                entry("gp-closed", closed_port, "client_key"),
            ]
            .concat(),
        )
        .unwrap();

        let mut cmd = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, "/usr/sbin/sshd"]);
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        cmd.arg("-f")
            .arg(&sshd_config)
            .args(["-D", "-e"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut sshd = cmd.spawn().expect("start sshd");
        // sshd says when it listens (twice: two ports).
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let stderr = sshd.stderr.take().unwrap();
        let log = d.join("sshd.log");
        std::thread::spawn(move || {
            let mut file = File::create(log).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        let mut host = SshHost {
            sshd,
            netns,
            dir,
            config,
            addr,
            alias: options.alias.clone(),
        };
        let mut listening = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while listening < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("Server listening") => listening += 1,
                Ok(_) => {}
                Err(_) => panic!(
                    "sshd did not start: {:?}\n{}",
                    host.sshd.try_wait(),
                    host.log()
                ),
            }
        }
        host
    }

    /// What sshd said.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The ssh client config naming the host's aliases.
    pub fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// Runs a command on the host through plain ssh, for the test's own checks.
    pub fn ssh(&self, alias: &str, command: &str) -> String {
        let out = run(Command::new("ssh").args([
            "-F",
            self.config(),
            "-o",
            "BatchMode=yes",
            alias,
            command,
        ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pids of ssh clients using this host's config (none may outlive a run).
    pub fn ssh_clients(&self) -> Vec<u32> {
        processes_with(self.config())
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).trim() == "ssh")
            })
            .collect()
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        // sshd leads its process group; its session processes are its children.
        let group = -(self.sshd.id() as i32);
        // SAFETY: signalling a process group we created.
        unsafe { libc::kill(group, libc::SIGTERM) };
        if !wait_until(Duration::from_secs(10), || {
            self.sshd.try_wait().ok().flatten().is_some()
        }) {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = self.sshd.wait();
        }
    }
}
