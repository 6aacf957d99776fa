//! The studio: one command language for people (`mem get notes/today`, `approvals approve
//! apr_…`), each command a registry tool call made as the caller, so the studio can do nothing
//! the caller could not do with the tool itself. Reading answers at once; a command whose tool
//! is not read-only answers with a preview and a confirmation token, and runs only when the
//! same caller sends the same command back with that token.

pub mod commands;
mod confirm;
mod input;
pub mod terminal;
mod words;

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::registry::{CallContext, CallError, Registry, ToolSpec, approval_id_of, output_of, result_text};
use commands::{ADVANCED_TOOLS, COMMANDS, Command, Target};
use confirm::Confirmations;

/// Longest command accepted, in bytes.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// One command, as `POST /api/studio/command` takes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StudioRequest {
    /// The command, e.g. `mem get notes/today`; `help` lists them all.
    pub command: String,
    /// The token a preview of this same command answered, to run it.
    #[serde(default)]
    pub confirm_token: Option<String>,
    /// Required for commands that run raw SQL or publish code (`db query`, `db exec`,
    /// `skills publish`, and `call` of their tools).
    #[serde(default)]
    pub advanced_mode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Help,
    Preview,
    Result,
    Error,
}

/// What the studio answers to every command.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub kind: Kind,
    /// One sentence for a person.
    pub summary: String,
    /// The tool's answer (`result`), what would happen (`preview`), the commands (`help`), or
    /// the tool and input the command came to (`error`, when it got that far).
    pub result: Value,
    /// The same call through the API: the MCP `tools/call` request and a curl line for the
    /// plain form of `POST /mcp`.
    pub snippet: String,
    /// With a preview: send it back with the same command to run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_token: Option<String>,
    /// With a preview: seconds the token stays good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

impl Answer {
    fn new(kind: Kind, summary: impl Into<String>, result: Value, snippet: String) -> Self {
        Self {
            kind,
            summary: summary.into(),
            result,
            snippet,
            confirm_token: None,
            expires_in_secs: None,
        }
    }
}

/// The tool call a command came to.
struct Planned {
    spec: ToolSpec,
    input: Map<String, Value>,
}

pub struct Studio {
    registry: Arc<Registry>,
    confirmations: Confirmations,
}

impl Studio {
    pub fn new(registry: Arc<Registry>, confirm_ttl: Duration) -> Self {
        Self {
            registry,
            confirmations: Confirmations::new(confirm_ttl),
        }
    }

    /// Runs `request` as `ctx`'s caller. `base_url` (e.g. `http://127.0.0.1:8080`) goes into
    /// the snippets.
    pub async fn run(&self, ctx: &CallContext, request: &StudioRequest, base_url: &str) -> Answer {
        let text = request.command.as_str();
        let studio_snippet = studio_snippet(base_url, text);
        let error = |message: String, result: Value| Answer::new(Kind::Error, message, result, studio_snippet.clone());
        if text.len() > MAX_COMMAND_BYTES {
            return error(
                format!("the command is {} bytes; at most {MAX_COMMAND_BYTES}", text.len()),
                Value::Null,
            );
        }
        let words = match words::split(text) {
            Ok(words) if words.is_empty() => {
                return error("the command is empty: `help` lists the commands".into(), Value::Null);
            }
            Ok(words) => words,
            Err(message) => return error(message, Value::Null),
        };
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        let Some((command, taken)) = commands::find(&texts) else {
            return error(
                format!(
                    "unknown command `{}`: did you mean `{}`? `help` lists the commands",
                    texts.iter().take(2).copied().collect::<Vec<_>>().join(" "),
                    commands::nearest(&texts)
                ),
                json!({"suggestion": commands::nearest(&texts)}),
            );
        };
        let rest = &words[taken..];
        if command.target == Target::Help {
            return match self.help(ctx, &texts[taken..]) {
                Ok(answer) => Answer::new(Kind::Help, answer.0, answer.1, studio_snippet),
                Err(message) => error(message, Value::Null),
            };
        }
        let planned = match self.plan(ctx, command, rest) {
            Ok(planned) => planned,
            Err(message) => return error(message, Value::Null),
        };
        let tool = planned.spec.name.to_string();
        let snippet = call_snippet(base_url, &tool, &planned.input);
        let called = json!({"tool": tool, "input": planned.input});
        if ADVANCED_TOOLS.contains(&tool.as_str()) && !request.advanced_mode {
            return Answer::new(
                Kind::Error,
                format!(
                    "`{}` runs raw SQL or publishes code: send it with advancedMode: true",
                    command.name
                ),
                called,
                snippet,
            );
        }
        let read_only = planned.spec.annotations.is_some_and(|hints| hints.read_only);
        if !read_only {
            let agent_id = ctx.caller.agent_id.as_ref();
            match &request.confirm_token {
                None => return self.preview(ctx, command, &planned, text, snippet),
                Some(token) => {
                    if let Err(refused) = self.confirmations.redeem(token, agent_id, text) {
                        return Answer::new(Kind::Error, refused.to_string(), called, snippet);
                    }
                }
            }
        }
        let outcome = self.registry.call(ctx, &tool, Value::Object(planned.input)).await;
        match outcome {
            Ok(result) if result.is_error == Some(true) => Answer::new(
                Kind::Error,
                format!("{tool}: {}", result_text(&result)),
                called,
                snippet,
            ),
            Ok(result) => {
                let summary = match approval_id_of(&result) {
                    Some(id) => format!("{tool} is held for an operator's approval ({id})"),
                    None => format!("{tool} answered"),
                };
                Answer::new(Kind::Result, summary, output_of(&result), snippet)
            }
            Err(error) => Answer::new(Kind::Error, error.to_string(), called, snippet),
        }
    }

