//! stdio servers die with agentos, however agentos ends (SIGKILL included), and so does every
//! process they started in their process group (`npx`, `sh -c`, `uvx` start children that a
//! signal to the server alone never reaches).
//!
//! Two mechanisms, installed in the child between fork and exec:
//! - `PR_SET_PDEATHSIG(SIGKILL)` on the server. The kernel sends it when the *thread* that forked
//!   the child ends, not the process; so every server is spawned from one thread that lives as
//!   long as agentos (`agentos-spawn` below). A Tokio worker would not do: blocking-pool threads
//!   end after an idle spell, and a worker that called `block_in_place` becomes one.
//! - A watcher for the whole group: a tiny process forked there (twice, so it is no child of the
//!   server, which may wait for its own children) that stays in the server's process group,
//!   closes every descriptor but two, and blocks in poll(2) on
//!   - the read end of the *lifeline*, a pipe made once per agentos process whose write end only
//!     agentos holds (both ends close-on-exec, so no server inherits them). When agentos ends,
//!     however, the kernel closes that write end and the read end reports end-of-file;
//!   - a pidfd of the server, readable when the server has exited (also when its exec failed).
//!
//!   Either way it kills the group with SIGKILL, itself included. Being a member, it also keeps
//!   the group id from being reused while anything of the group may still run, so no kill ever
//!   reaches a stranger's group. agentos's own `kill_group` kills it with the rest. Process
//!   lists show it as `agentos-spawn`, the name of the thread it descends from.
//!
//! Between fork and exec only async-signal-safe calls are allowed (another agentos thread may
//! have held the allocator's lock at the fork): raw system calls, no allocation, no locks.
//! What escapes: a process that leaves the group (setsid, setpgid) and was not reached by the
//! server's own death; and on kernels before 5.3 (no pidfd) a watcher whose exec failed lingers
//! until agentos ends.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

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
    let lifeline = lifeline()?.read.as_raw_fd();
    let agentos = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // calls (see `in_child`).
    unsafe {
        command.pre_exec(move || in_child(agentos, lifeline));
    }
    let runtime = tokio::runtime::Handle::current();
    let (reply, spawned) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _runtime = runtime.enter();
        // A panic must not end this thread: every server's parent-death signal would fire.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| command.spawn()))
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

/// In the server's process, between fork and exec.
fn in_child(agentos: libc::pid_t, lifeline: RawFd) -> io::Result<()> {
    // SAFETY: prctl, getppid, getpid and getpgrp are plain system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        // agentos may have died before the signal was armed; then none will come.
        if libc::getppid() != agentos {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // Only a server leading its own group gets a watcher: killing any other group could
        // reach agentos's own.
        if libc::getpgrp() == libc::getpid() {
            start_watcher(lifeline);
        }
    }
    Ok(())
}

/// Forks the watcher, twice so that it is not the server's child. Without one (fork failed),
/// the server still has its parent-death signal.
///
/// # Safety
/// Only between fork and exec of a server that leads its own process group.
unsafe fn start_watcher(lifeline: RawFd) {
    // SAFETY: system calls only; each child ends in `_exit` or `watch`, never returning here.
    unsafe {
        let group = libc::getpgrp();
        // -1 on kernels before 5.3: the watcher then watches the lifeline only.
        let server = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) as RawFd;
        let middle = libc::fork();
        if middle == 0 {
            if libc::fork() == 0 {
                watch(lifeline, server, group);
            }
            libc::_exit(0);
        }
        if middle > 0 {
            while libc::waitpid(middle, std::ptr::null_mut(), 0) < 0 && errno() == libc::EINTR {}
        }
        if server >= 0 {
            libc::close(server);
        }
    }
}

