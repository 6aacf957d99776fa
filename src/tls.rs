//! Process-wide TLS setup: rustls with the ring provider (no C toolchain beyond what ring needs),
//! installed once before any HTTPS client is built.

use std::sync::Once;

/// Installs ring as rustls's default crypto provider; later calls do nothing. Every HTTP client
/// in agentos (upstream MCP servers, the network primitives) relies on it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if another provider was installed first, which serves just as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
