//! Configured upstream servers are in the first tool listing, and sessions hear about list
//! changes only when their listing really changes. agentos itself is the upstream.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, agentos_bin, eventually, stdio_client, structured};
use crate::upstream_core::{names, server_summary, toml_str, write_config};

/// A stdio server that takes `delay` seconds before it starts `agentos mcp`, as `npx` or `uvx`
/// do while they resolve a package.
fn slow_inner(name: &str, data_dir: &Path, delay: &str) -> String {
    let script = format!(
        "sleep {delay}; exec '{}' mcp --data-dir '{}' --allow-tools agentos.time_now",
        agentos_bin().display(),
        data_dir.display()
    );
    format!(
        "[[mcp_servers]]\nname = {}\ncommand = \"sh\"\nargs = [\"-c\", {}]\n",
        toml_str(name),
        toml_str(&script)
    )
}

/// A client that lists tools once, right after `initialize` (as Claude Desktop does), sees a
/// slow configured server's tools; a broken one neither holds the listing up nor appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_listing_waits_for_configured_servers() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = write_config(
        outer.path(),
        &format!(
            "{}[[mcp_servers]]\nname = \"broken\"\ncommand = \"/nonexistent/agentos-test-server\"\n",
            slow_inner("slow", inner.path(), "1")
        ),
    );
    let (client, observed, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    let started = Instant::now();
    let first = names(&client).await;
    let waited = started.elapsed();
    assert!(
        first.iter().any(|n| n == "mcp.slow.agentos.time_now"),
        "the first listing has the slow server's tools: {first:?}; log:\n{}",
        log.lock().unwrap()
    );
    assert!(!first.iter().any(|n| n.starts_with("mcp.broken.")), "{first:?}");
    assert!(
        waited < Duration::from_secs(5),
        "waited only for the slow server: {waited:?}"
    );
    assert!(
        log.lock().unwrap().contains("MCP server failed to connect"),
        "the broken server is reported; log:\n{}",
        log.lock().unwrap()
    );
    let now = structured(&common::call(&client, "mcp.slow.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");
    // Its tools were in the listing the session got, so they are no change to announce.
    assert_eq!(*observed.list_changed.lock().unwrap(), 0);
    let _ = client.cancel().await;
}

/// A server that never answers delays the first listing by `mcp_startup_wait_secs` at most, is
/// named in the log, and delays no later listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_delays_the_first_listing_only_by_the_startup_wait() {
    let outer = tempfile::tempdir().unwrap();
    let config = write_config(
        outer.path(),
        "mcp_startup_wait_secs = 1.5\n[[mcp_servers]]\nname = \"hung\"\ncommand = \"sleep\"\nargs = [\"300\"]\n",
    );
    let (client, _, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    let started = Instant::now();
    let first = names(&client).await;
    let waited = started.elapsed();
    assert!(first.iter().any(|n| n == "agentos.time_now"), "{first:?}");
    assert!(
        waited < Duration::from_secs(10),
        "not the 30 s connect timeout: {waited:?}"
    );
    assert!(
        log.lock()
            .unwrap()
            .lines()
            .any(|line| line.contains("before these providers finished starting") && line.contains("hung")),
        "the hung server is named; log:\n{}",
        log.lock().unwrap()
    );
    let again = Instant::now();
    names(&client).await;
    assert!(again.elapsed() < Duration::from_secs(1), "{:?}", again.elapsed());
    let _ = client.cancel().await;
}

/// An upstream that restarts with the same tools changes nothing the session sees: no
/// `list_changed`. One that comes back with other tools does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_only_when_the_listing_really_changes() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The tools the upstream offers are read from a file at each start.
    let allowed = outer.path().join("allowed");
    std::fs::write(&allowed, "agentos.time_now").unwrap();
    let script = format!(
        "exec '{}' mcp --data-dir '{}' --allow-tools \"$(cat '{}')\"",
        agentos_bin().display(),
        inner.path().display(),
        allowed.display()
    );
    let config = write_config(
        outer.path(),
        &format!(
            "[[mcp_servers]]\nname = \"inner\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\nunavailable_grace_secs = 60\n",
            toml_str(&script)
        ),
    );
    let (client, observed, log) = stdio_client(outer.path(), &["--config", config.to_str().unwrap()]).await;
    let before = names(&client).await;
    assert!(before.iter().any(|n| n == "mcp.inner.agentos.time_now"), "{before:?}");
    let notified = || *observed.list_changed.lock().unwrap();
    assert_eq!(notified(), 0, "start-up is no change to a session that listed after it");

    // Killed, it restarts with the same tools: nothing to tell.
    restart(&client, &log).await;
    assert_eq!(names(&client).await, before);

    // Killed again, it comes back with one more tool: that is a change.
    std::fs::write(&allowed, "agentos.time_now,agentos.time_sleep").unwrap();
    restart(&client, &log).await;
    assert!(
        eventually(Duration::from_secs(10), || notified() >= 1).await,
        "list_changed for the new tool; log:\n{}",
        log.lock().unwrap()
    );
    // Notifications of one session go out in order, so had the first restart been announced,
    // it would be counted here too.
    assert_eq!(notified(), 1, "exactly one list_changed: for the real change");
    assert!(names(&client).await.iter().any(|n| n == "mcp.inner.agentos.time_sleep"));
    let _ = client.cancel().await;
}

/// Kills the upstream `inner` and waits until a new process of it is connected.
async fn restart(client: &common::Client, log: &std::sync::Mutex<String>) {
    let connected = || log.lock().unwrap().matches("MCP server connected").count();
    let summary = server_summary(client, "inner").await;
    let old_pid = summary["pid"].as_u64().expect("pid") as u32;
    let connections = connected();
    let killed = std::process::Command::new("kill")
        .args(["-9", &old_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = server_summary(client, "inner").await;
        let new_pid = summary["pid"].as_u64().is_some_and(|pid| pid as u32 != old_pid);
        if summary["status"] == "up" && new_pid && connected() > connections {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "inner did not come back: {summary}; log:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
