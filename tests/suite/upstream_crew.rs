//! The crew: an upstream with standby endpoints fails over when its active endpoint dies or on
//! request, and `/api/ops/crew*` (adapters over the `agentos.crew_*` tools) show and drive it.
//! agentos itself is the upstream (`agentos mcp` over stdio), so no npm or PyPI package is needed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Client, Server, agentos_bin, call, http, http_client, structured};
use serde_json::{Value, json};

fn toml_str(value: impl AsRef<str>) -> String {
    serde_json::to_string(value.as_ref()).unwrap()
}

/// `args` running `agentos mcp` on its own data directory.
fn inner_args(data_dir: &Path) -> String {
    format!(
        "[\"mcp\", \"--data-dir\", {}, \"--allow-tools\", \"agentos.time_*,agentos.mem_*\"]",
        toml_str(data_dir.to_string_lossy())
    )
}

/// A server `crew` whose primary is `primary_command`/`primary_args` and whose standby runs
/// `agentos mcp` on `standby_dir`.
fn crew_config(dir: &Path, primary_command: &str, primary_args: &str, standby_dir: &Path) -> PathBuf {
    let bin = toml_str(agentos_bin().to_string_lossy());
    let body = format!(
        "[[mcp_servers]]\nname = \"crew\"\ncommand = {}\nargs = {primary_args}\ntimeout_secs = 20\n\
         standby = [{{ command = {bin}, args = {}, env = {{ CREW_SECRET = \"s3cret\" }} }}]\n\
         [[mcp_servers]]\nname = \"off\"\ncommand = \"/nonexistent/never-run\"\nenabled = false\n",
        toml_str(primary_command),
        inner_args(standby_dir),
    );
    let path = dir.join("agentos.toml");
    std::fs::write(&path, body).unwrap();
    path
}

