//! The predefined comparisons.
//!
//! The first eleven are those of the newest upstream guestperf (`comparison.py` in QEMU's
//! tests/migration-stress/guestperf), scenario for scenario, with one fix: upstream's
//! `compr-xbzrle-cache-20` ran a cache of 10 %; here it runs 20 %. The next three are the
//! comparisons the original commit message promises but never defined: migration transport,
//! vCPU count and memory size. The last three vary the workload (what pre-copy converges on):
//! its dirty rate, its working set and its write pattern.

use std::ffi::OsString;

use clap::Parser;

use crate::options::{Launch, Migrate, Transport};

/// A named set of scenarios meant to be compared with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: &'static str,
    /// What the comparison looks at, in words.
    pub description: &'static str,
    pub scenarios: Vec<Scenario>,
}

/// One scenario: the gp-migrate options it sets, or the gp-launch options (hardware) it changes,
/// over the batch's own. They are parsed by the stage's own parser into the stage's own struct
/// ([`Scenario::migrate_over`], [`Scenario::launch_over`]), so a scenario is exactly what the
/// same options given to guestperf would run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// gp-launch options, e.g. `--transport tcp`.
    pub launch: Vec<String>,
    /// gp-migrate options, e.g. `--post-copy --post-copy-iters 1`.
    pub migrate: Vec<String>,
}

fn words(options: &str) -> Vec<String> {
    options.split_whitespace().map(String::from).collect()
}

impl Scenario {
    /// A scenario of migration settings.
    fn migrate(name: impl Into<String>, options: &str) -> Self {
        Scenario {
            name: name.into(),
            launch: Vec::new(),
            migrate: words(options),
        }
    }

    /// A scenario of hardware.
    fn hardware(name: impl Into<String>, options: &str) -> Self {
        Scenario {
            name: name.into(),
            launch: words(options),
            migrate: Vec::new(),
        }
    }

    /// The scenario's settings as command-line options (for `--list`).
    pub fn describe(&self) -> String {
        let words: Vec<&str> = self
            .launch
            .iter()
            .chain(&self.migrate)
            .map(String::as_str)
            .collect();
        if words.is_empty() {
            "(defaults)".to_string()
        } else {
            words.join(" ")
        }
    }

    /// gp-launch's options for this scenario: `base` (the batch's) with the scenario's over it.
    pub fn launch_over(&self, base: &Launch) -> Result<Launch, clap::Error> {
        over(base.to_args(), &self.launch)
    }

    /// gp-migrate's options for this scenario: `base` (the batch's) with the scenario's over it,
    /// named after the scenario.
    pub fn migrate_over(&self, base: &Migrate) -> Result<Migrate, clap::Error> {
        let mut args: Migrate = over(base.to_args(), &self.migrate)?;
        args.name = self.name.clone();
        Ok(args)
    }
}

