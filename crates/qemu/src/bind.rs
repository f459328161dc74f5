//! Binding a process to host CPUs and NUMA memory nodes, through `numactl` or natively.
//!
//! Lists are written as the original guestperf and `numactl` take them: `0,1`, `0-3`, `0-3,6`.
//! A binding that names a CPU or node the host does not have is an error, never ignored.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::affinity::NativeBinding;
use crate::process::Spec;

/// A CPU or NUMA node list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid list {input:?}: {reason} (write ids like 0,1 or ranges like 0-3)")]
pub struct ListError {
    pub input: String,
    pub reason: String,
}

/// Parses `0,1`, `0-3`, `0-3,6` into sorted, de-duplicated ids.
pub fn parse_list(input: &str) -> Result<Vec<u32>, ListError> {
    let err = |reason: String| ListError {
        input: input.to_string(),
        reason,
    };
    let mut ids = Vec::new();
    if input.trim().is_empty() {
        return Err(err("it is empty".into()));
    }
    for part in input.split(',') {
        let part = part.trim();
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| err(format!("{s:?} is not a non-negative integer")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(err(format!("range {part} runs backwards")));
                }
                if b - a > 65535 {
                    return Err(err(format!("range {part} is too long")));
                }
                ids.extend(a..=b);
            }
            None => ids.push(num(part)?),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Formats ids compactly, the inverse of [`parse_list`]: `[0,1,2,5]` → `0-2,5`.
pub fn format_list(ids: &[u32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// The host's online CPUs and NUMA nodes, from sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub cpus: Vec<u32>,
    pub nodes: Vec<u32>,
}

impl Topology {
    /// Reads `/sys/devices/system/{cpu,node}/online`. A kernel without NUMA has one node, 0.
    pub fn host() -> io::Result<Topology> {
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        let cpus = read("/sys/devices/system/cpu/online")?;
        let cpus = parse_list(&cpus).map_err(io::Error::other)?;
        let nodes = match read("/sys/devices/system/node/online") {
            Ok(s) => parse_list(&s).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => vec![0],
            Err(e) => return Err(e),
        };
        Ok(Topology { cpus, nodes })
    }

    /// Checks that every id in a binding exists here. `what` names the option in the message.
    pub fn check(&self, what: &str, binding: &Binding) -> Result<(), BindError> {
        self.check_cpus(what, &binding.cpus)?;
        self.check_nodes(what, &binding.nodes)
    }

    /// Checks that every CPU in `cpus` is online here. `what` names the option in the message.
    pub fn check_cpus(&self, what: &str, cpus: &[u32]) -> Result<(), BindError> {
        match absent(cpus, &self.cpus) {
            None => Ok(()),
            Some(missing) => Err(BindError::NoSuchCpu {
                what: what.to_string(),
                missing,
                online: format_list(&self.cpus),
            }),
        }
    }

    /// Checks that every NUMA node in `nodes` is online here. `what` names the option.
    pub fn check_nodes(&self, what: &str, nodes: &[u32]) -> Result<(), BindError> {
        match absent(nodes, &self.nodes) {
            None => Ok(()),
            Some(missing) => Err(BindError::NoSuchNode {
                what: what.to_string(),
                missing,
                online: format_list(&self.nodes),
            }),
        }
    }
}

/// The ids of `asked` that `online` lacks, as a list, or `None` when there are none.
fn absent(asked: &[u32], online: &[u32]) -> Option<String> {
    let missing: Vec<u32> = asked
        .iter()
        .copied()
        .filter(|i| !online.contains(i))
        .collect();
    (!missing.is_empty()).then(|| format_list(&missing))
}

/// The CPUs this process may run on (`sched_getaffinity`: what `taskset` or a cpuset left it),
/// in ascending order. A child bound outside them would be refused.
pub fn allowed_cpus() -> io::Result<Vec<u32>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer and size of a cpu_set_t.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as u32)
        // SAFETY: CPU_ISSET reads one bit of the set, in bounds.
        .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
        .collect())
}

/// A binding that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("{what}: this host has no CPU {missing} (online CPUs: {online})")]
    NoSuchCpu {
        what: String,
        missing: String,
        online: String,
    },
    #[error("{what}: this host has no NUMA node {missing} (online nodes: {online})")]
    NoSuchNode {
        what: String,
        missing: String,
        online: String,
    },
    #[error("numactl was asked for but is not installed (install the numactl package, or use the native binding)")]
    NoNumactl,
    #[error("{0}")]
    Native(String),
}

/// Where one process may run and allocate. Empty lists mean "no restriction".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    pub cpus: Vec<u32>,
    pub nodes: Vec<u32>,
}

impl Binding {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.nodes.is_empty()
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cpus.is_empty(), self.nodes.is_empty()) {
            (true, true) => f.write_str("unbound"),
            (false, true) => write!(f, "cpus {}", format_list(&self.cpus)),
            (true, false) => write!(f, "mem nodes {}", format_list(&self.nodes)),
            (false, false) => {
                write!(
                    f,
                    "cpus {}, mem nodes {}",
                    format_list(&self.cpus),
                    format_list(&self.nodes)
                )
            }
        }
    }
}

