//! Proxying upstream MCP servers, with agentos itself as the upstream (`agentos mcp` over stdio,
//! `agentos serve` over streamable HTTP), so no npm or PyPI package is needed.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Client, Server, agentos_bin, call, eventually, http_client, stdio_client, structured, text_of};
use serde_json::{Value, json};

pub(crate) fn toml_str(value: impl AsRef<str>) -> String {
    serde_json::to_string(value.as_ref()).unwrap()
}

/// A stdio `[[mcp_servers]]` entry running `agentos mcp` on its own data directory.
pub(crate) fn inner_stdio(name: &str, data_dir: &Path, allow: &str, extra: &str) -> String {
    format!(
        "[[mcp_servers]]\nname = {}\ncommand = {}\nargs = [\"mcp\", \"--data-dir\", {}, \"--allow-tools\", {}]\n{extra}\n",
        toml_str(name),
        toml_str(agentos_bin().to_string_lossy()),
        toml_str(data_dir.to_string_lossy()),
        toml_str(allow),
    )
}

/// Like `inner_stdio`, but the server first starts a grandchild (`sleep 300`) that ignores the
/// closing of stdin: only killing the whole process group ends it.
pub(crate) fn inner_with_grandchild(name: &str, data_dir: &Path, allow: &str, extra: &str) -> String {
    let script = format!(
        "sleep 300 & exec '{}' mcp --data-dir '{}' --allow-tools '{allow}'",
        agentos_bin().display(),
        data_dir.display()
    );
    format!(
        "[[mcp_servers]]\nname = {}\ncommand = \"sh\"\nargs = [\"-c\", {}]\n{extra}\n",
        toml_str(name),
        toml_str(&script)
    )
}

pub(crate) fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("agentos.toml");
    std::fs::write(&path, body).unwrap();
    path
}

pub(crate) async fn tools(client: &Client) -> Vec<rmcp::model::Tool> {
    client.peer().list_all_tools().await.expect("tools/list")
}

pub(crate) async fn names(client: &Client) -> Vec<String> {
    tools(client).await.into_iter().map(|t| t.name.to_string()).collect()
}

