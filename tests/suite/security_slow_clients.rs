//! Slow and idle clients against the real `agentos serve`, over raw TCP.
//!
//! Attacks tried, and the outcome each must have:
//! - a connection that sends nothing, half a request head, or a head one byte at a time → closed
//!   at the header timeout; a kept-alive connection with no next request → closed at the idle
//!   timeout, which is longer
//! - half a body (declared or chunked) → 408 `body_timeout` and the connection closed at the body
//!   timeout
//! - more idle connections than `max_connections` → the ones past it get `503
//!   too_many_connections` at once, a connection within the cap keeps being answered, and once the
//!   idle ones are timed out new connections are served again
//! - one agent holding large half-sent bodies → refused `503 too_many_bodies_in_flight` past its
//!   budget (declared and chunked), while another agent gets through
//! - the open-file limit, the cap and the open connections are in `/health/ready` for ops-admins
//!   only; under `prlimit --nofile=256` the cap is derived from that limit

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, Server};

/// Slack for a loaded machine on top of a timeout the server must keep.
const SLACK: Duration = Duration::from_secs(4);

/// A raw HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(&server.addr).await.expect("connect")
}

/// Reads until the server closes the connection (EOF or reset), for at most `limit`: how long
/// that took, or `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut discard = [0u8; 4096];
    let until_closed = async {
        while let Ok(read) = stream.read(&mut discard).await {
            if read == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(limit, until_closed).await.ok()?;
    Some(started.elapsed())
}

/// Reads one answer (head and a body of its `content-length`), for at most `limit`.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Option<Answer> {
    let read = async {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    let body = serde_json::from_slice(&bytes[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                    return Some(Answer { status, head, body });
                }
            }
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            bytes.extend_from_slice(&chunk[..read]);
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// `GET /health` on `stream`, kept alive.
async fn health_on(stream: &mut TcpStream) -> Option<Answer> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    read_answer(stream, SLACK).await
}

/// The head of a POST to /mcp as `token` declaring `length` bytes of body.
fn post_head(token: &str, length: usize) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn chunked_head(token: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
}

fn start(dir: &std::path::Path, http: &str) -> Server {
    Server::start_secure_configured(dir, &format!("[http]\n{http}"))
}

#[tokio::test]
async fn silent_and_slow_heads_are_closed_at_the_header_timeout_and_idle_ones_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "header_read_timeout_secs = 1\nidle_timeout_secs = 3\n");
    let header = Duration::from_secs(1);

    let mut silent = connect(&server).await;
    let mut half = connect(&server).await;
    half.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await
        .unwrap();
    // One byte of a head every 200 ms: each byte is progress, but the head is never complete.
    let mut trickle = connect(&server).await;
    let (mut trickle_read, mut trickle_write) = trickle.split();
    let trickling = async {
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".iter().cycle() {
            pace.tick().await;
            if trickle_write.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    };
    let trickle_closed = async {
        let mut discard = [0u8; 64];
        let started = Instant::now();
        let closed = tokio::time::timeout(header + SLACK, async {
            while matches!(trickle_read.read(&mut discard).await, Ok(n) if n > 0) {}
        })
        .await;
        closed.ok().map(|()| started.elapsed())
    };
    let (trickled, silent_closed, half_closed) = tokio::join!(
        async {
            tokio::select! {
                closed = trickle_closed => closed,
                () = trickling => None,
            }
        },
        closed_within(&mut silent, header + SLACK),
        closed_within(&mut half, header + SLACK),
    );
    for (what, closed) in [
        ("silent", silent_closed),
        ("half a head", half_closed),
        ("trickled head", trickled),
    ] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after {:?}", header + SLACK));
        assert!(
            closed >= header - Duration::from_millis(100),
            "{what}: closed after {closed:?}"
        );
    }

    // A kept-alive connection after its answer: idle, so the longer idle timeout applies.
    let mut kept = connect(&server).await;
    let answer = health_on(&mut kept).await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    let idle = Duration::from_secs(3);
    let closed = closed_within(&mut kept, idle + SLACK)
        .await
        .expect("the idle connection is closed");
    assert!(closed >= idle - Duration::from_millis(300), "closed after {closed:?}");

    let mut fresh = connect(&server).await;
    assert_eq!(health_on(&mut fresh).await.map(|a| a.status), Some(200));
}

