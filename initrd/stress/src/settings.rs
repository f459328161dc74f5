//! What to run: settings from the kernel command line (as PID 1) or from host arguments, and how
//! the defaults (threads, RAM size, working set) are filled in. The one place stress parses and
//! checks its settings; the value syntax of pattern, working set and dirty rate is shared with
//! gp-launch through [`gp_records::stress`].

use std::fmt;

use gp_records::stress::{parse_dirty_rate, Pattern, Workload, Wss};

/// One GiB, the unit of a plain `ramsize=N` and of the per-GB report.
pub const GIB: u64 = 1 << 30;
/// One MiB.
pub const MIB: u64 = 1 << 20;

/// Default progress grain, see docs/stress.md ("Choosing the grain").
pub const DEFAULT_GRAIN_MS: f64 = 30.0;

/// Memory left to the kernel when checking an explicit size against free memory.
pub const RESERVE_BYTES: u64 = 16 * MIB;

/// Each thread's share is a whole number of these, so every chunk starts on a pattern boundary.
pub const SHARE_ALIGN: u64 = 4096;

/// Most threads one run may ask for.
pub const MAX_THREADS: u32 = 4096;

/// A bad setting: the message names the setting and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError(pub String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

fn err<T>(msg: impl Into<String>) -> Result<T, SettingsError> {
    Err(SettingsError(msg.into()))
}

/// Settings as asked for; `None` means "use the default".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requested {
    pub ram_bytes: Option<u64>,
    pub threads: Option<u32>,
    pub grain_ms: Option<f64>,
    pub duration_s: Option<f64>,
    /// Bytes per second, all threads together.
    pub dirty_rate: Option<u64>,
    pub wss: Option<Wss>,
    pub pattern: Option<Pattern>,
}

/// Settings with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub threads: u32,
    /// Bytes each thread owns and xors (a multiple of [`SHARE_ALIGN`]).
    pub share_bytes: u64,
    /// Minimum ms between two progress lines of one thread; 0 turns progress lines off.
    pub grain_ms: f64,
    /// Run this long, then print `@gp done`; `None` runs forever.
    pub duration_s: Option<f64>,
    /// What each thread writes after its first pass.
    pub pattern: Pattern,
    /// Bytes of its share each thread keeps writing after its first pass (the first
    /// `wss_share_bytes` of it; a multiple of [`SHARE_ALIGN`]; 0 for [`Pattern::Once`]).
    pub wss_share_bytes: u64,
    /// Bytes per second all threads together write after their first pass; `None` is
    /// unlimited. Each thread paces itself to its equal part.
    pub dirty_rate: Option<u64>,
}

impl Settings {
    /// Total bytes all threads xor.
    pub fn ram_bytes(&self) -> u64 {
        self.share_bytes * u64::from(self.threads)
    }

    /// What the threads do after their first pass, as the start line states it.
    pub fn workload(&self) -> Workload {
        Workload {
            pattern: self.pattern,
            wss_bytes: self.wss_share_bytes * u64::from(self.threads),
            dirty_rate_bytes_per_s: self.dirty_rate,
        }
    }

    /// The start line's workload fields: `None` for the original's workload (sequential over
    /// everything, unlimited), so a default run prints the same start line as ever.
    pub fn start_workload(&self) -> Option<Workload> {
        let w = self.workload();
        (w != Workload::default_for(self.ram_bytes())).then_some(w)
    }

    /// Each thread's part of the dirty rate, bytes per second.
    pub fn thread_rate(&self) -> Option<f64> {
        self.dirty_rate.map(|r| r as f64 / f64::from(self.threads))
    }
}

/// What the machine offers, for the defaults and the memory check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    pub online_cpus: u32,
    /// Memory free for the workload (see [`crate::system::free_memory_bytes`]).
    pub free_bytes: u64,
}

/// Parses a size with the shared syntax ([`gp_records::size`]): a plain number counts
/// `plain_unit`s (GiB for `ramsize`, as in the original); `256M`, `1G`, `1536MiB`. Zero is
/// refused: every size stress takes must be more than nothing.
pub fn parse_size(text: &str, plain_unit: u64) -> Result<u64, String> {
    match gp_records::size::parse_size(text, plain_unit) {
        Ok(0) => Err(format!("'{text}' is zero")),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_threads(key: &str, v: &str) -> Result<u32, SettingsError> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => err(format!(
            "{key}={v}: expected a whole number of threads from 1 to {MAX_THREADS}"
        )),
    }
}

