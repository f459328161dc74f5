//! `cargo xtask`: install, uninstall and package guestperf-rs (docs/install.md).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use xtask::layout::{self, Kind};
use xtask::{compile, deb, target_dir, Error};

/// Install, uninstall and package guestperf-rs.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build in release mode and install every binary (stress as gp-stress), the stress initrd,
    /// man pages and bash/zsh/fish completions under PREFIX.
    Install {
        /// Where to install: PREFIX/bin, PREFIX/share/... [default: $HOME/.local]
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<PathBuf>,
        /// Cargo profile of the binaries (the CI's package test uses `dev`, the build it has).
        #[arg(long, default_value = "release")]
        profile: String,
    },
    /// Remove every file `install` put under PREFIX, and the directories it leaves empty.
    Uninstall {
        /// The prefix given to install [default: $HOME/.local]
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<PathBuf>,
    },
    /// Build the Debian package (dpkg-deb) and print its path.
    Deb {
        /// Directory for the .deb [default: target/debian]
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Cargo profile of the binaries (the CI's package test uses `dev`, the build it has).
        #[arg(long, default_value = "release")]
        profile: String,
    },
}

fn prefix(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    let p = match given {
        Some(p) => p,
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| Error::Other("HOME is not set: pass --prefix".into()))?;
            PathBuf::from(home).join(".local")
        }
    };
    if !p.is_absolute() {
        return Err(Error::RelativePrefix(p));
    }
    Ok(p)
}

fn run(cli: Cli) -> Result<(), Error> {
    let started = Instant::now();
    match cli.task {
        Task::Install { prefix: p, profile } => {
            let p = prefix(p)?;
            let built = compile::build(&profile)?;
            let entries = layout::entries(Kind::Prefix);
            layout::place(&entries, &built, &p, false)?;
            eprintln!(
                "xtask: installed {} files under {} in {:.1} s",
                entries.len(),
                p.display(),
                started.elapsed().as_secs_f64()
            );
            let bin = p.join("bin");
            let on_path = std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d == bin));
            if !on_path {
                eprintln!(
                    "xtask: {} is not on PATH; add it (man and bash-completion find the pages \
                     and completions through it)",
                    bin.display()
                );
            }
            if let Err(e) = gp_qemu_kernel_check() {
                eprintln!("xtask: note: {e}");
            }
        }
        Task::Uninstall { prefix: p } => {
            let p = prefix(p)?;
            let n = layout::remove(&layout::entries(Kind::Prefix), &p)?;
            eprintln!("xtask: removed {n} files from {}", p.display());
        }
        Task::Deb { output, profile } => {
            let out = output.unwrap_or_else(|| target_dir().join("debian"));
            let built = compile::build(&profile)?;
            let path = deb::build(&built, &out)?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "xtask: {} ({:.1} MiB) in {:.1} s",
                path.display(),
                size as f64 / (1 << 20) as f64,
                started.elapsed().as_secs_f64()
            );
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// The tools also need a guest kernel, which no install carries.
fn gp_qemu_kernel_check() -> Result<PathBuf, String> {
    gp_qemu::kernel::find_kernel(None).map_err(|e| e.to_string())
}

fn main() -> gp_stage::ExitCode {
    let cli = Cli::parse();
    gp_stage::main("xtask", || run(cli).map(|()| gp_stage::ExitCode::SUCCESS))
}
