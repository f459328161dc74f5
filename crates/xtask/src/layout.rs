//! Which file goes where: one list for `install`, `uninstall` and the Debian package.
//!
//! Under a prefix `P` (install) and under `/usr` (the package):
//!
//! | what | where |
//! |---|---|
//! | binaries, stress as `gp-stress` | `P/bin/` |
//! | the stress initrd | `P/share/guestperf/initrd-stress.img` (gp-launch looks there) |
//! | man pages | `P/share/man/man1/*.1` (`.1.gz` in the package) |
//! | bash completions | `P/share/bash-completion/completions/NAME` |
//! | zsh completions | `P/share/zsh/site-functions/_NAME` (`vendor-completions` in the package, Debian's place) |
//! | fish completions | `P/share/fish/vendor_completions.d/NAME.fish` |
//! | the licence (package only) | `/usr/share/doc/guestperf/copyright` |

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::generate::{self, Shell, SHELLS};
use crate::tools::{Tool, STRESS, TOOLS};
use crate::Error;

/// Where the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cargo xtask install --prefix P`: paths relative to P.
    Prefix,
    /// The Debian package: paths relative to the package root (`usr/...`).
    Debian,
}

/// What a file is made from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A release binary of that name.
    Binary(&'static str),
    /// The static stress that the initrd holds, installed as `gp-stress`.
    Stress,
    Initrd,
    ManPage(Tool),
    StressManPage,
    Completion(Shell, Tool),
    Copyright,
    /// The project's CHANGELOG.md, what changed for users.
    UpstreamChangelog,
    /// A one-entry Debian changelog (lintian wants one) pointing at the project's.
    DebianChangelog,
    /// lintian overrides, each with its reason.
    LintianOverrides,
}

/// One installed file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the prefix (install) or the package root (deb).
    pub path: PathBuf,
    pub source: Source,
}

/// What the build produced (see [`crate::compile::build`]).
#[derive(Debug, Clone)]
pub struct Built {
    /// `target/<profile>`, holding every binary of [`TOOLS`].
    pub bin_dir: PathBuf,
    /// The static stress.
    pub stress: PathBuf,
    pub initrd: PathBuf,
    /// The build's date in RFC 2822 (`Fri, 04 Dec 2026 22:50:22 +0000`), for the Debian
    /// changelog: `$SOURCE_DATE_EPOCH`, else the last commit's.
    pub date: String,
}

/// Every file of an install (`Kind::Prefix`) or of the package (`Kind::Debian`).
pub fn entries(kind: Kind) -> Vec<Entry> {
    let base = match kind {
        Kind::Prefix => PathBuf::new(),
        Kind::Debian => PathBuf::from("usr"),
    };
    let share = base.join("share");
    let man = |name: &str| {
        let file = match kind {
            Kind::Prefix => format!("{name}.1"),
            Kind::Debian => format!("{name}.1.gz"),
        };
        share.join("man/man1").join(file)
    };
    let completion_dir = |shell: Shell| match (shell, kind) {
        (Shell::Bash, _) => share.join("bash-completion/completions"),
        (Shell::Zsh, Kind::Prefix) => share.join("zsh/site-functions"),
        (Shell::Zsh, Kind::Debian) => share.join("zsh/vendor-completions"),
        (_, _) => share.join("fish/vendor_completions.d"),
    };
    let mut out = Vec::new();
    for tool in TOOLS {
        out.push(Entry {
            path: base.join("bin").join(tool.name),
            source: Source::Binary(tool.name),
        });
    }
    out.push(Entry {
        path: base.join("bin").join(STRESS),
        source: Source::Stress,
    });
    out.push(Entry {
        path: share.join("guestperf").join(gp_qemu::paths::INITRD_NAME),
        source: Source::Initrd,
    });
    for tool in TOOLS {
        out.push(Entry {
            path: man(tool.name),
            source: Source::ManPage(tool),
        });
    }
    out.push(Entry {
        path: man(STRESS),
        source: Source::StressManPage,
    });
    for shell in SHELLS {
        for tool in TOOLS {
            out.push(Entry {
                path: completion_dir(shell).join(generate::completion_file(shell, tool.name)),
                source: Source::Completion(shell, tool),
            });
        }
    }
    if kind == Kind::Debian {
        out.push(Entry {
            path: share.join("doc/guestperf/copyright"),
            source: Source::Copyright,
        });
        out.push(Entry {
            path: share.join("doc/guestperf/changelog.gz"),
            source: Source::DebianChangelog,
        });
        out.push(Entry {
            path: share.join("doc/guestperf/CHANGELOG.md.gz"),
            source: Source::UpstreamChangelog,
        });
        out.push(Entry {
            path: share.join("lintian/overrides/guestperf"),
            source: Source::LintianOverrides,
        });
    }
    out
}

