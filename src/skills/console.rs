//! A skill's log: its `log` host calls and whatever it writes to stdout and stderr, kept in one
//! bounded buffer per call. Past the bound, output is dropped silently (never a trap: a chatty
//! skill must not fail because of its prints).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Most bytes of log one call keeps.
pub const MAX_LOG_BYTES: usize = 16 * 1024;

/// One call's log, shared by the host's `log` and the WASI output streams.
#[derive(Clone, Default)]
pub struct Console {
    text: Arc<Mutex<String>>,
}

impl Console {
    /// Appends `line` (up to the bound, cut on a character boundary).
    pub fn push(&self, line: &str) {
        let mut text = self.text.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_LOG_BYTES.saturating_sub(text.len());
        text.push_str(&line[..line.floor_char_boundary(room)]);
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A stream for stdout or stderr whose bytes land here.
    pub fn stream(&self) -> ConsoleStream {
        ConsoleStream(self.clone())
    }
}

/// stdout or stderr of a skill.
#[derive(Clone)]
pub struct ConsoleStream(Console);

impl IsTerminal for ConsoleStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ConsoleStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ConsoleStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.0.push(&String::from_utf8_lossy(&bytes));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ConsoleStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for ConsoleStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.push(&String::from_utf8_lossy(buf));
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_never_splits_a_character() {
        let console = Console::default();
        let mut stream = console.stream();
        for _ in 0..MAX_LOG_BYTES {
            OutputStream::write(&mut stream, Bytes::from_static("é".as_bytes())).unwrap();
        }
        let text = console.text();
        assert!(text.len() <= MAX_LOG_BYTES);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
