//! A batch spread over two hosts by GNU parallel and merged back (docs/many-hosts.md): each host
//! is an sshd of its own in a network namespace ([`gp_testkit::SshHost`]);
//! examples/many-hosts/parallel.sh has GNU parallel run `gp-batch --shard {#}/2` on both over
//! ssh, gathers the parts back over ssh and merges them: the merge must list exactly what one unsplit batch of the same selection lists;
//! a missing part and a doubled one must both be caught.
//!
//! Needs root (sshd, `ip netns`), OpenSSH and GNU parallel (scripts/setup-host.sh), QEMU, the
//! guest kernel and the stress initrd. Takes the VM test lock.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{bin_dir, require_real_run, run};
use gp_testkit::{SshHost, SshHostOptions};

/// Two scenarios twice: four runs, two per part; 128 MiB guests, short cold settles.
const SELECTION: &[&str] = &[
    "--accel",
    "tcg",
    "--mem",
    "128M",
    "--sleep",
    "0.5",
    "--cold",
    "--max-time",
    "60",
    "--filter",
    "post-copy-iters/post-copy-iters-[01]",
    "--repeat",
    "2",
];

fn gp_batch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gp-batch"))
}

/// Per comparison and scenario, the runs a summary lists: (run, file).
fn listed(summary: &Path) -> BTreeMap<String, Vec<(u64, String)>> {
    let text =
        std::fs::read_to_string(summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for c in v["comparisons"].as_array().unwrap() {
        for s in c["scenarios"].as_array().unwrap() {
            let runs = s["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["run"].as_u64().unwrap(),
                        r["file"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            out.insert(
                format!(
                    "{}/{}",
                    c["name"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                ),
                runs,
            );
        }
    }
    out
}

fn merge(dirs: &[PathBuf], out: &Path) -> std::process::Output {
    let mut cmd = gp_batch();
    for d in dirs {
        cmd.arg("--merge").arg(d);
    }
    run(cmd.arg("--output").arg(out))
}

#[test]
fn two_shards_by_gnu_parallel_over_ssh_merge_into_the_unsplit_batch() {
    // Alone: it runs two shards, each with its VMs, at once.
    let _lock = gp_testkit::vm_test_lock_alone();
    require_real_run();
    assert!(
        gp_qemu::bind::find_on_path("parallel").is_some(),
        "GNU parallel is not installed: run scripts/setup-host.sh"
    );
    let base = tempfile::tempdir().unwrap();
    let base = base.path();
    let hosts: Vec<SshHost> = ["gp-shard-a", "gp-shard-b"]
        .iter()
        .map(|alias| {
            SshHost::start(&SshHostOptions {
                alias: alias.to_string(),
                path: vec![bin_dir()],
                env: vec![],
            })
        })
        .collect();
    for h in &hosts {
        assert_eq!(
            h.ssh(&h.alias, "command -v gp-batch").trim(),
            bin_dir().join("gp-batch").display().to_string(),
            "the test host must run this build's gp-batch"
        );
    }

    // The unsplit batch, here, while the hosts run the parts.
    let unsplit = base.join("unsplit");
    let local = gp_batch()
        .args(SELECTION)
        .arg("--output")
        .arg(&unsplit)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // examples/many-hosts/parallel.sh: GNU parallel runs part {#} of 2 on each host over ssh,
    // gathers the parts over ssh and merges them.
    let config = base.join("ssh_config");
    let includes: String = hosts
        .iter()
        .map(|h| format!("Include {}\n", h.config()))
        .collect();
    std::fs::write(&config, includes).unwrap();
    let out_dir = base.join("out");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/many-hosts/parallel.sh");
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(gp_testkit::bash_ending_with_test()
        .arg(&script)
        .arg(&out_dir)
        .args(SELECTION)
        .env("PATH", path)
        .env("GP_HOSTS", "gp-shard-a,gp-shard-b")
        .env(
            "GP_SSH",
            format!("ssh -F {} -o BatchMode=yes", config.display()),
        )
        .env("GP_REMOTE_DIR", base.join("remote")));
    let local = local.wait_with_output().unwrap();
    assert!(
        local.status.success(),
        "the unsplit batch failed: {}",
        String::from_utf8_lossy(&local.stderr)
    );
    assert!(
        out.status.success(),
        "examples/many-hosts/parallel.sh failed"
    );
    drop(hosts);

    // Each host ran one part (parallel's job log), and it was gathered from there.
    let log = std::fs::read_to_string(out_dir.join("joblog")).unwrap();
    let mut ran: BTreeMap<String, String> = BTreeMap::new();
    for line in log.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols[6], "0", "job failed: {line}");
        ran.insert(cols[0].to_string(), cols[1].to_string());
    }
    assert_eq!(ran.len(), 2, "{log}");
    let ran_on: Vec<&String> = ran.values().collect();
    assert_ne!(ran_on[0], ran_on[1], "both parts on one host: {log}");
    let parts: Vec<PathBuf> = ran
        .iter()
        .map(|(seq, host)| {
            let part = out_dir.join("parts").join(host).join(format!("part-{seq}"));
            assert!(
                part.join(format!("shard-{seq}-of-2.json")).is_file(),
                "{} was not gathered",
                part.display()
            );
            part
        })
        .collect();
    let merged = out_dir.join("merged");

    // Merged: the same scenarios and runs as the unsplit batch, each once.
    let want = listed(&unsplit.join("summary.json"));
    assert_eq!(want.len(), 2, "{want:?}");
    assert!(want.values().all(|runs| runs.len() == 2), "{want:?}");
    assert_eq!(listed(&merged.join("summary.json")), want);
    let findings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("merge.json")).unwrap()).unwrap();
    assert_eq!(findings["merged"], 4);
    assert_eq!(findings["expected"], 4);
    assert_eq!(findings["missing"], serde_json::json!([]));
    assert_eq!(findings["shards"]["present"], serde_json::json!([1, 2]));
    assert!(merged.join("post-copy-iters/post-copy-iters.svg").is_file());

    // A part missing: its runs are listed, the part is named, the status says so.
    let second: serde_json::Value =
        serde_json::from_slice(&std::fs::read(parts[1].join("shard-2-of-2.json")).unwrap())
            .unwrap();
    let out = merge(&parts[..1], &base.join("merged-missing"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("part(s) 2 of 2 not found"), "{err}");
    for label in second["runs"].as_array().unwrap() {
        assert!(
            err.contains(label.as_str().unwrap()),
            "{label} not listed: {err}"
        );
    }
    assert!(err.contains("2 runs of 4 missing"), "{err}");

    // A part gathered twice: refused, nothing written.
    let twice = base.join("gathered/again");
    std::fs::create_dir_all(&twice).unwrap();
    let copy = Command::new("cp")
        .arg("-a")
        .arg(&parts[1])
        .arg(&twice)
        .status()
        .unwrap();
    assert!(copy.success());
    let doubled = base.join("merged-doubled");
    let mut three = parts.clone();
    three.push(twice.join(parts[1].file_name().unwrap()));
    let out = merge(&three, &doubled);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing merged: 2 runs found more than once"),
        "{err}"
    );
    assert!(!doubled.join("summary.json").exists());
}

fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/many-hosts")
        .join(name)
}

/// The Slurm and GNU parallel scripts parse (`bash -n`); neither runs on a real cluster here.
#[test]
fn the_scripts_are_valid_bash() {
    for name in ["slurm.sbatch", "parallel.sh"] {
        let out = run(Command::new("bash").arg("-n").arg(recipe(name)));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let slurm = std::fs::read_to_string(recipe("slurm.sbatch")).unwrap();
    assert!(slurm.contains("#SBATCH --array=1-"), "{slurm}");
    assert!(slurm.contains("--shard-from slurm"));
}

/// The Kubernetes Indexed Job is valid YAML with the fields Kubernetes requires, and its part
/// count is its completion count.
#[test]
fn the_kubernetes_job_is_an_indexed_job_with_the_required_fields() {
    let check = r#"
import json, sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
assert len(docs) == 1, "one document"
job = docs[0]
assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job", "a batch/v1 Job"
assert job["metadata"]["name"], "metadata.name"
spec = job["spec"]
assert spec["completionMode"] == "Indexed", "completionMode: Indexed"
assert isinstance(spec["completions"], int) and spec["completions"] >= 1, "completions"
pod = spec["template"]["spec"]
assert pod["restartPolicy"] in ("Never", "OnFailure"), "a Job's restartPolicy"
c = pod["containers"]
assert c and all(x.get("name") and x.get("image") for x in c), "containers: name and image"
mounts = {m["name"] for x in c for m in x.get("volumeMounts", [])}
volumes = {v["name"] for v in pod.get("volumes", [])}
assert mounts <= volumes, "every volumeMount has a volume"
print(json.dumps({"completions": spec["completions"], "command": " ".join(c[0]["command"])}))
"#;
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(recipe("kubernetes-job.yaml"))
        .output()
        .expect("python3 (with PyYAML: apt install python3-yaml) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = v["command"].as_str().unwrap();
    assert!(command.contains("--shard-from kubernetes"), "{command}");
    assert!(
        command.contains(&format!("--shard-count {}", v["completions"])),
        "--shard-count must equal completions: {command}"
    );
    assert!(command.contains("$JOB_COMPLETION_INDEX"), "{command}");
}