/// What lintian flags in the package that is as meant.
pub const LINTIAN_OVERRIDES: &str = "\
# gp-stress is the initrd's /init, linked statically as a position-independent executable: no
# interpreter and no libc to link against, which lintian takes for a shared library.
guestperf: shared-library-lacks-prerequisites [usr/bin/gp-stress]
";

/// The Debian changelog: one entry for this version, pointing at the project's changelog.
pub fn debian_changelog(date: &str) -> String {
    format!(
        "guestperf ({}) unstable; urgency=medium\n\n  \
         * Built by cargo xtask deb from guestperf-rs. What changed for users is in\n    \
         /usr/share/doc/guestperf/CHANGELOG.md.gz.\n\n \
         -- The guestperf-rs developers <guestperf-rs@example.invalid>  {date}\n",
        crate::VERSION
    )
}

/// The Debian copyright file (machine-readable format) with the workspace's LICENSE.
pub fn copyright() -> String {
    let license = include_str!("../../../LICENSE");
    let mut lines = license.lines();
    let holder = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("Copyright (c)")
        .trim()
        .to_string();
    let mut body = String::new();
    for line in license.lines().skip(1).skip_while(|l| l.trim().is_empty()) {
        if line.trim().is_empty() {
            body.push_str(" .\n");
        } else {
            body.push(' ');
            body.push_str(line);
            body.push('\n');
        }
    }
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: guestperf-rs\n\
         Source: {}\n\n\
         Files: *\n\
         Copyright: {holder}\n\
         License: MIT\n{body}",
        env!("CARGO_PKG_REPOSITORY")
    )
}

enum Content {
    Executable(PathBuf),
    Data(PathBuf),
    Bytes(Vec<u8>),
}

fn content(source: &Source, built: &Built) -> Content {
    match source {
        Source::Binary(name) => Content::Executable(built.bin_dir.join(name)),
        Source::Stress => Content::Executable(built.stress.clone()),
        Source::Initrd => Content::Data(built.initrd.clone()),
        Source::ManPage(tool) => Content::Bytes(generate::man_page(tool.command())),
        Source::StressManPage => Content::Bytes(generate::STRESS_PAGE.as_bytes().to_vec()),
        Source::Completion(shell, tool) => {
            Content::Bytes(generate::completion(*shell, tool.command()))
        }
        Source::Copyright => Content::Bytes(copyright().into_bytes()),
        Source::UpstreamChangelog => {
            Content::Bytes(include_str!("../../../CHANGELOG.md").as_bytes().to_vec())
        }
        Source::DebianChangelog => Content::Bytes(debian_changelog(&built.date).into_bytes()),
        Source::LintianOverrides => Content::Bytes(LINTIAN_OVERRIDES.as_bytes().to_vec()),
    }
}

