//! Events: publish to a topic and poll it by cursor, optionally waiting for news.
//!
//! A waiting poll sleeps on the [`EventHub`], which a publish in this process wakes at once, and
//! re-reads the store every [`RECHECK`] so events published by another process sharing the data
//! directory (`agentos serve` beside `agentos mcp`) arrive too. On a store that replicas share
//! (PostgreSQL), the store's change feed wakes it as soon as any replica's publish commits. The wait is a plain future: when
//! the registry drops it (cancellation, deadline) nothing is left behind.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{EventPage, EventStore, StoreChange};

const DEFAULT_PAGE: usize = 100;
/// How often a waiting poll re-reads the store, for publishes from other processes.
const RECHECK: Duration = Duration::from_millis(250);
/// A wait ends this long before the call's deadline, so the poll answers instead of timing out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PublishArgs {
    /// The topic, 1-200 characters of letters, digits and `.` `_` `/` `-`, e.g. `builds/web`.
    /// Topics are created by publishing to them.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    topic: String,
    /// Any JSON value: string, number, boolean, null, array or object.
    payload: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PublishResult {
    topic: String,
    /// This event's cursor: polling with `after` set to it returns only later events. Cursors
    /// number the topic's own events (one more per event), so they say nothing about other
    /// topics or other agents.
    cursor: String,
    /// When the event was published, in Unix milliseconds.
    published_at_ms: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClearArgs {
    /// The topic to clear, as given to agentos.events_publish.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    topic: String,
    /// Delete only the events up to and including this cursor (an event's `cursor` or a poll's
    /// `nextCursor`), keeping later ones. Omit it to delete every event of the topic.
    through: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ClearResult {
    topic: String,
    /// How many events were deleted.
    deleted: usize,
}

/// Where a poll without `after` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum StartAt {
    Start,
    End,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PollArgs {
    /// The topic to read, as given to agentos.events_publish.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    topic: String,
    /// Return only events published after this cursor: the `nextCursor` of your previous poll
    /// (or an event's `cursor`). Omit it on your first poll.
    after: Option<String>,
    /// Without `after`: `start` (default) returns the oldest events still kept; `end` skips
    /// everything already published and returns only events published from now on (use it with
    /// `waitMs` to wait for the next event).
    #[serde(default)]
    #[schemars(with = "StartAt")]
    from: Option<StartAt>,
    /// Most events to return (default 100; at most the configured maximum, 1000 by default).
    #[schemars(range(min = 1))]
    limit: Option<usize>,
    /// If no event is there yet, wait up to this many milliseconds for one (default 0: answer at
    /// once; at most the configured maximum, 30000 by default). The poll returns as soon as an
    /// event arrives.
    wait_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PolledEvent {
    /// This event's position in the topic.
    cursor: String,
    /// The payload as published.
    payload: Value,
    /// When the event was published, in Unix milliseconds.
    published_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PollResult {
    /// Events after the cursor, oldest first; empty if none arrived (within `waitMs`).
    events: Vec<PolledEvent>,
    /// Pass as `after` on your next poll to continue where this one ended, even when `events` is
    /// empty.
    next_cursor: String,
    /// More events are already waiting: poll again at once with `nextCursor`.
    has_more: bool,
    /// True if events after your `after` cursor were dropped by retention (a topic keeps only its
    /// newest events) before you read them.
    missed_events: bool,
}

/// Wakes the polls waiting on a topic when this process publishes to it. One per process,
/// shared by both tools; an entry lives only while someone waits on that topic.
#[derive(Default)]
struct EventHub {
    waiting: DashMap<(Arc<str>, String), Arc<Notify>>,
}

impl EventHub {
    /// Registers interest in `owner`'s `topic` until the returned guard is dropped.
    fn subscribe(self: &Arc<Self>, owner: &Arc<str>, topic: &str) -> Subscription {
        let key = (owner.clone(), topic.to_owned());
        let notify = self.waiting.entry(key.clone()).or_default().clone();
        Subscription {
            hub: self.clone(),
            key,
            notify: Some(notify),
        }
    }

    /// Wakes waiting polls on every publish the store reports (from any replica), and all of them
    /// when the feed was interrupted, until the store goes.
    fn follow(self: &Arc<Self>, mut changes: broadcast::Receiver<StoreChange>) {
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(StoreChange::Event { owner, topic }) => hub.published(&Arc::from(owner), &topic),
                    Ok(StoreChange::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => hub.wake_all(),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn wake_all(&self) {
        let all: Vec<_> = self.waiting.iter().map(|entry| entry.value().clone()).collect();
        for notify in all {
            notify.notify_waiters();
        }
    }

    fn published(&self, owner: &Arc<str>, topic: &str) {
        let notify = self
            .waiting
            .get(&(owner.clone(), topic.to_owned()))
            .map(|entry| entry.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

struct Subscription {
    hub: Arc<EventHub>,
    key: (Arc<str>, String),
    notify: Option<Arc<Notify>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.notify.take());
        // Under the shard lock nobody can take a new reference from the map, so a count of one
        // means no one else waits on this topic.
        self.hub
            .waiting
            .remove_if(&self.key, |_, notify| Arc::strong_count(notify) == 1);
    }
}

/// Reads events after `after`, waiting until `deadline` for the first one to arrive.
#[allow(clippy::too_many_arguments)]
async fn wait_for_events<S: EventStore + ?Sized>(
    store: &S,
    hub: &Arc<EventHub>,
    owner: &Arc<str>,
    topic: &str,
    after: i64,
    limit: usize,
    deadline: Instant,
    recheck: Duration,
    cancel: &CancellationToken,
) -> Result<EventPage, ToolFailure> {
    let subscription = hub.subscribe(owner, topic);
    let notify = subscription.notify.clone().expect("held while subscribed");
    loop {
        // Enabled before the read: a publish committed after the read still wakes us.
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let page = store.events_poll(owner, topic, after, limit).await?;
        let now = Instant::now();
        if !page.events.is_empty() || now >= deadline {
            return Ok(page);
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(recheck.min(deadline - now)) => {}
            _ = cancel.cancelled() => return Ok(page),
        }
    }
}

fn check_topic(topic: &str) -> Result<(), ToolFailure> {
    super::check_channel_name("topic", topic, "builds/web")
}

fn parse_cursor(cursor: &str) -> Result<i64, ToolFailure> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0 && !cursor.starts_with('+'))
        .ok_or_else(|| {
            ToolFailure::new(
                "`after` is not a cursor: pass the `nextCursor` of a previous agentos.events_poll (or an \
                 event's `cursor`) unchanged, or omit it to start from the beginning",
            )
        })
}

fn parse_payload(text: &str) -> Result<Value, ToolFailure> {
    serde_json::from_str(text).map_err(|e| ToolFailure::new(format!("a stored event is unreadable: {e}")))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let hub = Arc::new(EventHub::default());
    if let Some(changes) = services.store.changes() {
        hub.follow(changes);
    }
    let (publish, poll) = ((services.clone(), hub.clone()), (services.clone(), hub));
    let clear = services.clone();
    vec![
        ToolBuilder::new("agentos.events_publish")
            .title("Publish an event")
            .description(
                "Appends any JSON payload as an event to a topic of yours, waking anyone waiting on \
                 it with agentos.events_poll. Use it to signal progress or hand results between \
                 agents, sessions or workflow steps. A topic keeps its newest events (10000 by \
                 default). Returns the event's cursor.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: false,
            })
            .handler(move |args: PublishArgs, ctx| {
                let (services, hub) = publish.clone();
                async move {
                    check_topic(&args.topic)?;
                    let config = &services.config.events;
                    let payload = args.payload.to_string();
                    if payload.len() > config.max_payload_bytes {
                        return Err(ToolFailure::new(format!(
                            "`payload` is {} bytes of JSON; the limit is {} bytes. Publish less (e.g. a \
                             reference to where the data is kept), or split it over several events",
                            payload.len(),
                            config.max_payload_bytes
                        )));
                    }
                    let owner = &ctx.caller.agent_id;
                    let published = services
                        .store
                        .events_publish(owner, &args.topic, payload, config.max_events_per_topic)
                        .await?;
                    hub.published(owner, &args.topic);
                    Ok(PublishResult {
                        topic: args.topic,
                        cursor: published.seq.to_string(),
                        published_at_ms: published.published_at_ms,
                    })
                }
            }),
        ToolBuilder::new("agentos.events_poll")
            .title("Read events")
            .description(
                "Returns the events published to one of your topics after a cursor, oldest first, \
                 and the nextCursor to pass as `after` next time. Omit `after` to read from the \
                 oldest kept event, or set from=\"end\" to get only new events. With waitMs it waits \
                 (long-polls) until at least one event arrives or the time is up, so you can follow \
                 a topic without busy polling.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: PollArgs, ctx| {
                let (services, hub) = poll.clone();
                async move {
                    check_topic(&args.topic)?;
                    let config = &services.config.events;
                    let max_page = config.max_page.max(1);
                    let limit = args.limit.unwrap_or(DEFAULT_PAGE.min(max_page));
                    if limit == 0 || limit > max_page {
                        return Err(ToolFailure::new(format!("`limit` must be between 1 and {max_page}")));
                    }
                    let wait_ms = args.wait_ms.unwrap_or(0);
                    if wait_ms > config.max_wait_ms {
                        return Err(ToolFailure::new(format!(
                            "`waitMs` must be between 0 and {}; poll again to wait longer",
                            config.max_wait_ms
                        )));
                    }
                    let owner = &ctx.caller.agent_id;
                    let after = match (&args.after, args.from) {
                        (Some(_), Some(_)) => {
                            return Err(ToolFailure::new(
                                "give either `after` (to continue from a cursor) or `from`, not both",
                            ));
                        }
                        (Some(cursor), None) => parse_cursor(cursor)?,
                        (None, Some(StartAt::End)) => services.store.events_last_seq(owner, &args.topic).await?,
                        (None, _) => 0,
                    };
                    let wait = Duration::from_millis(wait_ms).min(ctx.remaining().saturating_sub(DEADLINE_MARGIN));
                    let page = wait_for_events(
                        services.store.as_ref(),
                        &hub,
                        owner,
                        &args.topic,
                        after,
                        limit,
                        Instant::now() + wait,
                        RECHECK,
                        &ctx.cancel,
                    )
                    .await?;
                    let next_cursor = page.events.last().map_or(after, |event| event.seq).to_string();
                    let missed_events = args.after.is_some() && page.trimmed_through > after;
                    let events = page
                        .events
                        .into_iter()
                        .map(|event| {
                            Ok(PolledEvent {
                                cursor: event.seq.to_string(),
                                payload: parse_payload(&event.payload)?,
                                published_at_ms: event.published_at_ms,
                            })
                        })
                        .collect::<Result<Vec<_>, ToolFailure>>()?;
                    Ok(PollResult {
                        events,
                        next_cursor,
                        has_more: page.has_more,
                        missed_events,
                    })
                }
            }),
        ToolBuilder::new("agentos.events_clear")
            .title("Clear a topic's events")
            .description(
                "Deletes the events of one of your topics, all of them or those up to a cursor, to \
                 free space in your events quota (agentos.quota_status). The topic's cursors keep \
                 counting: later events get new cursors, and a reader behind the cut is told it \
                 missed events.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: true,
                open_world: false,
            })
            .handler(move |args: ClearArgs, ctx| {
                let services = clear.clone();
                async move {
                    check_topic(&args.topic)?;
                    let through = args
                        .through
                        .as_deref()
                        .map(|cursor| {
                            parse_cursor(cursor).map_err(|_| {
                                ToolFailure::new(
                                    "`through` is not a cursor: pass an event's `cursor` or a poll's \
                                     `nextCursor` unchanged, or omit it to clear the whole topic",
                                )
                            })
                        })
                        .transpose()?;
                    let deleted = services
                        .store
                        .events_clear(&ctx.caller.agent_id, &args.topic, through)
                        .await?;
                    Ok(ClearResult {
                        topic: args.topic,
                        deleted,
                    })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Synchronous};

    #[test]
    fn topics_and_cursors_are_checked() {
        for good in ["t", "builds/web", "a.b_c-d/E9", &"x".repeat(200)] {
            assert!(check_topic(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "ünï", "a\nb", "a*", &"x".repeat(201)] {
            assert!(check_topic(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_cursor("0").unwrap(), 0);
        assert_eq!(parse_cursor("42").unwrap(), 42);
        for bad in ["", "-1", "+1", "abc", "1.5", "99999999999999999999"] {
            let error = parse_cursor(bad).unwrap_err();
            assert!(error.message.contains("`after`"), "{bad:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_publish_in_this_process_wakes_a_waiting_poll_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
        let hub = Arc::new(EventHub::default());
        let owner: Arc<str> = Arc::from("a");
        let cancel = CancellationToken::new();
        // A re-check interval far beyond the test: only the hub can end this wait early.
        let waiting = {
            let (store, hub, owner, cancel) = (store.clone(), hub.clone(), owner.clone(), cancel.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                let page = wait_for_events(
                    store.as_ref(),
                    &hub,
                    &owner,
                    "t",
                    0,
                    10,
                    deadline,
                    Duration::from_secs(3600),
                    &cancel,
                )
                .await;
                (page, Instant::now())
            })
        };
        while hub.waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        // Another owner's publish to the same topic name wakes nobody who waits for `a`.
        store.events_publish("b", "t", "0".into(), 10).await.unwrap();
        hub.published(&Arc::from("b"), "t");
        let seq = store.events_publish("a", "t", "1".into(), 10).await.unwrap().seq;
        let published = Instant::now();
        hub.published(&owner, "t");
        let (page, returned) = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        let page = page.unwrap();
        assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [seq]);
        assert!(returned - published < Duration::from_secs(5));
        assert!(hub.waiting.is_empty(), "the finished wait left nothing behind");
    }

    #[tokio::test]
    async fn a_dropped_or_cancelled_wait_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let hub = Arc::new(EventHub::default());
        let owner: Arc<str> = Arc::from("a");
        let cancel = CancellationToken::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let recheck = Duration::from_secs(3600);
        let dropped = tokio::time::timeout(
            Duration::from_millis(100),
            wait_for_events(&store, &hub, &owner, "t", 0, 10, deadline, recheck, &cancel),
        )
        .await;
        assert!(dropped.is_err(), "still waiting when dropped");
        assert!(hub.waiting.is_empty());

        cancel.cancel();
        let page = wait_for_events(&store, &hub, &owner, "t", 0, 10, deadline, recheck, &cancel)
            .await
            .unwrap();
        assert!(page.events.is_empty());
        assert!(hub.waiting.is_empty());
    }
}
