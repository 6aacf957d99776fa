//! The data directory is private to the user agentos runs as: created 0700 with a 0600
//! database, and agentos refuses to start on a directory or database others can read (stored
//! memory values and file contents are plain SQLite pages).

use std::path::Path;

use super::StoreError;

/// The database and the files SQLite keeps beside it in WAL mode.
const DATABASE_FILES: [&str; 3] = ["agentos.db", "agentos.db-wal", "agentos.db-shm"];

/// Makes every file and directory this process creates from now on private to its user (umask
/// 077), so scratch databases, keys and upstream servers' files start out unreadable to others.
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only swaps the process's file-mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `data_dir` (0700) and `agentos.db` (0600) if missing; refuses an existing directory
/// or database that others can read. A directory without a database yet (made for agentos, or
/// holding only its config file) is tightened instead, with a warning: nothing stored was ever
/// exposed.
pub(super) fn prepare(data_dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

        if !data_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(io)?;
        }
        let mode = std::fs::metadata(data_dir).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            if data_dir.join(DATABASE_FILES[0]).exists() {
                return Err(exposed(data_dir, mode));
            }
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
            tracing::warn!(
                path = %data_dir.display(),
                was = format!("{mode:o}"),
                "the data directory was readable by other users; made it private (700)"
            );
        }
        for name in DATABASE_FILES {
            let path = data_dir.join(name);
            if let Ok(meta) = std::fs::metadata(&path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(exposed(data_dir, mode));
                }
            }
        }
        // SQLite creates the database with the process's umask and gives its -wal and -shm the
        // database's mode: create it 0600 first, whatever the umask of an embedding process.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(data_dir.join("agentos.db"))
        {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io(error)),
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(data_dir).map_err(io)?;
    Ok(())
}

fn exposed(data_dir: &Path, mode: u32) -> StoreError {
    let dir = data_dir.display();
    StoreError::Exposed(format!(
        "the data directory `{dir}` or its database is readable by other users (mode {mode:o}): they could \
         read every stored value. Make it private and start again: chmod 700 {dir} && chmod 600 {dir}/agentos.db*"
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private_and_an_exposed_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b/data");
        prepare(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&fresh.join("agentos.db")), 0o600);

        let made_by_hand = root.path().join("by-hand");
        std::fs::create_dir(&made_by_hand).unwrap();
        std::fs::write(made_by_hand.join("agentos.toml"), "").unwrap();
        std::fs::set_permissions(&made_by_hand, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&made_by_hand).unwrap();
        assert_eq!(
            mode(&made_by_hand),
            0o700,
            "a directory without a database is tightened"
        );

        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let error = prepare(&fresh).unwrap_err().to_string();
        assert!(error.contains("chmod 700"), "{error}");
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(fresh.join("agentos.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(prepare(&fresh).is_err(), "a readable database is refused too");
    }
}
