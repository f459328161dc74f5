//! The predefined comparisons.
//!
//! The first eleven are those of the newest upstream guestperf (`comparison.py` in QEMU's
//! tests/migration-stress/guestperf), scenario for scenario, with one fix: upstream's
//! `compr-xbzrle-cache-20` ran a cache of 10 %; here it runs 20 %. The last three are the
//! comparisons the original commit message promises but never defined: migration transport,
//! vCPU count and memory size.

use crate::options::{ScenarioArgs, Transport};

/// A named set of scenarios meant to be compared with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: &'static str,
    /// What the comparison looks at, in words.
    pub description: &'static str,
    pub scenarios: Vec<Scenario>,
}

/// One scenario: migration settings, and the hardware it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub migrate: ScenarioArgs,
    pub hardware: HardwareOverride,
}

/// Hardware a scenario sets regardless of the batch's hardware options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HardwareOverride {
    pub transport: Option<Transport>,
    pub cpus: Option<u32>,
    /// Guest RAM, as gp-launch's --mem takes it.
    pub mem: Option<String>,
}

impl Scenario {
    fn new(name: impl Into<String>, migrate: ScenarioArgs) -> Self {
        Scenario {
            name: name.into(),
            migrate,
            hardware: HardwareOverride::default(),
        }
    }

    fn hardware(name: impl Into<String>, hardware: HardwareOverride) -> Self {
        Scenario {
            name: name.into(),
            migrate: ScenarioArgs::default(),
            hardware,
        }
    }

    /// The scenario's settings as command-line options (for `--list`).
    pub fn describe(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if let Some(t) = self.hardware.transport {
            words.push(format!("--transport {}", t.as_str()));
        }
        if let Some(n) = self.hardware.cpus {
            words.push(format!("--cpus {n}"));
        }
        if let Some(m) = &self.hardware.mem {
            words.push(format!("--mem {m}"));
        }
        let migrate: Vec<String> = self
            .migrate
            .migrate_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if !migrate.is_empty() {
            words.push(migrate.join(" "));
        }
        if words.is_empty() {
            "(defaults)".to_string()
        } else {
            words.join(" ")
        }
    }
}

fn sc() -> ScenarioArgs {
    ScenarioArgs::default()
}

