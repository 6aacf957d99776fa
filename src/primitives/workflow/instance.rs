//! Which process is executing a workflow run, and whether it is still alive.
//!
//! `agentos mcp` and `agentos serve` may share a data directory, so "a run is still marked
//! running at start-up" does not mean it was interrupted: another live process may be executing
//! it. Each process holds an exclusive lock on `<data_dir>/instances/<instance>.lock` for its
//! whole life; the operating system releases it when the process ends, however it ends. A run
//! whose instance's lock can be taken (or whose lock file is gone) was interrupted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

/// This process's instance id.
static INSTANCE: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string());

/// The lock files this process holds, per data directory; never released before exit.
static HELD: LazyLock<Mutex<HashMap<PathBuf, File>>> = LazyLock::new(Mutex::default);

/// A lock file younger than this is never removed: its process may be about to lock it.
const FRESH: Duration = Duration::from_secs(60);

pub fn id() -> &'static str {
    &INSTANCE
}

fn directory(data_dir: &Path) -> PathBuf {
    data_dir.join("instances")
}

/// Makes sure this process holds its lock in `data_dir`. Cheap after the first call.
pub fn hold(data_dir: &Path) -> std::io::Result<()> {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if held.contains_key(data_dir) {
        return Ok(());
    }
    let dir = directory(data_dir);
    std::fs::create_dir_all(&dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{}.lock", id())))?;
    file.try_lock().map_err(std::io::Error::from)?;
    held.insert(data_dir.to_owned(), file);
    Ok(())
}

/// Whether the process `instance` has ended (its lock is free or gone). Blocking file work.
pub fn is_gone(data_dir: &Path, instance: &str) -> bool {
    if instance == id() {
        return false;
    }
    if instance.contains(['/', '\\', '.']) {
        return true;
    }
    match File::open(directory(data_dir).join(format!("{instance}.lock"))) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
        Ok(file) => match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => false,
        },
    }
}

/// Removes lock files of ended processes (older than a minute). Blocking file work.
pub fn remove_stale(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(directory(data_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(instance) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        let fresh = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|modified| SystemTime::now().duration_since(modified).unwrap_or_default() < FRESH)
            .unwrap_or(true);
        if instance != id() && !fresh && is_gone(data_dir, instance) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_marks_its_process_alive() {
        let dir = tempfile::tempdir().unwrap();
        hold(dir.path()).unwrap();
        hold(dir.path()).unwrap();
        assert!(!is_gone(dir.path(), id()));
        assert!(is_gone(dir.path(), "0123456789abcdef"), "no lock file: gone");
        // A lock file nobody holds belongs to a process that ended.
        let dead = directory(dir.path()).join("deadbeef.lock");
        std::fs::write(&dead, b"").unwrap();
        assert!(is_gone(dir.path(), "deadbeef"));
        // Held through another handle (as another process would): alive.
        let other = File::open(&dead).unwrap();
        other.try_lock().unwrap();
        assert!(!is_gone(dir.path(), "deadbeef"));
        drop(other);
        assert!(is_gone(dir.path(), "deadbeef"));
        assert!(is_gone(dir.path(), "../escape"));
    }
}