/// Writes every entry under `root`: binaries stripped (as dh_strip does) and mode 0755, the rest 0644;
/// a path ending in `.gz` is compressed with `gzip -9n` (reproducible). Each file is written under
/// a temporary name and renamed, so a running tool never sees half a binary.
pub fn place(
    entries: &[Entry],
    built: &Built,
    root: &Path,
    strip_required: bool,
) -> Result<(), Error> {
    let mut strip_missing = false;
    for entry in entries {
        let dest = root.join(&entry.path);
        let dir = dest.parent().expect("an entry is a file under root");
        fs::create_dir_all(dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
        let plain = match dest.extension() {
            Some(ext) if ext == "gz" => dest.with_extension(""),
            _ => dest.clone(),
        };
        let tmp = plain.with_file_name(format!(
            ".{}.xtask-tmp",
            plain.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mode = match content(&entry.source, built) {
            Content::Executable(from) => {
                copy(&from, &tmp)?;
                if !strip_missing {
                    match strip(&tmp) {
                        Ok(()) => {}
                        Err(Error::Spawn { ref source, .. })
                            if source.kind() == ErrorKind::NotFound && !strip_required =>
                        {
                            eprintln!(
                                "xtask: strip not found (binutils): binaries keep their debug info"
                            );
                            strip_missing = true;
                        }
                        Err(e) => {
                            let _ = fs::remove_file(&tmp);
                            return Err(e);
                        }
                    }
                }
                0o755
            }
            Content::Data(from) => {
                copy(&from, &tmp)?;
                0o644
            }
            Content::Bytes(bytes) => {
                fs::write(&tmp, bytes)
                    .map_err(Error::io(format!("cannot write {}", tmp.display())))?;
                0o644
            }
        };
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(Error::io(format!("cannot chmod {}", tmp.display())))?;
        fs::rename(&tmp, &plain).map_err(Error::io(format!(
            "cannot rename {} to {}",
            tmp.display(),
            plain.display()
        )))?;
        if plain != dest {
            run(
                Command::new("gzip").arg("-9nf").arg(&plain),
                "gzip is part of every Debian",
            )?;
        }
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    fs::copy(from, to).map(|_| ()).map_err(Error::io(format!(
        "cannot copy {} to {} (did the build finish?)",
        from.display(),
        to.display()
    )))
}

fn strip(file: &Path) -> Result<(), Error> {
    run(
        // What Debian's dh_strip does: debug info and the symbols nothing links against.
        Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(file),
        "install binutils",
    )
}

/// Runs a command to completion; a failure names it and its stderr.
pub fn run(cmd: &mut Command, hint: &'static str) -> Result<(), Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| Error::Spawn {
        program: program.clone(),
        hint,
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Failed {
        command: describe(cmd),
        status: out.status,
        detail: tail(&out.stderr),
    })
}

/// `program arg arg` for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `: <last lines of stderr>`, or nothing.
pub fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines[start..].join(" / "))
    }
}