fn parse_ms(key: &str, v: &str, allow_zero: bool) -> Result<f64, SettingsError> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && (x > 0.0 || (allow_zero && x == 0.0)) && x < 1e9 => Ok(x),
        _ if allow_zero => err(format!(
            "{key}={v}: expected a number >= 0 (0 turns it off)"
        )),
        _ => err(format!("{key}={v}: expected a number > 0")),
    }
}

impl Requested {
    /// Sets one `key=value`, named as on the kernel command line.
    fn set(&mut self, key: &str, value: &str) -> Result<(), SettingsError> {
        match key {
            "ramsize" => {
                let bytes =
                    parse_size(value, GIB).map_err(|m| SettingsError(format!("ramsize: {m}")))?;
                self.ram_bytes = Some(bytes);
            }
            "stress.threads" => self.threads = Some(parse_threads(key, value)?),
            "stress.grain_ms" => self.grain_ms = Some(parse_ms(key, value, true)?),
            "stress.duration_s" => self.duration_s = Some(parse_ms(key, value, false)?),
            "stress.dirty_rate" => {
                self.dirty_rate = Some(
                    parse_dirty_rate(value)
                        .map_err(|m| SettingsError(format!("{key}={value}: {m}")))?,
                )
            }
            "stress.wss" => {
                self.wss = Some(
                    value
                        .parse::<Wss>()
                        .map_err(|m| SettingsError(format!("{key}={value}: {m}")))?,
                )
            }
            "stress.pattern" => {
                self.pattern = Some(
                    value
                        .parse::<Pattern>()
                        .map_err(|m| SettingsError(format!("{key}={value}: {m}")))?,
                )
            }
            _ => {
                return err(format!(
                    "unknown setting {key}={value} (known: ramsize=, stress.threads=, \
                     stress.grain_ms=, stress.duration_s=, stress.dirty_rate=, stress.wss=, \
                     stress.pattern=)"
                ))
            }
        }
        Ok(())
    }
}

/// Splits a kernel command line into words, honouring double quotes as the kernel does
/// (`foo="a b"` is one word, quotes removed).
pub fn cmdline_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut has_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if has_word {
                    words.push(std::mem::take(&mut cur));
                    has_word = false;
                }
            }
            c => {
                cur.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(cur);
    }
    words
}

/// Reads our settings from a kernel command line: `ramsize=` and the `stress.*=` keys of
/// [`USAGE`]. Everything else belongs to the kernel and is
/// ignored, except an unknown `stress.*` key, which is most likely a typo and an error. As with
/// the kernel's own parameters, the last occurrence wins.
pub fn from_cmdline(cmdline: &str) -> Result<Requested, SettingsError> {
    let mut req = Requested::default();
    for word in cmdline_words(cmdline) {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        if key == "ramsize" || key.starts_with("stress.") {
            req.set(key, value)?;
        }
    }
    Ok(req)
}

/// What the host command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum HostCommand {
    Run(Requested),
    Help,
    Version,
}

/// The host usage text.
pub const USAGE: &str = "\
usage: stress [--ramsize SIZE] [--threads N] [--grain-ms MS] [--duration-s S]
              [--pattern seq|random|once] [--wss SIZE|PCT%] [--dirty-rate RATE]

Xors SIZE bytes of memory (split across N threads) with random 4 KiB blocks, forever or for S
seconds, printing `@gp` lines (see docs/stress.md) to stdout. Each thread first writes every
page of its share once, as fast as it can (then prints `@gp warm`); after that it writes its
pattern over its part of the working set at its part of the dirty rate.

  --ramsize SIZE      total memory: 256M, 1G, ... (a plain number is GiB); default: most of
                      the free memory
  --threads N         worker threads; default: online CPUs
  --grain-ms MS       a progress line per thread at most every MS ms; 0 = per-GB lines only
                      (default 30)
  --duration-s S      stop after S seconds and print `@gp done`
  --pattern P         after the first pass: seq (default: the working set page after page),
                      random (random 4 KiB pages of it) or once (nothing: idle)
  --wss SIZE|PCT%     the working set, the part of the memory written after the first pass:
                      256M or 25% (default: all of it)
  --dirty-rate RATE   bytes per second all threads write after the first pass: 64M is
                      64 MiB/s (default: unlimited)
  -h, --help          this text
  -V, --version       the version

