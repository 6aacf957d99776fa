//! Files on disk are private, against the real `agentos serve`.
//!
//! Attack found: the data directory was created `drwxr-xr-x` and `agentos.db`, its `-wal`/`-shm`
//! and the scratch databases `-rw-r--r--`, so another local user read stored memory values and
//! file contents straight out of them. Now the directory is 0700, every file agentos writes is
//! 0600 (umask 077), and agentos refuses to start on a directory with a database, or a
//! database, that others can read.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::Server;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir` with its mode, for messages.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        found.push((path.display().to_string(), mode(&path)));
        if path.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

#[tokio::test]
async fn everything_agentos_writes_is_private_to_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "");
    let data = dir.path().join("data");
    for (tool, input) in [
        ("agentos.mem_set", json!({"key": "diary", "value": "nightingale"})),
        ("agentos.db_exec", json!({"sql": "CREATE TABLE t (x TEXT)"})),
    ] {
        let (status, _, body) = server.plain(server.token(), tool, input).await;
        assert_eq!(status, StatusCode::OK, "{tool}: {body}");
    }
    assert_eq!(mode(&data), 0o700, "the data directory");
    let all = modes(&data);
    assert!(all.iter().any(|(path, _)| path.ends_with("agentos.db-wal")), "{all:?}");
    assert!(
        all.iter()
            .any(|(path, _)| path.contains("scratch") && path.ends_with(".db")),
        "{all:?}"
    );
    for (path, mode) in &all {
        assert_eq!(mode & 0o077, 0, "{path} is {mode:o}: {all:?}");
    }
}

#[tokio::test]
async fn a_data_directory_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Server::start_secure(&data, &[]));
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for front_door in ["serve", "mcp"] {
        let stderr = common::refused_start(&[front_door], &data);
        assert!(stderr.contains("readable by other users"), "{front_door}: {stderr}");
        assert!(
            stderr.contains(&format!("chmod 700 {}", data.display())),
            "{front_door}: {stderr}"
        );
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(data.join("agentos.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = common::refused_start(&["serve"], &data);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}
