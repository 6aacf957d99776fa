//! stdio servers die with agentos, however agentos ends (SIGKILL included), and so does every
//! process they started in their process group (`npx`, `sh -c`, `uvx` start children that a
//! signal to the server alone never reaches).
//!
//! Two mechanisms:
//! - `PR_SET_PDEATHSIG(SIGKILL)` on the server, set between fork and exec. The kernel sends it
//!   when the *thread* that forked the child ends, not the process; so every server is spawned
//!   from one thread that lives as long as agentos (`agentos-spawn` below). A Tokio worker would
//!   not do: blocking-pool threads end after an idle spell, and a worker that called
//!   `block_in_place` becomes one.
//! - A watcher per server for its whole group: a `/bin/sh` (shown as `agentos-lifeline`) started
//!   in the server's process group once the server runs, whose stdin is the read end of the
//!   *lifeline*, a pipe made once per agentos process whose write end only agentos holds (both
//!   ends close-on-exec: no server inherits them). It blocks reading; when agentos ends, however,
//!   the kernel closes the write end, the read sees end-of-file, and the watcher kills the group
//!   with SIGKILL, itself included. Being a member, it keeps the group id from being reused while
//!   anything of the group may still run, so that kill never reaches a stranger's group. While
//!   agentos lives it is agentos's child (reaped here) and dies with the group whenever agentos
//!   kills it (remove, restart, shutdown, a server that exited).
//!
//! Why a separate program and not a process forked in `pre_exec`: a fork of agentos that never
//! execs keeps agentos's memory as it was at the fork, and as agentos goes on writing to its heap,
//! copy-on-write turns each such watcher into a private copy of it. And a watcher made after a
//! successful spawn cannot outlive a server whose exec failed.
//!
//! What escapes: a process that leaves the group (setsid, setpgid) and is not ended by the
//! server's own death; children started in the instant between the server's exec and the
//! watcher joining the group, if agentos dies in that instant; and, without `/bin/sh`, every
//! child of a server (a warning says so; the server itself still has its parent-death signal).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// What a watcher runs: wait for end-of-file on stdin (nothing is ever written to the
/// lifeline), then kill the group `$1`. Signals sent to the server's group must not end it.
const WATCH: &str = "trap '' HUP INT QUIT TERM PIPE USR1 USR2; while read -r _; do :; done; kill -KILL \"-$1\"";

/// The pipe whose end-of-file tells watchers that agentos has ended. Never dropped: the write
/// end closes only when the process does.
struct Lifeline {
    read: OwnedFd,
    _write: OwnedFd,
}

fn lifeline() -> io::Result<&'static Lifeline> {
    static LIFELINE: OnceLock<Lifeline> = OnceLock::new();
    if let Some(lifeline) = LIFELINE.get() {
        return Ok(lifeline);
    }
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just opened and nothing else owns them.
    let made = unsafe {
        Lifeline {
            read: OwnedFd::from_raw_fd(fds[0]),
            _write: OwnedFd::from_raw_fd(fds[1]),
        }
    };
    // If another thread won the race, ours is dropped (closed) here: harmless.
    Ok(LIFELINE.get_or_init(|| made))
}

type Job = Box<dyn FnOnce() + Send>;

/// The one thread every server is forked from (see the module documentation). It ends only
/// with the process: its sender lives in a static.
fn spawner() -> &'static mpsc::Sender<Job> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new().name("agentos-spawn".into()).spawn(move || {
            for job in jobs {
                job();
            }
        });
        // Without the thread, `jobs` is gone and every spawn reports it.
        if let Err(error) = thread {
            tracing::error!(%error, "cannot start the thread that starts MCP servers");
        }
        sender
    })
}