    /// The tool a command calls, as the caller sees it, and the input its words make.
    fn plan(&self, ctx: &CallContext, command: &Command, words: &[words::Word]) -> Result<Planned, String> {
        let (tool, words) = match command.target {
            Target::Tool(tool) => (tool.to_owned(), words),
            _ => match words.split_first() {
                Some((tool, rest)) => (tool.text.clone(), rest),
                None => return Err("`call` needs a tool: `call <tool> {json input}`".into()),
            },
        };
        let entry = self
            .registry
            .resolve_for(&ctx.caller, &tool)
            .ok_or_else(|| CallError::UnknownTool(tool.clone()).to_string())?;
        let spec = entry.tool.spec().clone();
        let usage = input::usage(command, &spec.input_schema);
        let input = match (command.target, words) {
            (Target::Named, [only]) if !only.quoted() && only.text.starts_with('{') => {
                match serde_json::from_str::<Value>(&only.text) {
                    Ok(Value::Object(input)) => input,
                    _ => return Err(format!("`{}` is not a JSON object", only.text)),
                }
            }
            (Target::Named, _) => {
                let usage = format!("call {tool} {{json input}} or call {tool} field=value ...");
                input::build(command, words, &spec.input_schema, &usage)?
            }
            _ => input::build(command, words, &spec.input_schema, &usage)?,
        };
        // Refused now, as the call would be, rather than after a preview is confirmed.
        entry
            .check_input(&Value::Object(input.clone()))
            .map_err(|error| error.to_string())?;
        Ok(Planned { spec, input })
    }

    fn preview(&self, ctx: &CallContext, command: &Command, planned: &Planned, text: &str, snippet: String) -> Answer {
        let ttl = self.confirmations.ttl();
        let token = self.confirmations.issue(ctx.caller.agent_id.as_ref(), text);
        let hints = planned.spec.annotations.unwrap_or_default();
        let result = json!({
            "tool": planned.spec.name.as_ref(),
            "input": planned.input,
            "as": ctx.caller.agent_id.as_ref(),
            "description": planned.spec.description,
            "destructive": hints.destructive,
            "idempotent": hints.idempotent,
        });
        let mut answer = Answer::new(
            Kind::Preview,
            format!(
                "`{}` will call {} as {}; send the same command with confirmToken within {} s to run it",
                command.name,
                planned.spec.name,
                ctx.caller.agent_id,
                ttl.as_secs()
            ),
            result,
            snippet,
        );
        answer.confirm_token = Some(token);
        answer.expires_in_secs = Some(ttl.as_secs());
        answer
    }

