//! Crash safety: every write that was answered with success survives a SIGKILL of the server.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_kill_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(dir.path(), &[]);
    let url = server.mcp_url();
    let acknowledged: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    agentos::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let writers: Vec<_> = (0..32)
        .map(|writer| {
            let (http, url, acknowledged) = (http.clone(), url.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("w{writer}/k{n}");
                    let value = json!({"writer": writer, "n": n, "pad": "x".repeat(64)});
                    let body = json!({"tool": "agentos.mem_set", "input": {"key": key, "value": value}});
                    let Ok(response) = http.post(&url).json(&body).send().await else {
                        break;
                    };
                    let Ok(answer) = response.json::<Value>().await else {
                        break;
                    };
                    if answer["success"] == true {
                        acknowledged.lock().unwrap().insert(key, value);
                    }
                }
            })
        })
        .collect();
    // Let the burst run, then kill the server mid-flight.
    assert!(
        common::eventually(Duration::from_secs(20), || acknowledged.lock().unwrap().len() >= 2000).await,
        "the burst got going"
    );
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Restart on the same data directory and check every acknowledged write.
    let app = common::in_process_app(dir.path()).await;
    let mut missing = Vec::new();
    for (key, value) in &acknowledged {
        let got = common::call_as(&app, "owner", "agentos.mem_get", json!({"key": key}))
            .await
            .unwrap();
        let got = common::structured(&got);
        if got["found"] != true || got["value"] != *value {
            missing.push(key.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("{} acknowledged writes all present after SIGKILL", acknowledged.len());
}
