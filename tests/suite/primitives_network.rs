//! The network primitives (`agentos.net_http_get`, `agentos.net_http_request`) against a local
//! HTTP server started by each test. Nothing here sends traffic anywhere but 127.0.0.1/localhost:
//! refused requests are refused before they are sent, which the server's request log proves.

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentos::app::App;
use agentos::config::Config;
use agentos::config::NetworkConfig;
use agentos::registry::{CallContext, Caller, ToolPolicy};
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::common::{call, structured, text_of};

const BIG_BYTES: usize = 64 * 1024;

/// A local HTTP server recording every request it receives as `host path?query`.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = Router::new()
            .route(
                "/text",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        "hello from the test server",
                    )
                }),
            )
            .route("/json", get(|| async { axum::Json(json!({"ok": true, "n": 42})) }))
            .route(
                "/bytes",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/octet-stream")],
                        vec![0u8, 159, 146, 150, 255],
                    )
                }),
            )
            .route(
                "/big",
                get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "a".repeat(BIG_BYTES)) }),
            )
            .route("/redirect-to", any(redirect_to))
            .route("/hops/{n}", get(hops))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    "late"
                }),
            )
            .route("/echo", any(echo))
            .layer(axum::middleware::from_fn(
                move |request: Request, next: axum::middleware::Next| {
                    let host = request
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let path = request
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    log.lock().unwrap().push(format!("{host} {path}"));
                    next.run(request)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    /// `http://127.0.0.1:PORT{path}`.
    fn ip_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://localhost:PORT{path}`.
    fn name_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    /// A URL on `base` that redirects with `status` to `target`.
    fn redirect(&self, base: &str, status: u16, target: &str) -> String {
        reqwest::Url::parse_with_params(
            &format!("{base}/redirect-to"),
            &[("url", target), ("status", &status.to_string())],
        )
        .unwrap()
        .to_string()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn redirect_to(Query(query): Query<HashMap<String, String>>) -> Response {
    let status = query.get("status").and_then(|s| s.parse().ok()).unwrap_or(302);
    let status = StatusCode::from_u16(status).unwrap();
    (status, [(header::LOCATION, query["url"].clone())]).into_response()
}

/// `/hops/3` redirects to `/hops/2`, ..., `/hops/0` answers "arrived".
async fn hops(UrlPath(n): UrlPath<u32>) -> Response {
    if n == 0 {
        return "arrived".into_response();
    }
    (StatusCode::FOUND, [(header::LOCATION, format!("/hops/{}", n - 1))]).into_response()
}

async fn echo(method: Method, headers: HeaderMap, body: String) -> axum::Json<Value> {
    let header = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    axum::Json(json!({
        "method": method.as_str(),
        "authorization": header(header::AUTHORIZATION),
        "contentType": header(header::CONTENT_TYPE),
        "custom": header(header::HeaderName::from_static("x-custom")),
        "userAgent": header(header::USER_AGENT),
        "body": body,
    }))
}

fn config_file(dir: &Path, toml: &str) -> String {
    let path = dir.join("agentos.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The message of a result that must be a failure (a tool failure or refused arguments).
fn failure(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a failure, got {}",
        text_of(result)
    );
    text_of(result)
}

async fn app_with(dir: &Path, network: NetworkConfig) -> App {
    App::build(common::on_test_store(Config {
        data_dir: dir.to_owned(),
        network,
        ..Config::default()
    }))
    .await
    .expect("build agentos in process")
}

/// Calls a tool through the registry pipeline as an agent limited to `domains`, with `timeout`
/// for the whole call.
async fn call_limited(app: &App, domains: &[&str], timeout: Duration, tool: &str, input: Value) -> CallToolResult {
    let caller = Caller::agent(
        "agent-net",
        ToolPolicy::allow_all(),
        domains.iter().map(|d| d.to_string()).collect(),
    );
    let ctx = CallContext::new(Arc::new(caller), "test", timeout);
    app.registry
        .call(&ctx, tool, input)
        .await
        .unwrap_or_else(|e| panic!("{tool} did not run: {e}"))
}

async fn get_as(app: &App, domains: &[&str], url: &str) -> CallToolResult {
    call_limited(
        app,
        domains,
        Duration::from_secs(20),
        "agentos.net_http_get",
        json!({"url": url}),
    )
    .await
}

#[tokio::test]
async fn private_addresses_are_refused_by_default() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;

    let message = failure(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/text")})).await);
    assert!(
        message.contains("`127.0.0.1` is a loopback address") && message.contains("allow_private_addresses"),
        "names the host, the reason and the setting: {message}"
    );
    // A host name is judged by what it resolves to.
    let message = failure(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.name_url("/text")}),
        )
        .await,
    );
    assert!(
        message.contains("`localhost` resolves to") && message.contains("loopback"),
        "{message}"
    );
    // Other spellings of this machine, and the cloud-metadata service.
    for url in [
        format!("http://[::1]:{}/text", server.addr.port()),
        format!("http://0x7f.1:{}/text", server.addr.port()),
        format!("http://2130706433:{}/text", server.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/text", server.addr.port()),
        format!("http://0.0.0.0:{}/text", server.addr.port()),
    ] {
        let message = failure(&call(&client, "agentos.net_http_get", json!({"url": url})).await);
        assert!(message.starts_with("refused: "), "{url}: {message}");
    }
    let message = failure(
        &call(
            &client,
            "agentos.net_http_request",
            json!({"url": "http://169.254.169.254/latest/meta-data/", "method": "GET"}),
        )
        .await,
    );
    assert!(message.contains("cloud-metadata"), "{message}");
    let message = failure(
        &call(
            &client,
            "agentos.net_http_request",
            json!({"url": server.ip_url("/echo"), "method": "POST", "body": "x"}),
        )
        .await,
    );
    assert!(message.contains("loopback"), "{message}");
    assert_eq!(server.seen(), Vec::<String>::new(), "nothing reached the server");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn private_addresses_are_reachable_when_configured() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[network]\nallow_private_addresses = true\n");
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", &config]).await;

    let text = structured(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/text")})).await);
    assert_eq!(text["status"], 200);
    assert_eq!(text["body"], "hello from the test server");
    assert_eq!(text["bytes"], 26);
    assert_eq!(text["truncated"], false);
    assert_eq!(text["redirects"], 0);
    assert_eq!(text["url"], server.ip_url("/text"));
    assert_eq!(text["headers"]["content-type"], "text/plain; charset=utf-8");
    assert!(text.get("bodyBase64").is_none(), "{text}");

    let json = structured(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.name_url("/json")}),
        )
        .await,
    );
    let parsed: Value = serde_json::from_str(json["body"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, json!({"ok": true, "n": 42}));

    let binary = structured(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/bytes")})).await);
    assert!(binary.get("body").is_none(), "{binary}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(binary["bodyBase64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, vec![0u8, 159, 146, 150, 255]);

    let echo = structured(
        &call(
            &client,
            "agentos.net_http_request",
            json!({
                "url": server.ip_url("/echo"),
                "method": "PUT",
                "headers": {"Content-Type": "application/json", "X-Custom": "yes"},
                "body": "{\"a\":1}",
            }),
        )
        .await,
    );
    let echoed: Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["body"], "{\"a\":1}");
    assert_eq!(echoed["contentType"], "application/json");
    assert_eq!(echoed["custom"], "yes");
    assert!(
        echoed["userAgent"].as_str().unwrap().starts_with("agentos/"),
        "{echoed}"
    );

    let binary_body = base64::engine::general_purpose::STANDARD.encode("binary ok");
    let echo = structured(
        &call(
            &client,
            "agentos.net_http_request",
            json!({"url": server.ip_url("/echo"), "method": "POST", "bodyBase64": binary_body}),
        )
        .await,
    );
    assert!(
        echo["body"].as_str().unwrap().contains("\"body\":\"binary ok\""),
        "{echo}"
    );

    let head = structured(
        &call(
            &client,
            "agentos.net_http_request",
            json!({"url": server.ip_url("/text"), "method": "HEAD"}),
        )
        .await,
    );
    assert_eq!((head["status"].clone(), head["bytes"].clone()), (json!(200), json!(0)));
    assert!(server.seen().len() >= 6, "{:?}", server.seen());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn configured_limits_apply() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "[network]\nallow_private_addresses = true\nmax_response_bytes = 1000\nmax_request_bytes = 2048\n\
         max_redirects = 2\ntimeout_ms = 1000\n",
    );
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", &config]).await;

    // Size cap: the body is cut at the limit.
    let big = structured(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/big")})).await);
    assert_eq!(big["status"], 200);
    assert_eq!(big["truncated"], true);
    assert_eq!(big["bytes"], 1000);
    assert_eq!(big["body"].as_str().unwrap(), "a".repeat(1000));
    let small = structured(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/text")})).await);
    assert_eq!(small["truncated"], false);

    // Request body cap.
    let message = failure(
        &call(
            &client,
            "agentos.net_http_request",
            json!({"url": server.ip_url("/echo"), "method": "POST", "body": "b".repeat(3000)}),
        )
        .await,
    );
    assert!(message.contains("3000 bytes") && message.contains("2048"), "{message}");

    // Redirect cap: two hops are followed, a third is not.
    let two = structured(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.ip_url("/hops/2")}),
        )
        .await,
    );
    assert_eq!(
        (two["body"].clone(), two["redirects"].clone()),
        (json!("arrived"), json!(2))
    );
    assert_eq!(two["url"], server.ip_url("/hops/0"));
    let message = failure(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.ip_url("/hops/3")}),
        )
        .await,
    );
    assert!(message.contains("stopped after 2 redirects"), "{message}");
    let unfollowed = structured(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.ip_url("/hops/3"), "followRedirects": false}),
        )
        .await,
    );
    assert_eq!(unfollowed["status"], 302);
    assert_eq!(unfollowed["headers"]["location"], "/hops/2");

    // Time cap: the operator's limit ends a slow request with a clear message.
    let started = Instant::now();
    let message = failure(&call(&client, "agentos.net_http_get", json!({"url": server.ip_url("/slow")})).await);
    assert!(message.contains("did not finish within 1000 ms"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let message = failure(
        &call(
            &client,
            "agentos.net_http_get",
            json!({"url": server.ip_url("/text"), "timeoutMs": 5000}),
        )
        .await,
    );
    assert!(message.contains("`timeoutMs` may be at most 1000"), "{message}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let get = |input: Value| call(&client, "agentos.net_http_get", input);
    let request = |input: Value| call(&client, "agentos.net_http_request", input);

    let message = failure(&get(json!({"url": "not a url"})).await);
    assert!(message.contains("`url` is not a valid URL"), "{message}");
    let message = failure(&get(json!({"url": "ftp://example.com/file.txt"})).await);
    assert!(
        message.contains("http or https") && message.contains("`ftp`"),
        "{message}"
    );
    let message = failure(&get(json!({"url": "file:///etc/passwd"})).await);
    assert!(message.contains("http or https"), "{message}");
    let message = failure(&get(json!({})).await);
    assert!(message.contains("missing required field `url`"), "{message}");
    let message = failure(&get(json!({"url": "http://127.0.0.1:9/", "verb": "GET"})).await);
    assert!(message.contains("`verb`"), "{message}");

    for method in ["TRACE", "CONNECT", "get"] {
        let message = failure(&request(json!({"url": "http://127.0.0.1:9/", "method": method})).await);
        assert!(message.contains("method"), "{method}: {message}");
    }
    let message = failure(
        &request(json!({"url": "http://127.0.0.1:9/", "method": "GET", "headers": {"Host": "evil.example"}})).await,
    );
    assert!(
        message.contains("`Host` is set by agentos") && message.contains("remove it"),
        "{message}"
    );
    let message = failure(
        &request(json!({"url": "http://127.0.0.1:9/", "method": "GET", "headers": {"X-A": "1\r\nX-B: 2"}})).await,
    );
    assert!(message.contains("line breaks"), "{message}");
    let message = failure(
        &request(json!({"url": "http://127.0.0.1:9/", "method": "POST", "body": "a", "bodyBase64": "YQ=="})).await,
    );
    assert!(message.contains("not both"), "{message}");
    let message = failure(&request(json!({"url": "http://127.0.0.1:9/", "method": "POST", "bodyBase64": "%%%"})).await);
    assert!(message.contains("`bodyBase64` is not valid base64"), "{message}");

    // The hints tell clients what the tools do.
    let tools = client.peer().list_all_tools().await.unwrap();
    let hints = |name: &str| {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        tool.annotations.clone().unwrap()
    };
    let get_hints = hints("agentos.net_http_get");
    assert_eq!(
        (get_hints.read_only_hint, get_hints.open_world_hint),
        (Some(true), Some(true))
    );
    let request_hints = hints("agentos.net_http_request");
    assert_eq!(
        (request_hints.read_only_hint, request_hints.open_world_hint),
        (Some(false), Some(true))
    );
    client.cancel().await.unwrap();
}

/// Agents with `allowedDomains` come from identity; the pipeline is the one every adapter uses.
#[tokio::test]
async fn allowed_domains_limit_which_hosts_an_agent_reaches() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(
        dir.path(),
        NetworkConfig {
            allow_private_addresses: true,
            ..NetworkConfig::default()
        },
    )
    .await;
    let localhost = &["localhost"];

    let ok = structured(&get_as(&app, localhost, &server.name_url("/text")).await);
    assert_eq!(ok["body"], "hello from the test server");
    let sub = structured(&get_as(&app, &["*"], &server.ip_url("/text")).await);
    assert_eq!(sub["status"], 200);

    let before = server.seen().len();
    let message = failure(&get_as(&app, localhost, &server.ip_url("/text")).await);
    assert!(
        message.contains("`127.0.0.1` is not in this agent's allowedDomains (localhost)"),
        "{message}"
    );
    let message = failure(&get_as(&app, &["example.com", "*.localhost"], &server.name_url("/text")).await);
    assert!(
        message.contains("`localhost` is not in this agent's allowedDomains"),
        "{message}"
    );
    assert_eq!(server.seen().len(), before, "refused before sending");

    // A redirect out of the allowed domains is refused at the hop: the first host is asked, the
    // second never is.
    let hop = server.redirect(&server.name_url(""), 302, &server.ip_url("/json"));
    let message = failure(&get_as(&app, localhost, &hop).await);
    assert!(
        message.contains("`127.0.0.1` is not in this agent's allowedDomains"),
        "{message}"
    );
    let seen = server.seen();
    assert!(seen.last().unwrap().contains("/redirect-to"), "{seen:?}");
    assert!(!seen.iter().any(|s| s.contains("/json")), "{seen:?}");

    // The same redirect is followed for an agent without a list.
    let followed = structured(&get_as(&app, &[], &hop).await);
    assert_eq!(
        (followed["redirects"].clone(), followed["url"].clone()),
        (json!(1), json!(server.ip_url("/json")))
    );
}

#[tokio::test]
async fn redirects_to_private_addresses_are_refused_at_every_hop() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Only the host name `localhost` may be reached among private hosts.
    let app = app_with(
        dir.path(),
        NetworkConfig {
            allowed_private_hosts: vec!["localhost".into()],
            ..NetworkConfig::default()
        },
    )
    .await;
    let ok = structured(&get_as(&app, &[], &server.name_url("/text")).await);
    assert_eq!(ok["status"], 200);
    let message = failure(&get_as(&app, &[], &server.ip_url("/text")).await);
    assert!(message.contains("`127.0.0.1` is a loopback address"), "{message}");

    let same = structured(&get_as(&app, &[], &server.redirect(&server.name_url(""), 301, "/text")).await);
    assert_eq!(
        (same["body"].clone(), same["redirects"].clone()),
        (json!("hello from the test server"), json!(1))
    );

    let to_ip = server.redirect(&server.name_url(""), 307, &server.ip_url("/json"));
    let message = failure(&get_as(&app, &[], &to_ip).await);
    assert!(message.contains("`127.0.0.1` is a loopback address"), "{message}");
    let to_metadata = server.redirect(&server.name_url(""), 302, "http://169.254.169.254/latest/meta-data/");
    let message = failure(&get_as(&app, &[], &to_metadata).await);
    assert!(message.contains("cloud-metadata"), "{message}");
    let to_ftp = server.redirect(&server.name_url(""), 302, "ftp://localhost/file");
    let message = failure(&get_as(&app, &[], &to_ftp).await);
    assert!(message.contains("only http and https"), "{message}");
    assert!(
        !server.seen().iter().any(|s| s.contains("/json")),
        "{:?}",
        server.seen()
    );
}