    /// `help` (the commands the caller may run) or `help <command>`.
    fn help(&self, ctx: &CallContext, asked: &[&str]) -> Result<(String, Value), String> {
        let usage_of = |command: &Command| -> Option<(String, Option<ToolSpec>)> {
            match command.target {
                Target::Tool(tool) => {
                    let spec = self.registry.resolve_for(&ctx.caller, tool)?.tool.spec().clone();
                    Some((input::usage(command, &spec.input_schema), Some(spec)))
                }
                Target::Named => Some(("call <tool> {json input} | call <tool> field=value ...".into(), None)),
                Target::Help => Some(("help [command]".into(), None)),
            }
        };
        if asked.is_empty() {
            let listed: Vec<Value> = COMMANDS
                .iter()
                .filter_map(|command| {
                    let (usage, _) = usage_of(command)?;
                    Some(json!({"command": command.name, "usage": usage, "summary": command.summary}))
                })
                .collect();
            let summary = format!(
                "{} commands you may run; `help <command>` explains one. Commands that change \
                 something answer a preview first.",
                listed.len()
            );
            return Ok((summary, json!({"commands": listed})));
        }
        let unknown = || {
            format!(
                "no command `{}` that you may run: did you mean `{}`?",
                asked.join(" "),
                commands::nearest(asked)
            )
        };
        let (command, _) = commands::find(asked).ok_or_else(unknown)?;
        let (usage, spec) = usage_of(command).ok_or_else(unknown)?;
        let mut fields = Vec::new();
        let mut previews = false;
        if let Some(spec) = &spec {
            let (properties, required) = input::fields(&spec.input_schema);
            for (name, schema) in properties {
                if command.preset.iter().any(|(preset, _)| preset == name) {
                    continue;
                }
                fields.push(json!({
                    "name": name,
                    "required": required.contains(&name.as_str()),
                    "description": schema.get("description").cloned().unwrap_or(Value::Null),
                }));
            }
            previews = !spec.annotations.is_some_and(|hints| hints.read_only);
        }
        let tool = match command.target {
            Target::Tool(tool) => Value::String(tool.to_owned()),
            _ => Value::Null,
        };
        let advanced = matches!(command.target, Target::Tool(tool) if ADVANCED_TOOLS.contains(&tool));
        Ok((
            format!("{usage}: {}", command.summary),
            json!({
                "command": command.name,
                "usage": usage,
                "summary": command.summary,
                "tool": tool,
                "previews": previews,
                "advanced": advanced,
                "fields": fields,
                "example": command.example,
            }),
        ))
    }
}

/// `text` in single quotes for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn call_snippet(base_url: &str, tool: &str, input: &Map<String, Value>) -> String {
    let mcp = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": input},
    });
    let plain = json!({"tool": tool, "input": input});
    format!(
        "MCP: {mcp}\ncurl -sS {base_url}/mcp -H \"Authorization: Bearer $AGENTOS_TOKEN\" \
         -H 'Content-Type: application/json' -d {}",
        shell_quoted(&plain.to_string())
    )
}

fn studio_snippet(base_url: &str, command: &str) -> String {
    format!(
        "curl -sS {base_url}/api/studio/command -H \"Authorization: Bearer $AGENTOS_TOKEN\" \
         -H 'Content-Type: application/json' -d {}",
        shell_quoted(&json!({"command": command}).to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_quote_for_the_shell() {
        let input = json!({"text": "it's"}).as_object().cloned().unwrap();
        let snippet = call_snippet("http://h:1", "agentos.hash", &input);
        assert_eq!(
            snippet,
            "MCP: {\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"arguments\":{\"text\":\"it's\"},\"name\":\"agentos.hash\"}}\n\
             curl -sS http://h:1/mcp -H \"Authorization: Bearer $AGENTOS_TOKEN\" -H 'Content-Type: application/json' \
             -d '{\"input\":{\"text\":\"it'\\''s\"},\"tool\":\"agentos.hash\"}'"
        );
        assert!(studio_snippet("http://h:1", "help").contains("/api/studio/command"));
    }
}
