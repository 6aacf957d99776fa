//! The one HTTP client the network tools share: rustls with the ring provider and the system's
//! trusted roots, no proxy, no automatic redirects, and a DNS resolver that hands the connector
//! only addresses the operator's policy allows.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard::{AddressPolicy, Refusal};
use crate::error_chain::error_chain;

pub fn build(policy: Arc<AddressPolicy>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .dns_resolver(GuardedResolver { policy })
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve and connect on our behalf, past the address policy.
        .no_proxy()
        .referer(false)
        .user_agent(concat!("agentos/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| error_chain(&e))
}

fn tls_config() -> rustls::ClientConfig {
    let roots = crate::tls::system_roots();
    if roots.is_empty() {
        tracing::warn!(
            "no trusted root certificates found (set SSL_CERT_FILE to a PEM bundle); https requests will fail"
        );
    }
    let mut config = crate::tls::client_config(roots);
    // reqwest is built without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

tokio::task_local! {
    /// The port of the hop being sent, for the resolver: the address policy can open one port of
    /// a host (and never opens agentos's own). A lookup outside a hop (a connection the pool
    /// finishes in the background) sees none and gets only what is open on every port.
    pub static HOP_PORT: u16;
}

/// Resolves host names, then drops every address the policy refuses, so the connector can only
/// connect to checked addresses: a name that resolves to a public address when the URL is
/// checked and to 127.0.0.1 when connecting (DNS rebinding) gets nowhere.
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        let port = HOP_PORT.try_with(|port| *port).ok();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| ResolveFailed::new(&host, e.to_string()))?
                .collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check_address(&host, addr.ip(), port) {
                    Ok(()) => true,
                    Err(refused) => {
                        tracing::debug!(host, ip = %addr.ip(), "refused a resolved address");
                        refusal.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refusal {
                    Some(refusal) => Box::new(refusal) as Box<dyn StdError + Send + Sync>,
                    None => Box::new(ResolveFailed::new(&host, "no addresses found".into())),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug)]
struct ResolveFailed {
    host: String,
    reason: String,
}

impl ResolveFailed {
    fn new(host: &str, reason: String) -> Self {
        Self {
            host: host.to_owned(),
            reason,
        }
    }
}

impl fmt::Display for ResolveFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not resolve `{}` ({}); check the host name",
            self.host, self.reason
        )
    }
}

impl StdError for ResolveFailed {}

/// A message for the model about a failed request to `host`.
pub fn describe(error: &reqwest::Error, host: &str) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refusal) = current.downcast_ref::<Refusal>() {
            return format!("refused: {refusal}");
        }
        if let Some(failed) = current.downcast_ref::<ResolveFailed>() {
            return failed.to_string();
        }
        source = current.source();
    }
    let detail = error_chain(error);
    if error.is_connect() {
        format!("could not connect to `{host}`: {detail}")
    } else if error.is_body() || error.is_decode() {
        format!("the response from `{host}` broke off: {detail}")
    } else {
        format!("the request to `{host}` failed: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_builds_without_a_runtime_or_a_process_wide_crypto_provider() {
        assert!(build(Arc::new(AddressPolicy::default())).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let resolver = GuardedResolver {
            policy: Arc::new(AddressPolicy::default()),
        };
        let error = resolver.resolve("localhost".parse().unwrap()).await.err().unwrap();
        let refusal = error.downcast_ref::<Refusal>().expect("a refusal");
        assert_eq!(refusal.host, "localhost");
        assert!(refusal.ip.unwrap().is_loopback());
    }
}
