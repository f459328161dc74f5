//! Writing the report: to stdout, or atomically to a file (a temp file in the same directory,
//! flushed and fsynced, then renamed over the target), so a crash never leaves half a report.
//!
//! A target that is not a regular file (`/dev/stdout`, a FIFO, a device) is written in place:
//! renaming over it would replace the device node or the pipe with a file. A symlink is followed,
//! so the file it points to is replaced and the link is kept. A new file gets the mode the umask
//! allows (0666 less the umask); a replaced file keeps its mode.
//!
//! When the report cannot be written where it was asked for (a read-only or missing directory,
//! a full disk, a closed stdout), it is not dropped: [`deliver`] saves it to a private file in
//! the fallback directory (`~/.cache/guestperf/unsaved-reports`), else the temp directory, and
//! the error says where it went.

use std::fs::{OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gp_records::report::Report;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("writing the report to stdout")]
    Stdout(#[source] io::Error),
    #[error("creating a temporary file in {} for the report (is the directory writable?)", dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the report to {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The report could not go where it was asked for, and was saved elsewhere.
    #[error("the report was saved to {} instead", saved_to.display())]
    Saved {
        #[source]
        failed: Box<OutputError>,
        saved_to: PathBuf,
    },
    /// Nowhere would take the report.
    #[error("the report is lost: saving it elsewhere failed too ({fallback})")]
    Lost {
        #[source]
        failed: Box<OutputError>,
        fallback: String,
    },
}

fn serialize<W: Write>(report: &Report, pretty: bool, mut w: W) -> Result<W, io::Error> {
    let r = if pretty {
        serde_json::to_writer_pretty(&mut w, report)
    } else {
        serde_json::to_writer(&mut w, report)
    };
    r.map_err(io::Error::other)?;
    w.write_all(b"\n")?;
    w.flush()?;
    Ok(w)
}

/// The process umask, from `/proc/self/status` through procfs (reading it with umask(2) would
/// change it); 022 where the kernel does not report it.
fn umask() -> u32 {
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.umask)
        .unwrap_or(0o022)
}

/// Writes `report` to `path` atomically, or to `stdout` when `path` is `None`.
pub fn write_report<W: Write>(
    report: &Report,
    path: Option<&Path>,
    pretty: bool,
    stdout: W,
) -> Result<(), OutputError> {
    let Some(path) = path else {
        serialize(report, pretty, BufWriter::with_capacity(1 << 16, stdout))
            .map_err(OutputError::Stdout)?;
        return Ok(());
    };
    let werr = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Follow a symlink to what it names; write a device or a pipe in place.
    let target = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            let file = OpenOptions::new().write(true).open(path).map_err(werr)?;
            serialize(report, pretty, BufWriter::with_capacity(1 << 16, file)).map_err(werr)?;
            return Ok(());
        }
        Ok(meta) if meta.is_file() => {
            let real = std::fs::canonicalize(path).map_err(werr)?;
            Some((real, meta.permissions().mode() & 0o7777))
        }
        _ => None,
    };
    let (target, mode) = match target {
        Some((real, mode)) => (real, mode),
        None => (path.to_path_buf(), 0o666 & !umask()),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".gp-collect-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|source| OutputError::Create {
            dir: dir.clone(),
            source,
        })?;
    let file = serialize(
        report,
        pretty,
        BufWriter::with_capacity(1 << 16, tmp.as_file()),
    )
    .map_err(werr)?;
    drop(file);
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    // The temp file is removed if anything above failed (dropped), or renamed here.
    tmp.persist(&target).map_err(|e| werr(e.error))?;
    Ok(())
}

/// The directory reports that could not be written are saved to: `unsaved-reports` in the
/// guestperf cache (`$GUESTPERF_CACHE`, `$XDG_CACHE_HOME/guestperf`, `~/.cache/guestperf`).
pub fn fallback_dir() -> PathBuf {
    gp_qemu::paths::cache_dir().join("unsaved-reports")
}

