//! The wrappers take the stages' own options: the same help and defaults as the stages' --help,
//! and a bad value refused before anything runs, `--dry-run` included. No VM is started.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::{bin_dir, run};

fn help(binary: &str) -> String {
    let path = bin_dir().join(binary);
    assert!(
        path.is_file(),
        "{binary} is not built in {}: run `cargo build --workspace` first",
        bin_dir().display()
    );
    let out = run(Command::new(path).arg("--help"));
    assert!(out.status.success(), "{binary} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Each option's paragraph in a long `--help`, whitespace collapsed: `--mem` → `Guest RAM: ...
/// [default: 1]`.
fn options(help: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let starts_option = (1..=6).contains(&indent)
            && (trimmed.starts_with("--")
                || trimmed.starts_with('-') && trimmed[2..].starts_with(", --"));
        if starts_option || (indent == 0 && !trimmed.is_empty()) {
            if let Some((name, text)) = current.take() {
                out.insert(name, text.join(" "));
            }
        }
        if starts_option {
            let long = trimmed[trimmed.find("--").unwrap()..]
                .split([' ', '='])
                .next()
                .unwrap()
                .to_string();
            current = Some((long, Vec::new()));
        } else if let Some((_, text)) = &mut current {
            text.extend(trimmed.split_whitespace().map(String::from));
        }
    }
    if let Some((name, text)) = current {
        out.insert(name, text.join(" "));
    }
    out
}

fn default_of(paragraph: &str) -> Option<&str> {
    let start = paragraph.find("[default: ")? + "[default: ".len();
    let end = start + paragraph[start..].find(']')?;
    Some(&paragraph[start..end])
}

#[test]
fn the_wrappers_help_is_the_stages_help() {
    let launch = options(&help("gp-launch"));
    let migrate = options(&help("gp-migrate"));
    assert!(launch.len() > 30 && migrate.len() > 30, "{launch:?}");
    assert_eq!(default_of(&launch["--mem"]), Some("1"));
    assert_eq!(default_of(&migrate["--sleep"]), Some("15"));
    assert_eq!(
        default_of(&launch["--kernel"]),
        Some("/boot/vmlinuz-$(uname -r), else the newest /boot/vmlinuz-*, else the newest kernel in ~/.cache/guestperf/kernel")
    );
    for wrapper in ["guestperf", "gp-batch"] {
        let ours = options(&help(wrapper));
        for (stage, theirs) in [("gp-launch", &launch), ("gp-migrate", &migrate)] {
            for (option, text) in theirs {
                if option == "--help" || option == "--version" {
                    continue;
                }
                if wrapper == "gp-batch" && option == "--name" {
                    assert!(!ours.contains_key(option), "gp-batch names its runs itself");
                    continue;
                }
                let Some(mine) = ours.get(option) else {
                    panic!("{wrapper} has no {option} (of {stage})");
                };
                assert_eq!(
                    default_of(mine),
                    default_of(text),
                    "{wrapper} and {stage} state different defaults for {option}"
                );
                assert_eq!(
                    mine, text,
                    "{wrapper} and {stage} describe {option} differently"
                );
            }
        }
        // gp-sample's --interval, as --sample-interval.
        let sample = options(&help("gp-sample"));
        assert_eq!(
            default_of(&ours["--sample-interval"]),
            default_of(&sample["--interval"]),
            "{wrapper} --sample-interval"
        );
    }
}

fn refused(binary: &str, args: &[&str], option: &str) -> Output {
    let out = run(Command::new(bin_dir().join(binary)).args(args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{binary} {args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{binary} {args:?} printed a pipeline"
    );
    assert!(
        err.contains(&format!("'{option} <")),
        "{binary} {args:?}: the error names {option}: {err}"
    );
    out
}

#[test]
fn a_dry_run_refuses_bad_values_naming_the_option() {
    refused("guestperf", &["--dry-run", "--mem", "0"], "--mem");
    refused(
        "guestperf",
        &["--dry-run", "--src-cpu-bind", "banana"],
        "--src-cpu-bind",
    );
    refused(
        "guestperf",
        &["--dry-run", "--stress-threads", "0"],
        "--stress-threads",
    );
    refused("guestperf", &["--dry-run", "--poll-ms", "0"], "--poll-ms");
    refused(
        "guestperf",
        &["--dry-run", "--sample-interval", "fast"],
        "--sample-interval",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("batch");
    let dir = dir.to_str().unwrap();
    refused(
        "gp-batch",
        &["--dry-run", "--output", dir, "--mem", "0"],
        "--mem",
    );
    refused(
        "gp-batch",
        &["--dry-run", "--output", dir, "--dst-cpu-bind", "1-0"],
        "--dst-cpu-bind",
    );
    refused("gp-batch", &["--output", dir, "--name", "mine"], "--name");
    assert!(!tmp.path().join("batch").exists(), "nothing was created");
}

#[test]
fn a_dry_run_prints_every_stage_option_it_was_given() {
    let out = run(Command::new(bin_dir().join("guestperf")).args([
        "--dry-run",
        "--mem",
        "4",
        "--stress-threads",
        "3",
        "--qemu-arg",
        "-d",
        "--dst-host",
        "somehost",
        "--post-copy",
        "--post-copy-iters",
        "2",
        "--poll-ms",
        "20",
        "--sample-interval",
        "1s",
    ]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let stages: Vec<&str> = text.split(" \\\n  | ").collect();
    assert_eq!(stages.len(), 4, "{text}");
    assert!(
        stages[0].ends_with(
            "gp-launch --mem 4G --transport tcp --dst-host somehost --qemu-arg=-d \
             --stress-threads 3"
        ),
        "{text}"
    );
    assert!(stages[1].ends_with("gp-sample --interval 1s"), "{text}");
    assert!(
        stages[2].ends_with("gp-migrate --post-copy --post-copy-iters 2 --poll-ms 20"),
        "{text}"
    );
    assert!(stages[3].trim_end().ends_with("gp-collect"), "{text}");
}
