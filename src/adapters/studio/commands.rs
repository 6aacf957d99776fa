//! The studio's commands: what a person types, the registry tool each one calls, and which of
//! the tool's input fields its bare words fill. Usage lines and `help` are generated from this
//! table and the tools' own input schemas, so a command is described in one place.

/// What a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This registry tool.
    Tool(&'static str),
    /// The tool named by the command's first word (`call`).
    Named,
    /// The studio's own help.
    Help,
}

/// One command of the language.
#[derive(Debug)]
pub struct Command {
    /// What a person types: one or two words.
    pub name: &'static str,
    pub target: Target,
    /// The input fields bare words fill, in order; other fields are given as `field=value`.
    pub positional: &'static [&'static str],
    /// The last positional field takes every remaining bare word, joined by spaces (search words).
    pub rest: bool,
    /// Input fields the command always sets (`approvals approve` sets `decision`).
    pub preset: &'static [(&'static str, &'static str)],
    pub summary: &'static str,
    /// A command that works as written against a fresh agentos run by its owner; the tests run
    /// every one.
    pub example: &'static str,
}

/// Tools that run arbitrary code or raw SQL: the studio runs them only with `advancedMode`.
pub const ADVANCED_TOOLS: &[&str] = &["agentos.db_query", "agentos.db_exec", "agentos.skill_publish"];

const fn command(
    name: &'static str,
    tool: &'static str,
    positional: &'static [&'static str],
    summary: &'static str,
    example: &'static str,
) -> Command {
    Command {
        name,
        target: Target::Tool(tool),
        positional,
        rest: false,
        preset: &[],
        summary,
        example,
    }
}

const fn words(mut command: Command) -> Command {
    command.rest = true;
    command
}

const fn preset(mut command: Command, fields: &'static [(&'static str, &'static str)]) -> Command {
    command.preset = fields;
    command
}

