//! The default placement: the source and destination QEMUs on disjoint host CPUs.
//!
//! Two QEMUs left to the scheduler trade CPUs back and forth during a migration (the source's
//! vCPUs and migration thread, the destination's loading), and every run is placed differently:
//! on this project's 2-core machine, 12 runs of the same scenario spread much wider unpinned
//! than pinned (docs/performance.md). So gp-launch pins them by default, when it may:
//!
//! - never when the user bound either QEMU's CPUs (`--src-cpu-bind`/`--dst-cpu-bind`: theirs
//!   stand as given), when the destination runs on another host, or with `--no-pin`;
//! - only when the CPUs gp-launch may run on (its affinity: `taskset`, cpusets) hold a CPU per
//!   vCPU for each VM, `2 x --cpus` of them. Fewer would put two vCPUs of one guest on one host
//!   CPU, a slowdown that pinning is not meant to add.
//!
//! The source gets the first `--cpus` allowed CPUs in ascending order, the destination the next
//! `--cpus`; any left over stay free for the tools (gp-launch, gp-sample, gp-migrate), which are
//! not pinned. Memory is not bound (`--src-mem-bind`/`--dst-mem-bind` do that).

/// The outcome: the CPUs for each side (empty: unpinned), and a line saying what was chosen
/// and why, for the `launch` record; `None` when the user's bindings stand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pinning {
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    pub note: Option<String>,
}

/// What the choice depends on.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// CPUs gp-launch may run on, ascending.
    pub allowed: &'a [u32],
    /// vCPUs per VM.
    pub vcpus: u32,
    /// The user bound the source's or the destination's CPUs.
    pub user_bound: bool,
    /// The destination runs on another host.
    pub remote: bool,
    /// `--no-pin`.
    pub off: bool,
}

pub fn choose(ask: Ask<'_>) -> Pinning {
    let unpinned = |why: String| Pinning {
        note: Some(format!("not pinned: {why}")),
        ..Pinning::default()
    };
    if ask.user_bound {
        return Pinning::default();
    }
    if ask.off {
        return unpinned("--no-pin".into());
    }
    if ask.remote {
        return unpinned("the destination runs on another host".into());
    }
    let n = ask.vcpus as usize;
    if ask.allowed.len() < 2 * n {
        return unpinned(format!(
            "{} vCPUs per VM need {} host CPUs for disjoint sets, gp-launch may use {} ({})",
            n,
            2 * n,
            ask.allowed.len(),
            gp_qemu::bind::format_list(ask.allowed)
        ));
    }
    let src = ask.allowed[..n].to_vec();
    let dst = ask.allowed[n..2 * n].to_vec();
    let note = format!(
        "pinned by gp-launch: source on CPU {}, destination on CPU {} (a host CPU per vCPU, {} \
         allowed; --no-pin turns it off)",
        gp_qemu::bind::format_list(&src),
        gp_qemu::bind::format_list(&dst),
        ask.allowed.len()
    );
    Pinning {
        src,
        dst,
        note: Some(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(allowed: &[u32], vcpus: u32) -> Ask<'_> {
        Ask {
            allowed,
            vcpus,
            user_bound: false,
            remote: false,
            off: false,
        }
    }

    #[test]
    fn disjoint_sets_when_they_fit() {
        let p = choose(ask(&[0, 1], 1));
        assert_eq!((p.src, p.dst), (vec![0], vec![1]));
        assert!(p
            .note
            .unwrap()
            .contains("source on CPU 0, destination on CPU 1"));
        // Allowed CPUs as taskset left them; leftovers stay free.
        let p = choose(ask(&[2, 3, 5, 7, 8], 2));
        assert_eq!((p.src, p.dst), (vec![2, 3], vec![5, 7]));
    }

    #[test]
    fn too_few_cpus_or_asked_not_to() {
        let p = choose(ask(&[0, 1], 2));
        assert!(p.src.is_empty() && p.dst.is_empty());
        let note = p.note.unwrap();
        assert!(
            note.contains("need 4 host CPUs") && note.contains("may use 2 (0-1)"),
            "{note}"
        );
        let p = choose(Ask {
            off: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert!(p.src.is_empty() && p.note.unwrap().contains("--no-pin"));
        let p = choose(Ask {
            remote: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert!(p.dst.is_empty() && p.note.unwrap().contains("another host"));
        // The user's bindings stand: nothing chosen, nothing to say.
        let p = choose(Ask {
            user_bound: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert_eq!(p, Pinning::default());
    }
}
