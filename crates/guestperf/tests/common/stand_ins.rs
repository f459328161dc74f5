//! Stand-in stages for gp-batch's bookkeeping tests: shell scripts in a directory that
//! `GUESTPERF_STAGE_DIR` points gp-batch at. gp-launch, gp-sample and gp-plot are the same for
//! every test; each test brings its own gp-collect and the rest of its gp-migrate.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const LAUNCH: &str = "#!/bin/sh\necho '{\"type\":\"stand_in_launch\"}'\n";
const SAMPLE: &str = "#!/bin/sh\nexec cat\n";
/// Writes an empty SVG where gp-batch asks for a chart.
const PLOT: &str = r#"#!/bin/sh
out=
while [ $# -gt 0 ]; do case $1 in --output) out=$2; shift ;; esac; shift; done
echo '<svg xmlns="http://www.w3.org/2000/svg"/>' > "$out"
"#;

/// How every stand-in gp-migrate starts: `$name` is its `--name` (else `default`), and its input
/// is passed on.
const MIGRATE_START: &str = r#"#!/bin/sh
name=default
while [ $# -gt 0 ]; do
    case $1 in --name) name=$2; shift ;; esac
    shift
done
cat
"#;

/// Writes the five stand-in stages into `DIR/stages` and returns that directory. gp-migrate is
/// `migrate_rest` after [`MIGRATE_START`].
pub fn write_stages(dir: &Path, migrate_rest: &str, collect: &str) -> PathBuf {
    let migrate = format!("{MIGRATE_START}{migrate_rest}");
    let stages = dir.join("stages");
    std::fs::create_dir(&stages).unwrap();
    for (name, text) in [
        ("gp-launch", LAUNCH),
        ("gp-sample", SAMPLE),
        ("gp-migrate", &migrate),
        ("gp-collect", collect),
        ("gp-plot", PLOT),
    ] {
        let path = stages.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    stages
}
