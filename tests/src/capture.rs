//! `CapturedLog`: a writer that keeps what a proxy writes to it (its access log), for tests
//! that read the lines back.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Keeps every byte written to it; clones share the same buffer.
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The lines written so far that parse as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