As /init (PID 1) the same settings come from the kernel command line: ramsize=,
stress.threads=, stress.grain_ms=, stress.duration_s=, stress.pattern=, stress.wss=,
stress.dirty_rate=.";

/// Parses host arguments (without the program name). Both `--flag value` and `--flag=value`.
pub fn from_args<I, S>(args: I) -> Result<HostCommand, SettingsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut req = Requested::default();
    let mut it = args.into_iter().map(|s| s.as_ref().to_string());
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(HostCommand::Help);
        }
        if arg == "-V" || arg == "--version" {
            return Ok(HostCommand::Version);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let key = match flag.as_str() {
            "--ramsize" => "ramsize",
            "--threads" => "stress.threads",
            "--grain-ms" => "stress.grain_ms",
            "--duration-s" => "stress.duration_s",
            "--dirty-rate" => "stress.dirty_rate",
            "--wss" => "stress.wss",
            "--pattern" => "stress.pattern",
            _ => return err(format!("unknown argument '{arg}' (see stress --help)")),
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| SettingsError(format!("{flag} needs a value")))?,
        };
        req.set(key, &value).map_err(|e| {
            // Name the flag the user typed, not the kernel parameter.
            SettingsError(e.0.replacen(key, &flag, 1))
        })?;
    }
    Ok(HostCommand::Run(req))
}

/// The default total size when none is given: most of the free memory, keeping an eighth of it
/// (at least 32 MiB) for the kernel and everything else.
pub fn default_ram_bytes(free_bytes: u64) -> u64 {
    let margin = (free_bytes / 8).max(32 * MIB);
    free_bytes.saturating_sub(margin)
}

/// Fills in the defaults and checks the result against the machine.
pub fn resolve(req: &Requested, machine: Machine) -> Result<Settings, SettingsError> {
    let threads = req
        .threads
        .unwrap_or(machine.online_cpus.clamp(1, MAX_THREADS));
    let ram = match req.ram_bytes {
        Some(bytes) => {
            let usable = machine.free_bytes.saturating_sub(RESERVE_BYTES);
            if bytes > usable {
                return err(format!(
                    "ramsize={} MiB is more than the {} MiB free for it ({} MiB free, {} MiB kept \
                     for the kernel); lower ramsize or give the machine more memory",
                    bytes / MIB,
                    usable / MIB,
                    machine.free_bytes / MIB,
                    RESERVE_BYTES / MIB
                ));
            }
            bytes
        }
        None => default_ram_bytes(machine.free_bytes),
    };
    let share = ram / u64::from(threads) / SHARE_ALIGN * SHARE_ALIGN;
    if share == 0 {
        return err(format!(
            "ramsize={} bytes is too small for {threads} threads (each needs at least {} KiB); \
             raise ramsize or lower stress.threads",
            ram,
            SHARE_ALIGN / 1024
        ));
    }
    if usize::try_from(share).is_err() {
        return err(format!(
            "ramsize={} MiB per thread does not fit in memory",
            share / MIB
        ));
    }
    let pattern = req.pattern.unwrap_or_default();
    let wss_share = if pattern.rewrites() {
        wss_share_bytes(req.wss, ram, share, threads)?
    } else {
        if let Some(wss) = req.wss {
            return err(format!(
                "stress.wss={wss} with stress.pattern=once: once writes nothing after the first \
                 pass, so it has no working set; drop stress.wss or choose seq or random"
            ));
        }
        if let Some(rate) = req.dirty_rate {
            return err(format!(
                "stress.dirty_rate={} with stress.pattern=once: once writes nothing after \
                 the first pass, so it has no rate; drop stress.dirty_rate or choose seq or \
                 random",
                gp_records::size::format_size(rate)
            ));
        }
        0
    };
    Ok(Settings {
        threads,
        share_bytes: share,
        grain_ms: req.grain_ms.unwrap_or(DEFAULT_GRAIN_MS),
        duration_s: req.duration_s,
        pattern,
        wss_share_bytes: wss_share,
        dirty_rate: req.dirty_rate,
    })
}

