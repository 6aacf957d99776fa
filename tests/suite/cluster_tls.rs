//! agentos on a PostgreSQL server reached over TLS, as managed databases require: with
//! `sslmode=verify-full` and the server's CA in `sslrootcert` every connection is encrypted, and a
//! server whose certificate is not trusted, or that offers no TLS, is refused at start with the fix.
//!
//! Starts a TLS server of its own with scripts/postgres, so it runs where the cluster tests do
//! (`AGENTOS_TEST_DATABASE_URL` set); otherwise it says so and passes, unless
//! `AGENTOS_TEST_REQUIRE_POSTGRES=1`.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{self, Server, database};

/// A CA, and a server certificate it issued for 127.0.0.1 and localhost; returns the CA's PEM.
fn issue_certificates(dir: &Path) -> String {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    ca.pem()
}

/// A PostgreSQL server offering TLS with the certificates in `tls_dir`, stopped when dropped.
struct TlsPostgres {
    dir: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(work: &Path, tls_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = work.join("postgres");
        let output = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres"))
            .args(["start", dir.to_str().unwrap(), &port.to_string()])
            .env("AGENTOS_PG_FAST", "1")
            .env("AGENTOS_PG_TLS_DIR", tls_dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/postgres start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir, port }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres"))
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}

/// `agentos serve` on `url` that must refuse to start; what it said.
fn refused(work: &Path, url: &str) -> String {
    let data = work.join(format!("refused-{}", uuid::Uuid::new_v4().simple()));
    let output = std::process::Command::new(common::agentos_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success(), "agentos started on {url}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_tls_database_is_used_encrypted_and_an_untrusted_one_is_refused() {
    let Some(plain_server) = database::server_url() else {
        assert!(
            std::env::var("AGENTOS_TEST_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
            "AGENTOS_TEST_REQUIRE_POSTGRES=1 but AGENTOS_TEST_DATABASE_URL is not set"
        );
        eprintln!("no PostgreSQL (AGENTOS_TEST_DATABASE_URL): skipping the TLS test; scripts/test runs it");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tls_dir = work.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let ca = issue_certificates(&tls_dir);
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let postgres = TlsPostgres::start(work.path(), &tls_dir);
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port);

    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", ca_file.display());
    let server = Server::start_secure(&work.path().join("replica"), &["--database-url", &url]);
    let token = server.token().to_owned();
    let (status, _, body) = server
        .plain(&token, "agentos.mem_set", json!({"key": "k", "value": "over tls"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, body) = server.plain(&token, "agentos.mem_get", json!({"key": "k"})).await;
    assert_eq!(body["result"]["value"], "over tls", "{body}");

    // Every connection agentos holds (the pool's and the change feed's) is encrypted.
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'agentos'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, total): (i64, i64) = (row.get(0), row.get(1));
    assert!(total >= 2, "the pool and the change feed are connected ({total})");
    assert_eq!(encrypted, total, "every agentos connection uses TLS");
    drop(server);

    // A certificate from a CA the URL does not trust.
    let stranger = work.path().join("stranger.pem");
    let other_ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(&stranger, other_ca.cert.pem()).unwrap();
    let untrusted = refused(
        work.path(),
        &format!("{base}?sslmode=verify-full&sslrootcert={}", stranger.display()),
    );
    assert!(
        untrusted.contains("invalid peer certificate") && untrusted.contains("sslrootcert"),
        "{untrusted}"
    );

    // A server that offers no TLS when the URL requires it.
    let separator = if plain_server.contains('?') { '&' } else { '?' };
    let no_tls = refused(
        work.path(),
        &format!(
            "{plain_server}{separator}sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        ),
    );
    assert!(no_tls.contains("server does not support TLS"), "{no_tls}");
}
