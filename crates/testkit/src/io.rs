//! A writer whose bytes a test reads back while the code under test still owns it (a boxed
//! `dyn Write` given to a status line or a progress display).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Clones share one buffer: give one away, read what it got with [`SharedBuf::text`].
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Everything written so far, as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
