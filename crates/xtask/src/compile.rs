//! The release build of every binary, and the initrd (`initrd/build.sh`: the static stress, then
//! gp-initrd).

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::layout::{describe, Built};
use crate::tools::TOOLS;
use crate::{target_dir, workspace_root, Error};

/// The cargo packages that build [`TOOLS`], each once.
pub fn packages() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = TOOLS.iter().map(|t| t.package).collect();
    out.sort();
    out.dedup();
    out
}

/// Builds every binary with cargo profile `profile` (`release` for what users install) and the
/// initrd into `target/xtask/`; what cargo and the scripts print goes to stderr (stdout is the
/// xtask's answer).
pub fn build(profile: &str) -> Result<Built, Error> {
    let root = workspace_root();
    let target = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--profile", profile, "--locked", "--bins"]);
    for p in packages() {
        cmd.args(["-p", p]);
    }
    let started = Instant::now();
    run_visible(&mut cmd, "cargo comes with the Rust toolchain")?;
    eprintln!(
        "xtask: {profile} build of {} packages: {:.1} s",
        packages().len(),
        started.elapsed().as_secs_f64()
    );

    let initrd = target.join("xtask").join(gp_qemu::paths::INITRD_NAME);
    std::fs::create_dir_all(target.join("xtask")).map_err(Error::io(format!(
        "cannot create {}",
        target.join("xtask").display()
    )))?;
    let started = Instant::now();
    run_visible(
        Command::new("sh")
            .current_dir(&root)
            .arg(root.join("initrd/build.sh"))
            .arg("--output")
            .arg(&initrd),
        "sh is part of every system",
    )?;
    eprintln!(
        "xtask: static stress and initrd: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Built {
        // cargo's directory for the `dev` profile is `debug`.
        bin_dir: target.join(if profile == "dev" { "debug" } else { profile }),
        stress: target.join("x86_64-unknown-linux-gnu/release/stress"),
        initrd,
        date: build_date(&root)?,
    })
}

/// `$SOURCE_DATE_EPOCH`, else the last commit's time, else now; as RFC 2822 (`date -R`).
fn build_date(root: &std::path::Path) -> Result<String, Error> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .current_dir(root)
                .args(["log", "-1", "--format=%ct"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !text.is_empty()).then_some(text)
        });
    let mut cmd = Command::new("date");
    cmd.env("LC_ALL", "C").env("TZ", "UTC").arg("-R");
    if let Some(e) = epoch {
        cmd.arg("-d").arg(format!("@{e}"));
    }
    let out = cmd.output().map_err(|source| Error::Spawn {
        program: "date".into(),
        hint: "date is part of coreutils",
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: describe(&cmd),
            status: out.status,
            detail: crate::layout::tail(&out.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `cmd` with its stdout sent to our stderr and its stderr shown, failing on a non-zero exit.
fn run_visible(cmd: &mut Command, hint: &'static str) -> Result<(), Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::io("cannot duplicate stderr"))?;
    let status = cmd
        .stdout(Stdio::from(stdout))
        .status()
        .map_err(|source| Error::Spawn {
            program,
            hint,
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            command: describe(cmd),
            status,
            detail: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn guestperf_builds_two_tools_once() {
        let p = super::packages();
        assert_eq!(p.len(), 8, "{p:?}");
        assert_eq!(p.iter().filter(|p| **p == "guestperf").count(), 1);
    }
}
