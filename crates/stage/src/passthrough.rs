//! The input side of a filter stage: a thread that reads the stream and passes each line on
//! itself, handing the stage's main thread only the lines it has to act on.
//!
//! A line handed from one thread to another wakes both. Most of a run's records are the
//! workload's progress lines, which a filter such as gp-sample only passes on; written by the
//! input thread, each of them costs that thread's wake-up alone. Each line takes one of three
//! [`Route`]s: passed on; passed on and noted for the main thread, which reads its notes when it
//! wakes for something else (gp-migrate's view of the workload); or handed to the main thread,
//! which acts on it (a new VM, a VM's exit) and passes it on itself while the input thread waits,
//! so the output keeps the input's order. A line that cannot be read as a record cannot be passed
//! on as it came: the input thread writes a `stage_error` record naming it in its place, and
//! tells the main thread; after a read that fails, the thread ends as at the end of the input.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use gp_records::ndjson::{Line, ReadError, Reader, WriteError, Writer};
use gp_records::{Record, StageError};

use crate::error_chain;

/// The stage's output, shared by its input thread (passing lines on) and its main thread (its
/// own records). Clones write to the same stream.
pub struct Output<W>(Arc<Mutex<Shared<W>>>);

impl<W> Clone for Output<W> {
    fn clone(&self) -> Self {
        Output(self.0.clone())
    }
}

struct Shared<W> {
    writer: Writer<W>,
    /// False once the main thread has stopped the input: nothing read later goes out.
    passing: bool,
}

impl<W: Write> Output<W> {
    pub fn new(out: W) -> Self {
        Output(Arc::new(Mutex::new(Shared {
            writer: Writer::new(out),
            passing: true,
        })))
    }

    /// The writer, held for as many writes as need to stand together: no input line passes
    /// through in between.
    pub fn lock(&self) -> OutputGuard<'_, W> {
        OutputGuard(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes one record of the stage's own.
    pub fn write(&self, record: &Record) -> Result<(), WriteError> {
        self.lock().write(record)
    }

    /// Stops the input thread passing lines on: nothing from the input follows what the stage
    /// writes after this.
    pub fn stop_input(&self) {
        self.lock().stop_input();
    }
}

/// [`Output::lock`]: the stage's writer, to itself until dropped.
pub struct OutputGuard<'a, W>(MutexGuard<'a, Shared<W>>);

impl<W> OutputGuard<'_, W> {
    /// [`Output::stop_input`], for a last record that nothing from the input may follow.
    pub fn stop_input(&mut self) {
        self.0.passing = false;
    }
}

impl<W: Write> std::ops::Deref for OutputGuard<'_, W> {
    type Target = Writer<W>;
    fn deref(&self) -> &Writer<W> {
        &self.0.writer
    }
}

impl<W: Write> std::ops::DerefMut for OutputGuard<'_, W> {
    fn deref_mut(&mut self) -> &mut Writer<W> {
        &mut self.0.writer
    }
}

/// Where the input thread sends a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the output, and nowhere else.
    Pass,
    /// To the output, then to [`Inputs::noted`].
    PassAndNote,
    /// To the main thread, on [`Inputs::handed`], which passes it on if it should go on.
    Hand,
}

/// The main thread's side of the input thread.
pub struct Inputs {
    /// Lines to act on, in order, and a failed pass. Disconnects when the input has ended and
    /// every line before the end has been passed on, noted or handed over.
    pub handed: Receiver<Input>,
    /// Lines passed on and noted ([`Route::PassAndNote`]), in order; the input thread never
    /// waits for these, so read them whenever is convenient.
    pub noted: Receiver<Line>,
}

/// What the input thread hands the main thread.
pub enum Input {
    /// A line the main thread acts on, and passes on itself if it should go on.
    Line(Box<Handoff>),
    /// A line that is not a record; a `stage_error` record naming it already stands in its
    /// place in the output. A read that failed ([`ReadError::Io`]) is the last input.
    Unreadable(ReadError),
    /// Passing a line on failed (the next stage closed its input, for one); the input thread
    /// has stopped.
    WriteFailed(WriteError),
}

