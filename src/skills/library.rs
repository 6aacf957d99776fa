//! Published components on disk: `<data_dir>/skills/components/<sha256>.wasm`, one file per
//! distinct component, written once (to a temporary name, then renamed, so a crash never leaves
//! half a file under a digest) and checked against its digest on every read, so a component
//! changed on disk after it was published is refused instead of run.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the component `{0}` is not in the library")]
    Missing(String),
    #[error(
        "the component stored as {expected} has been changed on disk (its digest is now {found}); \
         it is refused: publish the skill again"
    )]
    Tampered { expected: String, found: String },
    #[error("`{0}` is not a SHA-256 digest")]
    BadDigest(String),
}

/// The components of published skills, by digest.
pub struct Library {
    dir: PathBuf,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError + use<> {
    let path = path.display().to_string();
    move |source| LibraryError::Io { action, path, source }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Library {
    /// The library under `data_dir` (created when the first component is stored).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("skills").join("components"),
        }
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf, LibraryError> {
        let well_formed =
            sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(LibraryError::BadDigest(sha256.to_owned()));
        }
        Ok(self.dir.join(format!("{sha256}.wasm")))
    }

    /// Stores `bytes` (once: a component already there is left as it is) and returns its digest.
    pub fn put(&self, bytes: &[u8]) -> Result<String, LibraryError> {
        let sha256 = digest(bytes);
        let path = self.path_of(&sha256)?;
        if self.get(&sha256).is_ok() {
            return Ok(sha256);
        }
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let temporary = self.dir.join(format!(".{sha256}.{}.partial", std::process::id()));
        let mut file = std::fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(io("write", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(io("rename into place", &path))?;
        Ok(sha256)
    }

    /// The component stored as `sha256`, checked against it.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, LibraryError> {
        let path = self.path_of(sha256)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(LibraryError::Missing(sha256.to_owned()));
            }
            Err(error) => return Err(io("read", &path)(error)),
        };
        let found = digest(&bytes);
        if found != sha256 {
            return Err(LibraryError::Tampered {
                expected: sha256.to_owned(),
                found,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_once_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let library = Library::new(dir.path());
        let sha256 = library.put(b"\0asm component").unwrap();
        assert_eq!(sha256, digest(b"\0asm component"));
        assert_eq!(library.get(&sha256).unwrap(), b"\0asm component");
        assert_eq!(library.put(b"\0asm component").unwrap(), sha256, "stored once");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("skills/components"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");

        let path = dir.path().join(format!("skills/components/{sha256}.wasm"));
        std::fs::write(&path, b"\0asm evil").unwrap();
        let tampered = library.get(&sha256).unwrap_err();
        assert!(matches!(tampered, LibraryError::Tampered { .. }), "{tampered}");
        assert!(tampered.to_string().contains("publish the skill again"));
        // Publishing the real bytes again repairs it.
        library.put(b"\0asm component").unwrap();
        assert_eq!(library.get(&sha256).unwrap(), b"\0asm component");

        assert!(matches!(library.get(&digest(b"other")), Err(LibraryError::Missing(_))));
        assert!(matches!(
            library.get("../../etc/passwd"),
            Err(LibraryError::BadDigest(_))
        ));
    }
}