/// Every command, in the order `help` shows them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        target: Target::Help,
        positional: &["command"],
        rest: true,
        preset: &[],
        summary: "List the commands you may run, or explain one: `help mem set`.",
        example: "help mem set",
    },
    command(
        "tools list",
        "agentos.tools_list",
        &["pattern"],
        "List the tools you may call, a page at a time, optionally those a pattern names.",
        "tools list agentos.mem_*",
    ),
    words(command(
        "tools search",
        "agentos.tools_search",
        &["query"],
        "Find tools you may call by what they do.",
        "tools search remember a value",
    )),
    command(
        "describe",
        "agentos.tools_describe",
        &["name"],
        "Show a tool's description and input and output schemas.",
        "describe agentos.mem_set",
    ),
    Command {
        name: "call",
        target: Target::Named,
        positional: &[],
        rest: false,
        preset: &[],
        summary: "Call any tool you may call, with a JSON object or field=value words as its input.",
        example: r#"call agentos.hash {"text": "hello"}"#,
    },
    command("time", "agentos.time_now", &[], "The server's current time.", "time"),
    command(
        "quota",
        "agentos.quota_status",
        &[],
        "Your storage use against your quotas.",
        "quota",
    ),
    // Memory.
    command(
        "mem get",
        "agentos.mem_get",
        &["key"],
        "Read the value stored under a key.",
        "mem get notes/today",
    ),
    command(
        "mem set",
        "agentos.mem_set",
        &["key", "value"],
        "Store a value (JSON, or text) under a key.",
        r#"mem set notes/today {"status": "green"}"#,
    ),
    command(
        "mem delete",
        "agentos.mem_delete",
        &["key"],
        "Forget the value under a key.",
        "mem delete notes/today",
    ),
    command(
        "mem list",
        "agentos.mem_list",
        &["prefix"],
        "List your keys, optionally those starting with a prefix.",
        "mem list notes/",
    ),
    words(command(
        "mem search",
        "agentos.mem_search",
        &["query"],
        "Full-text search over your memory.",
        "mem search status green",
    )),
    // Files.
    command(
        "files list",
        "agentos.fs_list",
        &["dir"],
        "List your files, optionally in one directory.",
        "files list",
    ),
    command(
        "files read",
        "agentos.fs_read",
        &["path"],
        "Read one of your files.",
        "files read notes/today.txt",
    ),
    command(
        "files write",
        "agentos.fs_write",
        &["path", "content"],
        "Write text to one of your files (replacing it).",
        r#"files write notes/today.txt "all green""#,
    ),
    command(
        "files stat",
        "agentos.fs_stat",
        &["path"],
        "Size and times of one of your files.",
        "files stat notes/today.txt",
    ),
    command(
        "files delete",
        "agentos.fs_delete",
        &["path"],
        "Delete one of your files.",
        "files delete notes/today.txt",
    ),
    // MCP servers and the crew.
    command(
        "servers list",
        "agentos.mcp_servers_list",
        &[],
        "The MCP servers agentos proxies, with their state and tools.",
        "servers list",
    ),
    command(
        "servers add",
        "agentos.mcp_server_add",
        &["name"],
        "Add an MCP server: `command=` and `args=` for a program, or `url=` for a remote one.",
        r#"servers add clock command=mcp-server-time args=["--local-timezone","UTC"] enabled=false"#,
    ),
    command(
        "servers remove",
        "agentos.mcp_server_remove",
        &["name"],
        "Remove an MCP server and its tools.",
        "servers remove clock",
    ),
    command(
        "crew status",
        "agentos.crew_status",
        &[],
        "Each feature's serving member and standbys.",
        "crew status",
    ),
    command(
        "crew failover",
        "agentos.crew_failover",
        &["featureSlug", "reason"],
        "Move a feature to its next standby.",
        "crew failover search maintenance",
    ),
    command(
        "crew bootstrap",
        "agentos.crew_bootstrap",
        &[],
        "Start every crew member that is configured but not running.",
        "crew bootstrap",
    ),
    // Skills.
    words(command(
        "skills search",
        "agentos.skills_search",
        &["search"],
        "Browse the skills marketplace.",
        "skills search links",
    )),
    command(
        "skills install",
        "agentos.skill_install",
        &["skillId", "version"],
        "Install a skill (its id or slug), optionally pinned to a version.",
        "skills install page-links",
    ),
    command(
        "skills installed",
        "agentos.skills_installed",
        &[],
        "The skills you have installed.",
        "skills installed",
    ),
    command(
        "skills use",
        "agentos.skill_use",
        &["skillSlug", "capability", "params"],
        "Run a capability of a skill you installed, with a JSON object as its input.",
        r#"skills use text-stats analyze {"text": "one two"}"#,
    ),
    command(
        "skills uninstall",
        "agentos.skill_uninstall",
        &["skillId"],
        "Uninstall a skill.",
        "skills uninstall page-links",
    ),
    command(
        "skills publish",
        "agentos.skill_publish",
        &["manifest", "component"],
        "Publish a skill (operators): its skill.toml text and its component in base64. Advanced.",
        "skills publish manifest=... component=...",
    ),
    // Agents and tokens.
    command(
        "agents list",
        "agentos.agents_list",
        &["status"],
        "The agents you oversee, optionally only `active`, `disabled` or `pending` ones.",
        "agents list",
    ),
    command(
        "agents create",
        "agentos.agent_create",
        &["agentId", "name"],
        "Create an agent; answers its first token. `allowedTools=` limits what it may call.",
        r#"agents create reporter "Weekly reporter" allowedTools=["agentos.mem_*"]"#,
    ),
    command(
        "agents disable",
        "agentos.agent_disable",
        &["agentId"],
        "Disable an agent: its tokens stop working and its work stops.",
        "agents disable reporter",
    ),
    command(
        "agents enable",
        "agentos.agent_enable",
        &["agentId"],
        "Enable a disabled or pending agent.",
        "agents enable reporter",
    ),
    command(
        "tokens create",
        "agentos.agent_token_create",
        &["agentId"],
        "Mint a new token for an agent you oversee (shown once).",
        "tokens create reporter",
    ),
    command(
        "tokens revoke",
        "agentos.token_revoke",
        &["jti"],
        "Revoke one token by its id (jti).",
        "tokens revoke 0f8e4c2a",
    ),
    command(
        "tokens revoke-all",
        "agentos.agent_tokens_revoke",
        &["agentId"],
        "Revoke every token of an agent.",
        "tokens revoke-all reporter",
    ),
    // Approvals.
    command(
        "approvals list",
        "agentos.approvals_list",
        &["status"],
        "Held calls, optionally only those in one state (`pending`...).",
        "approvals list pending",
    ),
    preset(
        command(
            "approvals approve",
            "agentos.approval_decide",
            &["id", "note"],
            "Approve a held call: it runs now, as the agent that made it.",
            "approvals approve apr_0123456789abcdef0123456789abcdef",
        ),
        &[("decision", "approve")],
    ),
    preset(
        command(
            "approvals deny",
            "agentos.approval_decide",
            &["id", "note"],
            "Deny a held call, with an optional note.",
            "approvals deny apr_0123456789abcdef0123456789abcdef \"not today\"",
        ),
        &[("decision", "deny")],
    ),
    // Audit, traces and metrics.
    command(
        "audit",
        "agentos.audit_query",
        &[],
        "Recorded calls, newest first: filter with agentId=, tool=, outcome=, since=, until=, limit=.",
        "audit tool=agentos.mem_set limit=5",
    ),
    command(
        "traces",
        "agentos.traces_query",
        &[],
        "Recorded traces: filter with traceId=, agentId=, tool=, status=, since=, until=, limit=.",
        "traces status=error limit=5",
    ),
    command(
        "health",
        "agentos.health",
        &[],
        "Whether agentos is ready: its store and each proxied MCP server.",
        "health",
    ),
    command(
        "metrics",
        "agentos.ops_metrics",
        &[],
        "Calls, errors and latency percentiles per tool and front door.",
        "metrics",
    ),
    // Schedules and workflows.
    command(
        "schedules list",
        "agentos.schedule_list",
        &[],
        "Your schedules.",
        "schedules list",
    ),
    command(
        "schedules create",
        "agentos.schedule_create",
        &["tool"],
        "Call a tool on a schedule: everySeconds=, cron= or at=, with input=.",
        r#"schedules create agentos.mem_set everySeconds=3600 input={"key": "tick", "value": 1}"#,
    ),
    command(
        "schedules cancel",
        "agentos.schedule_cancel",
        &["id"],
        "Cancel a schedule.",
        "schedules cancel sch_0123456789abcdef",
    ),
    command(
        "schedules runs",
        "agentos.schedule_runs",
        &["id"],
        "A schedule's recent runs.",
        "schedules runs sch_0123456789abcdef",
    ),
    command(
        "workflows list",
        "agentos.workflow_list",
        &[],
        "Your workflow runs, newest first.",
        "workflows list",
    ),
    command(
        "workflows get",
        "agentos.workflow_get",
        &["id"],
        "One workflow run and its steps.",
        "workflows get wf_0123456789abcdef",
    ),
    command(
        "workflows run",
        "agentos.workflow_run",
        &["steps"],
        "Run steps (a JSON array of tool calls) one after another.",
        r#"workflows run [{"tool": "agentos.time_now"}]"#,
    ),
    command(
        "workflows cancel",
        "agentos.workflow_cancel",
        &["id"],
        "Cancel a running workflow.",
        "workflows cancel wf_0123456789abcdef",
    ),
    // Secrets and the database.
    command(
        "secrets list",
        "agentos.secret_list",
        &[],
        "The names of your secrets (never their values).",
        "secrets list",
    ),
    command(
        "secrets set",
        "agentos.secret_set",
        &["name", "value"],
        "Store a secret.",
        "secrets set API_KEY s3cr3t",
    ),
    command(
        "secrets delete",
        "agentos.secret_delete",
        &["name"],
        "Delete a secret.",
        "secrets delete API_KEY",
    ),
    words(command(
        "db query",
        "agentos.db_query",
        &["sql"],
        "Run a read-only SQL query on your database. Advanced.",
        "db query SELECT 1 AS one",
    )),
    words(command(
        "db exec",
        "agentos.db_exec",
        &["sql"],
        "Run SQL that changes your database. Advanced.",
        "db exec CREATE TABLE IF NOT EXISTS notes (body TEXT)",
    )),
];

