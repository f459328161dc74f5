//! Hostile input: the corpus kept in `crates/faults/corpus/` and the inputs too large to keep
//! there, generated.
//!
//! - `bad-lines.ndjson`: one line each that every NDJSON reader must refuse with an error naming
//!   the line (bad JSON, truncated records, wrong types, out-of-range numbers, control
//!   characters, lone surrogates, invalid UTF-8, a BOM, duplicate keys, NaN, trailing garbage).
//! - `odd-lines.ndjson`: one line each that is strange but valid and must pass through verbatim
//!   (unknown types, extra fields, extreme numbers, escapes, 100 KB strings, CRLF).
//! - `reports/bad/*.json`: files gp-plot must refuse with a message naming the file.
//! - `reports/odd/*.json`: strange but valid reports gp-plot must draw (or, without data, refuse
//!   with "holds no data to plot").

use std::path::PathBuf;

/// `crates/faults/corpus`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn lines_of(name: &str) -> Vec<Vec<u8>> {
    let path = dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The lines every reader must refuse.
pub fn bad_lines() -> Vec<Vec<u8>> {
    lines_of("bad-lines.ndjson")
}

/// The lines every reader must accept and filters must pass on unchanged.
pub fn odd_lines() -> Vec<Vec<u8>> {
    lines_of("odd-lines.ndjson")
}

fn files_in(sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir().join(sub))
        .unwrap_or_else(|e| panic!("{sub}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Reports gp-plot must refuse.
pub fn bad_reports() -> Vec<PathBuf> {
    files_in("reports/bad")
}

/// Reports gp-plot must draw.
pub fn odd_reports() -> Vec<PathBuf> {
    files_in("reports/odd")
}

/// A valid record that starts each generated stream: a console line.
pub const GOOD_LINE: &str = r#"{"type":"console","time_s":1.0,"role":"src","line":"good"}"#;

/// Streams too large for the repository, generated: (name, bytes). Each has a good first line;
/// the hostile part is line 2.
pub fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let limit = gp_records::ndjson::MAX_LINE_BYTES;
    let with = |middle: Vec<u8>, tail: bool| {
        let mut v = GOOD_LINE.as_bytes().to_vec();
        v.push(b'\n');
        v.extend(middle);
        if tail {
            v.push(b'\n');
            v.extend_from_slice(GOOD_LINE.as_bytes());
            v.push(b'\n');
        }
        v
    };
    // A record whose string field alone is over the line limit.
    let mut huge_record = br#"{"type":"console","time_s":1,"role":"src","line":""#.to_vec();
    huge_record.extend(std::iter::repeat(b'a').take(limit + 1024));
    huge_record.extend_from_slice(br#""}"#);
    // Nesting far past serde_json's recursion limit, in a field only skipped (unknown type) and
    // in a field parsed into a JSON tree (`progress.info`).
    let deep = |open: &str| {
        let mut v = open.as_bytes().to_vec();
        v.extend(std::iter::repeat(b'[').take(200_000));
        v.extend(std::iter::repeat(b']').take(200_000));
        v.push(b'}');
        v
    };
    vec![
        ("line over the limit", with(huge_record.clone(), true)),
        (
            "line over the limit without a newline",
            with(vec![b'x'; limit + 4096], false),
        ),
        (
            "deep nesting in an unknown record",
            with(deep(r#"{"type":"mystery","x":"#), true),
        ),
        (
            "deep nesting in a known record",
            with(
                deep(r#"{"type":"progress","time_s":1,"role":"src","status":"active","info":"#),
                true,
            ),
        ),
        (
            "a million commas",
            with(
                {
                    let mut v = br#"{"type":"mystery","x":[1"#.to_vec();
                    v.extend(std::iter::repeat(*b",1").take(1_000_000).flatten());
                    v.extend_from_slice(b"]}");
                    v
                },
                true,
            ),
        ),
        (
            "truncated last line",
            with(
                br#"{"type":"vm_exit","time_s":1,"role":"src","pid":4"#.to_vec(),
                false,
            ),
        ),
    ]
}

/// Whether a generated stream's line 2 must be refused (`false`: accepted). Deep nesting in a
/// record of an unknown type is only skipped by the readers, never built, so it is accepted;
/// in a known record it is refused at the parser's recursion limit.
pub fn generated_is_bad(name: &str) -> bool {
    !matches!(
        name,
        "a million commas" | "deep nesting in an unknown record"
    )
}
