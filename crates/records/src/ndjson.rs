//! Reading and writing the NDJSON stream.
//!
//! [`Reader`] yields every input line verbatim with its parsed [`Record`] (or `None` for a type
//! this version does not know), so filter stages pass lines through untouched. [`Writer`]
//! flushes after every line, so records reach the next stage as they are produced, and reports
//! a closed pipe as [`WriteError::Closed`] rather than panicking.

use std::io::{self, BufRead, Read, Write};

use serde::Deserialize;
use thiserror::Error;

use crate::Record;

/// Longest line a reader accepts, in bytes. Longer lines are an error, not unbounded memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A line that could not be read as a record. The message names the line, not the stage: the
/// reading stage's `main` adds its own name once (see `gp_stage::error_chain`).
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("input line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("reading input line {line}")]
    Io {
        line: u64,
        #[source]
        source: io::Error,
    },
}

impl ReadError {
    /// The 1-based number of the line the error is about.
    pub fn line(&self) -> u64 {
        match self {
            ReadError::Malformed { line, .. } | ReadError::Io { line, .. } => *line,
        }
    }
}

/// One input line: its 1-based number, its text (without the newline), and the record it holds,
/// if its `type` is one this version knows.
#[derive(Debug, Clone)]
pub struct Line {
    pub number: u64,
    pub raw: String,
    pub record: Option<Record>,
}

#[derive(Deserialize)]
struct TypeTag<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
}

/// Parses one line. `Ok(None)` for a well-formed object of an unknown `type`.
pub fn parse_line(raw: &str) -> Result<Option<Record>, String> {
    let tag: TypeTag<'_> = serde_json::from_str(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            format!("not a record: expected a JSON object with a string \"type\" field ({e})")
        }
        _ => format!("not valid JSON ({e})"),
    })?;
    if !Record::is_known_type(&tag.ty) {
        return Ok(None);
    }
    // Dispatch on the tag and parse the variant's struct directly (it ignores the "type" field):
    // deserializing the internally tagged `Record` would buffer every line into an intermediate
    // tree first, which costs about as much as the parse itself.
    fn variant<'a, T: Deserialize<'a>>(
        raw: &'a str,
        f: fn(T) -> Record,
    ) -> serde_json::Result<Record> {
        serde_json::from_str::<T>(raw).map(f)
    }
    let parsed = match &*tag.ty {
        "launch" => variant(raw, Record::Launch),
        "vm" => variant(raw, Record::Vm),
        "vm_exit" => variant(raw, Record::VmExit),
        "guest_start" => variant(raw, Record::GuestStart),
        "guest_progress" => variant(raw, Record::GuestProgress),
        "guest_warm" => variant(raw, Record::GuestWarm),
        "guest_gb" => variant(raw, Record::GuestGb),
        "console" => variant(raw, Record::Console),
        "cpu_sample" => variant(raw, Record::CpuSample),
        "scenario" => variant(raw, Record::Scenario),
        "progress" => variant(raw, Record::Progress),
        "qmp_event" => variant(raw, Record::QmpEvent),
        "qemu_trace" => variant(raw, Record::QemuTrace),
        "dirty_rate" => variant(raw, Record::DirtyRate),
        "action" => variant(raw, Record::Action),
        "result" => variant(raw, Record::Result),
        "clock_offset" => variant(raw, Record::ClockOffset),
        "stage_error" => variant(raw, Record::StageError),
        _ => serde_json::from_str::<Record>(raw),
    };
    parsed
        .map(Some)
        .map_err(|e| format!("bad \"{}\" record: {e}", tag.ty))
}