async fn crew_member(client: &Client, name: &str) -> Value {
    let status = structured(&call(client, "agentos.crew_status", json!({})).await);
    status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `crew` is up on the endpoint whose description contains `marker`.
async fn wait_active(client: &Client, marker: &str, server: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut member = Value::Null;
    while Instant::now() < deadline {
        member = crew_member(client, "crew").await;
        if member["health"] == "up" && member["active"].as_str().is_some_and(|a| a.contains(marker)) {
            return member;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`crew` not up on {marker}: {member}; log:\n{}", server.log());
}

async fn time_works(client: &Client) {
    let now = structured(&call(client, "mcp.crew.agentos.time_now", json!({})).await);
    assert!(now["iso"].as_str().is_some(), "{now}");
}

async fn post(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let response = http()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_primary_fails_over_to_the_standby() {
    let (outer, primary, standby) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let config = crew_config(
        outer.path(),
        &agentos_bin().to_string_lossy(),
        &inner_args(primary.path()),
        standby.path(),
    );
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    let primary_marker = primary.path().to_string_lossy().to_string();
    let standby_marker = standby.path().to_string_lossy().to_string();

    let member = wait_active(&client, &primary_marker, &server).await;
    assert_eq!(member["standby"].as_array().unwrap().len(), 1, "{member}");
    assert!(
        member["standby"][0].as_str().unwrap().contains(&standby_marker),
        "{member}"
    );
    assert!(member.get("lastFailure").is_none(), "{member}");
    time_works(&client).await;
    // A value only the primary's store holds.
    structured(
        &call(
            &client,
            "mcp.crew.agentos.mem_set",
            json!({"key": "where", "value": "primary"}),
        )
        .await,
    );

    let list = structured(&call(&client, "agentos.mcp_servers_list", json!({})).await);
    let pid = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crew")
        .and_then(|s| s["pid"].as_u64())
        .expect("pid of the primary");
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );

    let member = wait_active(&client, &standby_marker, &server).await;
    assert!(
        member["standby"][0].as_str().unwrap().contains(&primary_marker),
        "{member}"
    );
    let failure = &member["lastFailure"];
    assert!(
        failure["endpoint"].as_str().unwrap().contains(&primary_marker),
        "{member}"
    );
    assert!(!failure["reason"].as_str().unwrap().is_empty(), "{member}");
    assert!(failure["at"].as_str().unwrap().contains('T'), "{member}");
    assert_eq!(member["restarts"], 1, "{member}");
    // Secrets of the endpoints never show.
    assert!(!member.to_string().contains("s3cret"), "{member}");

    // Calls go through the standby, whose store is its own.
    time_works(&client).await;
    let got = call(&client, "mcp.crew.agentos.mem_get", json!({"key": "where"})).await;
    assert!(
        got.is_error == Some(true) || got.structured_content.as_ref().is_some_and(|v| v["value"] != "primary"),
        "{got:?}"
    );

    // The REST view is the same tool's answer.
    let rest: Value = http()
        .get(server.url("/api/ops/crew"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let crew = rest["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crew")
        .unwrap();
    assert!(crew["active"].as_str().unwrap().contains(&standby_marker), "{rest}");
    let off = rest["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "off")
        .unwrap();
    assert_eq!(off["health"], "disabled", "{rest}");
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_never_starts_leaves_the_standby_active() {
    let (outer, standby) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = crew_config(outer.path(), "/nonexistent/crew-primary", "[]", standby.path());
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    let member = wait_active(&client, &standby.path().to_string_lossy(), &server).await;
    assert_eq!(
        member["lastFailure"]["endpoint"], "/nonexistent/crew-primary",
        "{member}"
    );
    assert!(
        member["lastFailure"]["reason"]
            .as_str()
            .unwrap()
            .contains("could not start"),
        "{member}"
    );
    time_works(&client).await;
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_routes_fail_over_bootstrap_and_run_the_health_cycle() {
    let (outer, primary, standby) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let config = crew_config(
        outer.path(),
        &agentos_bin().to_string_lossy(),
        &inner_args(primary.path()),
        standby.path(),
    );
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;
    let primary_marker = primary.path().to_string_lossy().to_string();
    let standby_marker = standby.path().to_string_lossy().to_string();
    wait_active(&client, &primary_marker, &server).await;

    // Forced failover: the standby takes over and calls keep working.
    let (status, body) = post(
        &server,
        "/api/ops/crew/failover",
        r#"{"featureSlug": "crew", "reason": "drill"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}; log:\n{}", server.log());
    assert!(body["previous"].as_str().unwrap().contains(&primary_marker), "{body}");
    assert!(body["active"].as_str().unwrap().contains(&standby_marker), "{body}");
    assert_eq!(body["health"], "up", "{body}");
    time_works(&client).await;
    let member = crew_member(&client, "crew").await;
    assert_eq!(member["lastFailure"]["reason"], "drill", "{member}");
    assert!(
        member["lastFailure"]["endpoint"]
            .as_str()
            .unwrap()
            .contains(&primary_marker)
    );

    // Round robin: the next failover goes back to the primary.
    let (status, body) = post(&server, "/api/ops/crew/failover", r#"{"featureSlug": "crew"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["active"].as_str().unwrap().contains(&primary_marker), "{body}");
    time_works(&client).await;

    // Bootstrap is idempotent and leaves a healthy server alone (same process).
    let pid_of = |list: &Value| {
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "crew")
            .unwrap()["pid"]
            .as_u64()
    };
    let before = pid_of(&structured(&call(&client, "agentos.mcp_servers_list", json!({})).await));
    for _ in 0..2 {
        let (status, body) = post(&server, "/api/ops/crew/bootstrap", "").await;
        assert_eq!(status, 200, "{body}");
        let crew = body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "crew")
            .unwrap();
        assert_eq!(crew["action"], "none", "{body}");
        assert_eq!(crew["health"], "up", "{body}");
        let off = body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "off")
            .unwrap();
        assert_eq!(off["health"], "disabled", "{body}");
    }
    let after = pid_of(&structured(&call(&client, "agentos.mcp_servers_list", json!({})).await));
    assert_eq!(before, after);
    assert!(before.is_some());

    // One health cycle: the server answers its ping.
    let (status, body) = post(&server, "/api/ops/crew/cron", "{}").await;
    assert_eq!(status, 200, "{body}");
    let crew = body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crew")
        .unwrap();
    assert_eq!(crew["pingOk"], true, "{body}");
    assert_eq!(crew["action"], "none", "{body}");
    assert_eq!(crew["health"], "up", "{body}");

    // Bad input.
    let (status, body) = post(&server, "/api/ops/crew/failover", r#"{"featureSlug": "nope"}"#).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");
    let (status, body) = post(&server, "/api/ops/crew/failover", r#"{"reason": "x"}"#).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&server, "/api/ops/crew/failover", "not json").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&server, "/api/ops/crew/failover", r#"{"featureSlug": "off"}"#).await;
    assert_eq!(status, 422, "{body}");
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_reconnects_a_down_server_and_a_lone_endpoint_is_redialled() {
    let (outer, inner) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The server starts only once the marker exists.
    let marker = outer.path().join("marker");
    let script = format!(
        "test -f '{}' || exit 1; exec '{}' mcp --data-dir '{}' --allow-tools 'agentos.time_*'",
        marker.display(),
        agentos_bin().display(),
        inner.path().display()
    );
    let body = format!(
        "[[mcp_servers]]\nname = \"crew\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\n",
        toml_str(&script)
    );
    let config = outer.path().join("agentos.toml");
    std::fs::write(&config, body).unwrap();
    let server = Server::start(outer.path(), &["--config", config.to_str().unwrap()]);
    let (client, _) = http_client(&server.mcp_url()).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut member = crew_member(&client, "crew").await;
    while member["health"] != "down" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        member = crew_member(&client, "crew").await;
    }
    assert_eq!(member["health"], "down", "{member}");
    assert!(member["lastFailure"]["reason"].as_str().is_some(), "{member}");
    assert_eq!(member["standby"], json!([]), "{member}");

    std::fs::write(&marker, "").unwrap();
    let (status, body) = post(&server, "/api/ops/crew/bootstrap", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["servers"][0]["action"], "reconnected", "{body}");
    assert_eq!(body["servers"][0]["health"], "up", "{body}; log:\n{}", server.log());
    time_works(&client).await;
    let (_, again) = post(&server, "/api/ops/crew/bootstrap", "").await;
    assert_eq!(again["servers"][0]["action"], "none", "{again}");

    // With no standby, a forced failover redials the same endpoint.
    let (status, body) = post(
        &server,
        "/api/ops/crew/failover",
        r#"{"featureSlug": "crew", "reason": "redial"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], body["previous"], "{body}");
    assert_eq!(body["health"], "up", "{body}");
    time_works(&client).await;
    let _ = client.cancel().await;
}
