//! Which store the servers under test use. By default the embedded SQLite file in their data
//! directory; with `AGENTOS_TEST_STORE=postgres` and `AGENTOS_TEST_DATABASE_URL` (a PostgreSQL
//! server that scripts/test starts), each data directory gets a database of its own on that
//! server, so the same tests run against both stores. A server restarted on the same data
//! directory finds the same database, as it would find the same SQLite file.

use std::path::Path;

/// The server every PostgreSQL test database lives on, whichever store the suite runs against
/// (the cross-replica tests always need it).
pub fn server_url() -> Option<String> {
    std::env::var("AGENTOS_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The `--database-url` for a server on `data_dir` when the suite runs against PostgreSQL.
pub fn for_data_dir(data_dir: &Path) -> Option<String> {
    if std::env::var("AGENTOS_TEST_STORE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let server = server_url().expect("AGENTOS_TEST_STORE=postgres needs AGENTOS_TEST_DATABASE_URL");
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let digest = ring_free_hash(absolute.to_string_lossy().as_bytes());
    Some(create(&server, &format!("agentos_t_{digest:016x}")))
}

/// A new database on the test server, for tests that start several replicas on one database.
pub fn fresh() -> Option<String> {
    let server = server_url()?;
    Some(create(&server, &format!("agentos_c_{}", uuid::Uuid::new_v4().simple())))
}

/// Creates `name` on `server` unless it exists; returns its URL. Runs on a thread of its own: the
/// callers may be inside a single-threaded runtime, which cannot block on another future.
fn create(server: &str, name: &str) -> String {
    let (server, owned) = (server.to_owned(), name.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .expect("reach the test PostgreSQL server (AGENTOS_TEST_DATABASE_URL)");
            tokio::spawn(connection);
            match client.batch_execute(&format!("CREATE DATABASE {owned}")).await {
                Ok(()) => {}
                Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                Err(error) => panic!("create test database {owned}: {error}"),
            }
        });
    })
    .join()
    .expect("create a test database");
    with_database(&server_url().unwrap_or_default(), name)
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let cut = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..cut]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// FNV-1a: a stable name for a path, no extra dependency.
fn ring_free_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
    })
}
