//! Writing lines: each line is one write(2) on fd 1, so lines of different threads never
//! interleave (the tty layer serializes whole writes; a pipe keeps writes up to 4 KiB whole).

use std::io;

use gp_records::stress::StressLine;

/// Writes `text` and a newline with one write(2) on fd 1 (retrying only the unwritten rest of a
/// short write).
pub fn write_line(text: &str) -> io::Result<()> {
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
    let mut done = 0;
    while done < buf.len() {
        let rest = &buf[done..];
        // SAFETY: writing from a live buffer of the given length.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Prints one `@gp` line. On a host, a closed stdout (`stress | head`) ends the process quietly
/// and any other write error ends it with a message; as PID 1 output errors are ignored (there
/// is nowhere else to say anything).
pub fn emit(line: &StressLine) {
    if let Err(e) = write_line(&line.to_string()) {
        if crate::system::is_pid1() {
            return;
        }
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("stress: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
