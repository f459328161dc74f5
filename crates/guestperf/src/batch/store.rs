//! The batch's output directory: where each run's files go, what is already done, and how files
//! are written so that a killed batch never leaves half a file.
//!
//! ```text
//! DIR/COMPARISON/SCENARIO.json            run 1 (the original guestperf-batch layout)
//! DIR/COMPARISON/SCENARIO.rK.json         run K of --repeat N, K = 2..N
//! DIR/COMPARISON/SCENARIO.skipped.json    why the scenario was not run
//! DIR/COMPARISON/SCENARIO[.rK].error.json why a run failed (retried by the next batch)
//! DIR/COMPARISON/COMPARISON.svg           the comparison chart
//! DIR/summary.json, DIR/summary.md        the summary
//! DIR/shard-K-of-N.json                   which part of the selection DIR holds (--shard)
//! DIR/merge.json                          what a --merge found
//! DIR/.gp-batch.lock                      held while a batch runs on DIR
//! ```
//!
//! An A/B (`--ab-a`, `--ab-b`) writes one such directory per arm, `DIR/a` and `DIR/b`, with
//! `DIR/ab.json` (the arms) and gp-compare's `DIR/compare/`.
//!
//! Every file is written to a hidden temporary file in the same directory and renamed into
//! place, so a file that exists is complete. A run is done when its result file exists.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of temporary files; leftovers from a killed batch are removed at start.
pub const TEMP_PREFIX: &str = ".gp-tmp-";

/// The output directory of a batch.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A run's place: comparison, scenario, run number (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    pub comparison: String,
    pub scenario: String,
    pub run: u32,
}

impl RunId {
    pub fn new(comparison: &str, scenario: &str, run: u32) -> Self {
        RunId {
            comparison: comparison.into(),
            scenario: scenario.into(),
            run,
        }
    }

    /// `COMPARISON/SCENARIO` or `COMPARISON/SCENARIO#K` for K > 1.
    pub fn label(&self) -> String {
        if self.run == 1 {
            format!("{}/{}", self.comparison, self.scenario)
        } else {
            format!("{}/{}#{}", self.comparison, self.scenario, self.run)
        }
    }

    fn stem(&self) -> String {
        if self.run == 1 {
            self.scenario.clone()
        } else {
            format!("{}.r{}", self.scenario, self.run)
        }
    }
}

/// Why a scenario was skipped, as written to `SCENARIO.skipped.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub comparison: String,
    pub scenario: String,
    pub reason: String,
    /// Who decided: `probe` (asked QEMU before running), `gp-migrate` (refused with status 6)
    /// or `host` (no RDMA device, not enough memory).
    pub decided_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    pub time_s: f64,
}

/// Why a run failed, as written to `SCENARIO[.rK].error.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub comparison: String,
    pub scenario: String,
    pub run: u32,
    /// The failing stage, when a stage failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Its exit status (128 + N for signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    pub message: String,
    pub time_s: f64,
    /// Whatever gp-collect wrote before the failure (it includes the stages' `stage_error`s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// The output directory is in use by another batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use {path} as the output directory")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "another gp-batch is writing to {0} (it holds .gp-batch.lock); wait for it or use \
         another --output"
    )]
    Busy(String),
}