/// Waits until the client lists `name` (servers connect in the background).
pub(crate) async fn wait_for_tool(client: &Client, name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if names(client).await.iter().any(|n| n == name) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub(crate) async fn server_summary(client: &Client, name: &str) -> Value {
    let list = structured(&call(client, "agentos.mcp_servers_list", json!({})).await);
    list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Processes whose process group is `pgid`, or the process `pid` itself if it still exists
/// (a zombie counts: it was not reaped).
pub(crate) fn processes_left(pgid: u32) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned()) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let pid = entry.file_name().to_string_lossy().to_string();
        if pid == pgid.to_string() || fields.get(2) == Some(&pgid.to_string().as_str()) {
            left.push(format!("{pid}: {stat}"));
        }
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_servers_are_listed_with_identical_schemas_and_filtered() {
    let outer = tempfile::tempdir().unwrap();
    let (inner_a, inner_b, direct) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // One server in the config file, one as a file in tools/servers next to it.
    let config = write_config(
        outer.path(),
        &inner_stdio(
            "alpha",
            inner_a.path(),
            "agentos.time_*,agentos.mem_*",
            "include = [\"agentos.time_*\", \"agentos.mem_get\"]\nexclude = [\"agentos.time_sleep\"]",
        ),
    );
    let servers_dir = outer.path().join("tools").join("servers");
    std::fs::create_dir_all(&servers_dir).unwrap();
    std::fs::write(
        servers_dir.join("beta.toml"),
        inner_stdio("beta", inner_b.path(), "agentos.mem_*", "").replace("[[mcp_servers]]\n", ""),
    )
    .unwrap();
    // A disabled one is listed but never started.
    std::fs::write(
        servers_dir.join("off.toml"),
        "name = \"off\"\ncommand = \"/nonexistent/never-run\"\nenabled = false\n",
    )
    .unwrap();

    let (client, _, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(
        wait_for_tool(&client, "mcp.alpha.agentos.time_now", Duration::from_secs(30)).await,
        "alpha connected; log:\n{}",
        log.lock().unwrap()
    );
    assert!(wait_for_tool(&client, "mcp.beta.agentos.mem_set", Duration::from_secs(30)).await);

    let listed = tools(&client).await;
    let alpha: Vec<&str> = listed
        .iter()
        .filter_map(|t| t.name.strip_prefix("mcp.alpha."))
        .collect();
    assert!(alpha.contains(&"agentos.mem_get"), "{alpha:?}");
    assert!(!alpha.contains(&"agentos.mem_set"), "include filters: {alpha:?}");
    assert!(!alpha.contains(&"agentos.time_sleep"), "exclude filters: {alpha:?}");

    // Input schemas are the upstream's, unchanged.
    let (upstream, _, _) = stdio_client(direct.path(), &["--allow-tools", "agentos.time_*,agentos.mem_*"]).await;
    let originals = tools(&upstream).await;
    let mut compared = 0;
    for tool in &listed {
        let Some(original_name) = tool
            .name
            .strip_prefix("mcp.alpha.")
            .or_else(|| tool.name.strip_prefix("mcp.beta."))
        else {
            continue;
        };
        let original = originals
            .iter()
            .find(|t| t.name == original_name)
            .expect("upstream has it");
        assert_eq!(
            tool.input_schema, original.input_schema,
            "{} keeps its schema",
            tool.name
        );
        compared += 1;
    }
    assert!(compared >= 4, "compared {compared} schemas");

    // Calls go through.
    let now = structured(&call(&client, "mcp.alpha.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some_and(|s| s.ends_with('Z')), "{now}");
    structured(&call(&client, "mcp.beta.agentos.mem_set", json!({"key": "k", "value": 7})).await);
    let got = structured(&call(&client, "mcp.beta.agentos.mem_get", json!({"key": "k"})).await);
    assert_eq!(got["value"], 7, "{got}");
    // The same tool name on two servers: each reaches its own server.
    let other = call(&client, "mcp.alpha.agentos.mem_get", json!({"key": "k"})).await;
    assert_ne!(
        other.structured_content.as_ref().and_then(|v| v.get("value")),
        Some(&json!(7)),
        "alpha has its own store: {other:?}"
    );

    let off = server_summary(&client, "off").await;
    assert_eq!(off["status"], "disabled", "{off}");
    let _ = upstream.cancel().await;

    // When agentos exits, its upstream processes go with it.
    let pids: Vec<u32> = ["alpha", "beta"]
        .iter()
        .map(|name| {
            let summary = futures::executor::block_on(server_summary(&client, name));
            summary["pid"].as_u64().expect("pid") as u32
        })
        .collect();
    let _ = client.cancel().await;
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(10), || processes_left(pid).is_empty()).await,
            "left after exit: {:?}",
            processes_left(pid)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_is_proxied() {
    let (outer, upstream_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let upstream = Server::start(
        upstream_dir.path(),
        &["--allow-tools", "agentos.time_now,agentos.mem_*"],
    );
    let config = write_config(
        outer.path(),
        &format!(
            "[[mcp_servers]]\nname = \"web\"\nurl = {}\nheaders = {{ X-Test = \"1\" }}\n",
            toml_str(upstream.mcp_url())
        ),
    );
    let (client, _, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(
        wait_for_tool(&client, "mcp.web.agentos.time_now", Duration::from_secs(30)).await,
        "HTTP upstream connected; log:\n{}",
        log.lock().unwrap()
    );
    let now = structured(&call(&client, "mcp.web.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");
    // And added at run time by URL through the management tool.
    let added = structured(
        &call(
            &client,
            "agentos.mcp_server_add",
            json!({"name": "web2", "url": upstream.mcp_url(), "include": ["agentos.mem_*"]}),
        )
        .await,
    );
    let added_tools: Vec<String> = serde_json::from_value(added["tools"].clone()).unwrap();
    assert!(
        added_tools.iter().all(|t| t.starts_with("mcp.web2.agentos.mem_")),
        "{added_tools:?}"
    );
    assert!(!added_tools.is_empty());
    let bad = call(
        &client,
        "agentos.mcp_server_add",
        json!({"name": "x", "command": "a", "url": "http://h"}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text_of(&bad).contains("not both"), "{}", text_of(&bad));
    let no_token = call(
        &client,
        "agentos.mcp_server_add",
        json!({"name": "web3", "url": upstream.mcp_url(), "bearer_token_env": "AGENTOS_TEST_UNSET_TOKEN_VAR"}),
    )
    .await;
    assert_eq!(no_token.is_error, Some(true));
    assert!(
        text_of(&no_token).contains("AGENTOS_TEST_UNSET_TOKEN_VAR"),
        "{}",
        text_of(&no_token)
    );
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_fails_fast_restarts_and_leaves_no_orphans() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = write_config(
        outer.path(),
        &inner_with_grandchild("inner", inner.path(), "agentos.time_*", "timeout_secs = 20"),
    );
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    assert!(
        wait_for_tool(&client, "mcp.inner.agentos.time_now", Duration::from_secs(30)).await,
        "log:\n{}",
        server.log()
    );
    let before = server_summary(&client, "inner").await;
    let old_pid = before["pid"].as_u64().expect("pid of the stdio server") as u32;
    assert!(
        processes_left(old_pid).len() >= 2,
        "the server and its grandchild run: {:?}",
        processes_left(old_pid)
    );

    let slow = {
        let peer = client.peer().clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = peer
                .call_tool(common::params("mcp.inner.agentos.time_sleep", json!({"seconds": 30})))
                .await;
            (started.elapsed(), result)
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = std::process::Command::new("kill")
        .args(["-9", &old_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let (elapsed, result) = tokio::time::timeout(Duration::from_secs(15), slow)
        .await
        .expect("the call in flight ends, never hangs")
        .unwrap();
    let result = result.expect("a tool result, not a protocol error");
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(
        text_of(&result).contains("`inner` closed the connection"),
        "{}",
        text_of(&result)
    );
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");

    // It comes back with a new process, and calls work again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut summary = Value::Null;
    while Instant::now() < deadline {
        summary = server_summary(&client, "inner").await;
        if summary["status"] == "up" && summary["pid"].as_u64().is_some_and(|p| p as u32 != old_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(summary["status"], "up", "{summary}; log:\n{}", server.log());
    assert_eq!(summary["restarts"], 1, "{summary}");
    let now = structured(&call(&client, "mcp.inner.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");

    // The killed process was reaped and nothing of its group is left.
    assert!(
        eventually(Duration::from_secs(5), || processes_left(old_pid).is_empty()).await,
        "orphans: {:?}",
        processes_left(old_pid)
    );

    // Removing the server kills the new process too.
    let new_pid = summary["pid"].as_u64().unwrap() as u32;
    structured(&call(&client, "agentos.mcp_server_remove", json!({"name": "inner"})).await);
    assert!(
        eventually(Duration::from_secs(5), || processes_left(new_pid).is_empty()).await,
        "left after remove: {:?}",
        processes_left(new_pid)
    );
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_list_change_and_progress_reach_our_client() {
    let (outer, inner, deep) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let config = write_config(outer.path(), &inner_stdio("inner", inner.path(), "*", ""));
    let (client, observed, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(
        wait_for_tool(&client, "mcp.inner.agentos.time_sleep", Duration::from_secs(30)).await,
        "log:\n{}",
        log.lock().unwrap()
    );

    // Progress of the upstream's slow call arrives here.
    let before = observed.progress.lock().unwrap().len();
    let slept = structured(&call(&client, "mcp.inner.agentos.time_sleep", json!({"seconds": 1.5})).await);
    assert!(slept["seconds"].as_f64().unwrap() >= 1.4, "{slept}");
    let progress = observed.progress.lock().unwrap().len() - before;
    assert!(progress >= 1, "progress events arrived through the proxy: {progress}");

    // Dropping a proxied call cancels it upstream: the inner agentos (whose stderr we share)
    // logs the cancellation of its own `agentos.time_sleep`.
    let cancelled_before = log.lock().unwrap().matches("tool call cancelled by the client").count();
    let peer = client.peer().clone();
    let slow = tokio::spawn(async move {
        peer.call_tool(common::params("mcp.inner.agentos.time_sleep", json!({"seconds": 30})))
            .await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    slow.abort();
    assert!(
        eventually(Duration::from_secs(5), || {
            log.lock().unwrap().matches("tool call cancelled by the client").count() >= cancelled_before + 2
        })
        .await,
        "both the proxy and the upstream stopped the call; log:\n{}",
        log.lock().unwrap()
    );

    // A server added inside the upstream changes its list; the change reaches us.
    let changes = *observed.list_changed.lock().unwrap();
    let added = call(
        &client,
        "mcp.inner.agentos.mcp_server_add",
        json!({
            "name": "deep",
            "command": agentos_bin(),
            "args": ["mcp", "--data-dir", deep.path(), "--allow-tools", "agentos.time_now"],
        }),
    )
    .await;
    structured(&added);
    assert!(
        wait_for_tool(&client, "mcp.inner.mcp.deep.agentos.time_now", Duration::from_secs(20)).await,
        "the re-listed tool appears; log:\n{}",
        log.lock().unwrap()
    );
    assert!(
        *observed.list_changed.lock().unwrap() > changes,
        "list_changed reached our client"
    );
    let now = structured(&call(&client, "mcp.inner.mcp.deep.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");

    // When we exit, the upstream goes, and so does the server it started.
    let inner_pid = server_summary(&client, "inner").await["pid"].as_u64().unwrap() as u32;
    let nested = structured(&call(&client, "mcp.inner.agentos.mcp_servers_list", json!({})).await);
    let deep_pid = nested["servers"][0]["pid"].as_u64().expect("deep pid") as u32;
    let _ = client.cancel().await;
    for pid in [inner_pid, deep_pid] {
        assert!(
            eventually(Duration::from_secs(10), || processes_left(pid).is_empty()).await,
            "left after exit: {:?}",
            processes_left(pid)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_leave_while_the_server_stays_down_and_return_with_it() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The server starts only while the marker exists, so a restart can be made to fail.
    let marker = outer.path().join("may-start");
    std::fs::write(&marker, "").unwrap();
    let script = format!(
        "test -f {} && exec {} mcp --data-dir {} --allow-tools agentos.time_now",
        toml_str(marker.to_string_lossy()).replace('"', "'"),
        toml_str(agentos_bin().to_string_lossy()).replace('"', "'"),
        toml_str(inner.path().to_string_lossy()).replace('"', "'"),
    );
    let config = write_config(
        outer.path(),
        &format!(
            "[[mcp_servers]]\nname = \"flaky\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nunavailable_grace_secs = 1\n",
            toml_str(&script)
        ),
    );
    let (client, observed, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(
        wait_for_tool(&client, "mcp.flaky.agentos.time_now", Duration::from_secs(30)).await,
        "log:\n{}",
        log.lock().unwrap()
    );
    let pid = server_summary(&client, "flaky").await["pid"].as_u64().unwrap() as u32;
    std::fs::remove_file(&marker).unwrap();
    let changes = *observed.list_changed.lock().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();

    // Down: at first its tools answer that it is restarting ...
    let down = call(&client, "mcp.flaky.agentos.time_now", json!({})).await;
    assert_eq!(down.is_error, Some(true), "{down:?}");
    assert!(text_of(&down).contains("flaky"), "{}", text_of(&down));
    // ... and after the grace period they leave the list, with list_changed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && names(&client).await.iter().any(|n| n.starts_with("mcp.flaky.")) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !names(&client).await.iter().any(|n| n.starts_with("mcp.flaky.")),
        "withdrawn"
    );
    // The notification travels on its own; the listing may show the change first.
    assert!(
        common::eventually(Duration::from_secs(10), || *observed.list_changed.lock().unwrap()
            > changes)
        .await,
        "list_changed after the withdrawal"
    );
    let summary = server_summary(&client, "flaky").await;
    assert_eq!(summary["status"], "restarting", "{summary}");

    // Back: the next restart succeeds and the tools return.
    std::fs::write(&marker, "").unwrap();
    assert!(
        wait_for_tool(&client, "mcp.flaky.agentos.time_now", Duration::from_secs(30)).await,
        "back after restart; log:\n{}",
        log.lock().unwrap()
    );
    structured(&call(&client, "mcp.flaky.agentos.time_now", json!({})).await);
    let _ = client.cancel().await;
}

/// `agentos serve` on a fixed port (so a restarted one is found at the same URL).
fn serve_on(port: u16, data_dir: &Path) -> std::process::Child {
    let child = std::process::Command::new(agentos_bin())
        .args([
            "serve",
            "--no-auth",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(["--allow-tools", "agentos.time_*"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "agentos serve did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_http_upstream_fails_calls_promptly_and_reconnects() {
    let (outer, upstream_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut upstream = serve_on(port, upstream_dir.path());
    let config = write_config(
        outer.path(),
        &format!("[[mcp_servers]]\nname = \"web\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout_secs = 30\n"),
    );
    let (client, _, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(wait_for_tool(&client, "mcp.web.agentos.time_sleep", Duration::from_secs(30)).await);
    let peer = client.peer().clone();
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let result = peer
            .call_tool(common::params("mcp.web.agentos.time_sleep", json!({"seconds": 30})))
            .await;
        (started.elapsed(), result)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = upstream.kill();
    let _ = upstream.wait();
    let (elapsed, result) = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("never hangs")
        .unwrap();
    let result = result.expect("a tool result");
    assert_eq!(result.is_error, Some(true), "{result:?}");
    // Noticed by the health check (every 2 s), long before the 30 s timeout.
    assert!(elapsed <= Duration::from_secs(8), "{elapsed:?}: {}", text_of(&result));
    assert!(text_of(&result).contains("web"), "{}", text_of(&result));
    let down = call(&client, "mcp.web.agentos.time_now", json!({})).await;
    assert_eq!(down.is_error, Some(true));
    assert!(text_of(&down).contains("unavailable"), "{}", text_of(&down));

    // The upstream returns at the same address: the proxy reconnects by itself.
    let mut upstream = serve_on(port, upstream_dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut summary = Value::Null;
    while Instant::now() < deadline {
        summary = server_summary(&client, "web").await;
        if summary["status"] == "up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(summary["status"], "up", "{summary}; log:\n{}", log.lock().unwrap());
    structured(&call(&client, "mcp.web.agentos.time_now", json!({})).await);
    let _ = client.cancel().await;
    let _ = upstream.kill();
    let _ = upstream.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stopped_by_sigterm_reaps_its_upstreams() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = write_config(
        outer.path(),
        &inner_with_grandchild("inner", inner.path(), "agentos.time_now", ""),
    );
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    assert!(wait_for_tool(&client, "mcp.inner.agentos.time_now", Duration::from_secs(30)).await);
    let inner_pid = server_summary(&client, "inner").await["pid"].as_u64().unwrap() as u32;
    assert!(processes_left(inner_pid).len() >= 2, "{:?}", processes_left(inner_pid));
    let _ = client.cancel().await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        eventually(Duration::from_secs(10), || processes_left(inner_pid).is_empty()).await,
        "left after SIGTERM: {:?}",
        processes_left(inner_pid)
    );
    assert!(server.log().contains("shutting down"), "{}", server.log());
}