/// Removes every entry under `root` that exists, then every directory an entry lived in that is
/// left empty, up to (not including) `root`. Returns how many files it removed.
pub fn remove(entries: &[Entry], root: &Path) -> Result<usize, Error> {
    let mut removed = 0;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = root.join(&entry.path);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot remove {}", path.display()))(e)),
        }
        let mut dir = entry.path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(root.join(d));
            dir = d.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    // Deepest first, so a parent is looked at after its children.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let empty = fs::read_dir(&dir).map(|mut it| it.next().is_none());
        if let Ok(true) = empty {
            fs::remove_dir(&dir).map_err(Error::io(format!("cannot remove {}", dir.display())))?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_build(dir: &Path) -> Built {
        let release_dir = dir.join("release");
        fs::create_dir_all(&release_dir).unwrap();
        // Real ELF files, which strip accepts: a small system one, else this test binary.
        let elf = Some(PathBuf::from("/bin/true"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| std::env::current_exe().unwrap());
        for tool in TOOLS {
            fs::copy(&elf, release_dir.join(tool.name)).unwrap();
        }
        let stress = dir.join("stress");
        fs::copy(&elf, &stress).unwrap();
        let initrd = dir.join("initrd.img");
        fs::write(&initrd, b"070701").unwrap();
        Built {
            bin_dir: release_dir,
            stress,
            initrd,
            date: "Fri, 04 Dec 2026 22:50:22 +0000".into(),
        }
    }

    #[test]
    fn prefix_layout_has_every_binary_page_and_completion() {
        let e = entries(Kind::Prefix);
        let paths: Vec<String> = e.iter().map(|e| e.path.display().to_string()).collect();
        // 9 clap tools + gp-stress, initrd, 10 pages, 3 x 9 completions.
        assert_eq!(paths.len(), 10 + 1 + 10 + 27, "{paths:#?}");
        for want in [
            "bin/gp-migrate",
            "bin/gp-stress",
            "bin/guestperf",
            "bin/gp-batch",
            "bin/gp-compare",
            "share/guestperf/initrd-stress.img",
            "share/man/man1/gp-migrate.1",
            "share/man/man1/gp-stress.1",
            "share/bash-completion/completions/gp-migrate",
            "share/zsh/site-functions/_gp-migrate",
            "share/fish/vendor_completions.d/gp-migrate.fish",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "{want} missing: {paths:#?}"
            );
        }
    }

    #[test]
    fn debian_layout_is_under_usr_with_compressed_pages_and_the_licence() {
        let e = entries(Kind::Debian);
        assert!(e.iter().all(|e| e.path.starts_with("usr")));
        let has = |p: &str| e.iter().any(|e| e.path == Path::new(p));
        assert!(has("usr/bin/gp-launch"));
        assert!(has("usr/share/guestperf/initrd-stress.img"));
        assert!(has("usr/share/man/man1/gp-migrate.1.gz"));
        assert!(has("usr/share/zsh/vendor-completions/_gp-migrate"));
        assert!(has("usr/share/doc/guestperf/copyright"));
        assert!(has("usr/share/doc/guestperf/changelog.gz"));
        assert!(has("usr/share/doc/guestperf/CHANGELOG.md.gz"));
        assert!(has("usr/share/lintian/overrides/guestperf"));
    }

    #[test]
    fn debian_changelog_has_the_entry_dpkg_parses() {
        let c = debian_changelog("Fri, 04 Dec 2026 22:50:22 +0000");
        let first = c.lines().next().unwrap();
        assert_eq!(
            first,
            format!("guestperf ({}) unstable; urgency=medium", crate::VERSION)
        );
        assert!(c.contains("\n  * Built by cargo xtask deb"));
        let last = c.lines().last().unwrap();
        assert_eq!(
            last,
            " -- The guestperf-rs developers <guestperf-rs@example.invalid>  \
             Fri, 04 Dec 2026 22:50:22 +0000"
        );
    }

    #[test]
    fn copyright_is_machine_readable_with_the_whole_licence() {
        let c = copyright();
        assert!(c.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        ));
        assert!(c.contains("\nLicense: MIT\n Permission is hereby granted"));
        assert!(c.contains("Copyright: 2026 The guestperf-rs developers\n"));
        // Every continuation line is indented, empty ones written as " .".
        let after = c.split("License: MIT\n").nth(1).unwrap();
        assert!(after.lines().all(|l| l.starts_with(' ')), "{after}");
        assert!(after.contains("\n .\n"));
    }

    #[test]
    fn install_then_remove_leaves_the_prefix_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let built = fake_build(&tmp.path().join("build"));
        let prefix = tmp.path().join("prefix");
        fs::create_dir(&prefix).unwrap();
        let e = entries(Kind::Prefix);
        place(&e, &built, &prefix, false).unwrap();
        let bin = prefix.join("bin/gp-migrate");
        let mode = fs::metadata(&bin).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let page = fs::read_to_string(prefix.join("share/man/man1/gp-migrate.1")).unwrap();
        assert!(page.contains("bandwidth"));
        assert_eq!(
            fs::read(prefix.join("share/guestperf/initrd-stress.img")).unwrap(),
            b"070701"
        );
        // A file of the user's next to ours stays, and so does its directory.
        fs::write(prefix.join("bin/mine"), b"x").unwrap();
        assert_eq!(remove(&e, &prefix).unwrap(), e.len());
        let left: Vec<PathBuf> = walk(&prefix);
        assert_eq!(left, [prefix.join("bin"), prefix.join("bin/mine")]);
        fs::remove_file(prefix.join("bin/mine")).unwrap();
        // Removing again is not an error and removes nothing.
        assert_eq!(remove(&e, &prefix).unwrap(), 0);
    }

    #[test]
    fn debian_pages_are_gzipped() {
        let tmp = tempfile::tempdir().unwrap();
        let built = fake_build(&tmp.path().join("build"));
        let root = tmp.path().join("root");
        let e: Vec<Entry> = entries(Kind::Debian)
            .into_iter()
            .filter(|e| matches!(e.source, Source::ManPage(_) | Source::StressManPage))
            .collect();
        place(&e, &built, &root, true).unwrap();
        let gz = fs::read(root.join("usr/share/man/man1/gp-stress.1.gz")).unwrap();
        assert_eq!(&gz[..2], b"\x1f\x8b");
        assert!(!root.join("usr/share/man/man1/gp-stress.1").exists());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.clone());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
        out.sort();
        out
    }
}
