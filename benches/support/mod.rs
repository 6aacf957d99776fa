//! Shared by the benchmarks: starting agentos and a baseline server, and a closed-loop HTTP
//! load generator that reports calls/s and latency percentiles.

#![allow(dead_code)]

pub mod paired;
pub mod table;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::{TcpListener, TcpStream};

pub const FIXED_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#;

/// A minimal hyper server: the floor any HTTP service on this machine can reach. Run in its own
/// process (the benchmark re-executes itself with `--baseline-server`).
pub fn baseline_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(FIXED_BODY.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_baseline() -> Proc {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--baseline-server")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Proc {
        child,
        addr: line.trim().parse().unwrap(),
        _dir: None,
    }
}

/// Starts `agentos serve --no-auth` on a fixed free port and returns it with the time from
/// spawn to its first successful tool call.
pub fn start_agentos(extra: &[&str]) -> (Proc, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--no-auth"];
    args.extend_from_slice(extra);
    launch(dir, &args, false, "warn")
}

/// Starts `agentos serve` with `config` as its config file: with authentication on (as shipped)
/// when `secure`, returning the owner's bearer token, else with `--no-auth`.
pub fn start_agentos_configured(config: &str, secure: bool) -> (Proc, Option<String>) {
    start_agentos_logged(config, secure, "warn")
}

/// Like [`start_agentos_configured`], with `log` as the `AGENTOS_LOG` filter (`info` is what
/// `agentos serve` logs by default; `off` turns logging off).
pub fn start_agentos_logged(config: &str, secure: bool, log: &str) -> (Proc, Option<String>) {
    start_agentos_binary(std::path::Path::new(env!("CARGO_BIN_EXE_agentos")), config, secure, log)
}

/// Like [`start_agentos_logged`], running the agentos binary at `binary` (another build, to
/// compare two versions in one run).
pub fn start_agentos_binary(binary: &std::path::Path, config: &str, secure: bool, log: &str) -> (Proc, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agentos.toml");
    std::fs::write(&config_path, config).unwrap();
    let config_arg = config_path.to_string_lossy().into_owned();
    let mut args = vec!["--config", config_arg.as_str()];
    if !secure {
        args.push("--no-auth");
    }
    let (proc, _) = launch_binary(binary, dir, &args, secure, log);
    let token = secure.then(|| {
        std::fs::read_to_string(proc.data_dir().join("owner-token"))
            .unwrap()
            .trim()
            .to_owned()
    });
    (proc, token)
}

