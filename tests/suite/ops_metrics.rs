//! Metrics against the real `agentos serve`: `GET /metrics` (Prometheus text) and
//! `GET /api/ops/metrics` (JSON, over `agentos.ops_metrics`).
//!
//! - a known mix of requests (tool calls that succeed, fail validation, name unknown or denied
//!   tools; 401s; a 413; a 429; an unmatched path) moves every counter by exactly that much
//!   between two scrapes, labels carry route templates and never a requested name, and every
//!   histogram's buckets are cumulative with `+Inf` equal to `_count`
//! - a public caller of `/api/ops/metrics` gets the summary without details; the owner gets both
//! - killing a proxied server's process shows as a restart in `/metrics`
//! - with `[metrics] public = false`, `/metrics` needs the owner's token

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Server, agentos_bin};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Samples by series (`name{labels}` exactly as rendered).
type Samples = BTreeMap<String, f64>;

fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line}"));
            (
                series.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            )
        })
        .collect()
}

fn delta(before: &Samples, after: &Samples, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

/// Every histogram: buckets never decrease and `+Inf` equals `_count`.
fn check_histograms(samples: &Samples, text: &str) {
    let mut buckets: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    // In rendered order, which is the bucket order.
    for line in text.lines().filter(|l| l.contains("_bucket{")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap();
        let (rest, le) = labels.trim_end_matches('}').rsplit_once("le=\"").unwrap();
        let key = format!("{}{{{}}}", name.trim_end_matches("_bucket"), rest.trim_end_matches(','));
        buckets
            .entry(key)
            .or_default()
            .push((le.trim_end_matches('"').to_owned(), value.parse().unwrap()));
    }
    assert!(!buckets.is_empty(), "no histograms in:\n{text}");
    for (key, series) in buckets {
        assert!(
            series.windows(2).all(|w| w[0].1 <= w[1].1),
            "{key} not cumulative: {series:?}"
        );
        let (le, last) = series.last().unwrap();
        assert_eq!(le, "+Inf", "{key}");
        let count = key.replacen('{', "_count{", 1).replace("_count{}", "_count");
        assert_eq!(samples.get(&count), Some(last), "{key}: +Inf vs {count}");
    }
}

async fn scrape(server: &Server, token: Option<&str>) -> (Samples, String) {
    let mut request = common::http().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    (parse(&text), text)
}

/// Scrapes until `done` holds (at most 30 s); returns the last scrape.
async fn scrape_until(server: &Server, done: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (samples, _) = scrape(server, None).await;
        if done(&samples) || tokio::time::Instant::now() > deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn plain(server: &Server, token: Option<&str>, tool: &str, input: Value) -> StatusCode {
    let mut request = common::http()
        .post(server.mcp_url())
        .json(&json!({ "tool": tool, "input": input }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status()
}

async fn ops_metrics(server: &Server, token: Option<&str>) -> Value {
    let mut request = common::http().get(server.url("/api/ops/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn start(dir: &std::path::Path, toml: &str, secure: bool) -> Server {
    let config = dir.join("agentos.toml");
    std::fs::write(&config, toml).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    if secure {
        Server::start_secure(&dir.join("data"), &args)
    } else {
        Server::start(&dir.join("data"), &args)
    }
}

const MIX_CONFIG: &str = "[http]\nmax_body_bytes = 4096\n[rate_limits]\nmcp = { per_minute = 1, burst = 12 }\n";

#[tokio::test]
async fn counters_add_up_exactly_and_details_are_for_ops_admins() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), MIX_CONFIG, true);
    let owner = server.token().to_owned();
    let registered: Value = common::http()
        .post(server.url("/register"))
        .bearer_auth(&owner)
        .json(&json!({"agentId": "counted", "name": "Counted", "allowedTools": ["agentos.*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = registered["token"].as_str().expect("agent token").to_owned();

    let (before, _) = scrape(&server, None).await;
    // 12 calls fill the agent's burst of 12: 7 ok, 3 invalid, 1 unknown, 1 denied (admin-only).
    for _ in 0..7 {
        assert_eq!(
            plain(&server, Some(&agent), "agentos.time_now", json!({})).await,
            StatusCode::OK
        );
    }
    for _ in 0..3 {
        let status = plain(&server, Some(&agent), "agentos.time_now", json!({"bogus": 1})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for name in ["agentos.no_such_tool_xyz", "agentos.mcp_server_add"] {
        assert_eq!(
            plain(&server, Some(&agent), name, json!({})).await,
            StatusCode::NOT_FOUND
        );
    }
    let limited = plain(&server, Some(&agent), "agentos.time_now", json!({})).await;
    assert_eq!(limited, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        plain(&server, None, "agentos.time_now", json!({})).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        plain(&server, Some("nope"), "agentos.time_now", json!({})).await,
        StatusCode::UNAUTHORIZED
    );
    let big = json!({"tool": "agentos.time_now", "input": {"pad": "x".repeat(8192)}});
    let status = common::http()
        .post(server.mcp_url())
        .bearer_auth(&owner)
        .json(&big)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let stray = common::http()
        .get(server.url("/no/such/path-4711"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stray.status(),
        StatusCode::NOT_FOUND,
        "unknown paths are no route, with or without credentials"
    );

    let (after, text) = scrape(&server, None).await;
    let d = |series: &str| delta(&before, &after, series);
    let http =
        |status: u16| format!("agentos_http_requests_total{{method=\"POST\",route=\"/mcp\",status=\"{status}\"}}");
    assert_eq!(d(&http(200)), 7.0, "{text}");
    assert_eq!(d(&http(400)), 3.0);
    assert_eq!(d(&http(404)), 2.0);
    assert_eq!(d(&http(429)), 1.0);
    assert_eq!(d(&http(401)), 2.0);
    assert_eq!(d(&http(413)), 1.0);
    assert_eq!(
        d("agentos_http_request_duration_seconds_count{method=\"POST\",route=\"/mcp\"}"),
        16.0
    );
    assert_eq!(
        d("agentos_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        d("agentos_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"),
        1.0,
        "the first scrape, counted once it was answered"
    );
    let call = |tool: &str, origin: &str, outcome: &str| {
        d(&format!(
            "agentos_tool_calls_total{{tool=\"{tool}\",origin=\"{origin}\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(call("agentos.time_now", "primitive", "ok"), 7.0);
    assert_eq!(call("agentos.time_now", "primitive", "invalid_arguments"), 3.0);
    assert_eq!(
        call("unknown", "unknown", "unknown_tool"),
        2.0,
        "unknown and denied look alike"
    );
    let all_calls: f64 = after
        .keys()
        .filter(|k| k.starts_with("agentos_tool_calls_total{"))
        .map(|k| d(k))
        .sum();
    // The 13th call was refused by the pipeline's limit stage, before any tool was resolved;
    // the unauthenticated ones never reached the registry.
    assert_eq!(call("unknown", "unknown", "rate_limited"), 1.0);
    assert_eq!(all_calls, 13.0, "only authenticated calls reached the registry");
    assert_eq!(
        d("agentos_tool_call_duration_seconds_count{origin=\"primitive\"}"),
        10.0
    );
    assert_eq!(d("agentos_tool_call_duration_seconds_count{origin=\"unknown\"}"), 3.0);
    assert_eq!(d("agentos_rate_limited_total{class=\"mcp\"}"), 1.0);
    for secret in ["no_such_tool_xyz", "mcp_server_add", "path-4711"] {
        assert!(!text.contains(secret), "`{secret}` became a label:\n{text}");
    }
    check_histograms(&after, &text);
    assert!(after.contains_key(&format!(
        "agentos_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    )));
    assert_eq!(after.get("agentos_approvals_pending"), Some(&0.0));
    assert!(after.get("agentos_uptime_seconds").is_some_and(|u| *u > 0.0));

    // The JSON view: the summary for anyone, the breakdown for ops-admins only.
    for token in [None, Some(agent.as_str())] {
        let public = ops_metrics(&server, token).await;
        assert_eq!(public["requiresAuthForDetails"], true, "{public}");
        assert!(public.get("metrics").is_none(), "{public}");
        let summary = &public["summary"];
        assert!(summary["requests"]["total"].as_u64().unwrap() >= 19, "{summary}");
        assert!(summary["requests"]["perMinute"].as_u64().unwrap() >= 19, "{summary}");
        assert_eq!(
            summary["tools"].as_f64(),
            after.get("agentos_tools_registered").copied()
        );
        assert_eq!(summary["coverage"], json!({"up": 0, "total": 0}));
        for p in ["p50", "p95", "p99"] {
            assert!(summary["latency"][p].as_f64().is_some_and(|ms| ms > 0.0), "{summary}");
        }
        assert_eq!(public["settings"]["publicScrape"], true);
    }
    let detailed = ops_metrics(&server, Some(&owner)).await;
    assert_eq!(detailed["requiresAuthForDetails"], false, "{detailed}");
    let details = &detailed["metrics"];
    let tools = details["tools"].as_array().unwrap();
    let time_now = tools
        .iter()
        .find(|t| t["tool"] == "agentos.time_now")
        .expect("time_now listed");
    assert_eq!(time_now["outcomes"]["ok"], 7, "{time_now}");
    assert_eq!(time_now["origin"], "primitive");
    assert!(
        details["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"] == "/mcp" && r["method"] == "POST" && r["statuses"]["429"] == 1)
    );
    assert_eq!(details["rateLimited"]["mcp"], 1);
}

#[tokio::test]
async fn a_killed_upstream_shows_as_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[mcp_servers]]\nname = \"inner\"\ncommand = {}\nargs = [\"mcp\", \"--data-dir\", {}]\n",
        serde_json::to_string(&agentos_bin().to_string_lossy()).unwrap(),
        serde_json::to_string(&dir.path().join("inner").to_string_lossy()).unwrap(),
    );
    let server = start(dir.path(), &toml, false);
    let up = "agentos_upstream_up{server=\"inner\"}";
    let restarts = "agentos_upstream_restarts_total{server=\"inner\"}";
    let first = scrape_until(&server, |samples| samples.get(up) == Some(&1.0)).await;
    assert_eq!(first.get(up), Some(&1.0), "inner never came up; log:\n{}", server.log());
    assert_eq!(
        first.get("agentos_upstream_health{server=\"inner\",state=\"up\"}"),
        Some(&1.0)
    );
    let before = first.get(restarts).copied().expect("restarts series");

    let listed: Value = common::http()
        .post(server.mcp_url())
        .json(&json!({"tool": "agentos.mcp_servers_list", "input": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = listed["result"]["servers"][0]["pid"].as_u64().expect("pid of inner");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let after = scrape_until(&server, |samples| {
        samples.get(restarts).copied() == Some(before + 1.0) && samples.get(up) == Some(&1.0)
    })
    .await;
    assert_eq!(
        after.get(restarts).copied(),
        Some(before + 1.0),
        "log:\n{}",
        server.log()
    );
    assert_eq!(after.get(up), Some(&1.0));
    let report = ops_metrics(&server, None).await;
    assert_eq!(report["summary"]["coverage"], json!({"up": 1, "total": 1}));
}

#[tokio::test]
async fn private_metrics_need_the_owners_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "[metrics]\npublic = false\n", true);
    let anonymous = common::http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let registered: Value = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": "plain", "name": "Plain", "allowedTools": ["agentos.*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = registered["token"].as_str().unwrap();
    let as_agent = common::http()
        .get(server.url("/metrics"))
        .bearer_auth(agent)
        .send()
        .await
        .unwrap();
    assert_eq!(as_agent.status(), StatusCode::NOT_FOUND, "not an ops-admin");
    let (samples, _) = scrape(&server, Some(server.token())).await;
    assert_eq!(
        samples.get("agentos_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"401\"}"),
        Some(&1.0)
    );
    let report = ops_metrics(&server, None).await;
    assert_eq!(report["settings"]["publicScrape"], false);
}
