//! The crew: each upstream's active and standby endpoints, their health, and the operations
//! on them (status, forced failover, bootstrap, one health cycle), behind the `agentos.crew_*`
//! tools.

use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::Upstreams;
use super::supervisor::{self, Failure, Link, Status};

/// How long the crew operations wait for a reconnection to settle.
const SETTLE: Duration = Duration::from_secs(20);

/// How an upstream is doing, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Up,
    /// Connecting or reconnecting; not every endpoint has failed yet.
    Restarting,
    /// Every endpoint failed in the last round, or the server was stopped.
    Down,
    Disabled,
}

/// One upstream as the crew sees it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrewMember {
    pub name: String,
    /// The endpoint in use: `command args` or the URL.
    pub active: String,
    /// The other endpoints, in the order they would be tried next.
    pub standby: Vec<String>,
    pub health: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// How many times a live connection was lost and restarted.
    pub restarts: u64,
    /// How many times the active endpoint was switched (or redialled).
    pub switches: u64,
}

/// What a forced failover did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverOutcome {
    pub name: String,
    pub previous: String,
    /// The endpoint now active.
    pub active: String,
    pub health: Health,
}

/// What bootstrap or cron did to one upstream.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrewAction {
    pub name: String,
    /// `none` (healthy or disabled), `reconnected` (woken up) or `failed_over` (did not answer).
    pub action: String,
    /// Whether it answered a ping (cron only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_ok: Option<bool>,
    pub active: String,
    /// Health once the action settled.
    pub health: Health,
}

#[derive(Debug, thiserror::Error)]
pub enum CrewError {
    #[error("no MCP server named `{0}`")]
    Unknown(String),
    #[error("MCP server `{0}` is disabled or stopped")]
    NotRunning(String),
}

fn health(link: &Link) -> Health {
    let state = link.state();
    match state.status {
        Status::Up => Health::Up,
        Status::Disabled => Health::Disabled,
        Status::Stopped => Health::Down,
        Status::Connecting | Status::Restarting if state.misses >= link.endpoints.len() => Health::Down,
        Status::Connecting | Status::Restarting => Health::Restarting,
    }
}

fn active(link: &Link) -> String {
    let index = link.state().active.min(link.endpoints.len() - 1);
    link.endpoints[index].describe()
}

fn member(link: &Link) -> CrewMember {
    let (index, last_failure, restarts, switches) = {
        let state = link.state();
        (
            state.active.min(link.endpoints.len() - 1),
            state.last_failure.clone(),
            state.restarts,
            state.switches,
        )
    };
    let n = link.endpoints.len();
    CrewMember {
        name: link.name().to_owned(),
        active: link.endpoints[index].describe(),
        standby: (1..n).map(|i| link.endpoints[(index + i) % n].describe()).collect(),
        health: health(link),
        last_failure,
        restarts,
        switches,
    }
}

fn running(link: &Link) -> bool {
    !matches!(link.state().status, Status::Disabled | Status::Stopped)
}

/// Asks the supervisor to switch endpoints now.
fn request_failover(link: &Link, reason: String) {
    link.state().failover_request = Some(reason);
    link.failover.notify_one();
}

/// Waits, at most `SETTLE`, until the server is up (after switching endpoints past `before`
/// if `must_switch`), or a new attempt since `before` left it down.
async fn settle(link: &Link, before: u64, must_switch: bool) {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        let switched = link.state().switches > before;
        let done = match health(link) {
            Health::Up => switched || !must_switch,
            Health::Down => switched,
            Health::Disabled => true,
            Health::Restarting => false,
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Upstreams {
    fn links(&self) -> Vec<Arc<Link>> {
        let mut links: Vec<Arc<Link>> = self.servers().values().map(|m| m.link.clone()).collect();
        links.sort_by(|a, b| a.name().cmp(b.name()));
        links
    }

    pub fn crew_status(&self) -> Vec<CrewMember> {
        self.links().iter().map(|link| member(link)).collect()
    }

    /// Switches `name` to its next endpoint now (reconnecting) and waits for it to settle.
    pub async fn crew_failover(&self, name: &str, reason: String) -> Result<FailoverOutcome, CrewError> {
        let link = self
            .servers()
            .get(name)
            .map(|m| m.link.clone())
            .ok_or_else(|| CrewError::Unknown(name.to_owned()))?;
        if !running(&link) {
            return Err(CrewError::NotRunning(name.to_owned()));
        }
        let previous = active(&link);
        let before = link.state().switches;
        request_failover(&link, reason);
        settle(&link, before, true).await;
        Ok(FailoverOutcome {
            name: name.to_owned(),
            previous,
            active: active(&link),
            health: health(&link),
        })
    }

    /// Reconnects now every running upstream that is not up; leaves healthy ones alone.
    pub async fn crew_bootstrap(&self) -> Vec<CrewAction> {
        let links = self.links();
        let mut woken = Vec::new();
        for link in &links {
            if running(link) && health(link) != Health::Up {
                woken.push((link.name().to_owned(), link.state().switches));
                link.wake.notify_one();
            }
        }
        for (link, before) in links
            .iter()
            .filter_map(|l| woken.iter().find(|(w, _)| w == l.name()).map(|(_, b)| (l, *b)))
        {
            settle(link, before, false).await;
        }
        links
            .iter()
            .map(|link| CrewAction {
                name: link.name().to_owned(),
                action: if woken.iter().any(|(w, _)| w == link.name()) {
                    "reconnected"
                } else {
                    "none"
                }
                .to_owned(),
                ping_ok: None,
                active: active(link),
                health: health(link),
            })
            .collect()
    }

    /// One health cycle: pings every running upstream; one that is up but does not answer fails
    /// over, one that is not up is reconnected now.
    pub async fn crew_cron(&self) -> Vec<CrewAction> {
        let links = self.links();
        let mut results = Vec::new();
        for link in &links {
            if !running(link) {
                results.push(CrewAction {
                    name: link.name().to_owned(),
                    action: "none".into(),
                    ping_ok: None,
                    active: active(link),
                    health: health(link),
                });
                continue;
            }
            let peer = {
                let state = link.state();
                (state.status == Status::Up).then(|| state.peer.clone()).flatten()
            };
            let (action, ping_ok) = match peer {
                Some(peer) => {
                    if supervisor::alive(&peer).await {
                        ("none", Some(true))
                    } else {
                        let before = link.state().switches;
                        request_failover(link, "crew cron: no answer to a ping".into());
                        settle(link, before, true).await;
                        ("failed_over", Some(false))
                    }
                }
                None => {
                    let before = link.state().switches;
                    link.wake.notify_one();
                    settle(link, before, false).await;
                    ("reconnected", None)
                }
            };
            results.push(CrewAction {
                name: link.name().to_owned(),
                action: action.into(),
                ping_ok,
                active: active(link),
                health: health(link),
            });
        }
        results
    }
}
