//! Process-wide TLS setup: rustls with the ring provider (no C toolchain beyond what ring needs),
//! installed once before any HTTPS client is built.

use std::path::Path;
use std::sync::{Arc, Once};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Installs ring as rustls's default crypto provider; later calls do nothing. Every HTTP client
/// in agentos (upstream MCP servers, the network primitives) relies on it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider was installed first, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client configuration on the ring provider that trusts `roots` and presents no client
/// certificate: the network tools' HTTPS and the PostgreSQL store's TLS both start from it.
pub fn client_config(roots: RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Certificate bundles of the common Unix systems, as `openssl-probe` and
/// `rustls-native-certs` look for them.
const CERT_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL
    "/etc/pki/tls/certs/ca-bundle.crt",                  // older Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",                            // openSUSE
    "/etc/ssl/cert.pem",                                 // Alpine, macOS, OpenBSD
    "/usr/local/etc/ssl/cert.pem",                       // FreeBSD
    "/usr/local/share/certs/ca-root-nss.crt",            // FreeBSD
];
const CERT_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// The system's trusted roots: `SSL_CERT_FILE`, else the first known bundle that has any, else
/// the certificates in `SSL_CERT_DIR` or a known certificate directory.
pub fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    let env_file = std::env::var_os("SSL_CERT_FILE");
    let files = env_file.iter().map(Path::new).chain(CERT_FILES.iter().map(Path::new));
    for file in files {
        if let Ok(certs) = CertificateDer::pem_file_iter(file) {
            store.add_parsable_certificates(certs.filter_map(Result::ok));
            if !store.is_empty() {
                return store;
            }
        }
    }
    let env_dir = std::env::var_os("SSL_CERT_DIR");
    let dirs = env_dir.iter().map(Path::new).chain(CERT_DIRS.iter().map(Path::new));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            if let Ok(certs) = CertificateDer::pem_file_iter(entry.path()) {
                store.add_parsable_certificates(certs.filter_map(Result::ok));
            }
        }
        if !store.is_empty() {
            break;
        }
    }
    store
}
