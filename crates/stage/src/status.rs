//! The one live status line on a terminal: redrawn in place at the bottom of stderr while other
//! lines scroll above it; nothing at all when stderr is not a terminal (a log file, CI), so logs
//! never fill with redraws.

use std::io::{IsTerminal, Write};

/// Erases the current terminal line and returns the cursor to its start.
const ERASE: &str = "\r\x1b[2K";

/// A status line on a writer (stderr in the tools, a buffer in tests).
pub struct StatusLine {
    out: Box<dyn Write + Send>,
    live: bool,
    shown: bool,
}

impl std::fmt::Debug for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusLine")
            .field("live", &self.live)
            .field("shown", &self.shown)
            .finish_non_exhaustive()
    }
}

impl StatusLine {
    /// On stderr, live only when stderr is a terminal and `TERM` is not `dumb`.
    pub fn stderr() -> StatusLine {
        let live =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        StatusLine::new(Box::new(std::io::stderr()), live)
    }

    /// On `out`; `live` draws the line (give true only when `out` is a terminal).
    pub fn new(out: Box<dyn Write + Send>, live: bool) -> StatusLine {
        StatusLine {
            out,
            live,
            shown: false,
        }
    }

    /// Whether the line is drawn at all.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Replaces the status line with `text`, cut to the terminal's width.
    pub fn show(&mut self, text: &str) {
        if !self.live {
            return;
        }
        let width = terminal_width().unwrap_or(100).saturating_sub(1).max(20);
        let text: String = text.chars().take(width).collect();
        let _ = write!(self.out, "{ERASE}{text}");
        let _ = self.out.flush();
        self.shown = true;
    }

    /// Removes the status line, if shown.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "{ERASE}");
            let _ = self.out.flush();
            self.shown = false;
        }
    }

    /// Prints `line` above the status line (which the caller redraws with [`show`](Self::show)).
    pub fn println(&mut self, line: &str) {
        self.clear();
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Columns of the terminal on stderr, if it is one.
fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some(ws.ws_col as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use gp_testkit::SharedBuf as Buf;

    #[test]
    fn not_live_writes_only_the_lines() {
        let buf = Buf::default();
        let mut s = StatusLine::new(Box::new(buf.clone()), false);
        s.show("1/2");
        s.println("a note");
        s.show("2/2");
        drop(s);
        assert_eq!(buf.text(), "a note\n");
    }

    #[test]
    fn live_erases_before_each_line_and_at_the_end() {
        let buf = Buf::default();
        let mut s = StatusLine::new(Box::new(buf.clone()), true);
        s.show("1/2");
        s.println("a note");
        s.show("2/2");
        drop(s);
        assert_eq!(
            buf.text(),
            "\r\x1b[2K1/2\r\x1b[2Ka note\n\r\x1b[2K2/2\r\x1b[2K"
        );
    }
}