#[tokio::test]
async fn half_sent_bodies_get_408_at_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "body_read_timeout_secs = 1\n");
    let timeout = Duration::from_secs(1);

    let mut declared = connect(&server).await;
    declared
        .write_all(format!("{}{{\"tool\": \"agentos.time_now\", ", post_head(server.token(), 1000)).as_bytes())
        .await
        .unwrap();
    let mut chunked = connect(&server).await;
    chunked
        .write_all(format!("{}12\r\n{{\"tool\": \"agentos.\r\n", chunked_head(server.token())).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    for (what, stream) in [("declared", &mut declared), ("chunked", &mut chunked)] {
        let answer = read_answer(stream, timeout + SLACK)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(answer.status, 408, "{what}: {answer:?}");
        assert_eq!(answer.body["error"], "body_timeout", "{what}: {answer:?}");
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("body_read_timeout_secs")
        );
        assert!(
            answer.head.to_ascii_lowercase().contains("connection: close"),
            "{answer:?}"
        );
        assert!(
            closed_within(stream, SLACK).await.is_some(),
            "{what}: closed after the answer"
        );
    }
    assert!(started.elapsed() >= timeout - Duration::from_millis(100));

    // A whole body, sent at once, is served as ever.
    let (status, _, body) = server.plain(server.token(), "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_get_503_and_those_within_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "max_connections = 20\nheader_read_timeout_secs = 2\nidle_timeout_secs = 30\n",
    );
    // A monitor's kept-alive connection, opened before the flood.
    let mut monitor = connect(&server).await;
    assert_eq!(health_on(&mut monitor).await.map(|a| a.status), Some(200));

    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect(&server).await);
    }
    // 19 more fit beside the monitor; the other 21 are answered 503 and closed at once.
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in idle {
        reads.spawn(async move {
            let answer = read_answer(&mut stream, Duration::from_millis(500)).await;
            (stream, answer)
        });
    }
    let mut refused = 0;
    let mut held = Vec::new();
    while let Some(read) = reads.join_next().await {
        let (stream, answer) = read.unwrap();
        let Some(answer) = answer else {
            held.push(stream);
            continue;
        };
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.body["error"], "too_many_connections", "{answer:?}");
        assert!(answer.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let head = answer.head.to_ascii_lowercase();
        assert!(head.contains("retry-after: 1"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        refused += 1;
    }
    assert_eq!(refused, 21, "refused {refused} of 40 with 19 places left");

    // Within the cap, the monitor is still answered while the idle ones hold their places.
    assert_eq!(health_on(&mut monitor).await.map(|a| a.status), Some(200));

    // The idle ones are closed at the header timeout; new connections are served again.
    let mut served = false;
    let deadline = Instant::now() + Duration::from_secs(2) + SLACK;
    while Instant::now() < deadline {
        let mut fresh = connect(&server).await;
        if health_on(&mut fresh).await.is_some_and(|a| a.status == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "new connections are served once the idle ones are closed");
    for mut stream in held {
        assert!(
            closed_within(&mut stream, SLACK).await.is_some(),
            "an idle one is closed"
        );
    }
}

#[tokio::test]
async fn an_agent_past_its_budget_of_bodies_in_flight_is_refused_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    // Three bodies of 1,000,000 bytes fit in 3 MiB; a fourth does not.
    let server = start(
        dir.path(),
        "max_body_bytes_in_flight_per_caller = 3145728\nbody_read_timeout_secs = 60\n",
    );
    let hog = server.register_agent("hog", &["agentos.time_now"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = server.register_agent("other", &["agentos.time_now"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut holding = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        let mut start = post_head(&hog, 1_000_000).into_bytes();
        start.extend_from_slice(&[b' '; 100_000]);
        stream.write_all(&start).await.unwrap();
        holding.push(stream);
    }
    // A whole request by another agent, after the three heads: they have been read by now.
    let (status, _, body) = server.plain(&other, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK, "another agent gets through: {body}");

    // Declared: refused from the head, before a byte of the body.
    let mut fourth = connect(&server).await;
    fourth.write_all(post_head(&hog, 1_000_000).as_bytes()).await.unwrap();
    let answer = read_answer(&mut fourth, SLACK)
        .await
        .expect("an answer from the head alone");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "too_many_bodies_in_flight", "{answer:?}");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes_in_flight_per_caller")
    );
    assert!(
        answer.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer:?}"
    );

    // Chunked: counted as it arrives, refused once past what is left (145,728 bytes).
    let mut chunked = connect(&server).await;
    let mut request = chunked_head(&hog).into_bytes();
    request.extend_from_slice(format!("{:x}\r\n", 200_000).as_bytes());
    request.extend_from_slice(&[b' '; 200_000]);
    let _ = chunked.write_all(&request).await;
    let answer = read_answer(&mut chunked, SLACK).await.expect("an answer");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "too_many_bodies_in_flight", "{answer:?}");

    let (status, _, body) = server.plain(&other, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK, "another agent still gets through: {body}");

    // Once the held bodies are abandoned, the budget is free again.
    drop(holding);
    let mut served = false;
    let deadline = Instant::now() + SLACK;
    while Instant::now() < deadline && !served {
        served = server.plain(&hog, "agentos.time_now", json!({})).await.0 == StatusCode::OK;
        if !served {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(served, "the hog is served once its bodies are gone");
}

async fn ready(server: &Server, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = common::http().get(server.url("/health/ready"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn readiness_shows_the_connection_limits_to_ops_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "max_connections = 50\n");
    let (status, report) = ready(&server, Some(server.token())).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let connections = &report["connections"];
    assert_eq!(connections["maxConnections"], 50, "{report}");
    assert!(connections["openConnections"].as_u64().unwrap() >= 1, "{report}");
    #[cfg(target_os = "linux")]
    {
        // Raised to the hard limit at start.
        let hard = std::fs::read_to_string("/proc/self/limits")
            .unwrap()
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(4).map(str::to_owned))
            .unwrap();
        if hard != "unlimited" {
            assert_eq!(connections["openFileLimit"].to_string(), hard, "{report}");
        }
    }

    let agent = server.register_agent("plain-agent", &["agentos.time_now"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, token) in [("anonymous", None), ("an agent", Some(agent.as_str()))] {
        let (status, report) = ready(&server, token).await;
        assert_eq!(status, StatusCode::OK, "{who}: {report}");
        assert!(report["services"]["store"].is_object(), "{who}: {report}");
        assert!(report.get("connections").is_none(), "{who}: {report}");
    }
    let (status, _) = ready(&server, Some("not-a-token")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "bad credentials are refused, not ignored"
    );
}

#[tokio::test]
async fn under_a_low_open_file_limit_the_cap_is_derived_from_it() {
    if std::process::Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit is not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_wrapped(&dir.path().join("data"), &[], &["prlimit", "--nofile=256:256"]);
    let (status, report) = ready(&server, Some(server.token())).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["connections"]["openFileLimit"], 256, "{report}");
    // 256 less the 128 kept for the database, files and pipes, below the default 1024.
    assert_eq!(report["connections"]["maxConnections"], 128, "{report}");
    assert!(
        server
            .log()
            .contains("http.max_connections lowered to fit the open-file limit"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_streaming_answer_outlives_the_idle_header_and_body_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 1\nidle_timeout_secs = 1\n",
    );
    let post = |session: Option<&str>, body: Value| {
        let mut request = common::http()
            .post(server.mcp_url())
            .bearer_auth(server.token())
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let opened = post(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = post(
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    assert!(initialized.status().is_success(), "{}", initialized.status());

    let mut stream = connect(&server).await;
    stream
        .write_all(
            format!(
                "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\
                 Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-11-25\r\n\r\n",
                server.token()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(SLACK, stream.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(1))),
            "the stream's head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    // Three times every timeout, and the stream is still open: it is a request in progress.
    assert_eq!(
        closed_within(&mut stream, Duration::from_secs(3)).await,
        None,
        "the stream was cut"
    );
}