#[tokio::test]
async fn redirects_rewrite_methods_and_drop_credentials_across_hosts() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(
        dir.path(),
        NetworkConfig {
            allow_private_addresses: true,
            ..NetworkConfig::default()
        },
    )
    .await;
    let post = |url: String| {
        json!({
            "url": url,
            "method": "POST",
            "headers": {"Authorization": "Bearer secret", "Content-Type": "text/plain"},
            "body": "payload",
        })
    };
    let echoed = |result: &CallToolResult| -> Value {
        serde_json::from_str(structured(result)["body"].as_str().unwrap()).unwrap()
    };
    let request = |input: Value| call_limited(&app, &[], Duration::from_secs(20), "agentos.net_http_request", input);

    // 307 to the same host keeps the method, body and credentials.
    let same = echoed(&request(post(server.redirect(&server.ip_url(""), 307, "/echo"))).await);
    assert_eq!(
        (&same["method"], &same["body"], &same["authorization"]),
        (&json!("POST"), &json!("payload"), &json!("Bearer secret"))
    );
    // 307 to another host keeps the method and body but not the credentials.
    let other = echoed(
        &request(post(server.redirect(
            &server.name_url(""),
            307,
            &server.ip_url("/echo"),
        )))
        .await,
    );
    assert_eq!((&other["method"], &other["body"]), (&json!("POST"), &json!("payload")));
    assert_eq!(other["authorization"], Value::Null, "Authorization dropped: {other}");
    // 303 turns into a GET without a body.
    let see_other = echoed(&request(post(server.redirect(&server.ip_url(""), 303, "/echo"))).await);
    assert_eq!((&see_other["method"], &see_other["body"]), (&json!("GET"), &json!("")));
    assert_eq!(see_other["contentType"], Value::Null);
}

#[tokio::test]
async fn requests_end_by_their_timeout_or_the_call_deadline() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(
        dir.path(),
        NetworkConfig {
            allow_private_addresses: true,
            ..NetworkConfig::default()
        },
    )
    .await;
    let started = Instant::now();
    let result = call_limited(
        &app,
        &[],
        Duration::from_secs(20),
        "agentos.net_http_get",
        json!({"url": server.ip_url("/slow"), "timeoutMs": 300}),
    )
    .await;
    let message = failure(&result);
    assert!(
        message.contains("within 300 ms") && message.contains("timeoutMs"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let started = Instant::now();
    let result = call_limited(
        &app,
        &[],
        Duration::from_millis(800),
        "agentos.net_http_get",
        json!({"url": server.ip_url("/slow")}),
    )
    .await;
    let message = failure(&result);
    assert!(message.contains("the time left for this call"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
