//! How agentos reaches PostgreSQL: the database URL read with libpq's TLS options (`sslmode`,
//! `sslrootcert`), and the TLS connector they call for.
//!
//! agentos uses TLS when the URL asks for it (`sslmode=require`, `verify-ca` or `verify-full`),
//! and then always verifies the server's certificate and name: against the certificates in
//! `sslrootcert` when given (a private CA, as managed databases use), else the system's trusted
//! roots. libpq's `require` encrypts without verifying; a connection that can be intercepted is
//! not one worth encrypting, so here it verifies too. `prefer` (the default), `allow` and
//! `disable` connect without TLS.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// A database URL made ready to connect: the driver's settings, and the TLS connector when the
/// URL asks for TLS.
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeRustlsConnect>,
}

/// Reads `url` (`postgres://user:password@host:port/database?options`).
pub(super) fn target(url: &str) -> Result<Target, StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sslmode" => mode = Some(decode(value)?),
            "sslrootcert" => root_cert = Some(decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|error| StoreError::Config(format!("the database URL cannot be read: {error}")))?;
    let verify = match mode.as_deref() {
        Some("require" | "verify-ca" | "verify-full") => true,
        None | Some("prefer" | "allow" | "disable") => false,
        Some(other) => {
            return Err(StoreError::Config(format!(
                "the database URL's sslmode `{other}` is not one agentos knows: use verify-full (TLS, the \
                 server's certificate checked) or disable"
            )));
        }
    };
    if !verify {
        if let Some(path) = root_cert {
            return Err(StoreError::Config(format!(
                "the database URL names sslrootcert `{path}` but does not ask for TLS: add sslmode=verify-full"
            )));
        }
        config.ssl_mode(SslMode::Disable);
        return Ok(Target { config, tls: None });
    }
    let roots = match root_cert {
        Some(path) => roots_from(Path::new(&path))?,
        None => crate::tls::system_roots(),
    };
    if roots.is_empty() {
        return Err(StoreError::Config(
            "the database URL asks for TLS but no trusted root certificate was found: name the server's \
             CA with sslrootcert=PATH (PEM), or set SSL_CERT_FILE"
                .to_owned(),
        ));
    }
    config.ssl_mode(SslMode::Require);
    Ok(Target {
        config,
        tls: Some(MakeRustlsConnect::new(crate::tls::client_config(roots))),
    })
}

/// The certificates in the PEM file `path`, as the only trusted roots.
fn roots_from(path: &Path) -> Result<RootCertStore, StoreError> {
    let unreadable = |reason: String| {
        StoreError::Config(format!(
            "the database URL's sslrootcert `{}` cannot be used: {reason}",
            path.display()
        ))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(error.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(unreadable("it holds no PEM certificate".to_owned()));
    }
    Ok(roots)
}

/// A URL query value with its percent-escapes decoded (a path may hold spaces).
fn decode(value: &str) -> Result<String, StoreError> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let escape = value
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| StoreError::Config(format!("the database URL has a bad escape in `{value}`")))?;
            decoded.push(escape);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| StoreError::Config(format!("the database URL's `{value}` is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(url: &str) -> String {
        match target(url) {
            Err(StoreError::Config(message)) => message,
            Err(other) => panic!("{url}: {other:?}"),
            Ok(_) => panic!("{url} was accepted"),
        }
    }

    #[test]
    fn plain_modes_connect_without_tls_and_keep_other_options() {
        for url in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/db?sslmode=prefer&application_name=x",
        ] {
            let target = target(url).unwrap();
            assert!(target.tls.is_none(), "{url}");
            assert_eq!(target.config.get_ssl_mode(), SslMode::Disable, "{url}");
        }
        let kept = target("postgres://u@h/db?application_name=replica%201&sslmode=disable").unwrap();
        assert_eq!(kept.config.get_application_name(), Some("replica 1"));
    }

    #[test]
    fn tls_modes_verify_against_the_named_ca_or_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let path = dir.path().join("ca 1.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let escaped = path.display().to_string().replace(' ', "%20");
        for mode in ["require", "verify-ca", "verify-full"] {
            let target = target(&format!("postgres://u@h/db?sslmode={mode}&sslrootcert={escaped}")).unwrap();
            assert!(target.tls.is_some(), "{mode}");
            assert_eq!(target.config.get_ssl_mode(), SslMode::Require, "{mode}");
        }
    }

    #[test]
    fn bad_tls_options_are_refused_with_the_fix() {
        assert!(refusal("postgres://u@h/db?sslmode=sometimes").contains("verify-full"));
        assert!(refusal("postgres://u@h/db?sslrootcert=/ca.pem").contains("add sslmode=verify-full"));
        assert!(refusal("postgres://u@h/db?sslmode=verify-full&sslrootcert=/no/such.pem").contains("/no/such.pem"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let message = refusal(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
            empty.display()
        ));
        assert!(message.contains("no PEM certificate"), "{message}");
        assert!(refusal("postgres://u@h/db?sslrootcert=%zz").contains("bad escape"));
    }
}
