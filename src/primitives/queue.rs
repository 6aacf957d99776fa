//! Queue: push work items, pop them with a visibility timeout, acknowledge when done.
//!
//! Delivery is at least once: a popped item is hidden for its visibility timeout and comes back
//! (with `attempts` one higher) unless acknowledged with the receipt of that pop in time. See
//! `store::queue` for why two pops never get the same leased item and why stale receipts fail.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Services;
use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{now_ms, receipt_item_id};

const DEFAULT_VISIBILITY_SECONDS: u64 = 30;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PushArgs {
    /// The queue, 1-200 characters of letters, digits and `.` `_` `/` `-`, e.g. `emails/outgoing`.
    /// Queues are created by pushing to them.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    queue: String,
    /// The work item: any JSON value, e.g. `{"url": "...", "action": "summarize"}`.
    item: Value,
    /// Keep the item invisible to pops for this many seconds first (default 0; at most the
    /// configured maximum, 604800 = 7 days by default).
    delay_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PushResult {
    queue: String,
    /// The item's id; a pop reports it beside the item. Ids number your own pushes (across your
    /// queues, one more each time), so they say nothing about other agents' queues.
    id: String,
    /// When the item was pushed, in Unix milliseconds.
    enqueued_at_ms: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PopArgs {
    /// The queue to take items from.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    queue: String,
    /// How long the popped items stay hidden from other pops, in seconds (default 30; at most
    /// the configured maximum, 43200 by default). Acknowledge each item within this time, or it
    /// is handed out again.
    #[schemars(range(min = 1))]
    visibility_seconds: Option<u64>,
    /// Most items to take (default 1; at most the configured maximum, 100 by default).
    #[schemars(range(min = 1))]
    max: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PoppedItem {
    /// The item's id, as agentos.queue_push returned it.
    id: String,
    /// The work item as pushed.
    item: Value,
    /// Pass to agentos.queue_ack once the work is done; valid only for this delivery.
    receipt: String,
    /// How many times the item has been handed out, this time included: above 1 means an
    /// earlier pop did not acknowledge it in time (maybe it failed part-way).
    attempts: i64,
    /// When the item was pushed, in Unix milliseconds.
    enqueued_at_ms: i64,
    /// Acknowledge before this time (Unix milliseconds), or the item is handed out again.
    lease_expires_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct PopResult {
    /// The items taken, those waiting longest first; empty if none is ready.
    items: Vec<PoppedItem>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AckArgs {
    /// The queue the item was popped from.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[A-Za-z0-9._/-]+$"))]
    queue: String,
    /// The `receipt` agentos.queue_pop returned with the item, unchanged.
    #[schemars(length(min = 1, max = 100))]
    receipt: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct AckResult {
    /// True if the item was removed for good. False if the receipt is no longer valid: the item
    /// was already acknowledged, or its visibility timeout ran out and it was popped again (then
    /// the newer receipt must acknowledge it).
    acked: bool,
}

fn check_queue(queue: &str) -> Result<(), ToolFailure> {
    super::check_channel_name("queue", queue, "emails/outgoing")
}

fn millis(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn parse_item(text: &str) -> Result<Value, ToolFailure> {
    serde_json::from_str(text).map_err(|e| ToolFailure::new(format!("a stored queue item is unreadable: {e}")))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (push, pop, ack) = (services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.queue_push")
            .title("Queue a work item")
            .description(
                "Adds any JSON work item to the end of one of your queues, optionally hidden for \
                 delaySeconds first. Use it to hand work to yourself later or to other workers; \
                 they take it with agentos.queue_pop. Returns the item's id.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: false,
            })
            .handler(move |args: PushArgs, ctx| {
                let services = push.clone();
                async move {
                    check_queue(&args.queue)?;
                    let config = &services.config.queue;
                    let item = args.item.to_string();
                    if item.len() > config.max_item_bytes {
                        return Err(ToolFailure::new(format!(
                            "`item` is {} bytes of JSON; the limit is {} bytes. Queue a smaller item \
                             (e.g. a reference to where the data is kept)",
                            item.len(),
                            config.max_item_bytes
                        )));
                    }
                    let delay = args.delay_seconds.unwrap_or(0);
                    if delay > config.max_delay_seconds {
                        return Err(ToolFailure::new(format!(
                            "`delaySeconds` must be between 0 and {}",
                            config.max_delay_seconds
                        )));
                    }
                    let visible_at_ms = now_ms().saturating_add(millis(delay));
                    let enqueued = services
                        .store
                        .queue_push(
                            &ctx.caller.agent_id,
                            &args.queue,
                            item,
                            visible_at_ms,
                            config.max_items_per_queue,
                        )
                        .await?;
                    Ok(PushResult {
                        queue: args.queue,
                        id: enqueued.id.to_string(),
                        enqueued_at_ms: enqueued.enqueued_at_ms,
                    })
                }
            }),
        ToolBuilder::new("agentos.queue_pop")
            .title("Take work items")
            .description(
                "Takes up to `max` ready items (default 1) from one of your queues, those waiting \
                 longest first, and hides them from other pops for visibilitySeconds (default 30). \
                 Do the work, then call agentos.queue_ack with each item's receipt; an item not \
                 acknowledged in time is handed out again with attempts + 1. Returns an empty list \
                 if nothing is ready.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: false,
            })
            .handler(move |args: PopArgs, ctx| {
                let services = pop.clone();
                async move {
                    check_queue(&args.queue)?;
                    let config = &services.config.queue;
                    let max_visibility = config.max_visibility_seconds.max(1);
                    let visibility = args
                        .visibility_seconds
                        .unwrap_or(DEFAULT_VISIBILITY_SECONDS.min(max_visibility));
                    if visibility == 0 || visibility > max_visibility {
                        return Err(ToolFailure::new(format!(
                            "`visibilitySeconds` must be between 1 and {max_visibility}"
                        )));
                    }
                    let max_pop = config.max_pop.max(1);
                    let max = args.max.unwrap_or(1);
                    if max == 0 || max > max_pop {
                        return Err(ToolFailure::new(format!("`max` must be between 1 and {max_pop}")));
                    }
                    let leased = services
                        .store
                        .queue_pop(&ctx.caller.agent_id, &args.queue, max, millis(visibility))
                        .await?;
                    let items = leased
                        .into_iter()
                        .map(|leased| {
                            Ok(PoppedItem {
                                id: leased.id.to_string(),
                                item: parse_item(&leased.item)?,
                                receipt: leased.receipt,
                                attempts: leased.attempts,
                                enqueued_at_ms: leased.enqueued_at_ms,
                                lease_expires_at_ms: leased.lease_expires_at_ms,
                            })
                        })
                        .collect::<Result<Vec<_>, ToolFailure>>()?;
                    Ok(PopResult { items })
                }
            }),
        ToolBuilder::new("agentos.queue_ack")
            .title("Finish a work item")
            .description(
                "Acknowledges a popped item as done, removing it from the queue for good. Pass the \
                 receipt from agentos.queue_pop. Returns acked=false if that receipt is no longer \
                 valid (already acknowledged, or the item timed out and was popped again).",
            )
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: AckArgs, ctx| {
                let services = ack.clone();
                async move {
                    check_queue(&args.queue)?;
                    if receipt_item_id(&args.receipt).is_none() {
                        return Err(ToolFailure::new(
                            "`receipt` is not a receipt: pass the `receipt` of an item from \
                             agentos.queue_pop unchanged",
                        ));
                    }
                    let acked = services
                        .store
                        .queue_ack(&ctx.caller.agent_id, &args.queue, &args.receipt)
                        .await?;
                    Ok(AckResult { acked })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        for good in ["q", "emails/outgoing", "a.b_c-d/E9", &"x".repeat(200)] {
            assert!(check_queue(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "ünï", "a\tb", "a?", &"x".repeat(201)] {
            let error = check_queue(bad).unwrap_err();
            assert!(error.message.contains("`queue`"), "{bad:?}");
        }
    }
}