/// Saves `report` to a new private file (mode 0600, a name nobody can predict or pre-create)
/// in `dir`, then in the temp directory. Returns its path, or what went wrong in both.
fn save_elsewhere(report: &Report, dir: &Path) -> Result<PathBuf, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let prefix = format!("gp-collect-report-{stamp}-{}-", std::process::id());
    let mut errors = Vec::new();
    for dir in [dir.to_path_buf(), std::env::temp_dir()] {
        let attempt = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix(&prefix)
                    .suffix(".json")
                    .tempfile_in(&dir)
            })
            .and_then(|tmp| {
                serialize(report, false, BufWriter::new(tmp.as_file()))?;
                tmp.as_file().sync_all()?;
                tmp.keep().map(|(_, path)| path).map_err(|e| e.error)
            });
        match attempt {
            Ok(path) => return Ok(path),
            Err(e) => errors.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(errors.join("; "))
}

/// Writes the report where it was asked for; if that fails, saves it with [`save_elsewhere`]
/// in `fallback` (or the temp directory) and returns an error that says where it went.
pub fn deliver<W: Write>(
    report: &Report,
    path: Option<&Path>,
    pretty: bool,
    stdout: W,
    fallback: &Path,
) -> Result<(), OutputError> {
    let failed = match write_report(report, path, pretty, stdout) {
        Ok(()) => return Ok(()),
        Err(e) => Box::new(e),
    };
    match save_elsewhere(report, fallback) {
        Ok(saved_to) => Err(OutputError::Saved { failed, saved_to }),
        Err(fallback) => Err(OutputError::Lost { failed, fallback }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_records::report::Report;

    fn tiny_report() -> Report {
        crate::Collector::new().finish("end of input", "test")
    }

    #[test]
    fn atomic_file_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_report(&tiny_report(), Some(&path), true, io::sink()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.scenario.name, "unknown");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.json")]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_symlink_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_report(&tiny_report(), Some(&link), false, io::sink()).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let back: Report = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
        assert_eq!(back.scenario.name, "unknown");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_device_is_written_in_place_not_replaced() {
        // /dev/null takes the report; it must still be a character device afterwards.
        write_report(
            &tiny_report(),
            Some(Path::new("/dev/null")),
            false,
            io::sink(),
        )
        .unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn unwritable_directory_names_it() {
        let err = write_report(
            &tiny_report(),
            Some(Path::new("/nonexistent/dir/r.json")),
            false,
            io::sink(),
        )
        .unwrap_err();
        let text = gp_stage::error_chain(&err);
        assert!(
            text.starts_with(
                "creating a temporary file in /nonexistent/dir for the report (is the directory \
                 writable?): No such file or directory"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_report_that_cannot_be_written_is_saved_elsewhere_and_the_error_says_where() {
        let fallback = tempfile::tempdir().unwrap();
        let err = deliver(
            &tiny_report(),
            Some(Path::new("/nonexistent/dir/r.json")),
            false,
            io::sink(),
            fallback.path(),
        )
        .unwrap_err();
        let OutputError::Saved { saved_to, .. } = &err else {
            panic!("not saved: {err}");
        };
        assert!(saved_to.starts_with(fallback.path()), "{err}");
        // Each layer once: where it went, what failed, why.
        let text = gp_stage::error_chain(&err);
        let want = format!(
            "the report was saved to {} instead: creating a temporary file in /nonexistent/dir \
             for the report (is the directory writable?): No such file or directory (os error 2)",
            saved_to.display()
        );
        assert!(text.starts_with(&want), "{text}");
        let back: Report =
            serde_json::from_str(&std::fs::read_to_string(saved_to).unwrap()).unwrap();
        assert_eq!(back.scenario.name, "unknown");
        let mode = std::fs::metadata(saved_to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_closed_stdout_is_saved_elsewhere_too() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let fallback = tempfile::tempdir().unwrap();
        let err = deliver(&tiny_report(), None, false, Closed, fallback.path()).unwrap_err();
        assert!(matches!(err, OutputError::Saved { .. }), "{err}");
        let text = gp_stage::error_chain(&err);
        assert!(
            text.ends_with("instead: writing the report to stdout: broken pipe"),
            "{text}"
        );
    }
}