/// One input line the main thread acts on. The input thread waits until `done` is dropped, so
/// what the main thread writes for the line precedes every later input line: keep `done` (bind
/// it, as `let Handoff { line, done: _done } = *handoff;`) until that is written.
pub struct Handoff {
    pub line: Line,
    pub done: Done,
}

/// Lets the input thread go on when dropped (see [`Handoff`]).
pub struct Done(Sender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Starts the thread, named `name`, that reads `input` to its end and sends each line where
/// `route` says. `stage` names the stage in the `stage_error` records that stand in for
/// unreadable lines.
pub fn spawn<R, W>(
    name: &str,
    stage: &'static str,
    input: R,
    out: Output<W>,
    route: impl Fn(&Line) -> Route + Send + 'static,
) -> std::io::Result<Inputs>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let (handed_tx, handed) = unbounded();
    let (noted_tx, noted) = unbounded();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || read(input, stage, &out, route, &handed_tx, &noted_tx))?;
    Ok(Inputs { handed, noted })
}

fn read<R: BufRead, W: Write>(
    input: R,
    stage: &'static str,
    out: &Output<W>,
    route: impl Fn(&Line) -> Route,
    tx: &Sender<Input>,
    noted: &Sender<Line>,
) {
    for line in Reader::new(input) {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                let record = Record::StageError(StageError::new(stage, error_chain(&e)));
                // A read that failed (EIO, say) would fail again: that one is the last.
                let read_failed = matches!(e, ReadError::Io { .. });
                if !pass(out, tx, |w| w.write(&record)) || tx.send(Input::Unreadable(e)).is_err() {
                    return;
                }
                if read_failed {
                    return;
                }
                continue;
            }
        };
        match route(&line) {
            Route::Hand => {
                let (done, handled) = bounded(1);
                let done = Done(done);
                if tx
                    .send(Input::Line(Box::new(Handoff { line, done })))
                    .is_err()
                {
                    return;
                }
                // An error means the hand-off was dropped with the channel: the main thread ended.
                if handled.recv().is_err() {
                    return;
                }
            }
            to => {
                if !pass(out, tx, |w| w.write_raw(&line.raw)) {
                    return;
                }
                if to == Route::PassAndNote && noted.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes to the output unless the main thread has stopped the input; false when the input
/// thread should end (stopped, or the write failed: the failure is handed over).
fn pass<W: Write>(
    out: &Output<W>,
    tx: &Sender<Input>,
    write: impl FnOnce(&mut Writer<W>) -> Result<(), WriteError>,
) -> bool {
    let mut shared = out.0.lock().unwrap_or_else(|e| e.into_inner());
    if !shared.passing {
        return false;
    }
    if let Err(e) = write(&mut shared.writer) {
        shared.passing = false;
        drop(shared);
        let _ = tx.send(Input::WriteFailed(e));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_testkit::SharedBuf;

    const VM: &str = "{\"type\":\"console\",\"time_s\":1,\"role\":\"src\",\"line\":\"wanted\"}";
    const OTHER: &str = "{\"type\":\"console\",\"time_s\":2,\"role\":\"src\",\"line\":\"x\"}";

    fn route(line: &Line) -> Route {
        if line.raw.contains("wanted") {
            Route::Hand
        } else if line.raw.contains("noted") {
            Route::PassAndNote
        } else {
            Route::Pass
        }
    }

    /// The input thread of a stage `gp-test`, routing by [`route`].
    fn start<R, W>(input: R, out: Output<W>) -> Inputs
    where
        R: BufRead + Send + 'static,
        W: Write + Send + 'static,
    {
        spawn("test-input", "gp-test", input, out, route).unwrap()
    }

    #[test]
    fn lines_the_main_thread_writes_keep_their_place() {
        let input = format!("{OTHER}\n{VM}\nnot json\n{OTHER}\n");
        let buf = SharedBuf::default();
        let out = Output::new(buf.clone());
        let rx = start(std::io::Cursor::new(input), out.clone()).handed;
        let mut handed = Vec::new();
        for msg in rx.iter() {
            match msg {
                Input::Line(h) => {
                    // Written late: the input thread must wait for it all the same.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    out.lock().write_raw(&h.line.raw).unwrap();
                    handed.push(h.line.raw.clone());
                }
                Input::Unreadable(e) => handed.push(format!("unreadable: {e}")),
                Input::WriteFailed(e) => panic!("a write failed: {e}"),
            }
        }
        assert_eq!(handed.len(), 2, "{handed:?}");
        assert!(
            handed[1].starts_with("unreadable: input line 3"),
            "{handed:?}"
        );
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!([lines[0], lines[1], lines[3]], [OTHER, VM, OTHER]);
        // The unreadable line's place holds a stage_error naming it.
        let placed = Reader::new(lines[2].as_bytes()).next().unwrap().unwrap();
        let Some(Record::StageError(e)) = placed.record else {
            panic!("no stage_error in the unreadable line's place: {text}")
        };
        assert_eq!(e.stage, "gp-test");
        assert!(
            e.message.starts_with("input line 3: not valid JSON"),
            "{e:?}"
        );
    }

    #[test]
    fn noted_lines_are_passed_on_first_and_never_wait() {
        const NOTED: &str =
            "{\"type\":\"console\",\"time_s\":3,\"role\":\"src\",\"line\":\"noted\"}";
        let input = format!("{NOTED}\n{OTHER}\n{NOTED}\n");
        let buf = SharedBuf::default();
        let inputs = start(std::io::Cursor::new(input), Output::new(buf.clone()));
        // Nobody reads the notes until the input has ended.
        assert!(inputs.handed.recv().is_err());
        assert_eq!(buf.text(), format!("{NOTED}\n{OTHER}\n{NOTED}\n"));
        let noted: Vec<String> = inputs.noted.try_iter().map(|l| l.raw).collect();
        assert_eq!(noted, [NOTED, NOTED]);
    }

    #[test]
    fn after_stop_input_nothing_from_the_input_goes_out() {
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let buf = SharedBuf::default();
        let out = Output::new(buf.clone());
        let rx = start(std::io::BufReader::new(reader), out.clone()).handed;
        writeln!(writer, "{VM}").unwrap();
        let Ok(Input::Line(h)) = rx.recv() else {
            panic!("no hand-off")
        };
        out.stop_input();
        drop(h);
        writeln!(writer, "{OTHER}").unwrap();
        drop(writer);
        // The thread ends without passing the line on.
        assert!(rx.recv().is_err());
        assert_eq!(buf.text(), "");
    }

    #[test]
    fn a_failed_read_is_reported_once_and_ends_the_input() {
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            }
        }
        let buf = SharedBuf::default();
        let rx = start(std::io::BufReader::new(Broken), Output::new(buf.clone())).handed;
        assert!(matches!(
            rx.recv(),
            Ok(Input::Unreadable(ReadError::Io { .. }))
        ));
        assert!(rx.recv().is_err());
        // The stream says why it ends there, with the cause.
        let text = buf.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("\"stage_error\"") && text.contains("reading input line 1: "),
            "{text}"
        );
    }

    #[test]
    fn a_closed_output_is_handed_over_and_ends_the_thread() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let input = format!("{OTHER}\n{OTHER}\n");
        let rx = start(std::io::Cursor::new(input), Output::new(Closed)).handed;
        assert!(matches!(
            rx.recv(),
            Ok(Input::WriteFailed(WriteError::Closed))
        ));
        assert!(rx.recv().is_err());
    }
}