/// Reads records line by line. Blank lines are skipped (but counted).
pub struct Reader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader {
            input,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// Number of the last line read.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    fn malformed(&self, message: String) -> ReadError {
        ReadError::Malformed {
            line: self.line,
            message,
        }
    }

    /// Reads the next line into `self.buf`, at most [`MAX_LINE_BYTES`]. Returns false at EOF.
    fn read_raw(&mut self) -> Result<bool, ReadError> {
        self.buf.clear();
        self.line += 1;
        let limit = (MAX_LINE_BYTES + 1) as u64;
        let n = self
            .input
            .by_ref()
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ReadError::Io {
                line: self.line,
                source,
            })?;
        if n == 0 {
            self.line -= 1;
            return Ok(false);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE_BYTES {
            // Drain the rest of the oversized line so the stream stays in sync, then refuse it.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let n = self
                    .input
                    .by_ref()
                    .take(1 << 20)
                    .read_until(b'\n', &mut sink)
                    .map_err(|source| ReadError::Io {
                        line: self.line,
                        source,
                    })?;
                if n == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            return Err(self.malformed(format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(true)
    }

    /// The next non-blank line, `None` at end of input.
    pub fn next_line(&mut self) -> Option<Result<Line, ReadError>> {
        loop {
            match self.read_raw() {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let raw = match std::str::from_utf8(&self.buf) {
                Ok(s) => s.to_string(),
                Err(e) => return Some(Err(self.malformed(format!("not UTF-8 ({e})")))),
            };
            return Some(match parse_line(&raw) {
                Ok(record) => Ok(Line {
                    number: self.line,
                    raw,
                    record,
                }),
                Err(message) => Err(self.malformed(message)),
            });
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Line, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_line()
    }
}

/// Writing failed.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The reader went away (EPIPE): downstream closed its input. Not a bug; stop producing.
    #[error("output closed by the next stage")]
    Closed,
    #[error("writing output")]
    Io(#[source] io::Error),
    #[error("serializing a record")]
    Json(#[source] serde_json::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            WriteError::Closed
        } else {
            WriteError::Io(e)
        }
    }
}

/// Writes one record per line and flushes after each.
pub struct Writer<W> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            buf: Vec::with_capacity(512),
        }
    }

    /// Writes a record as one line.
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record).map_err(WriteError::Json)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(())
    }

    /// Writes a line passed through from the input, unchanged.
    pub fn write_raw(&mut self, line: &str) -> Result<(), WriteError> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Console, Role};

    fn read_all(input: &str) -> Vec<Result<Line, ReadError>> {
        Reader::new(input.as_bytes()).collect()
    }

    #[test]
    fn known_unknown_and_blank_lines() {
        let input = "{\"type\":\"console\",\"time_s\":1.5,\"role\":\"src\",\"line\":\"hi\"}\n\
                     \n{\"type\":\"from_the_future\",\"x\":1}\n";
        let lines = read_all(input);
        assert_eq!(lines.len(), 2);
        let first = lines[0].as_ref().unwrap();
        assert_eq!(first.number, 1);
        assert_eq!(
            first.record,
            Some(Record::Console(Console {
                time_s: 1.5,
                role: Role::Src,
                line: "hi".into()
            }))
        );
        let second = lines[1].as_ref().unwrap();
        assert_eq!(second.number, 3);
        assert!(second.record.is_none());
        assert_eq!(second.raw, "{\"type\":\"from_the_future\",\"x\":1}");
    }

    #[test]
    fn malformed_lines_name_the_line_and_no_stage() {
        let lines = read_all("{\"type\":\"vm_exit\"}\nnot json\n[1,2]\n{\"no_type\":1}\n");
        let msgs: Vec<String> = lines
            .into_iter()
            .map(|l| l.unwrap_err().to_string())
            .collect();
        assert!(
            msgs[0].starts_with("input line 1: bad \"vm_exit\" record"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].starts_with("input line 2: not valid JSON"),
            "{}",
            msgs[1]
        );
        assert!(msgs[2].contains("line 3: not a record"), "{}", msgs[2]);
        assert!(msgs[3].contains("line 4: not a record"), "{}", msgs[3]);
    }

    #[test]
    fn oversized_line_is_refused_and_reading_goes_on() {
        let mut input = "x".repeat(MAX_LINE_BYTES + 10);
        input.push('\n');
        input.push_str("{\"type\":\"mystery\"}\n");
        let lines = read_all(&input);
        assert_eq!(lines.len(), 2);
        assert!(lines[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("longer than"));
        assert_eq!(lines[1].as_ref().unwrap().number, 2);
    }

    #[test]
    fn truncated_last_line_without_newline_is_read() {
        let lines = read_all("{\"type\":\"mystery\"}");
        assert_eq!(lines.len(), 1);
        assert!(lines[0].is_ok());
    }

    #[test]
    fn non_utf8_is_an_error() {
        let lines: Vec<_> = Reader::new(&b"\xff\xfe\n"[..]).collect();
        assert!(lines[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
    }

    #[test]
    fn writer_maps_broken_pipe_to_closed() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Writer::new(Broken);
        assert!(matches!(w.write_raw("{}"), Err(WriteError::Closed)));
    }
}
