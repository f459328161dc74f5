//! Bad input: each case is a clear error on stderr and a `stage_error` record on stdout, a
//! non-zero exit, and nothing started or left running.

mod common;

use common::{processes_with, run_to_end};
use gp_records::Record;

/// Runs a case that must fail; returns stderr. Checks the stage_error record and leftovers.
fn refused(args: &[&str], expect_in_message: &[&str]) -> String {
    // These fail before any VM starts, so they do not take the VM test lock.
    let (status, out, err, marker) = run_to_end(args);
    let report = format!("args {args:?}\nstatus {status:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(!status.success(), "expected failure\n{report}");
    assert!(
        status.code().is_some(),
        "must exit, not die of a signal\n{report}"
    );
    assert!(
        !err.contains("panicked"),
        "no panic on user input\n{report}"
    );
    for needle in expect_in_message {
        assert!(
            err.contains(needle),
            "stderr should mention {needle:?}\n{report}"
        );
    }
    // The stage is named once, at the start of its message (clap's usage errors name none).
    for line in err.lines().filter(|l| l.contains("gp-launch")) {
        assert!(
            line.starts_with("gp-launch: ") && line.matches("gp-launch").count() == 1,
            "the stage named other than once at the start: {line}\n{report}"
        );
    }
    let records: Vec<Record> = out
        .lines()
        .map(|l| gp_records::ndjson::parse_line(l).unwrap().unwrap())
        .collect();
    match records.last() {
        Some(Record::StageError(e)) => {
            assert_eq!(e.stage, "gp-launch");
            for needle in expect_in_message {
                assert!(
                    e.message.contains(needle),
                    "stage_error should mention {needle:?}\n{report}"
                );
            }
        }
        other => panic!("last record should be a stage_error, got {other:?}\n{report}"),
    }
    assert!(
        !records.iter().any(|r| matches!(r, Record::Vm(_))),
        "no VM may have been announced\n{report}"
    );
    assert!(
        processes_with(&marker).is_empty(),
        "a QEMU was left running\n{report}"
    );
    err
}

#[test]
fn nonexistent_kernel() {
    refused(
        &[
            "--accel",
            "tcg",
            "--mem",
            "256M",
            "--kernel",
            "/nonexistent/vmlinuz",
        ],
        &["/nonexistent/vmlinuz", "does not exist", "--kernel"],
    );
}

#[test]
fn directory_as_initrd() {
    refused(
        &["--accel", "tcg", "--mem", "256M", "--initrd", "/tmp"],
        &["/tmp", "is a directory"],
    );
}

#[test]
fn missing_initrd() {
    refused(
        &[
            "--accel",
            "tcg",
            "--mem",
            "256M",
            "--initrd",
            "/nonexistent/initrd.img",
        ],
        &["does not exist", "initrd/build.sh"],
    );
}

#[test]
fn zero_cpus() {
    refused(&["--accel", "tcg", "--cpus", "0"], &["--cpus", "0"]);
}

#[test]
fn zero_mem() {
    refused(&["--accel", "tcg", "--mem", "0"], &["--mem", "more than 0"]);
}

#[test]
fn too_little_mem() {
    refused(&["--accel", "tcg", "--mem", "64M"], &["too small", "128M"]);
}

#[test]
fn bind_to_a_cpu_that_does_not_exist() {
    let err = refused(
        &["--accel", "tcg", "--mem", "256M", "--src-cpu-bind", "0,999"],
        &["--src-cpu-bind", "no CPU 999", "online CPUs"],
    );
    assert!(
        !err.contains("0,999"),
        "only the missing CPU is named: {err}"
    );
}

#[test]
fn bind_to_a_node_that_does_not_exist() {
    refused(
        &["--accel", "tcg", "--mem", "256M", "--dst-mem-bind", "7"],
        &["--dst-mem-bind", "no NUMA node 7", "online nodes"],
    );
}

#[test]
fn remote_destination_needs_a_transport_that_crosses_hosts() {
    // Without --transport, --dst-host means tcp; unix given explicitly is refused.
    refused(
        &[
            "--accel",
            "tcg",
            "--transport",
            "unix",
            "--dst-host",
            "elsewhere",
        ],
        &["unix transport cannot cross hosts", "--transport tcp"],
    );
    // ssh would take a leading '-' as an option.
    refused(
        &[
            "--accel",
            "tcg",
            "--transport",
            "tcp",
            "--dst-host=-oProxyCommand=x",
        ],
        &["--dst-host", "read as an option"],
    );
}

#[test]
fn dirty_ring_needs_kvm() {
    refused(
        &["--accel", "tcg", "--dirty-ring-size", "4096"],
        &["--dirty-ring-size: needs KVM"],
    );
    refused(
        &["--accel", "kvm", "--dirty-ring-size", "1000"],
        &["power of two"],
    );
}

#[test]
fn rdma_without_a_device_is_refused() {
    let b = gp_qemu::binary::QemuBinary::detect("qemu-system-x86_64")
        .unwrap_or_else(|e| panic!("{e}: run scripts/setup-host.sh"));
    if !gp_launch::host::rdma_devices().is_empty() && !b.supports_rdma() {
        refused(
            &["--accel", "tcg", "--mem", "256M", "--transport", "rdma"],
            &["without RDMA migration"],
        );
        return;
    }
    assert!(
        gp_launch::host::rdma_devices().is_empty(),
        "this host has RDMA and a QEMU with RDMA: the refusal cannot be tested here"
    );
    refused(
        &["--accel", "tcg", "--mem", "256M", "--transport", "rdma"],
        &["no RDMA device", "--transport tcp"],
    );
}

#[test]
fn huge_pages_without_a_pool_are_refused() {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .contains(" hugetlbfs ");
    let err = if mounted {
        // Ask for more huge pages than any test machine has free.
        refused(
            &["--accel", "tcg", "--mem", "4096G", "--huge-pages"],
            &["--huge-pages"],
        )
    } else {
        refused(
            &["--accel", "tcg", "--mem", "256M", "--huge-pages"],
            &["no hugetlbfs is mounted", "mount -t hugetlbfs"],
        )
    };
    assert!(err.contains("--huge-pages"));
}

#[test]
fn missing_qemu_binary() {
    refused(
        &[
            "--accel",
            "tcg",
            "--mem",
            "256M",
            "--binary",
            "qemu-system-nonexistent",
        ],
        &["not found on PATH", "--binary"],
    );
}

#[test]
fn help_and_version_are_not_errors() {
    let (status, out, _, _) = run_to_end(&["--help"]);
    assert!(status.success());
    assert!(
        out.contains("--src-cpu-bind") && out.contains("--accel"),
        "{out}"
    );
    let (status, out, _, _) = run_to_end(&["--version"]);
    assert!(status.success());
    assert!(out.starts_with("gp-launch "), "{out}");
}
