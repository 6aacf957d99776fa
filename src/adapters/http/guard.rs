//! DNS-rebinding protection for every route: the `Host` header must name this server, and a
//! browser `Origin`, when present, must be an allowed one (loopback by default).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_response;

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Clone, Debug)]
pub struct HostGuard {
    inner: Arc<GuardRules>,
}

#[derive(Debug)]
struct GuardRules {
    /// `None`: any host (the operator wrote `*`).
    hosts: Option<Vec<(String, Option<u16>)>>,
    /// `None`: any origin. Empty list: loopback origins only.
    origins: Option<Vec<OriginRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: String,
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// Splits `host[:port]` (with `[v6]` brackets) into its parts.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let parsed: axum::http::uri::Authority = authority.trim().parse().ok()?;
    Some((normalize_host(parsed.host()), parsed.port_u16()))
}

/// An allowed-hosts entry: a host name, `host:port`, or a bare IPv6 address such as `::1`.
fn parse_allowed_host(entry: &str) -> Option<(String, Option<u16>)> {
    let entry = entry.trim();
    match entry.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => Some((v6.to_string(), None)),
        Err(_) => split_authority(entry),
    }
}

fn parse_origin_rule(rule: &str) -> Option<OriginRule> {
    let rule = rule.trim();
    let (rule, any_port) = match rule.strip_suffix(":*") {
        Some(stripped) => (stripped, true),
        None => (rule, false),
    };
    let uri: Uri = rule.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let port = if any_port {
        None
    } else {
        Some(authority.port_u16().unwrap_or(default_port(&scheme)))
    };
    Some(OriginRule {
        scheme,
        host: normalize_host(authority.host()),
        port,
    })
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl HostGuard {
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let hosts = if allowed_hosts.iter().any(|h| h.trim() == "*") {
            None
        } else {
            Some(allowed_hosts.iter().filter_map(|h| parse_allowed_host(h)).collect())
        };
        let origins = if allowed_origins.iter().any(|o| o.trim() == "*") {
            None
        } else {
            let configured: Vec<OriginRule> = allowed_origins.iter().filter_map(|o| parse_origin_rule(o)).collect();
            Some(if configured.is_empty() {
                loopback_origins()
            } else {
                configured
            })
        };
        Self {
            inner: Arc::new(GuardRules { hosts, origins }),
        }
    }

    pub fn hosts_unchecked(&self) -> bool {
        self.inner.hosts.is_none()
    }

    pub fn origins_unchecked(&self) -> bool {
        self.inner.origins.is_none()
    }

    /// The origin rules in the textual form rmcp's transport accepts.
    pub fn origin_patterns(&self) -> Vec<String> {
        self.inner
            .origins
            .iter()
            .flatten()
            .map(|rule| {
                let host = if rule.host.contains(':') {
                    format!("[{}]", rule.host)
                } else {
                    rule.host.clone()
                };
                match rule.port {
                    Some(port) => format!("{}://{host}:{port}", rule.scheme),
                    None => format!("{}://{host}:*", rule.scheme),
                }
            })
            .collect()
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(allowed) = &self.inner.hosts else { return true };
        let Some((host, port)) = host.and_then(split_authority) else {
            return false;
        };
        allowed
            .iter()
            .any(|(name, allowed_port)| *name == host && allowed_port.is_none_or(|p| Some(p) == port))
    }

    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let (Some(rules), Some(origin)) = (&self.inner.origins, origin) else {
            return true;
        };
        let Ok(uri) = origin.trim().parse::<Uri>() else {
            return false;
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        let host = normalize_host(authority.host());
        let port = authority.port_u16().unwrap_or(default_port(&scheme));
        rules
            .iter()
            .any(|rule| rule.scheme == scheme && rule.host == host && rule.port.is_none_or(|p| p == port))
    }
}

fn loopback_origins() -> Vec<OriginRule> {
    ["http", "https"]
        .iter()
        .flat_map(|scheme| {
            LOOPBACK_HOSTS.iter().map(move |host| OriginRule {
                scheme: (*scheme).to_owned(),
                host: (*host).to_owned(),
                port: None,
            })
        })
        .collect()
}

pub async fn check(State(guard): State<HostGuard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    if !guard.host_allowed(host.as_deref()) {
        tracing::warn!(
            host = host.as_deref().unwrap_or("-"),
            "refused a request for a host that is not allowed"
        );
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "this Host is not served here; operators add it to http.allowed_hosts",
        );
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !guard.origin_allowed(origin) {
        tracing::warn!(
            origin = origin.unwrap_or("-"),
            "refused a request from an origin that is not allowed"
        );
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "requests from this Origin are not allowed; operators add it to http.allowed_origins",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn loopback_hosts_pass_and_others_do_not() {
        let guard = HostGuard::new(&strings(&["localhost", "127.0.0.1", "::1"]), &[]);
        assert!(guard.host_allowed(Some("127.0.0.1:7777")));
        assert!(guard.host_allowed(Some("localhost")));
        assert!(guard.host_allowed(Some("[::1]:80")));
        assert!(!guard.host_allowed(Some("evil.example:7777")));
        assert!(!guard.host_allowed(None));
        let open = HostGuard::new(&strings(&["*"]), &[]);
        assert!(open.host_allowed(Some("anything")));
    }

    #[test]
    fn ports_in_allowed_hosts_are_enforced() {
        let guard = HostGuard::new(&strings(&["api.example.com:8443"]), &[]);
        assert!(guard.host_allowed(Some("api.example.com:8443")));
        assert!(!guard.host_allowed(Some("api.example.com:9000")));
    }

    #[test]
    fn origins_default_to_loopback() {
        let guard = HostGuard::new(&[], &[]);
        assert!(guard.origin_allowed(None), "non-browser clients send no Origin");
        assert!(guard.origin_allowed(Some("http://localhost:3000")));
        assert!(!guard.origin_allowed(Some("https://evil.example")));
        let configured = HostGuard::new(&[], &strings(&["https://app.example.com"]));
        assert!(configured.origin_allowed(Some("https://app.example.com")));
        assert!(!configured.origin_allowed(Some("https://app.example.com:8443")));
        assert!(!configured.origin_allowed(Some("http://localhost:3000")));
        assert_eq!(configured.origin_patterns(), ["https://app.example.com:443"]);
    }
}