/// What the stage parses from `base` followed by `options`, the later of an option given twice
/// counting.
fn over<T: Parser>(base: Vec<OsString>, options: &[String]) -> Result<T, clap::Error> {
    let command = T::command().args_override_self(true);
    let name = OsString::from(command.get_name());
    let argv = std::iter::once(name)
        .chain(base)
        .chain(options.iter().map(OsString::from));
    let mut matches = command.try_get_matches_from(argv)?;
    T::from_arg_matches_mut(&mut matches)
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
                Scenario::migrate(
                    format!("pause-iters-{n}"),
                    &format!("--pause --pause-iters {n}"),
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
                Scenario::migrate(
                    format!("post-copy-bw-{label}"),
                    &format!("--post-copy --bandwidth {mib}"),
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
                Scenario::migrate(
                    format!("post-copy-iters-{n}"),
                    &format!("--post-copy --post-copy-iters {n}"),
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
                Scenario::migrate(
                    format!("auto-converge-step-{step}"),
                    &format!("--auto-converge --auto-converge-step {step}"),
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
                Scenario::migrate(
                    format!("auto-converge-bw-{label}"),
                    &format!("--auto-converge --bandwidth {mib}"),
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
                Scenario::migrate(
                    format!("compr-mt-threads-{n}"),
                    &format!("--compression-mt --compression-mt-threads {n}"),
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
                Scenario::migrate(
                    format!("compr-xbzrle-cache-{pct}"),
                    &format!("--compression-xbzrle --compression-xbzrle-cache {pct}"),
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
                Scenario::migrate(
                    format!("compr-multifd-channels-{n}"),
                    &format!("--multifd --multifd-channels {n}"),
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
                Scenario::migrate(
                    format!("compr-dirty-limit-period-{ms}"),
                    &format!("--dirty-limit --x-vcpu-dirty-limit-period {ms}"),
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
                Scenario::migrate(
                    format!("compr-dirty-limit-{mb}MB"),
                    &format!("--dirty-limit --vcpu-dirty-limit {mb}"),
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
                Scenario::migrate(
                    format!("compr-multifd-compression-{method}"),
                    &format!("--multifd --multifd-channels 2 --multifd-compression {method}"),
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
                    &format!("--transport {}", t.as_str()),
                )
            })
            .collect(),
    });

    out.push(Comparison {
        name: "vcpu-count",
        description: "guests with 1, 2, 4 and 8 vCPUs (one workload thread each)",
        scenarios: [1, 2, 4, 8]
            .into_iter()
            .map(|n| Scenario::hardware(format!("vcpus-{n}"), &format!("--cpus {n}")))
            .collect(),
    });

    out.push(Comparison {
        name: "memory-size",
        description: "guests with 1, 2, 4 and 8 GiB of RAM",
        scenarios: [1, 2, 4, 8]
            .into_iter()
            .map(|gib| Scenario::hardware(format!("mem-{gib}gb"), &format!("--mem {gib}G")))
            .collect(),
    });

    // The workload's physics (docs/stress.md): what pre-copy converges on.
    out.push(Comparison {
        name: "dirty-rate",
        description: "pre-copy at 32 MiB/s against the guest's dirty rate: idle, 16, 64, 256 \
                      MiB/s and unlimited",
        scenarios: [
            ("dirty-rate-idle", "--stress-pattern once"),
            ("dirty-rate-16m", "--stress-dirty-rate 16M"),
            ("dirty-rate-64m", "--stress-dirty-rate 64M"),
            ("dirty-rate-256m", "--stress-dirty-rate 256M"),
            ("dirty-rate-unlimited", ""),
        ]
        .into_iter()
        .map(|(name, launch)| Scenario {
            name: name.to_string(),
            launch: words(launch),
            migrate: words("--bandwidth 32"),
        })
        .collect(),
    });

    out.push(Comparison {
        name: "working-set",
        description: "guests that keep writing 10, 25, 50 or 100% of their RAM",
        scenarios: [10, 25, 50, 100]
            .into_iter()
            .map(|pct| Scenario::hardware(format!("wss-{pct}pct"), &format!("--stress-wss {pct}%")))
            .collect(),
    });

    out.push(Comparison {
        name: "pattern",
        description: "guests writing their RAM in sequence, at random 4 KiB pages, or once",
        scenarios: ["seq", "random", "once"]
            .into_iter()
            .map(|p| Scenario::hardware(format!("pattern-{p}"), &format!("--stress-pattern {p}")))
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
                "dirty-rate",
                "working-set",
                "pattern",
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

    fn defaults(s: &Scenario) -> Migrate {
        s.migrate_over(&Migrate::defaults()).unwrap()
    }

    #[test]
    fn every_scenario_is_options_the_stages_accept() {
        for c in all() {
            for s in &c.scenarios {
                let m = s.migrate_over(&Migrate::defaults()).unwrap();
                let mut alone = Migrate::try_parse_from(
                    std::iter::once("gp-migrate").chain(s.migrate.iter().map(String::as_str)),
                )
                .unwrap();
                alone.name = s.name.clone();
                assert_eq!(m, alone, "{}", s.name);
                let l = s.launch_over(&Launch::defaults()).unwrap();
                let alone = Launch::try_parse_from(
                    std::iter::once("gp-launch").chain(s.launch.iter().map(String::as_str)),
                )
                .unwrap();
                assert_eq!(l, alone, "{}", s.name);
            }
        }
    }

    #[test]
    fn a_scenario_s_options_win_over_the_batch_s_and_the_others_stay() {
        let batch = Migrate::try_parse_from(
            "gp-migrate --sleep 1 --bandwidth 7 --pause-iters 9 --multifd-channels 9 \
             --multifd-compression zstd --capability events"
                .split_whitespace(),
        )
        .unwrap();
        // 5 is gp-migrate's default, and still wins over the batch's 9.
        let pause5 = &find("pause-iters").unwrap().scenarios[2];
        let m = pause5.migrate_over(&batch).unwrap();
        assert_eq!((m.pause, m.pause_iters), (true, 5));
        assert_eq!((m.sleep, m.bandwidth), (1.0, 7));
        assert_eq!(m.capabilities, [("events".to_string(), true)]);
        assert_eq!(m.name, "pause-iters-5");
        let zlib = &find("compr-multifd-compression").unwrap().scenarios[0];
        let m = zlib.migrate_over(&batch).unwrap();
        assert_eq!(
            (
                m.multifd_channels,
                m.multifd_compression.as_str(),
                m.bandwidth
            ),
            (2, "zlib", 7)
        );

        let launch = Launch::try_parse_from([
            "gp-launch",
            "--cpus",
            "3",
            "--mem",
            "256M",
            "--transport",
            "tcp",
        ])
        .unwrap();
        let vcpus8 = &find("vcpu-count").unwrap().scenarios[3];
        let l = vcpus8.launch_over(&launch).unwrap();
        assert_eq!((l.cpus, l.mem, l.transport), (8, 256 << 20, Transport::Tcp));
        let mem2 = &find("memory-size").unwrap().scenarios[1];
        assert_eq!(mem2.launch_over(&launch).unwrap().mem, 2 << 30);
        let unix = &find("transport").unwrap().scenarios[0];
        assert_eq!(
            unix.launch_over(&launch).unwrap().transport,
            Transport::Unix
        );
        assert_eq!(pause5.launch_over(&launch).unwrap(), launch);
    }

    #[test]
    fn the_workload_comparisons_set_what_they_say() {
        let rate = find("dirty-rate").unwrap();
        let l: Vec<Launch> = rate
            .scenarios
            .iter()
            .map(|s| s.launch_over(&Launch::defaults()).unwrap())
            .collect();
        let rates: Vec<Option<u64>> = l.iter().map(|l| l.stress_dirty_rate).collect();
        assert_eq!(
            rates,
            [None, Some(16 << 20), Some(64 << 20), Some(256 << 20), None]
        );
        assert_eq!(l[0].stress_pattern, Some(gp_records::stress::Pattern::Once));
        for s in &rate.scenarios {
            assert_eq!(defaults(s).bandwidth, 32, "{}", s.name);
        }
        let wss = find("working-set").unwrap();
        let sets: Vec<String> = wss
            .scenarios
            .iter()
            .map(|s| {
                let l = s.launch_over(&Launch::defaults()).unwrap();
                format!("{:?}", l.stress_wss.unwrap())
            })
            .collect();
        assert_eq!(sets, ["Pct(10.0)", "Pct(25.0)", "Pct(50.0)", "Pct(100.0)"]);
        let pattern = find("pattern").unwrap();
        let patterns: Vec<_> = pattern
            .scenarios
            .iter()
            .map(|s| s.launch_over(&Launch::defaults()).unwrap().stress_pattern)
            .collect();
        use gp_records::stress::Pattern;
        assert_eq!(
            patterns,
            [
                Some(Pattern::Seq),
                Some(Pattern::Random),
                Some(Pattern::Once)
            ]
        );
    }

    #[test]
    fn xbzrle_cache_20_runs_a_cache_of_20() {
        let c = find("compr-xbzrle").unwrap();
        for s in &c.scenarios {
            let pct: u64 = s.name.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(defaults(s).compression_xbzrle_cache, pct, "{}", s.name);
        }
    }

    #[test]
    fn upstream_values_are_kept() {
        let pc = find("post-copy-bandwidth").unwrap();
        let bw: Vec<u64> = pc.scenarios.iter().map(|s| defaults(s).bandwidth).collect();
        assert_eq!(bw, [12, 37, 125, 1250, 12500]);
        assert!(pc.scenarios.iter().all(|s| defaults(s).post_copy));
        let mf = find("compr-multifd").unwrap();
        let ch: Vec<u64> = mf
            .scenarios
            .iter()
            .map(|s| defaults(s).multifd_channels)
            .collect();
        assert_eq!(ch, [4, 8, 32, 64]);
        let dl = find("compr-dirty-limit").unwrap();
        assert_eq!(dl.scenarios[0].name, "compr-dirty-limit-10MB");
        assert_eq!(defaults(&dl.scenarios[0]).vcpu_dirty_limit, 10);
        let mc = find("compr-multifd-compression").unwrap();
        assert!(mc
            .scenarios
            .iter()
            .all(|s| defaults(s).multifd_channels == 2 && s.migrate.contains(&"2".to_string())));
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
