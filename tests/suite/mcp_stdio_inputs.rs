//! `agentos mcp` on every kind of stdin a client may hand it: a pipe nobody writes to yet, a
//! FIFO nobody has opened for writing yet, a (non-blocking) socket, a pseudo-terminal. Each
//! must wait for the client, then complete `initialize` and a `tools/call`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;

const LIMIT: Duration = Duration::from_secs(20);

/// `agentos mcp` with the given stdin and stdout; its stderr is collected.
struct Agentos {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Agentos {
    fn start(data_dir: &Path, stdin: OwnedFd, stdout: OwnedFd) -> Self {
        let mut child = Command::new(common::agentos_bin())
            .args(["mcp", "--data-dir"])
            .arg(data_dir)
            .env("AGENTOS_LOG", "info,agentos::adapters::stdio=debug")
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentos mcp");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits until agentos serves stdio and waits for its client: it has said so, and it is
    /// still running a while after (a stdin it could not wait on ended it at once).
    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + LIMIT;
        while !self.log().contains("serving MCP over stdio") {
            assert!(self.exited().is_none(), "agentos exited; log:\n{}", self.log());
            assert!(Instant::now() < deadline, "agentos did not start; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stays_running(Duration::from_millis(500));
    }

    /// Asserts that agentos neither exits nor fails reading within `window`.
    fn stays_running(&mut self, window: Duration) {
        let until = Instant::now() + window;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                panic!(
                    "agentos exited ({status}) with nothing to read yet; log:\n{}",
                    self.log()
                );
            }
            assert!(
                !self.log().contains("ERROR"),
                "agentos failed with nothing to read yet; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agentos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines read from `input` on a thread of their own.
fn lines(input: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(input).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// The response with `id`, skipping anything else (notifications, terminal noise).
fn response(replies: &Receiver<String>, id: u64, agentos: &Agentos) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = replies
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no response {id} ({e}); log:\n{}", agentos.log()));
        if let Ok(message) = serde_json::from_str::<Value>(line.trim())
            && message["id"] == id
        {
            return message;
        }
    }
}

/// Initializes a session and calls `agentos.time_now` through it.
fn initialize_and_call(to: &mut impl Write, replies: &Receiver<String>, agentos: &Agentos) {
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "agentos.time_now", "arguments": {}}}),
    ];
    writeln!(to, "{}", messages[0]).unwrap();
    to.flush().unwrap();
    let initialized = response(replies, 1, agentos);
    assert_eq!(initialized["result"]["serverInfo"]["name"], "agentos", "{initialized}");
    for message in &messages[1..] {
        writeln!(to, "{message}").unwrap();
    }
    to.flush().unwrap();
    let called = response(replies, 2, agentos);
    assert_ne!(called["result"]["isError"], true, "{called}");
    assert!(
        called["result"]["structuredContent"]["iso"].as_str().is_some(),
        "{called}"
    );
}

fn owned(fd: impl Into<OwnedFd>) -> OwnedFd {
    fd.into()
}

/// A pipe the client writes to only after agentos is up, with a socket as stdout (so stdin is
/// not driven as one of a pair of pipes).
#[test]
fn a_pipe_written_only_later() {
    let dir = tempfile::tempdir().unwrap();
    let (stdin, mut to) = std::io::pipe().unwrap();
    let (stdout, ours) = UnixStream::pair().unwrap();
    let mut agentos = Agentos::start(dir.path(), owned(stdin), owned(stdout));
    agentos.wait_until_serving();
    initialize_and_call(&mut to, &lines(ours), &agentos);
}

/// A FIFO opened for reading before any writer exists (reads would say end-of-file), whose
/// writer connects only once agentos is up.
#[test]
fn a_fifo_without_a_writer_yet() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("requests");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    // Non-blocking, or opening the read end would wait for a writer.
    let stdin = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let (stdout, ours) = UnixStream::pair().unwrap();
    let mut agentos = Agentos::start(dir.path(), owned(stdin), owned(stdout));
    agentos.wait_until_serving();
    let mut to = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    agentos.stays_running(Duration::from_millis(300));
    initialize_and_call(&mut to, &lines(ours), &agentos);
}

/// One end of a socketpair as both stdin and stdout, switched to non-blocking by whoever
/// started agentos (as some parents leave their descriptors).
#[test]
fn a_non_blocking_socketpair() {
    let dir = tempfile::tempdir().unwrap();
    let (theirs, ours) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let stdout = theirs.try_clone().unwrap();
    let mut agentos = Agentos::start(dir.path(), owned(theirs), owned(stdout));
    agentos.wait_until_serving();
    let mut to = ours.try_clone().unwrap();
    initialize_and_call(&mut to, &lines(ours), &agentos);
}

/// A pseudo-terminal in raw mode as stdin and stdout, as when run from a terminal program that
/// leaves it non-blocking.
#[test]
fn a_pseudo_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills in two descriptors; the null pointers ask for no name and defaults.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // Raw: no echo of what the client sends, no line editing, no "\r\n" for "\n".
    // SAFETY: termios is plain data, filled by tcgetattr before it is used; fcntl only changes
    // the flags of a descriptor we own.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut mode), 0);
        libc::cfmakeraw(&mut mode);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &mode), 0);
        let flags = libc::fcntl(slave.as_raw_fd(), libc::F_GETFL);
        assert_eq!(
            libc::fcntl(slave.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK),
            0
        );
    }
    let stdout = slave.try_clone().unwrap();
    let mut agentos = Agentos::start(dir.path(), slave, stdout);
    agentos.wait_until_serving();
    let mut to = std::fs::File::from(master.try_clone().unwrap());
    initialize_and_call(&mut to, &lines(std::fs::File::from(master)), &agentos);
}