impl Proc {
    /// A server the benchmark started itself, on its own data directory.
    pub fn adopt(child: Child, addr: SocketAddr) -> Self {
        Self {
            child,
            addr,
            _dir: None,
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self._dir.as_ref().expect("agentos has a data dir").path().join("data")
    }
}

/// Registers the agent `bench-agent` with the owner's token; returns its bearer token. The
/// benchmarks call as an agent: the owner is an ops-admin, whom rate limits never charge.
pub fn register_agent(addr: SocketAddr, owner: Option<&str>) -> String {
    let registered = exchange(
        addr,
        "POST",
        "/register",
        owner,
        r#"{"agentId":"bench-agent","name":"Benchmark agent"}"#,
    )
    .expect("register the benchmark agent");
    registered
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no token in {registered}"))
        .to_owned()
}

/// A blocking HTTP/1.1 exchange on a fresh connection; returns the whole response text.
pub fn exchange(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn launch(dir: tempfile::TempDir, args: &[&str], secure: bool, log: &str) -> (Proc, Duration) {
    launch_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_agentos")),
        dir,
        args,
        secure,
        log,
    )
}

fn launch_binary(
    binary: &std::path::Path,
    dir: tempfile::TempDir,
    args: &[&str],
    secure: bool,
    log: &str,
) -> (Proc, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data_dir = dir.path().join("data");
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data_dir)
        .args(args)
        .env("AGENTOS_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = r#"{"tool":"agentos.time_now"}"#;
    loop {
        let token = if secure {
            std::fs::read_to_string(data_dir.join("owner-token")).ok()
        } else {
            None
        };
        if (!secure || token.is_some())
            && exchange(addr, "POST", "/mcp", token.as_deref().map(str::trim), body)
                .is_some_and(|response| response.contains("\"success\":true"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "agentos did not answer within 10 s"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    let first_call = started.elapsed();
    (
        Proc {
            child,
            addr,
            _dir: Some(dir),
        },
        first_call,
    )
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Where a process's proportional set size (PSS) goes, in KiB, from /proc/<pid>/smaps: what its
/// idle footprint is made of.
#[derive(Debug, Default, Clone, Copy)]
pub struct Footprint {
    pub pss: u64,
    /// The executable's code pages that are mapped (run at least once, or faulted in around code
    /// that ran).
    pub binary_code: u64,
    /// The executable's read-only data, relocations and statics.
    pub binary_data: u64,
    /// The main heap (`[heap]`, where glibc's main arena lives).
    pub heap: u64,
    /// Anonymous mappings: other malloc arenas (one per thread that allocated) and thread stacks.
    pub anonymous: u64,
    /// Shared libraries (libc, libm, the loader) and everything else.
    pub other: u64,
    pub threads: u64,
}

impl Footprint {
    pub fn of(pid: u32) -> Self {
        let mut footprint = Footprint::default();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let exe = exe.to_string_lossy().into_owned();
        let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
            return footprint;
        };
        let mut bucket = 0usize;
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
                let executable = fields.get(1).is_some_and(|perms| perms.contains('x'));
                let path = fields.get(5).copied().unwrap_or("");
                bucket = match path {
                    p if p == exe && executable => 1,
                    p if p == exe => 2,
                    "[heap]" => 3,
                    "" | "[stack]" => 4,
                    _ => 5,
                };
            } else if fields.first() == Some(&"Pss:") {
                let kib: u64 = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                footprint.pss += kib;
                match bucket {
                    1 => footprint.binary_code += kib,
                    2 => footprint.binary_data += kib,
                    3 => footprint.heap += kib,
                    4 => footprint.anonymous += kib,
                    _ => footprint.other += kib,
                }
            }
        }
        footprint.threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Threads:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        footprint
    }

    /// "24.6 MiB PSS: code 15.1, data 3.0, heap 5.7, anonymous 0.5, other 0.3 MiB; 9 threads".
    pub fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        format!(
            "{:.1} MiB PSS: binary code {:.1}, binary data {:.1}, heap {:.1}, anonymous (arenas, stacks) {:.1}, libraries and other {:.1} MiB; {} threads",
            mib(self.pss),
            mib(self.binary_code),
            mib(self.binary_data),
            mib(self.heap),
            mib(self.anonymous),
            mib(self.other),
            self.threads
        )
    }
}

#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub method: hyper::Method,
    pub path: &'static str,
    pub headers: Vec<(String, String)>,
    /// Sent as is, except that each `{n}` becomes a number unique within the run (request ids
    /// must not repeat while in flight; keys may need to be distinct).
    pub body: &'static str,
    /// Open an MCP session per connection first and send its id with every request.
    pub per_connection_session: bool,
    /// The server's process, to report its CPU time per call ([`Target::of`]).
    pub server_pid: Option<u32>,
    /// A response body must contain this, or the run fails: we measure working calls only.
    pub expect: &'static str,
}

impl Target {
    /// This target, served by `server` (its CPU time per call is reported).
    pub fn of(mut self, server: &Proc) -> Self {
        self.server_pid = Some(server.child.id());
        self
    }

    /// A JSON POST expecting `expect` in every answer; add headers and sessions as needed.
    pub fn post_json(addr: SocketAddr, path: &'static str, body: &'static str, expect: &'static str) -> Self {
        Self {
            addr,
            method: hyper::Method::POST,
            path,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body,
            per_connection_session: false,
            server_pid: None,
            expect,
        }
    }
}

pub struct Figures {
    pub calls_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The server's CPU time (user + system, every thread) per call over the measured window,
    /// when the target names the server's process. Less sensitive than calls/s to what else the
    /// machine runs: it counts the server's work, not the share of the cores it got.
    pub cpu_us_per_call: Option<f64>,
}