/// Every comparison, in the order the batch runs them.
pub fn all() -> Vec<Comparison> {
    let mut out = Vec::new();

    out.push(Comparison {
        name: "pause-iters",
        description: "pausing the guest after N passes over RAM",
        scenarios: [0, 1, 5, 20]
            .into_iter()
            .map(|n| {
                Scenario::new(
                    format!("pause-iters-{n}"),
                    ScenarioArgs {
                        pause: true,
                        pause_iters: Some(n),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    // Upstream's names are in bits per second, its values in MiB/s.
    let bandwidths = [
        ("100mbs", 12),
        ("300mbs", 37),
        ("1gbs", 125),
        ("10gbs", 1250),
        ("100gbs", 12500),
    ];

    out.push(Comparison {
        name: "post-copy-bandwidth",
        description: "post-copy against the bandwidth available to migration",
        scenarios: bandwidths
            .iter()
            .map(|&(label, mib)| {
                Scenario::new(
                    format!("post-copy-bw-{label}"),
                    ScenarioArgs {
                        post_copy: true,
                        bandwidth: Some(mib),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "post-copy-iters",
        description: "switching to post-copy after N passes over RAM",
        scenarios: [0, 1, 5, 20]
            .into_iter()
            .map(|n| {
                Scenario::new(
                    format!("post-copy-iters-{n}"),
                    ScenarioArgs {
                        post_copy: true,
                        post_copy_iters: Some(n),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "auto-converge-iters",
        description: "auto-converge with different throttle steps",
        scenarios: [5, 10, 20]
            .into_iter()
            .map(|step| {
                Scenario::new(
                    format!("auto-converge-step-{step}"),
                    ScenarioArgs {
                        auto_converge: true,
                        auto_converge_step: Some(step),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "auto-converge-bandwidth",
        description: "auto-converge against the bandwidth available to migration",
        scenarios: bandwidths
            .iter()
            .map(|&(label, mib)| {
                Scenario::new(
                    format!("auto-converge-bw-{label}"),
                    ScenarioArgs {
                        auto_converge: true,
                        bandwidth: Some(mib),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-mt",
        description: "multi-thread compression with N threads (removed in QEMU 9.1)",
        scenarios: [1, 2, 4]
            .into_iter()
            .map(|n| {
                Scenario::new(
                    format!("compr-mt-threads-{n}"),
                    ScenarioArgs {
                        compression_mt: true,
                        compression_mt_threads: Some(n),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-xbzrle",
        description: "XBZRLE compression with a cache of N% of guest RAM",
        // Upstream's "cache-20" scenario set a cache of 10; fixed.
        scenarios: [5, 10, 20, 50]
            .into_iter()
            .map(|pct| {
                Scenario::new(
                    format!("compr-xbzrle-cache-{pct}"),
                    ScenarioArgs {
                        compression_xbzrle: true,
                        compression_xbzrle_cache: Some(pct),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-multifd",
        description: "multifd with N channels",
        scenarios: [4, 8, 32, 64]
            .into_iter()
            .map(|n| {
                Scenario::new(
                    format!("compr-multifd-channels-{n}"),
                    ScenarioArgs {
                        multifd: true,
                        multifd_channels: Some(n),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-dirty-limit-period",
        description: "dirty-limit with different throttle periods (needs KVM and a dirty ring)",
        scenarios: [500, 800, 1000]
            .into_iter()
            .map(|ms| {
                Scenario::new(
                    format!("compr-dirty-limit-period-{ms}"),
                    ScenarioArgs {
                        dirty_limit: true,
                        x_vcpu_dirty_limit_period: Some(ms),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-dirty-limit",
        description: "dirty-limit with different per-vCPU rates (needs KVM and a dirty ring)",
        scenarios: [10, 20, 50]
            .into_iter()
            .map(|mb| {
                Scenario::new(
                    format!("compr-dirty-limit-{mb}MB"),
                    ScenarioArgs {
                        dirty_limit: true,
                        vcpu_dirty_limit: Some(mb),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "compr-multifd-compression",
        description: "multifd compression methods (what QEMU was built with)",
        scenarios: ["zlib", "zstd", "qpl", "uadk"]
            .into_iter()
            .map(|method| {
                Scenario::new(
                    format!("compr-multifd-compression-{method}"),
                    ScenarioArgs {
                        multifd: true,
                        multifd_channels: Some(2),
                        multifd_compression: Some(method.to_string()),
                        ..sc()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "transport",
        description: "migration over a unix socket, TCP and RDMA",
        scenarios: [Transport::Unix, Transport::Tcp, Transport::Rdma]
            .into_iter()
            .map(|t| {
                Scenario::hardware(
                    format!("transport-{}", t.as_str()),
                    HardwareOverride {
                        transport: Some(t),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "vcpu-count",
        description: "guests with 1, 2, 4 and 8 vCPUs (one workload thread each)",
        scenarios: [1, 2, 4, 8]
            .into_iter()
            .map(|n| {
                Scenario::hardware(
                    format!("vcpus-{n}"),
                    HardwareOverride {
                        cpus: Some(n),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "memory-size",
        description: "guests with 1, 2, 4 and 8 GiB of RAM",
        scenarios: [1, 2, 4, 8]
            .into_iter()
            .map(|gib| {
                Scenario::hardware(
                    format!("mem-{gib}gb"),
                    HardwareOverride {
                        mem: Some(format!("{gib}G")),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    });

    out
}

/// Finds a comparison by name.
pub fn find(name: &str) -> Option<Comparison> {
    all().into_iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_upstream_comparison_is_here_in_order_then_ours() {
        let names: Vec<&str> = all().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "pause-iters",
                "post-copy-bandwidth",
                "post-copy-iters",
                "auto-converge-iters",
                "auto-converge-bandwidth",
                "compr-mt",
                "compr-xbzrle",
                "compr-multifd",
                "compr-dirty-limit-period",
                "compr-dirty-limit",
                "compr-multifd-compression",
                "transport",
                "vcpu-count",
                "memory-size",
            ]
        );
    }

    #[test]
    fn names_are_unique_and_safe_as_file_names() {
        let mut seen = HashSet::new();
        for c in all() {
            assert!(seen.insert(c.name.to_string()), "duplicate {}", c.name);
            for s in &c.scenarios {
                assert!(seen.insert(s.name.clone()), "duplicate {}", s.name);
                assert!(
                    s.name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-'),
                    "{}",
                    s.name
                );
                // Run files are NAME.json and NAME.rK.json: no dots in names.
                assert!(!s.name.contains('.'));
            }
        }
    }

    #[test]
    fn xbzrle_cache_20_runs_a_cache_of_20() {
        let c = find("compr-xbzrle").unwrap();
        for s in &c.scenarios {
            let pct: u64 = s.name.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(s.migrate.compression_xbzrle_cache, Some(pct), "{}", s.name);
        }
    }

    #[test]
    fn upstream_values_are_kept() {
        let pc = find("post-copy-bandwidth").unwrap();
        let bw: Vec<u64> = pc
            .scenarios
            .iter()
            .map(|s| s.migrate.bandwidth.unwrap())
            .collect();
        assert_eq!(bw, [12, 37, 125, 1250, 12500]);
        assert!(pc.scenarios.iter().all(|s| s.migrate.post_copy));
        let mf = find("compr-multifd").unwrap();
        let ch: Vec<u64> = mf
            .scenarios
            .iter()
            .map(|s| s.migrate.multifd_channels.unwrap())
            .collect();
        assert_eq!(ch, [4, 8, 32, 64]);
        let dl = find("compr-dirty-limit").unwrap();
        assert_eq!(dl.scenarios[0].name, "compr-dirty-limit-10MB");
        assert_eq!(dl.scenarios[0].migrate.vcpu_dirty_limit, Some(10));
        let mc = find("compr-multifd-compression").unwrap();
        assert!(mc
            .scenarios
            .iter()
            .all(|s| s.migrate.multifd_channels == Some(2)));
        assert_eq!(
            find("pause-iters").unwrap().scenarios[3].describe(),
            "--pause --pause-iters 20"
        );
        assert_eq!(
            find("transport").unwrap().scenarios[2].describe(),
            "--transport rdma"
        );
    }
}