/// Each thread's part of the working set: the total split evenly, rounded down to whole pages,
/// at least one page; all of the share by default.
fn wss_share_bytes(
    wss: Option<Wss>,
    ram: u64,
    share: u64,
    threads: u32,
) -> Result<u64, SettingsError> {
    let Some(wss) = wss else {
        return Ok(share);
    };
    let bytes = wss.bytes_of(ram);
    if bytes > ram {
        return err(format!(
            "stress.wss={wss} is more than ramsize ({} MiB): lower stress.wss or raise ramsize",
            ram / MIB
        ));
    }
    let per_thread = (bytes / u64::from(threads) / SHARE_ALIGN * SHARE_ALIGN).min(share);
    if per_thread == 0 {
        return err(format!(
            "stress.wss={wss} is {bytes} bytes, less than a 4 KiB page for each of {threads} \
             threads; raise stress.wss"
        ));
    }
    Ok(per_thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: Machine = Machine {
        online_cpus: 2,
        free_bytes: 8 * GIB,
    };

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2", GIB), Ok(2 * GIB));
        assert_eq!(parse_size("256M", GIB), Ok(256 * MIB));
        assert_eq!(parse_size("256m", GIB), Ok(256 * MIB));
        assert_eq!(parse_size("1G", GIB), Ok(GIB));
        assert_eq!(parse_size("1536MiB", GIB), Ok(1536 * MIB));
        assert_eq!(parse_size("64KB", GIB), Ok(64 << 10));
        assert_eq!(parse_size("1T", GIB), Ok(1 << 40));
        assert_eq!(parse_size("1.5G", GIB), Ok(1536 * MIB));
        for bad in [
            "",
            "garbage",
            "-1",
            "12Q",
            "0",
            "0M",
            "99999999999999999999",
            "20000000000G",
        ] {
            assert!(parse_size(bad, GIB).is_err(), "{bad}");
        }
    }

    #[test]
    fn cmdline_words_honour_quotes() {
        assert_eq!(
            cmdline_words(" console=ttyS0  foo=\"a b\" quiet\n"),
            vec!["console=ttyS0", "foo=a b", "quiet"]
        );
        assert_eq!(cmdline_words(""), Vec::<String>::new());
    }

    #[test]
    fn cmdline_settings() {
        let req = from_cmdline(
            "console=ttyS0 quiet ramsize=128M stress.threads=2 stress.grain_ms=10 \
             stress.duration_s=4 panic=-1 initcall.x=1",
        )
        .unwrap();
        assert_eq!(
            req,
            Requested {
                ram_bytes: Some(128 * MIB),
                threads: Some(2),
                grain_ms: Some(10.0),
                duration_s: Some(4.0),
                ..Default::default()
            }
        );
        // A plain number is GiB, as in the original; the last occurrence wins.
        assert_eq!(
            from_cmdline("ramsize=1 ramsize=3").unwrap().ram_bytes,
            Some(3 * GIB)
        );
        assert_eq!(from_cmdline("console=ttyS0").unwrap(), Requested::default());
    }

    #[test]
    fn bad_cmdline_settings_name_the_setting() {
        for (line, needle) in [
            ("ramsize=garbage", "ramsize"),
            ("stress.threads=0", "stress.threads=0"),
            ("stress.threads=x", "stress.threads=x"),
            ("stress.grain_ms=-1", "stress.grain_ms"),
            ("stress.duration_s=0", "stress.duration_s"),
            ("stress.duration_s=inf", "stress.duration_s"),
            ("stress.thread=2", "unknown setting stress.thread=2"),
        ] {
            let e = from_cmdline(line).unwrap_err();
            assert!(e.0.contains(needle), "{line}: {e}");
        }
        // grain 0 is allowed: it turns progress lines off.
        assert_eq!(
            from_cmdline("stress.grain_ms=0").unwrap().grain_ms,
            Some(0.0)
        );
    }

    #[test]
    fn host_args() {
        let cmd = from_args([
            "--ramsize",
            "256M",
            "--threads=3",
            "--grain-ms",
            "20",
            "--duration-s",
            "5",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            HostCommand::Run(Requested {
                ram_bytes: Some(256 * MIB),
                threads: Some(3),
                grain_ms: Some(20.0),
                duration_s: Some(5.0),
                ..Default::default()
            })
        );
        assert_eq!(from_args(["--help"]).unwrap(), HostCommand::Help);
        assert_eq!(from_args(["-V"]).unwrap(), HostCommand::Version);
        assert_eq!(
            from_args(Vec::<String>::new()).unwrap(),
            HostCommand::Run(Requested::default())
        );
        let e = from_args(["--threads", "zero"]).unwrap_err();
        assert!(e.0.starts_with("--threads=zero"), "{e}");
        assert!(from_args(["--ramsize"])
            .unwrap_err()
            .0
            .contains("needs a value"));
        assert!(from_args(["--bogus"])
            .unwrap_err()
            .0
            .contains("unknown argument"));
        assert!(from_args(["ramsize=1G"])
            .unwrap_err()
            .0
            .contains("unknown argument"));
    }

    #[test]
    fn resolve_defaults_and_shares() {
        let s = resolve(&Requested::default(), BIG).unwrap();
        assert_eq!(s.threads, 2);
        assert_eq!(s.grain_ms, DEFAULT_GRAIN_MS);
        assert_eq!(s.duration_s, None);
        assert_eq!(s.ram_bytes(), 7 * GIB);

        let req = Requested {
            ram_bytes: Some(128 * MIB),
            threads: Some(3),
            ..Default::default()
        };
        let s = resolve(&req, BIG).unwrap();
        assert_eq!(s.share_bytes % SHARE_ALIGN, 0);
        assert!(s.ram_bytes() <= 128 * MIB && s.ram_bytes() > 128 * MIB - 3 * SHARE_ALIGN);
    }

    #[test]
    fn default_ram_keeps_a_margin() {
        assert_eq!(default_ram_bytes(200 * MIB), 168 * MIB);
        assert_eq!(default_ram_bytes(8 * GIB), 7 * GIB);
        assert_eq!(default_ram_bytes(16 * MIB), 0);
        // Too little memory for the default: an error, not a zero-sized run.
        let tiny = Machine {
            online_cpus: 1,
            free_bytes: 16 * MIB,
        };
        assert!(resolve(&Requested::default(), tiny)
            .unwrap_err()
            .0
            .contains("too small"));
    }

    #[test]
    fn resolve_rejects_too_much_memory() {
        let small = Machine {
            online_cpus: 2,
            free_bytes: 200 * MIB,
        };
        let req = Requested {
            ram_bytes: Some(256 * MIB),
            ..Default::default()
        };
        let e = resolve(&req, small).unwrap_err();
        assert!(
            e.0.contains("ramsize=256 MiB is more than the 184 MiB free"),
            "{e}"
        );
        let req = Requested {
            ram_bytes: Some(184 * MIB),
            ..Default::default()
        };
        assert!(resolve(&req, small).is_ok());
    }

    #[test]
    fn workload_settings_from_both_command_lines() {
        let req = from_cmdline(
            "console=ttyS0 ramsize=256M stress.dirty_rate=32M stress.wss=50% \
             stress.pattern=random",
        )
        .unwrap();
        assert_eq!(req.dirty_rate, Some(32 * MIB));
        assert_eq!(req.wss, Some(Wss::Pct(50.0)));
        assert_eq!(req.pattern, Some(Pattern::Random));
        let HostCommand::Run(host) = from_args([
            "--ramsize",
            "256M",
            "--dirty-rate=32M",
            "--wss",
            "50%",
            "--pattern",
            "random",
        ])
        .unwrap() else {
            panic!("not a run")
        };
        assert_eq!(host, req);
    }

    #[test]
    fn bad_workload_settings_name_the_setting_and_the_fix() {
        for (line, needles) in [
            (
                "stress.dirty_rate=0",
                &["stress.dirty_rate=0", "more than 0", "once"][..],
            ),
            (
                "stress.dirty_rate=fast",
                &["stress.dirty_rate=fast", "256M"],
            ),
            (
                "stress.dirty_rate=12Q",
                &["stress.dirty_rate=12Q", "unknown unit"],
            ),
            ("stress.wss=50", &["stress.wss=50", "no unit", "25%"]),
            ("stress.wss=150%", &["stress.wss=150%", "at most 100"]),
            ("stress.wss=0M", &["stress.wss=0M", "more than 0"]),
            (
                "stress.pattern=zigzag",
                &["stress.pattern=zigzag", "seq, random or once"],
            ),
            (
                "stress.rate=1M",
                &["unknown setting stress.rate=1M", "stress.dirty_rate="],
            ),
        ] {
            let e = from_cmdline(line).unwrap_err();
            for needle in needles {
                assert!(e.0.contains(needle), "{line}: {e}");
            }
        }
        // Host flags name the flag.
        let e = from_args(["--dirty-rate", "0"]).unwrap_err();
        assert!(e.0.starts_with("--dirty-rate=0:"), "{e}");
        let e = from_args(["--pattern=zigzag"]).unwrap_err();
        assert!(e.0.starts_with("--pattern=zigzag:"), "{e}");
    }

    #[test]
    fn resolve_the_working_set_and_the_rate() {
        let req = |wss: Option<Wss>, pattern, dirty_rate| Requested {
            ram_bytes: Some(256 * MIB),
            threads: Some(2),
            wss,
            pattern,
            dirty_rate,
            ..Default::default()
        };
        // The default: everything, sequential, unlimited; the start line says nothing more.
        let s = resolve(&req(None, None, None), BIG).unwrap();
        assert_eq!(
            (s.pattern, s.wss_share_bytes, s.dirty_rate),
            (Pattern::Seq, 128 * MIB, None)
        );
        assert_eq!(s.start_workload(), None);
        assert_eq!(s.thread_rate(), None);
        // A share of the RAM, split per thread; the rate too.
        let s = resolve(&req(Some(Wss::Pct(50.0)), None, Some(32 * MIB)), BIG).unwrap();
        assert_eq!(s.wss_share_bytes, 64 * MIB);
        assert_eq!(s.thread_rate(), Some(16.0 * MIB as f64));
        assert_eq!(
            s.start_workload(),
            Some(Workload {
                pattern: Pattern::Seq,
                wss_bytes: 128 * MIB,
                dirty_rate_bytes_per_s: Some(32 * MIB)
            })
        );
        // Sizes round down to whole pages per thread; 100% is the default workload.
        let s = resolve(&req(Some(Wss::Bytes(MIB + 1)), None, None), BIG).unwrap();
        assert_eq!(s.wss_share_bytes, MIB / 2);
        let s = resolve(&req(Some(Wss::Pct(100.0)), None, None), BIG).unwrap();
        assert_eq!(s.start_workload(), None);
        // Random over everything is not the default.
        let s = resolve(&req(None, Some(Pattern::Random), None), BIG).unwrap();
        assert_eq!(s.start_workload().unwrap().pattern, Pattern::Random);
        // Once has no working set and no rate: it says so, and refuses them.
        let s = resolve(&req(None, Some(Pattern::Once), None), BIG).unwrap();
        assert_eq!(
            s.start_workload(),
            Some(Workload {
                pattern: Pattern::Once,
                wss_bytes: 0,
                dirty_rate_bytes_per_s: None
            })
        );
        for (r, needle) in [
            (
                req(Some(Wss::Pct(50.0)), Some(Pattern::Once), None),
                "stress.wss=50% with stress.pattern=once",
            ),
            (
                req(None, Some(Pattern::Once), Some(MIB)),
                "stress.dirty_rate=1M with stress.pattern=once",
            ),
            (
                req(Some(Wss::Bytes(GIB)), None, None),
                "stress.wss=1G is more than ramsize (256 MiB): lower stress.wss",
            ),
            (
                req(Some(Wss::Bytes(4096)), None, None),
                "less than a 4 KiB page for each of 2 threads; raise stress.wss",
            ),
        ] {
            let e = resolve(&r, BIG).unwrap_err();
            assert!(e.0.contains(needle), "{e}");
        }
    }
}