fn errno() -> libc::c_int {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The watcher: waits for agentos or the server to end, then kills the group.
///
/// # Safety
/// Only in the freshly forked watcher process.
unsafe fn watch(lifeline: RawFd, server: RawFd, group: libc::pid_t) -> ! {
    // SAFETY: system calls on descriptors this process owns; ends in `_exit`.
    unsafe {
        // agentos's signal handlers were inherited and make no sense here. Signals meant for
        // the server's group (a wrapper's `kill 0`, a terminal's) must not end the watch.
        for signal in 1..32 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        for signal in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGPIPE,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        close_all_but(lifeline, server);
        let mut fds = [
            libc::pollfd {
                fd: lifeline,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: server,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let watched = if server >= 0 { 2 } else { 1 };
        loop {
            if libc::poll(fds.as_mut_ptr(), watched, -1) < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                // Cannot watch; killing a healthy group on a guess would be worse.
                libc::_exit(1);
            }
            if fds[1].revents != 0 {
                break;
            }
            if fds[0].revents != 0 {
                let mut byte = 0u8;
                let read = libc::read(lifeline, (&mut byte as *mut u8).cast(), 1);
                // Nobody writes to the lifeline: data is impossible, and EINTR means try again.
                if read == 0 || (read < 0 && errno() != libc::EINTR && errno() != libc::EAGAIN) {
                    break;
                }
            }
        }
        libc::kill(-group, libc::SIGKILL);
        libc::_exit(0)
    }
}

/// Closes every descriptor except `a` and `b` (either may be -1): the watcher must hold none
/// of agentos's (sockets, the database, the write end of the lifeline) nor the server's pipes.
///
/// # Safety
/// Only in the freshly forked watcher process.
unsafe fn close_all_but(a: RawFd, b: RawFd) {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut from: libc::c_uint = 0;
    for keep in [low, high] {
        if keep < 0 {
            continue;
        }
        let keep = keep as libc::c_uint;
        if keep > from {
            // SAFETY: closes descriptors of this process only.
            unsafe { close_range(from, keep - 1) };
        }
        from = keep + 1;
    }
    // SAFETY: as above.
    unsafe { close_range(from, libc::c_uint::MAX) };
}

/// close_range(2), or (before Linux 5.9) one close(2) per possible descriptor.
///
/// # Safety
/// Closes descriptors other code may think it owns: only in a process about to exit or exec.
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: system calls only; getrlimit writes into a local.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
            return;
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as libc::c_uint
        } else {
            1024
        };
        let mut fd = first;
        while fd <= last && fd < max {
            libc::close(fd as RawFd);
            fd += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, ...
    fn stats() -> Vec<(u32, String, Vec<String>)> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((head, after)) = stat.rsplit_once(')') else {
                continue;
            };
            let comm = head.split_once('(').map(|(_, c)| c.to_owned()).unwrap_or_default();
            all.push((pid, comm, after.split_whitespace().map(str::to_owned).collect()));
        }
        all
    }

    /// Live (not zombie) processes of the group.
    fn running_in_group(group: u32) -> Vec<u32> {
        stats()
            .into_iter()
            .filter(|(_, _, fields)| fields[2] == group.to_string() && fields[0] != "Z")
            .map(|(pid, _, _)| pid)
            .collect()
    }

    /// Live watchers (forked from the `agentos-spawn` thread, so named after it) whose group
    /// leader is gone.
    fn stray_watchers() -> Vec<u32> {
        stats()
            .into_iter()
            .filter(|(_, comm, fields)| {
                comm == "agentos-spawn" && fields[0] != "Z" && !std::path::Path::new("/proc").join(&fields[2]).exists()
            })
            .map(|(pid, _, _)| pid)
            .collect()
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

    #[tokio::test]
    async fn a_server_that_dies_takes_its_group_along() {
        let mut child = spawn(server("sh", &["-c", "sleep 300 & exec sleep 301"]))
            .await
            .unwrap();
        let group = child.id().expect("running");
        // The server, its child and the watcher.
        assert!(
            eventually(|| running_in_group(group).len() >= 3).await,
            "{:?}",
            running_in_group(group)
        );
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(group as libc::pid_t, libc::SIGKILL) };
        child.wait().await.unwrap();
        assert!(
            eventually(|| running_in_group(group).is_empty()).await,
            "the watcher ended the group: {:?}",
            running_in_group(group)
        );
    }

    #[tokio::test]
    async fn a_server_that_cannot_start_leaves_no_watcher() {
        let error = spawn(server("/nonexistent/agentos-test-server", &[]))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
        assert!(
            eventually(|| stray_watchers().is_empty()).await,
            "{:?}",
            stray_watchers()
        );
    }
}
