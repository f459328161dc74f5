//! A CPU and memory binding applied natively in a child between `fork` and `exec`
//! (`sched_setaffinity`, `set_mempolicy(MPOL_BIND)`): what [`crate::bind::Method::Native`]
//! attaches to a [`crate::process::Spec`].

use std::io;

/// A binding applied in the child between `fork` and `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeBinding {
    pub cpus: Vec<u32>,
    pub nodes: Vec<u32>,
}

/// A [`NativeBinding`] turned into the exact system-call arguments, so that applying it after
/// `fork` allocates nothing.
pub struct PreparedBinding {
    cpuset: Option<libc::cpu_set_t>,
    nodemask: Vec<libc::c_ulong>,
}

const MPOL_BIND: libc::c_int = 2;

impl NativeBinding {
    /// Precomputes the affinity mask and node mask.
    pub fn prepare(&self) -> PreparedBinding {
        let cpuset = (!self.cpus.is_empty()).then(|| {
            // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write within it.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &c in &self.cpus {
                // SAFETY: CPU_SET ignores ids beyond the set's capacity.
                unsafe { libc::CPU_SET(c as usize, &mut set) };
            }
            set
        });
        let bits = libc::c_ulong::BITS as usize;
        let mut nodemask = Vec::new();
        if let Some(&max) = self.nodes.iter().max() {
            nodemask = vec![0 as libc::c_ulong; max as usize / bits + 1];
            for &n in &self.nodes {
                nodemask[n as usize / bits] |= 1 << (n as usize % bits);
            }
        }
        PreparedBinding { cpuset, nodemask }
    }
}

impl PreparedBinding {
    /// Applies the binding to the calling thread/process. Async-signal-safe.
    pub fn apply(&self) -> io::Result<()> {
        if let Some(set) = &self.cpuset {
            // SAFETY: valid pointer and size of a cpu_set_t.
            let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(set), set) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if !self.nodemask.is_empty() {
            let maxnode = (self.nodemask.len() * libc::c_ulong::BITS as usize + 1) as libc::c_ulong;
            // SAFETY: set_mempolicy reads `maxnode` bits from a mask we own.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    MPOL_BIND,
                    self.nodemask.as_ptr(),
                    maxnode,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hold_exactly_the_ids_asked_for() {
        let none = NativeBinding {
            cpus: vec![],
            nodes: vec![],
        }
        .prepare();
        assert!(none.cpuset.is_none() && none.nodemask.is_empty());

        let bits = libc::c_ulong::BITS;
        let p = NativeBinding {
            cpus: vec![0, 3],
            nodes: vec![1, bits + 2],
        }
        .prepare();
        let set = p.cpuset.expect("a CPU set");
        // SAFETY: CPU_ISSET reads within the set.
        let cpus: Vec<usize> = (0..8)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        assert_eq!(cpus, [0, 3]);
        assert_eq!(p.nodemask, [1 << 1, 1 << 2]);
    }
}
