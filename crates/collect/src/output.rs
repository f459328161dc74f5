//! Writing the report: to stdout, or atomically to a file (a temp file in the same directory,
//! flushed and fsynced, then renamed over the target), so a crash never leaves half a report.

use std::fs::Permissions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gp_records::report::Report;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum OutputError {
    #[error("writing the report to stdout: {0}")]
    Stdout(#[source] io::Error),
    #[error(
        "creating a temporary file in {dir} for the report (is the directory writable?): {source}"
    )]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the report to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("serializing the report: {0}")]
    Json(#[source] serde_json::Error),
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
    let dir = match path.parent() {
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
    let werr = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = serialize(
        report,
        pretty,
        BufWriter::with_capacity(1 << 16, tmp.as_file()),
    )
    .map_err(werr)?;
    drop(file);
    tmp.as_file()
        .set_permissions(Permissions::from_mode(0o644))
        .map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    // The temp file is removed if anything above failed (dropped), or renamed here.
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
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
        std::fs::write(&path, "old").unwrap();
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
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn unwritable_directory_names_it() {
        let err = write_report(
            &tiny_report(),
            Some(Path::new("/nonexistent/dir/r.json")),
            false,
            io::sink(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/dir"), "{err}");
    }
}
