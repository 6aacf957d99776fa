//! An agentos killed with SIGKILL (no chance to stop anything) leaves none of its stdio
//! upstreams running: not the server, even one that ignores the end of its stdin and friendly
//! signals, and not the children the server started in its process group.

use std::time::Duration;

use serde_json::json;

use crate::common::{Server, agentos_bin, eventually, http_client, structured};
use crate::upstream_core::{server_summary, toml_str, wait_for_tool, write_config};

/// Live (not zombie: a zombie has ended and waits only for its parent, init by then, to reap
/// it) processes of the process group `pgid`.
fn running_in_group(pgid: u32) -> Vec<String> {
    let mut running = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            running.push(stat.trim().to_owned());
        }
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agentos_takes_its_stdio_servers_and_their_children_along() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A stubborn server: a shell that ignores SIGHUP and SIGTERM, starts a child of its own, runs
    // the MCP server proper and, when that ends with its stdin, just carries on.
    let script = format!(
        "trap '' HUP TERM; sleep 300 & '{}' mcp --data-dir '{}' --allow-tools agentos.time_now; sleep 300",
        agentos_bin().display(),
        inner.path().display()
    );
    let config = write_config(
        outer.path(),
        &format!(
            "[[mcp_servers]]\nname = \"stubborn\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\n",
            toml_str(&script)
        ),
    );
    let mut server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    assert!(
        wait_for_tool(&client, "mcp.stubborn.agentos.time_now", Duration::from_secs(30)).await,
        "log:\n{}",
        server.log()
    );
    let now = structured(&crate::common::call(&client, "mcp.stubborn.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");
    let group = server_summary(&client, "stubborn").await["pid"].as_u64().expect("pid") as u32;
    // The shell, its sleep and the MCP server (and the watcher agentos adds).
    assert!(
        running_in_group(group).len() >= 3,
        "the server and its children run: {:#?}",
        running_in_group(group)
    );
    let _ = client.cancel().await;

    server.kill();
    assert!(
        eventually(Duration::from_secs(10), || running_in_group(group).is_empty()).await,
        "still running after agentos was killed: {:#?}",
        running_in_group(group)
    );
}