/// The command `words` begin with (the longest name that matches), and how many words it took.
pub fn find(words: &[&str]) -> Option<(&'static Command, usize)> {
    let two = (words.len() >= 2).then(|| format!("{} {}", words[0], words[1]));
    if let Some(two) = two
        && let Some(command) = COMMANDS.iter().find(|c| c.name == two)
    {
        return Some((command, 2));
    }
    let one = words.first()?;
    COMMANDS.iter().find(|c| c.name == *one).map(|c| (c, 1))
}

/// The command name closest to what was typed, for "did you mean".
pub fn nearest(typed: &[&str]) -> &'static str {
    let typed_two = typed.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let typed_one = typed.first().copied().unwrap_or_default();
    COMMANDS
        .iter()
        .map(|c| {
            // One typed word is measured against a two-word command's first word (`tols` is
            // nearest `tools list`), two typed words against the whole name.
            let name = match c.name.split_once(' ') {
                Some((first, _)) if typed.len() < 2 => first,
                _ => c.name,
            };
            let against = if name.contains(' ') { &typed_two } else { typed_one };
            // A known first word (`mem`) makes its commands nearer than any other.
            let family = c.name.split(' ').next() == Some(typed_one);
            (distance(name, against) - if family { 2 } else { 0 }, c.name)
        })
        .min_by_key(|(d, _)| *d)
        .map_or("help", |(_, name)| name)
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> isize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    isize::try_from(row[b.len()]).unwrap_or(isize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_by_their_words() {
        for command in COMMANDS {
            let words: Vec<&str> = command.name.split(' ').collect();
            assert_eq!(find(&words).map(|(c, _)| c.name), Some(command.name));
            assert_eq!(COMMANDS.iter().filter(|c| c.name == command.name).count(), 1);
            assert!(command.example.starts_with(command.name), "{}", command.name);
        }
        assert_eq!(
            find(&["mem", "get", "x"]).map(|(c, n)| (c.name, n)),
            Some(("mem get", 2))
        );
        assert_eq!(
            find(&["audit", "limit=1"]).map(|(c, n)| (c.name, n)),
            Some(("audit", 1))
        );
        assert!(find(&["mem"]).is_none());
        assert!(find(&[]).is_none());
    }

    #[test]
    fn the_nearest_command_is_suggested() {
        assert_eq!(nearest(&["mem", "gte"]), "mem get");
        assert_eq!(nearest(&["approvls", "list"]), "approvals list");
        assert_eq!(nearest(&["tols"]), "tools list");
        assert_eq!(nearest(&["skills", "instal", "x"]), "skills install");
    }
}
