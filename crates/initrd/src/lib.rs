//! `gp-initrd`: builds the initrd that boots straight into the `stress` workload.
//!
//! The image is a newc cpio archive ([`image`]) with a statically linked `stress` as `/init`
//! (checked by [`elf`]), written atomically to `~/.cache/guestperf/initrd-stress.img` unless told
//! otherwise. The same `stress` binary always gives a byte-identical image. `initrd/build.sh`
//! builds the static `stress` and runs this tool; see docs/gp-initrd.md.

pub mod elf;
pub mod image;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;
use thiserror::Error;

/// Where the static `stress` lands inside a cargo target dir.
pub const STRESS_IN_TARGET: &str = "x86_64-unknown-linux-gnu/release/stress";

/// Command line of `gp-initrd`.
#[derive(Debug, Parser)]
#[command(
    name = "gp-initrd",
    version,
    about = "Build the stress initrd: a newc cpio with a static `stress` as /init",
    after_help = "Usually run through initrd/build.sh, which first builds the static stress."
)]
pub struct Cli {
    /// The statically linked stress binary [default: <target>/x86_64-unknown-linux-gnu/release/stress,
    /// where <target> is $CARGO_TARGET_DIR or the cargo target dir gp-initrd itself runs from]
    #[arg(long, value_name = "PATH")]
    pub stress: Option<PathBuf>,

    /// Where to write the image [default: ~/.cache/guestperf/initrd-stress.img]
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// What went wrong; each message says how to fix it.
#[derive(Debug, Error)]
pub enum Error {
    #[error("no stress binary at {path}; build it with initrd/build.sh (or pass --stress PATH)")]
    StressMissing { path: PathBuf },
    #[error("cannot read the stress binary {path}: {source}")]
    ReadStress {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {why}; rebuild with crt-static via initrd/build.sh")]
    Dynamic { path: PathBuf, why: String },
    #[error("{path} cannot be /init: {why}; pass the static stress built by initrd/build.sh")]
    NotExecutable { path: PathBuf, why: String },
    #[error("cannot build the image: {0}")]
    Build(std::io::Error),
    #[error("cannot write {path}: {source}; pass --output with a writable path")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl gp_stage::Failure for Error {}

/// What `run` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub output: PathBuf,
    pub stress: PathBuf,
    pub bytes: usize,
    /// False when the output already held exactly these bytes and was left alone.
    pub written: bool,
}

/// Candidate places of the static `stress`, most likely first: `$CARGO_TARGET_DIR`, then every
/// ancestor of the directory `exe` is in (`target/release/gp-initrd` finds
/// `target/x86_64-unknown-linux-gnu/release/stress`), then this source tree's `target/`.
pub fn stress_candidates(exe: Option<&Path>, cargo_target_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = cargo_target_dir {
        out.push(dir.join(STRESS_IN_TARGET));
    }
    if let Some(dir) = exe.and_then(Path::parent) {
        out.extend(dir.ancestors().map(|a| a.join(STRESS_IN_TARGET)));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .join(STRESS_IN_TARGET),
    );
    out
}

/// The default `--stress`: the first candidate that exists, else an error naming the most
/// likely one.
pub fn default_stress() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().ok();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let candidates = stress_candidates(exe.as_deref(), target.as_deref());
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    // With the executable in <target>/<profile>/, the likely place is <target>/STRESS_IN_TARGET.
    let likely = match (
        &target,
        exe.as_deref().and_then(Path::parent).and_then(Path::parent),
    ) {
        (Some(t), _) => t.join(STRESS_IN_TARGET),
        (None, Some(t)) => t.join(STRESS_IN_TARGET),
        (None, None) => candidates.last().cloned().unwrap_or_default(),
    };
    Err(Error::StressMissing { path: likely })
}

/// Reads and checks the `stress` binary.
pub fn read_stress(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::StressMissing {
            path: path.to_path_buf(),
        },
        _ => Error::ReadStress {
            path: path.to_path_buf(),
            source,
        },
    })?;
    elf::check_static(&bytes).map_err(|unfit| match unfit {
        elf::Unfit::Dynamic(why) => Error::Dynamic {
            path: path.to_path_buf(),
            why,
        },
        elf::Unfit::NotElf(why) => Error::NotExecutable {
            path: path.to_path_buf(),
            why,
        },
    })?;
    Ok(bytes)
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename, so readers
/// never see half an image. Leaves the file alone (returns false) when it already holds exactly
/// these bytes.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    let werr = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(werr)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".gp-initrd-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(werr)?;
    }
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(true)
}

