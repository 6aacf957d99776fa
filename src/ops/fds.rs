//! The open-file limit: every connection, database file, log and upstream pipe is a descriptor,
//! and a process out of descriptors cannot even accept its health probe. Raised at start as far
//! as the system allows; the HTTP front door sizes its connection cap from it.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (on macOS to `OPEN_MAX` as well, which the
/// kernel enforces below an unlimited hard limit) and returns the soft limit now in force.
/// `None` where there is no such limit (not Unix) or it could not be read.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = read()?;
        #[cfg(target_os = "macos")]
        let wanted = limit.rlim_max.min(libc::OPEN_MAX as libc::rlim_t);
        #[cfg(not(target_os = "macos"))]
        let wanted = limit.rlim_max;
        if limit.rlim_cur < wanted {
            let previous = limit.rlim_cur;
            limit.rlim_cur = wanted;
            // SAFETY: setrlimit reads a fully initialised struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                let error = std::io::Error::last_os_error();
                tracing::warn!(%error, soft = previous, hard = wanted, "could not raise the open-file limit");
            }
        }
        open_file_limit()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The soft open-file limit in force; `None` when unlimited, unknown or not Unix.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let limit = read()?;
        (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(unix)]
fn read() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(limit)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_to_the_hard_one() {
        let hard = read().map(|limit| limit.rlim_max);
        let raised = raise_open_file_limit();
        if let Some(hard) = hard.filter(|hard| *hard != libc::RLIM_INFINITY) {
            #[cfg(not(target_os = "macos"))]
            assert_eq!(raised, Some(hard));
        }
        assert_eq!(raised, open_file_limit());
    }
}