/// How bindings are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Run the child under `numactl --physcpubind=... --membind=... --`.
    Numactl(PathBuf),
    /// `sched_setaffinity` and `set_mempolicy(MPOL_BIND)` in the child before `exec`.
    Native,
}

impl Method {
    /// `numactl` when installed, else native.
    pub fn auto() -> Method {
        find_on_path("numactl").map_or(Method::Native, Method::Numactl)
    }

    /// `numactl`, or an error saying it is missing.
    pub fn numactl() -> Result<Method, BindError> {
        find_on_path("numactl")
            .map(Method::Numactl)
            .ok_or(BindError::NoNumactl)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::Numactl(_) => "numactl",
            Method::Native => "native",
        }
    }

    /// Applies `binding` to `spec`: wraps it in numactl, or attaches a native binding.
    pub fn apply(&self, binding: &Binding, spec: &mut Spec) {
        if binding.is_empty() {
            return;
        }
        match self {
            Method::Numactl(numactl) => {
                let mut args: Vec<OsString> = Vec::new();
                if !binding.cpus.is_empty() {
                    args.push(format!("--physcpubind={}", format_list(&binding.cpus)).into());
                }
                if !binding.nodes.is_empty() {
                    args.push(format!("--membind={}", format_list(&binding.nodes)).into());
                }
                args.push("--".into());
                args.push(std::mem::take(&mut spec.program));
                args.append(&mut spec.args);
                spec.program = numactl.clone().into_os_string();
                spec.args = args;
            }
            Method::Native => {
                spec.native_binding = Some(NativeBinding {
                    cpus: binding.cpus.clone(),
                    nodes: binding.nodes.clone(),
                });
            }
        }
    }
}

/// Looks `name` up on `$PATH` (or takes it as is when it contains a `/`).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_format() {
        assert_eq!(parse_list("0,1").unwrap(), [0, 1]);
        assert_eq!(parse_list("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_list(" 5, 0-2 ,1").unwrap(), [0, 1, 2, 5]);
        assert_eq!(format_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_list(&[3]), "3");
        for bad in ["", "a", "3-1", "1,,2", "-1", "0-"] {
            let e = parse_list(bad).unwrap_err();
            assert!(e.to_string().contains("0-3"), "{e}");
        }
    }

    #[test]
    fn check_names_missing_ids_and_online_list() {
        let topo = Topology {
            cpus: vec![0, 1],
            nodes: vec![0],
        };
        let ok = Binding {
            cpus: vec![1],
            nodes: vec![0],
        };
        topo.check("--src-cpu-bind", &ok).unwrap();
        let bad = Binding {
            cpus: vec![1, 7, 8],
            nodes: vec![],
        };
        let e = topo.check("--src-cpu-bind", &bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "--src-cpu-bind: this host has no CPU 7-8 (online CPUs: 0-1)"
        );
        let bad = Binding {
            cpus: vec![],
            nodes: vec![3],
        };
        let e = topo.check("--dst-mem-bind", &bad).unwrap_err().to_string();
        assert!(
            e.contains("no NUMA node 3") && e.contains("online nodes: 0"),
            "{e}"
        );
    }

    #[test]
    fn host_topology_is_readable() {
        let t = Topology::host().unwrap();
        assert!(!t.cpus.is_empty());
        assert!(!t.nodes.is_empty());
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty() && allowed.iter().all(|c| t.cpus.contains(c)));
        assert_eq!(
            allowed.len(),
            std::thread::available_parallelism().unwrap().get()
        );
    }

    #[test]
    fn numactl_wraps_the_command() {
        let mut spec = Spec::new("q", "qemu");
        spec.args(["-m", "1G"]);
        let b = Binding {
            cpus: vec![0, 1],
            nodes: vec![0],
        };
        Method::Numactl("/usr/bin/numactl".into()).apply(&b, &mut spec);
        assert_eq!(
            spec.argv(),
            [
                "/usr/bin/numactl",
                "--physcpubind=0-1",
                "--membind=0",
                "--",
                "qemu",
                "-m",
                "1G"
            ]
        );
        let mut spec = Spec::new("q", "qemu");
        Method::Native.apply(&b, &mut spec);
        assert_eq!(spec.argv(), ["qemu"]);
        assert_eq!(spec.native_binding.unwrap().cpus, [0, 1]);
    }

    #[test]
    fn native_binding_applies_in_a_child() {
        let online = Topology::host().unwrap();
        let cpu = *online.cpus.last().unwrap();
        let mut spec = Spec::new("bind-test", "/bin/sh");
        spec.args(["-c", "grep -E '^Cpus_allowed_list' /proc/self/status"]);
        Method::Native.apply(
            &Binding {
                cpus: vec![cpu],
                nodes: vec![0],
            },
            &mut spec,
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let hooks = crate::process::Hooks {
            on_stdout_line: Box::new(move |l| tx.send(l.text).unwrap()),
            on_stderr_line: None,
            on_exit: None,
        };
        let child = crate::process::spawn(&spec, hooks).unwrap();
        let exit = child
            .wait_until(std::time::Instant::now() + std::time::Duration::from_secs(20))
            .unwrap();
        assert_eq!(exit.status, 0, "{:?}", child.stderr_tail());
        let line = rx.recv().unwrap();
        assert!(line.ends_with(&format!("\t{cpu}")), "{line}");
    }
}
