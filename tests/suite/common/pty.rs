//! A program run on a pseudo-terminal, as a person's terminal would run it: the test types into
//! it and waits for what appears on the screen. Like a terminal emulator, it answers the cursor
//! position query (`ESC [ 6 n`) that line editors send.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the program wrote so far, and a signal each time it writes more.
type Screen = Arc<(Mutex<String>, Condvar)>;

pub struct Pty {
    master: std::fs::File,
    screen: Screen,
    /// How much of `screen` earlier `expect`s consumed.
    seen: usize,
    pid: i32,
    /// The program's exit code, once it exits.
    exited: Receiver<Option<i32>>,
    exit_code: Option<Option<i32>>,
}

impl Pty {
    /// Starts `command` with a new pseudo-terminal (80x24) as its stdin, stdout, stderr and
    /// controlling terminal.
    pub fn spawn(command: &mut Command) -> Self {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the given integers.
        let opened = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (master, slave) = unsafe { (std::fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        command
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("start the program on the pty");
        drop(slave);
        let pid = i32::try_from(child.id()).unwrap();
        let (exit_sender, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_sender.send(child.wait().ok().and_then(|status| status.code()));
        });
        let screen: Screen = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let (mut reader, mut answerer) = (master.try_clone().unwrap(), master.try_clone().unwrap());
        let shown = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends when the program exits (the read fails with EIO).
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                if text.contains("\x1b[6n") {
                    let _ = answerer.write_all(b"\x1b[1;1R");
                }
                shown.0.lock().unwrap().push_str(&text);
                shown.1.notify_all();
            }
        });
        Self {
            master,
            screen,
            seen: 0,
            pid,
            exited,
            exit_code: None,
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits until `text` appears on the screen after what earlier calls waited for; answers
    /// the screen from there up to the end of `text`. Panics with the screen after 20 s.
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (lock, written) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        loop {
            if let Some(at) = screen[self.seen..].find(text) {
                let end = self.seen + at + text.len();
                let shown = screen[self.seen..end].to_owned();
                self.seen = end;
                return shown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "`{text}` never appeared; the screen after what was seen:\n{}",
                &screen[self.seen..]
            );
            screen = written.wait_timeout(screen, left).unwrap().0;
        }
    }

    /// Waits for the program to exit (20 s at most); its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        match self.exited.recv_timeout(Duration::from_secs(20)) {
            Ok(code) => {
                self.exit_code = Some(code);
                code
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("the program did not exit; screen:\n{}", self.screen.0.lock().unwrap())
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Not when it has exited: its id may belong to another process by now.
        if self.exit_code.is_none() && self.exited.try_recv().is_err() {
            // SAFETY: signals the program this Pty started (its waiter thread reaps it).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}
