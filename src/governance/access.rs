//! Who may see what: the one rule of visibility for audit records, traces and approvals. An
//! agent sees its own; an operator also its account's agents'; an ops-admin everyone's. What a
//! caller may not see looks like what does not exist.

use crate::registry::{Caller, Registry, Role};
use crate::store::{ApprovalRecord, Visibility};

/// Whose records `caller` may read without naming an agent.
pub fn visibility(caller: &Caller) -> Visibility {
    match (caller.role, &caller.account_id) {
        (Role::OpsAdmin, _) => Visibility::All,
        (Role::Operator, Some(account)) => Visibility::Account {
            agent_id: caller.agent_id.to_string(),
            account_id: account.to_string(),
        },
        _ => Visibility::Agent(caller.agent_id.to_string()),
    }
}

/// Whether `caller` may ask for `agent_id`'s records by name. An operator's claim is checked
/// against the agent's current account when a directory is set; the store's visibility filter
/// applies either way, so without one the answer is simply empty for others' agents.
pub async fn may_name(caller: &Caller, registry: Option<&Registry>, agent_id: &str) -> bool {
    if caller.is_admin() || &*caller.agent_id == agent_id {
        return true;
    }
    if caller.role != Role::Operator {
        return false;
    }
    match registry.and_then(Registry::directory) {
        Some(directory) => match directory.lookup(agent_id).await {
            Some(agent) => caller.oversees(agent_id, agent.account_id.as_deref()),
            None => true,
        },
        None => true,
    }
}

/// Whether `caller` may see `record`: the requester, or whoever oversees it.
pub fn may_see_approval(caller: &Caller, record: &ApprovalRecord) -> bool {
    caller.oversees(&record.agent_id, record.account_id.as_deref())
}

/// Whether `caller` may decide `record`: it oversees the requester, and is not the requester
/// itself unless it is an ops-admin (an agent must not approve its own calls).
pub fn may_decide_approval(caller: &Caller, record: &ApprovalRecord) -> bool {
    may_see_approval(caller, record) && (caller.is_admin() || *caller.agent_id != *record.agent_id)
}