/// Spawns `command` (a stdio server started with `process_group(0)`) so that it and its group
/// die with agentos. Needs a Tokio runtime.
pub(crate) async fn spawn(mut command: Command) -> io::Result<Child> {
    let lifeline = lifeline()?.read.try_clone()?;
    let agentos = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // calls (see `arm`).
    unsafe {
        command.pre_exec(move || arm(agentos));
    }
    let runtime = tokio::runtime::Handle::current();
    let (reply, spawned) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = runtime.enter();
        // A panic must not end this thread: every server's parent-death signal would fire.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let server = command.spawn()?;
            if let Some(group) = server.id() {
                watch(group, lifeline);
            }
            Ok(server)
        }))
        .unwrap_or_else(|_| Err(io::Error::other("spawning the server panicked")));
        let _ = reply.send(result);
    });
    spawner()
        .send(job)
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    spawned
        .await
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

/// In the server's process, between fork and exec: arms the parent-death signal.
fn arm(agentos: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl and getppid are plain system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        // agentos may have died before the signal was armed; then none will come.
        if libc::getppid() != agentos {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// Starts the watcher of `group` (see the module documentation), reading `lifeline`.
fn watch(group: u32, lifeline: OwnedFd) {
    let mut command = Command::new("/bin/sh");
    command
        .arg0("agentos-lifeline")
        .args(["-c", WATCH, "agentos-lifeline", &group.to_string()])
        .stdin(Stdio::from(lifeline))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(group as i32);
    match command.spawn() {
        // Reaped when the group is killed; dropping the handle would leave that to chance.
        Ok(mut watcher) => {
            tokio::spawn(async move {
                let _ = watcher.wait().await;
            });
        }
        // The server may be gone already (no group to join), or there is no /bin/sh.
        Err(error) => tracing::warn!(%error, group, "no watcher for an MCP server's process group: \
            its children may outlive a killed agentos"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Live (not zombie) processes of `group`, with their command lines.
    fn running_in_group(group: u32) -> Vec<String> {
        let mut running = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some((_, after)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields[2] == group.to_string() && fields[0] != "Z" {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                running.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
            }
        }
        running
    }

    async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        condition()
    }

    fn server(program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.args(args).process_group(0).kill_on_drop(true);
        command
    }

    fn kill_group(group: u32) {
        // SAFETY: kill(2) on a process group this test started.
        unsafe { libc::kill(-(group as libc::pid_t), libc::SIGKILL) };
    }

    #[tokio::test]
    async fn a_spawned_server_gets_a_watcher_in_its_group() {
        let child = spawn(server("sh", &["-c", "exec sleep 301"])).await.unwrap();
        let group = child.id().expect("running");
        let has_watcher = || {
            running_in_group(group)
                .iter()
                .any(|cmdline| cmdline.starts_with("agentos-lifeline"))
        };
        assert!(eventually(has_watcher).await, "{:?}", running_in_group(group));
        kill_group(group);
        assert!(
            eventually(|| running_in_group(group).is_empty()).await,
            "{:?}",
            running_in_group(group)
        );
    }

    /// What happens when agentos ends, with a lifeline of the test's own: its write end closes,
    /// and the watcher kills the group, grandchildren included.
    #[tokio::test]
    async fn the_watcher_kills_the_group_when_the_lifeline_ends() {
        let child = server("sh", &["-c", "sleep 300 & exec sleep 301"]).spawn().unwrap();
        let group = child.id().expect("running");
        let (read, write) = std::io::pipe().unwrap();
        watch(group, OwnedFd::from(read));
        // The server, its child and the watcher.
        assert!(
            eventually(|| running_in_group(group).len() >= 3).await,
            "{:?}",
            running_in_group(group)
        );
        drop(write);
        assert!(
            eventually(|| running_in_group(group).is_empty()).await,
            "the watcher ended the group: {:?}",
            running_in_group(group)
        );
        drop(child);
    }

    #[tokio::test]
    async fn a_server_that_cannot_start_is_reported() {
        let error = spawn(server("/nonexistent/agentos-test-server", &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    }
}