/// A process's CPU time so far (user + system, every thread), from /proc; `None` elsewhere.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12th and 13th after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space whatever the kernel's HZ.
    Some(Duration::from_millis(ticks * 10))
}

async fn worker(target: Arc<Target>, index: usize, until: Instant, warm_until: Instant) -> Vec<u32> {
    let stream = TcpStream::connect(target.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let session = if target.per_connection_session {
        Some(open_session(target.addr).await)
    } else {
        None
    };
    let mut latencies = Vec::with_capacity(100_000);
    let numbered = target.body.contains("{n}");
    let mut sequence = 0u64;
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        let mut request = Request::builder()
            .method(target.method.clone())
            .uri(target.path)
            .header("host", "127.0.0.1");
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        if let Some(session) = &session {
            request = request.header("mcp-session-id", session);
        }
        sequence += 1;
        let body = if numbered {
            Bytes::from(
                target
                    .body
                    .replace("{n}", &((index as u64) << 32 | sequence).to_string()),
            )
        } else {
            Bytes::from_static(target.body.as_bytes())
        };
        let request = request.body(Full::new(body)).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let elapsed = now.elapsed();
        if !body.windows(target.expect.len()).any(|w| w == target.expect.as_bytes()) {
            panic!("unexpected response: {}", String::from_utf8_lossy(&body));
        }
        if now >= warm_until {
            latencies.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
        }
    }
    latencies
}

pub async fn load(target: Target, duration: Duration, connections: usize) -> Figures {
    let target = Arc::new(target);
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let warm_until = start + warmup;
    let until = warm_until + duration;
    let workers: Vec<_> = (0..connections)
        .enumerate()
        .map(|(index, _)| tokio::spawn(worker(target.clone(), index, until, warm_until)))
        .collect();
    // The server's CPU time from the end of the warm-up to the last answer.
    let cpu_at_warm = target.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(warm_until.into()).await;
            cpu_time(pid)
        })
    });
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let cpu_used = match (cpu_at_warm, target.server_pid) {
        (Some(at_warm), Some(pid)) => at_warm
            .await
            .unwrap()
            .zip(cpu_time(pid))
            .map(|(before, after)| after.saturating_sub(before)),
        _ => None,
    };
    all.sort_unstable();
    let percentile = |p: f64| all.get(((all.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64;
    Figures {
        calls_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        cpu_us_per_call: cpu_used
            .filter(|_| !all.is_empty())
            .map(|cpu| cpu.as_secs_f64() * 1e6 / all.len() as f64),
    }
}

/// `agentos.time_now` over the plain form of POST /mcp against a fresh `--no-auth` agentos with
/// `config` and `log` as its `AGENTOS_LOG` filter; the server's CPU time per call included.
pub async fn time_now_plain(config: &str, log: &str, duration: Duration, connections: usize) -> Figures {
    let (agentos, _) = start_agentos_logged(config, false, log);
    load_time_now_plain(&agentos, duration, connections).await
}

/// Plain-form `agentos.time_now` load on a running `agentos` (no token).
pub async fn load_time_now_plain(agentos: &Proc, duration: Duration, connections: usize) -> Figures {
    let target = Target::post_json(
        agentos.addr,
        "/mcp",
        r#"{"tool":"agentos.time_now"}"#,
        "\"success\":true",
    );
    load(target.of(agentos), duration, connections).await
}

/// Opens an MCP session (initialize + initialized) and returns its id.
pub async fn open_session(addr: SocketAddr) -> String {
    let client = {
        agentos::tls::install_crypto_provider();
        reqwest::Client::new()
    };
    let url = format!("http://{addr}/mcp");
    let response = client
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = response.bytes().await;
    client
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    session
}

pub fn row(name: &str, f: &Figures, baseline: &Figures) {
    println!(
        "{name:<44} {:>10.0} {:>9.0} {:>9.0} {:>9.2}x",
        f.calls_per_sec,
        f.p50_us,
        f.p99_us,
        f.calls_per_sec / baseline.calls_per_sec
    );
}
