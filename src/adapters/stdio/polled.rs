//! stdin and stdout of any kind (pipe, FIFO, socket, terminal, file), each served by a thread of
//! its own that waits with poll(2) before every read and write.
//!
//! Waiting first is what makes every kind work: a descriptor we inherited may be non-blocking
//! (shared with a parent that set O_NONBLOCK, or set by an earlier attempt to drive it from the
//! reactor), where a plain read or write fails with EAGAIN; and a FIFO that no writer has opened
//! yet reads as end-of-file, whereas poll(2) waits until a writer has come (and reports the
//! hang-up only once every writer has gone). Flags are never changed: the descriptors may be
//! shared with other processes (a terminal with the shell).

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

/// How many chunks may wait between a thread and the session, each way.
const QUEUE: usize = 16;
const READ_CHUNK: usize = 64 * 1024;

/// Blocks until `fd` is ready for `events` (or has hung up or failed: the next read or write
/// says which). A would-block read or write comes back here instead of ending the session.
fn wait_ready(fd: &File, events: libc::c_short) -> io::Result<()> {
    let mut poll_fd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for a descriptor this thread owns, and no timeout.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, -1) };
        if ready >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn retry(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted)
}

/// The read half: chunks read by the `agentos-stdin` thread. The thread ends at end-of-file or
/// at the first error (which the session reads), or when the session drops this reader while
/// the thread waits to hand over a chunk.
pub struct PolledReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl PolledReader {
    pub fn spawn(fd: OwnedFd) -> io::Result<Self> {
        let (sender, chunks) = mpsc::channel(QUEUE);
        let file = File::from(fd);
        std::thread::Builder::new()
            .name("agentos-stdin".into())
            .spawn(move || read_loop(file, sender))?;
        Ok(Self {
            chunks,
            chunk: Vec::new(),
            at: 0,
        })
    }
}

fn read_loop(mut file: File, sender: mpsc::Sender<io::Result<Vec<u8>>>) {
    let mut buffer = vec![0; READ_CHUNK];
    loop {
        let read = wait_ready(&file, libc::POLLIN).and_then(|()| file.read(&mut buffer));
        let chunk = match read {
            Ok(0) => return,
            Ok(n) => Ok(buffer[..n].to_vec()),
            Err(error) if retry(&error) => continue,
            Err(error) => Err(error),
        };
        let failed = chunk.is_err();
        if sender.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}

impl AsyncRead for PolledReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at == this.chunk.len() {
            match ready!(this.chunks.poll_recv(cx)) {
                Some(Ok(chunk)) => {
                    this.chunk = chunk;
                    this.at = 0;
                }
                Some(Err(error)) => return Poll::Ready(Err(error)),
                // The thread ended at end-of-file: read nothing, which says so.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = buf.remaining().min(this.chunk.len() - this.at);
        buf.put_slice(&this.chunk[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

enum Outgoing {
    Data(Vec<u8>),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<io::Result<()>>),
}

/// The write half: bytes written by the `agentos-stdout` thread. A flush completes when the
/// thread has written everything before it, so nothing is lost when the session ends.
pub struct PolledWriter {
    outgoing: PollSender<Outgoing>,
    flushed: Option<oneshot::Receiver<io::Result<()>>>,
}

impl PolledWriter {
    pub fn spawn(fd: OwnedFd) -> io::Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let file = File::from(fd);
        std::thread::Builder::new()
            .name("agentos-stdout".into())
            .spawn(move || write_loop(file, receiver))?;
        Ok(Self {
            outgoing: PollSender::new(sender),
            flushed: None,
        })
    }

    fn send(&mut self, cx: &mut Context<'_>, item: impl FnOnce() -> Outgoing) -> Poll<io::Result<()>> {
        if ready!(self.outgoing.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(gone()));
        }
        Poll::Ready(self.outgoing.send_item(item()).map_err(|_| gone()))
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed")
}

fn write_all(file: &mut File, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match wait_ready(file, libc::POLLOUT).and_then(|()| file.write(data)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(error) if retry(&error) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn write_loop(mut file: File, mut receiver: mpsc::Receiver<Outgoing>) {
    // After a failed write, every later flush reports the failure and nothing more is written.
    let mut failure: Option<io::ErrorKind> = None;
    while let Some(item) = receiver.blocking_recv() {
        match item {
            Outgoing::Data(data) if failure.is_none() => {
                failure = write_all(&mut file, &data).err().map(|error| error.kind());
            }
            Outgoing::Data(_) => {}
            Outgoing::Flush(done) => {
                let _ = done.send(failure.map_or(Ok(()), |kind| Err(kind.into())));
            }
        }
    }
}

impl AsyncWrite for PolledWriter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.send(cx, || Outgoing::Data(buf.to_vec())))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.flushed.is_none() {
            let (done, flushed) = oneshot::channel();
            ready!(self.send(cx, || Outgoing::Flush(done)))?;
            self.flushed = Some(flushed);
        }
        let Some(flushed) = self.flushed.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let result = ready!(Pin::new(flushed).poll(cx));
        self.flushed = None;
        Poll::Ready(result.unwrap_or_else(|_| Err(gone())))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        self.outgoing.close();
        Poll::Ready(Ok(()))
    }
}