/// Held while the batch runs; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory, takes the lock and removes temporary files a killed batch left.
    pub fn open(&self) -> Result<DirLock, StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.root.display().to_string(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(io_err)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".gp-batch.lock"))
            .map_err(io_err)?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(StoreError::Busy(self.root.display().to_string()));
        }
        self.remove_temporaries().map_err(io_err)?;
        Ok(DirLock { _file: file })
    }

    fn remove_temporaries(&self) -> io::Result<()> {
        for dir in std::iter::once(self.root.clone()).chain(subdirs(&self.root)?) {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    pub fn comparison_dir(&self, comparison: &str) -> PathBuf {
        self.root.join(comparison)
    }

    pub fn result_path(&self, id: &RunId) -> PathBuf {
        self.comparison_dir(&id.comparison)
            .join(format!("{}.json", id.stem()))
    }

    pub fn error_path(&self, id: &RunId) -> PathBuf {
        self.comparison_dir(&id.comparison)
            .join(format!("{}.error.json", id.stem()))
    }

    pub fn skipped_path(&self, comparison: &str, scenario: &str) -> PathBuf {
        self.comparison_dir(comparison)
            .join(format!("{scenario}.skipped.json"))
    }

    pub fn chart_path(&self, comparison: &str, extension: &str) -> PathBuf {
        self.comparison_dir(comparison)
            .join(format!("{comparison}.{extension}"))
    }

    /// Whether run `id` has a result.
    pub fn is_done(&self, id: &RunId) -> bool {
        self.result_path(id).is_file()
    }

    /// Every run number with a result for this scenario, ascending (any number of them: a
    /// batch with a larger --repeat may have written more than this one asks for).
    pub fn finished_runs(&self, comparison: &str, scenario: &str) -> Vec<u32> {
        let mut runs = Vec::new();
        let Ok(entries) = fs::read_dir(self.comparison_dir(comparison)) else {
            return runs;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem == scenario {
                runs.push(1);
            } else if let Some(k) = stem
                .strip_prefix(scenario)
                .and_then(|rest| rest.strip_prefix(".r"))
                .and_then(|k| k.parse::<u32>().ok())
            {
                if k >= 2 {
                    runs.push(k);
                }
            }
        }
        runs.sort_unstable();
        runs
    }

    pub fn read_skipped(&self, comparison: &str, scenario: &str) -> Option<Skipped> {
        let text = fs::read_to_string(self.skipped_path(comparison, scenario)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn read_error(&self, id: &RunId) -> Option<RunError> {
        let text = fs::read_to_string(self.error_path(id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// A new temporary file in the comparison's directory, to be [`Store::persist`]ed.
    pub fn temp_file(&self, comparison: &str) -> io::Result<tempfile::NamedTempFile> {
        self.temp_in(&self.comparison_dir(comparison), "")
    }

    /// A temporary file in `dir` ending in `suffix`, readable by all as results normally are
    /// (the temporary-file default is owner-only).
    pub fn temp_in(&self, dir: &Path, suffix: &str) -> io::Result<tempfile::NamedTempFile> {
        fs::create_dir_all(dir)?;
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(suffix)
            .tempfile_in(dir)?;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        Ok(temp)
    }

    /// Makes a finished temporary file the file at `path`, atomically.
    pub fn persist(&self, temp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Writes `bytes` to `path` atomically (temporary file + rename).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let mut temp = self.temp_in(dir, "")?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.write_atomic(path, &bytes)
    }
}

fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_original_for_run_one() {
        let store = Store::new("/out");
        let r1 = RunId::new("post-copy-iters", "post-copy-iters-1", 1);
        let r3 = RunId::new("post-copy-iters", "post-copy-iters-1", 3);
        assert_eq!(
            store.result_path(&r1),
            Path::new("/out/post-copy-iters/post-copy-iters-1.json")
        );
        assert_eq!(
            store.result_path(&r3),
            Path::new("/out/post-copy-iters/post-copy-iters-1.r3.json")
        );
        assert_eq!(
            store.error_path(&r3),
            Path::new("/out/post-copy-iters/post-copy-iters-1.r3.error.json")
        );
        assert_eq!(
            store.skipped_path("compr-mt", "compr-mt-threads-1"),
            Path::new("/out/compr-mt/compr-mt-threads-1.skipped.json")
        );
        assert_eq!(
            store.chart_path("compr-mt", "svg"),
            Path::new("/out/compr-mt/compr-mt.svg")
        );
        assert_eq!(r1.label(), "post-copy-iters/post-copy-iters-1");
        assert_eq!(r3.label(), "post-copy-iters/post-copy-iters-1#3");
    }

    #[test]
    fn finished_runs_sees_every_run_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let _lock = store.open().unwrap();
        for name in [
            "s-1.json",
            "s-1.r2.json",
            "s-1.r10.json",
            "s-1.error.json",
            "s-1.r3.error.json",
            "s-1.skipped.json",
            "s-10.json",
            "s-1.rx.json",
        ] {
            store
                .write_atomic(&store.comparison_dir("c").join(name), b"{}")
                .unwrap();
        }
        assert_eq!(store.finished_runs("c", "s-1"), [1, 2, 10]);
        assert_eq!(store.finished_runs("c", "s-10"), [1]);
        assert!(store.finished_runs("missing", "s-1").is_empty());
        assert!(store.is_done(&RunId::new("c", "s-1", 2)));
        assert!(!store.is_done(&RunId::new("c", "s-1", 3)));
    }

    #[test]
    fn open_removes_leftover_temporaries_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("out"));
        {
            let _lock = store.open().unwrap();
            let temp = store.temp_file("c").unwrap();
            // A killed batch leaves its temporary file behind.
            let (_, path) = temp.keep().unwrap();
            assert!(path.exists());
            // While one batch holds the directory, another is refused.
            let err = Store::new(dir.path().join("out")).open().unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("another gp-batch is writing to"),
                "{err}"
            );
        }
        let _lock = store.open().unwrap();
        let left: Vec<_> = fs::read_dir(store.comparison_dir("c")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn persist_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let id = RunId::new("c", "s", 1);
        let mut temp = store.temp_file("c").unwrap();
        temp.write_all(b"{\"half\":").unwrap();
        assert!(!store.is_done(&id), "a temporary file is not a result");
        drop(temp);
        assert!(!store.is_done(&id));
        let mut temp = store.temp_file("c").unwrap();
        temp.write_all(b"{}").unwrap();
        store.persist(temp, &store.result_path(&id)).unwrap();
        assert!(store.is_done(&id));
        assert_eq!(fs::read_to_string(store.result_path(&id)).unwrap(), "{}");
        let mode = store
            .result_path(&id)
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "results are readable by all");
    }

    #[test]
    fn skipped_and_error_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let skipped = Skipped {
            comparison: "compr-mt".into(),
            scenario: "compr-mt-threads-1".into(),
            reason: "no compress".into(),
            decided_by: "probe".into(),
            qemu_version: Some("10.0.2".into()),
            time_s: 1.5,
        };
        store
            .write_json(
                &store.skipped_path("compr-mt", "compr-mt-threads-1"),
                &skipped,
            )
            .unwrap();
        assert_eq!(
            store.read_skipped("compr-mt", "compr-mt-threads-1"),
            Some(skipped)
        );
        let id = RunId::new("c", "s", 2);
        let err = RunError {
            comparison: "c".into(),
            scenario: "s".into(),
            run: 2,
            stage: Some("gp-launch".into()),
            status: Some(1),
            message: "boom".into(),
            time_s: 2.0,
            report: None,
        };
        store.write_json(&store.error_path(&id), &err).unwrap();
        assert_eq!(store.read_error(&id), Some(err));
    }
}