/// Builds the image as `cli` asks.
pub fn run(cli: &Cli) -> Result<Built, Error> {
    let stress = match &cli.stress {
        Some(p) => p.clone(),
        None => default_stress()?,
    };
    let output = cli
        .output
        .clone()
        .unwrap_or_else(gp_qemu::paths::default_initrd);
    let init = read_stress(&stress)?;
    let img = image::build(&init).map_err(Error::Build)?;
    let written = write_atomically(&output, &img)?;
    Ok(Built {
        output,
        stress,
        bytes: img.len(),
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["gp-initrd", "--stress", "/s", "-o", "/o.img"]).unwrap();
        assert_eq!(cli.stress.as_deref(), Some(Path::new("/s")));
        assert_eq!(cli.output.as_deref(), Some(Path::new("/o.img")));
        assert!(Cli::try_parse_from(["gp-initrd", "--bogus"]).is_err());
    }

    #[test]
    fn candidates_walk_up_from_the_executable() {
        let c = stress_candidates(Some(Path::new("/w/target/release/gp-initrd")), None);
        assert_eq!(c[0], Path::new("/w/target/release").join(STRESS_IN_TARGET));
        assert_eq!(c[1], Path::new("/w/target").join(STRESS_IN_TARGET));
        let c = stress_candidates(
            Some(Path::new("/w/target/release/gp-initrd")),
            Some(Path::new("/t")),
        );
        assert_eq!(c[0], Path::new("/t").join(STRESS_IN_TARGET));
        assert!(c.last().unwrap().ends_with(STRESS_IN_TARGET));
    }

    #[test]
    fn missing_dynamic_and_non_elf_stress_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = read_stress(&missing).unwrap_err().to_string();
        assert!(e.contains("build it with initrd/build.sh"), "{e}");

        let dynamic = std::env::current_exe().unwrap();
        let e = read_stress(&dynamic).unwrap_err().to_string();
        assert!(
            e.contains("dynamically linked") && e.contains("rebuild with crt-static"),
            "{e}"
        );

        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = read_stress(&script).unwrap_err().to_string();
        assert!(e.contains("not an ELF file"), "{e}");

        let fake_static = dir.path().join("static");
        std::fs::write(&fake_static, elf::tests::fake_elf(&[(1, vec![0; 16])])).unwrap();
        assert!(read_stress(&fake_static).is_ok());
    }

    #[test]
    fn writes_atomically_and_skips_identical() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/dir/img");
        assert!(write_atomically(&out, b"abc").unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");
        assert!(!write_atomically(&out, b"abc").unwrap());
        assert!(write_atomically(&out, b"abcd").unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"abcd");
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn unwritable_output_names_the_fix() {
        let e = write_atomically(Path::new("/proc/gp-initrd-test/img"), b"x").unwrap_err();
        assert!(
            e.to_string().contains("pass --output with a writable path"),
            "{e}"
        );
    }

    #[test]
    fn run_builds_a_reproducible_image() {
        let dir = tempfile::tempdir().unwrap();
        let stress = dir.path().join("stress");
        std::fs::write(&stress, elf::tests::fake_elf(&[(1, vec![7; 100])])).unwrap();
        let out = dir.path().join("initrd.img");
        let cli = Cli {
            stress: Some(stress.clone()),
            output: Some(out.clone()),
        };
        let first = run(&cli).unwrap();
        assert!(first.written);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), first.bytes);
        let second = run(&cli).unwrap();
        assert!(!second.written, "an identical image is left alone");
        // Built elsewhere, the bytes are the same.
        let out2 = dir.path().join("again.img");
        run(&Cli {
            stress: Some(stress),
            output: Some(out2.clone()),
        })
        .unwrap();
        assert_eq!(std::fs::read(&out2).unwrap(), bytes);
    }
}
