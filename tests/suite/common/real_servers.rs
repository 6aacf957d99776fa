//! The real upstream MCP servers installed by `scripts/install-test-deps`
//! (`@modelcontextprotocol/server-everything` and `server-memory` from npm, `mcp-server-time`
//! from PyPI), found through the variables it writes into `.cache/test-env.sh`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Upstreams {
    pub node: PathBuf,
    pub everything_js: PathBuf,
    pub memory_js: PathBuf,
    pub time_cmd: PathBuf,
    /// server-everything's CLI argument for streamable HTTP (`streamableHttp`).
    pub everything_http_arg: String,
    /// Its endpoint path (`/mcp`).
    pub everything_http_path: String,
}

/// The installed servers, or None when `AGENTOS_SKIP_REAL_UPSTREAMS=1`; panics if they are missing.
pub fn upstreams() -> Option<Upstreams> {
    if std::env::var("AGENTOS_SKIP_REAL_UPSTREAMS").as_deref() == Ok("1") {
        eprintln!("AGENTOS_SKIP_REAL_UPSTREAMS=1: skipping a test with real upstream MCP servers");
        return None;
    }
    let hint = "run scripts/install-test-deps, then `. .cache/test-env.sh` before cargo test \
                (scripts/test does both), or set AGENTOS_SKIP_REAL_UPSTREAMS=1 to skip these tests";
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is not set: the real upstream MCP servers are missing; {hint}"))
    };
    let path = |name: &str| {
        let path = PathBuf::from(var(name));
        assert!(path.exists(), "{name}={} does not exist; {hint}", path.display());
        path
    };
    Some(Upstreams {
        node: path("AGENTOS_TEST_NODE"),
        everything_js: path("AGENTOS_TEST_EVERYTHING_JS"),
        memory_js: path("AGENTOS_TEST_MEMORY_JS"),
        time_cmd: path("AGENTOS_TEST_TIME_CMD"),
        everything_http_arg: var("AGENTOS_TEST_EVERYTHING_HTTP_ARG"),
        everything_http_path: var("AGENTOS_TEST_EVERYTHING_HTTP_PATH"),
    })
}

/// server-everything over streamable HTTP on a free port, killed when dropped.
pub struct HttpEverything {
    child: Child,
    pub url: String,
}

impl HttpEverything {
    pub fn start(up: &Upstreams) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&up.node)
            .arg(&up.everything_js)
            .arg(&up.everything_http_arg)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server-everything over HTTP");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on port") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            panic!("server-everything did not start listening on port {port}");
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}{}", up.everything_http_path),
        }
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstreams {
    /// Adds server-everything over stdio as `name` to the agentos `client` speaks to (as its
    /// owner), once its tools are listed.
    pub async fn add_everything(&self, client: &super::Client, name: &str) {
        let spec = serde_json::json!({"name": name, "command": self.node.to_str().unwrap(),
                                      "args": [self.everything_js.to_str().unwrap(), "stdio"]});
        let added = super::call(client, "agentos.mcp_server_add", spec).await;
        assert!(
            super::structured(&added)["tools"].is_array(),
            "mcp_server_add: {added:?}"
        );
    }
}
