//! The Debian package, built with Debian's own tools: the files staged by [`crate::layout`],
//! shared-library dependencies from `dpkg-shlibdeps`, `DEBIAN/control` and `md5sums`, then
//! `dpkg-deb --build`. No packaging tool to compile first (docs/install.md says why).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::layout::{self, describe, tail, Built, Entry, Kind, Source};
use crate::{target_dir, Error, VERSION};

/// The package's name.
pub const PACKAGE: &str = "guestperf";

/// What the tools need from the distribution besides shared libraries: QEMU (the oldest version
/// the tools support is 7.2, bookworm's; epoch 1 is Debian's) and numactl (CPU and memory
/// binding).
pub const DEPENDS: &str = "qemu-system-x86 (>= 1:7.2), numactl";

/// Builds the package into `out_dir` and returns its path.
pub fn build(built: &Built, out_dir: &Path) -> Result<PathBuf, Error> {
    let arch = command_output(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg is part of every Debian",
    )?;
    let name = format!("{PACKAGE}_{VERSION}_{arch}");
    let stage = target_dir().join("xtask/deb").join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)
            .map_err(Error::io(format!("cannot remove {}", stage.display())))?;
    }
    let entries = layout::entries(Kind::Debian);
    layout::place(&entries, built, &stage, true)?;

    let shlibs = shlibdeps(&stage, &entries)?;
    let depends = if shlibs.is_empty() {
        DEPENDS.to_string()
    } else {
        format!("{shlibs}, {DEPENDS}")
    };
    let installed_kib = installed_size(&stage)?;
    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)
        .map_err(Error::io(format!("cannot create {}", debian.display())))?;
    write(
        &debian.join("control"),
        &control(&arch, installed_kib, &depends),
    )?;
    let sums = command_output(
        Command::new("md5sum")
            .current_dir(&stage)
            .args(entries.iter().map(|e| &e.path)),
        "md5sum is part of coreutils",
    )?;
    write(&debian.join("md5sums"), &format!("{sums}\n"))?;

    fs::create_dir_all(out_dir)
        .map_err(Error::io(format!("cannot create {}", out_dir.display())))?;
    let deb = out_dir.join(format!("{name}.deb"));
    layout::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
        "dpkg-deb is part of dpkg",
    )?;
    Ok(deb)
}

/// `DEBIAN/control`.
pub fn control(arch: &str, installed_kib: u64, depends: &str) -> String {
    format!(
        "Package: {PACKAGE}\n\
         Version: {VERSION}\n\
         Architecture: {arch}\n\
         Maintainer: The guestperf-rs developers <guestperf-rs@example.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Section: utils\n\
         Priority: optional\n\
         Homepage: {}\n\
         Description: measure what QEMU live migration does to a busy guest\n \
         guestperf-rs boots a source and a destination QEMU with a tiny initrd whose /init\n \
         xors all of guest RAM, migrates it with any mix of QEMU's migration knobs, samples\n \
         the host CPU of each QEMU thread and turns it all into one JSON report and charts.\n \
         .\n \
         Unix-pipe tools (gp-launch, gp-migrate, gp-sample, gp-collect, gp-plot), the\n \
         one-shot guestperf, gp-batch, gp-compare, gp-initrd, the workload as gp-stress,\n \
         and the stress initrd in /usr/share/guestperf. The guest kernel is the host's or\n \
         one fetched by the project's scripts/setup-host.sh.\n",
        env!("CARGO_PKG_REPOSITORY")
    )
}

/// The shared libraries the dynamically linked binaries need, as a Depends list
/// (`libc6 (>= 2.34), libgcc-s1 (>= 4.2)`), from `dpkg-shlibdeps`.
fn shlibdeps(stage: &Path, entries: &[Entry]) -> Result<String, Error> {
    // dpkg-shlibdeps wants a source tree: a minimal debian/control in a scratch directory.
    let scratch = tempdir_in(&target_dir().join("xtask"))?;
    fs::create_dir_all(scratch.join("debian")).map_err(Error::io(
        "cannot create the dpkg-shlibdeps scratch directory",
    ))?;
    write(
        &scratch.join("debian/control"),
        &format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"),
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.current_dir(&scratch).arg("-O");
    // gp-stress is static (it is the initrd's /init): nothing to depend on.
    for e in entries {
        if matches!(e.source, Source::Binary(_)) {
            cmd.arg(format!("-e{}", stage.join(&e.path).display()));
        }
    }
    let out = command_output(&mut cmd, "install dpkg-dev (scripts/setup-host.sh does)");
    let _ = fs::remove_dir_all(&scratch);
    let out = out?;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or("");
    Ok(line.trim().to_string())
}

fn tempdir_in(parent: &Path) -> Result<PathBuf, Error> {
    let dir = parent.join(format!("shlibdeps.{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    Ok(dir)
}

/// Installed-Size as dpkg-gencontrol counts it: each file's size in KiB rounded up, plus one per
/// directory.
pub fn installed_size(root: &Path) -> Result<u64, Error> {
    let mut kib = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let read =
            fs::read_dir(&dir).map_err(Error::io(format!("cannot read {}", dir.display())))?;
        for entry in read {
            let entry = entry.map_err(Error::io(format!("cannot read {}", dir.display())))?;
            let meta = entry
                .metadata()
                .map_err(Error::io(format!("cannot stat {}", entry.path().display())))?;
            if meta.is_dir() {
                if entry.file_name() != "DEBIAN" {
                    kib += 1;
                    stack.push(entry.path());
                }
            } else {
                kib += meta.len().div_ceil(1024);
            }
        }
    }
    Ok(kib)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(Error::io(format!("cannot write {}", path.display())))
}

/// A command's trimmed stdout; a failure names the command and its stderr.
fn command_output(cmd: &mut Command, hint: &'static str) -> Result<String, Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| Error::Spawn {
        program,
        hint,
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: describe(cmd),
            status: out.status,
            detail: tail(&out.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_has_the_fields_dpkg_needs_and_the_distribution_dependencies() {
        let c = control(
            "amd64",
            1234,
            "libc6 (>= 2.34), qemu-system-x86 (>= 1:7.2), numactl",
        );
        for field in [
            "Package: guestperf\n",
            &format!("Version: {VERSION}\n"),
            "Architecture: amd64\n",
            "Installed-Size: 1234\n",
            "Depends: libc6 (>= 2.34), qemu-system-x86 (>= 1:7.2), numactl\n",
            "Description: measure what",
        ] {
            assert!(c.contains(field), "{field:?} missing from\n{c}");
        }
        assert!(c.ends_with('\n'));
        // Continuation lines of the description start with a space; no empty line inside.
        let desc = c.split("Description:").nth(1).unwrap();
        assert!(desc.lines().skip(1).all(|l| l.starts_with(' ')), "{desc}");
        assert!(!c.contains("\n\n"));
    }

    #[test]
    fn installed_size_rounds_each_file_up_and_skips_debian() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("DEBIAN")).unwrap();
        fs::write(root.join("usr/bin/a"), vec![0u8; 1025]).unwrap();
        fs::write(root.join("usr/bin/b"), b"x").unwrap();
        fs::write(root.join("DEBIAN/control"), vec![0u8; 5000]).unwrap();
        // usr, usr/bin: 2 directories; a: 2 KiB, b: 1 KiB.
        assert_eq!(installed_size(root).unwrap(), 5);
    }
}
