//! The rules of approvals apart from their mechanics: what a held call's caller is told for each
//! way it can end. Who may see and decide one is `governance::access`'s.

use std::time::Duration;

use rmcp::model::CallToolResult;
use serde_json::Value;

use crate::registry::{Hold, ToolFailure, truncate};
use crate::store::{ApprovalRecord, ApprovalStatus};

/// Previews are cut to about this many characters; deciders need the gist, not megabytes.
pub(super) const PREVIEW_CHARS: usize = 2048;

/// What one may not see looks like what does not exist.
pub(super) fn not_found(id: &str) -> ToolFailure {
    ToolFailure::not_found(format!(
        "no approval {id} that you can see; agentos.approvals_list shows the ones you may act on"
    ))
}

pub(super) fn not_pending(record: &ApprovalRecord) -> ToolFailure {
    ToolFailure::invalid_input(format!(
        "approval {} is already {}; only pending approvals can be decided",
        record.id,
        record.status.as_str()
    ))
}

/// The input as a decider reads it: pretty JSON, cut at about 2 KB.
pub(super) fn preview(input: &Value) -> String {
    let pretty = serde_json::to_string_pretty(input).unwrap_or_default();
    truncate(&pretty, PREVIEW_CHARS)
}

/// The waiting caller's answer for an approval nothing will change any more.
pub(super) fn final_hold(record: &ApprovalRecord) -> Hold {
    let (tool, id) = (&record.tool, &record.id);
    let decider = record.decided_by.as_deref().unwrap_or("a human");
    match record.status {
        ApprovalStatus::Completed => match record.result.as_deref().map(serde_json::from_str::<CallToolResult>) {
            Some(Ok(result)) => Hold::Ran(result),
            _ => Hold::Failed(format!(
                "{tool} ran after approval {id}, but its stored result is unreadable"
            )),
        },
        ApprovalStatus::Denied => Hold::Denied(format!(
            "{tool} was denied by {decider}: {}",
            record.note.as_deref().unwrap_or("no reason given")
        )),
        ApprovalStatus::Failed => Hold::Failed(format!(
            "{tool} was approved by {decider} (approval {id}) but could not run: {}",
            record.result.as_deref().unwrap_or("unknown reason")
        )),
        _ => Hold::Failed(format!(
            "approval {id} for {tool} expired without a decision; nothing ran. Call {tool} again to ask anew."
        )),
    }
}

pub(super) fn pending_hold(record: &ApprovalRecord, waited: Duration) -> Hold {
    let (tool, id) = (&record.tool, &record.id);
    let message = if record.status == ApprovalStatus::Approved {
        format!(
            "{tool} was approved (approval {id}) and is still running. Get its result later with \
             agentos.approval_result {{\"id\": \"{id}\"}}."
        )
    } else {
        let expires = chrono::DateTime::from_timestamp_millis(record.expires_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        format!(
            "{tool} needs a human's approval before it runs, and none was given within {}s. Approval \
             {id} stays pending until {expires}; nothing has run yet. Once it is approved, agentos \
             runs your call exactly as you made it. Get the outcome and the call's result later with \
             agentos.approval_result {{\"id\": \"{id}\"}}; do not call {tool} again meanwhile (that \
             would ask for a second approval).",
            waited.as_secs()
        )
    };
    Hold::Pending {
        id: id.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::access::{may_decide_approval as may_decide, may_see_approval as may_see};
    use crate::registry::Caller;

    fn record(agent: &str, account: Option<&str>) -> ApprovalRecord {
        ApprovalRecord {
            id: "apr_1".into(),
            agent_id: agent.into(),
            account_id: account.map(str::to_owned),
            caller: "{}".into(),
            tool: "mcp.x.y".into(),
            input: "{}".into(),
            sealed_input: None,
            preview: "{}".into(),
            request_id: "r".into(),
            status: ApprovalStatus::Denied,
            created_at: 0,
            expires_at: 0,
            decided_at: Some(1),
            decided_by: Some("op".into()),
            note: None,
            result: None,
        }
    }

    fn caller(id: &str, role: crate::registry::Role, account: Option<&str>) -> Caller {
        let mut caller = Caller::agent(id, crate::registry::ToolPolicy::allow_all(), Vec::new());
        caller.role = role;
        caller.account_id = account.map(std::sync::Arc::from);
        caller
    }

    #[test]
    fn requesters_see_but_only_overseers_other_than_themselves_decide() {
        use crate::registry::Role;
        let asked = record("a", Some("acct"));
        let requester = caller("a", Role::Agent, Some("acct"));
        assert!(may_see(&requester, &asked) && !may_decide(&requester, &asked));
        let peer = caller("b", Role::Agent, Some("acct"));
        assert!(!may_see(&peer, &asked) && !may_decide(&peer, &asked));
        let operator = caller("op", Role::Operator, Some("acct"));
        assert!(may_see(&operator, &asked) && may_decide(&operator, &asked));
        let stranger = caller("op2", Role::Operator, Some("other"));
        assert!(!may_see(&stranger, &asked) && !may_decide(&stranger, &asked));
        let own_operator = record("op", Some("acct"));
        assert!(
            !may_decide(&operator, &own_operator),
            "not even an operator approves itself"
        );
        let admin = caller("root", Role::OpsAdmin, None);
        assert!(may_decide(&admin, &record("root", None)), "an ops-admin may");
    }

    #[test]
    fn a_denial_names_the_decider_and_the_note() {
        let mut denied = record("a", None);
        denied.note = Some("too risky".into());
        match final_hold(&denied) {
            Hold::Denied(message) => assert_eq!(message, "mcp.x.y was denied by op: too risky"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn previews_are_pretty_and_bounded() {
        let big = serde_json::json!({"text": "x".repeat(10_000)});
        let preview = preview(&big);
        assert!(preview.chars().count() <= PREVIEW_CHARS + 1);
        assert!(preview.starts_with("{\n  \"text\""));
    }
}
