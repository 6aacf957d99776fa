//! `agentos studio`: the studio in a terminal, a client of a running agentos's
//! `POST /api/studio/command`. One command (`-c`) for scripts, or an interactive console with
//! history, completion of command and tool names, and a y/N question before a preview runs.

use std::io::{BufRead, IsTerminal, Write};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use serde_json::{Value, json};

use super::commands::COMMANDS;

/// How to reach the studio, and how to show its answers.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL, e.g. `http://127.0.0.1:7777`.
    pub url: String,
    pub token: String,
    /// Print each answer as one line of JSON, as the server sent it.
    pub json: bool,
    /// Run previews without asking.
    pub yes: bool,
    /// Send `advancedMode: true` (raw SQL, publishing).
    pub advanced: bool,
    /// Also print each answer's snippet (the same call over MCP and curl).
    pub snippets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cannot reach agentos at {url}: {message} (is `agentos serve` running there? --url sets where)")]
    Unreachable { url: String, message: String },
    #[error("agentos refused the token (401): pass --token, set AGENTOS_TOKEN, or use --data-dir of the server")]
    Unauthorized,
    #[error("agentos answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the terminal failed: {0}")]
    Terminal(String),
}

struct Client {
    http: reqwest::Client,
    options: Options,
}

impl Client {
    fn new(options: Options) -> Result<Self, TerminalError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|error| TerminalError::Terminal(error.to_string()))?;
        Ok(Self { http, options })
    }

    fn unreachable(&self, error: impl std::fmt::Display) -> TerminalError {
        TerminalError::Unreachable {
            url: self.options.url.clone(),
            message: error.to_string(),
        }
    }

    async fn send(&self, command: &str, confirm_token: Option<&str>) -> Result<Value, TerminalError> {
        let mut body = json!({"command": command, "advancedMode": self.options.advanced});
        if let Some(token) = confirm_token {
            body["confirmToken"] = json!(token);
        }
        let url = format!("{}/api/studio/command", self.options.url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.options.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        self.answer(response).await
    }

    /// A response's JSON body, or why there is none.
    async fn answer(&self, response: reqwest::Response) -> Result<Value, TerminalError> {
        let status = response.status();
        let text = response.text().await.map_err(|error| self.unreachable(error))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(TerminalError::Unauthorized);
        }
        if !status.is_success() {
            return Err(TerminalError::Refused {
                status: status.as_u16(),
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|_| TerminalError::Refused {
            status: status.as_u16(),
            body: text,
        })
    }

    /// One call through the plain form of `POST /mcp`: its whole answer (`success`, `result`
    /// or `error`).
    async fn plain_call(&self, tool: &str, input: Value) -> Result<Value, TerminalError> {
        let url = format!("{}/mcp", self.options.url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.options.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"tool": tool, "input": input}).to_string())
            .send()
            .await
            .map_err(|error| self.unreachable(error))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(TerminalError::Unauthorized);
        }
        let text = response.text().await.map_err(|error| self.unreachable(error))?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The names of the tools this caller may call, for completion; none if listing fails.
    async fn tool_names(&self) -> Vec<String> {
        let url = format!("{}/tools", self.options.url.trim_end_matches('/'));
        let listed = async {
            let response = self.http.get(url).bearer_auth(&self.options.token).send().await.ok()?;
            serde_json::from_str::<Value>(&response.text().await.ok()?).ok()
        };
        listed
            .await
            .and_then(|body| {
                body["tools"].as_array().map(|tools| {
                    tools
                        .iter()
                        .filter_map(|t| t["name"].as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

/// `agentos tools [pattern]`: the tools this caller may call (`GET /tools`), optionally only
/// those a pattern such as `agentos.mem_*` names; one per line with the first line of its
/// description, or the listing as JSON.
pub async fn list_tools(options: Options, pattern: Option<&str>) -> Result<i32, TerminalError> {
    let pattern = match pattern.map(crate::registry::ToolPattern::parse).transpose() {
        Ok(pattern) => pattern,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(1);
        }
    };
    let client = Client::new(options.clone())?;
    let url = format!("{}/tools", options.url.trim_end_matches('/'));
    let response = client
        .http
        .get(url)
        .bearer_auth(&options.token)
        .send()
        .await
        .map_err(|error| client.unreachable(error))?;
    let listing = client.answer(response).await?;
    let tools: Vec<&Value> = listing["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|tool| {
            let name = tool["name"].as_str().unwrap_or_default();
            pattern.as_ref().is_none_or(|p| p.matches(name))
        })
        .collect();
    if options.json {
        println!("{}", json!({"tools": tools}));
        return Ok(0);
    }
    let width = tools
        .iter()
        .filter_map(|t| t["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(0);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap_or_default();
        let said = tool["description"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default();
        println!("{name:<width$}  {said}");
    }
    if tools.is_empty() {
        eprintln!("no tool you may call matches");
    }
    Ok(0)
}

/// `agentos call <tool> [json]`: one call through the plain form of `POST /mcp`, as is (no
/// preview: naming the tool is the decision). Prints the result; exit code 1 if it failed.
pub async fn call_tool(options: Options, tool: &str, input: &str) -> Result<i32, TerminalError> {
    let input: Value = match serde_json::from_str(input) {
        Ok(input @ Value::Object(_)) => input,
        _ => {
            eprintln!("error: the input must be a JSON object, e.g. '{{\"key\": \"greeting\"}}'");
            return Ok(1);
        }
    };
    let client = Client::new(options.clone())?;
    let body = client.plain_call(tool, input).await?;
    if options.json {
        println!("{body}");
    } else if body["success"] == true {
        println!("{}", serde_json::to_string_pretty(&body["result"]).unwrap_or_default());
    } else {
        println!("error: {}", body["error"].as_str().unwrap_or("the call failed"));
    }
    Ok(i32::from(body["success"] != true))
}

/// `agentos token <agent>`: mints a token for an agent the caller oversees
/// (`agentos.agent_token_create`) and prints it alone, for `TOKEN=$(agentos token reporter)`;
/// with `--json`, the whole answer (its `jti` and expiry too).
pub async fn mint_token(options: Options, agent_id: &str) -> Result<i32, TerminalError> {
    let client = Client::new(options.clone())?;
    let body = client
        .plain_call("agentos.agent_token_create", json!({"agentId": agent_id}))
        .await?;
    match (body["success"] == true, body["result"]["token"].as_str()) {
        (true, Some(token)) => {
            if options.json {
                println!("{}", body["result"]);
            } else {
                println!("{token}");
            }
            Ok(0)
        }
        _ => {
            eprintln!("error: {}", body["error"].as_str().unwrap_or("no token was minted"));
            Ok(1)
        }
    }
}

/// An answer as a person reads it.
fn render(answer: &Value, options: &Options) -> String {
    if options.json {
        return answer.to_string();
    }
    let summary = answer["summary"].as_str().unwrap_or_default();
    let result = &answer["result"];
    let mut out = String::new();
    match answer["kind"].as_str().unwrap_or_default() {
        "help" if result["commands"].is_array() => {
            out.push_str(summary);
            out.push('\n');
            for command in result["commands"].as_array().into_iter().flatten() {
                let usage = command["usage"].as_str().unwrap_or_default();
                let said = command["summary"].as_str().unwrap_or_default();
                out.push_str(&format!("  {usage}\n      {said}\n"));
            }
        }
        "help" => {
            out.push_str(&format!(
                "{}\n  {}\n",
                result["usage"].as_str().unwrap_or_default(),
                result["summary"].as_str().unwrap_or_default()
            ));
            for field in result["fields"].as_array().into_iter().flatten() {
                let name = field["name"].as_str().unwrap_or_default();
                let required = if field["required"] == true { " (required)" } else { "" };
                let said = field["description"].as_str().unwrap_or_default().replace('\n', " ");
                out.push_str(&format!("  {name}{required}: {said}\n"));
            }
            if result["previews"] == true {
                out.push_str("  Changes something: answers a preview to confirm first.\n");
            }
            out.push_str(&format!(
                "  example: {}\n",
                result["example"].as_str().unwrap_or_default()
            ));
        }
        "preview" => {
            out.push_str(&format!("preview: {summary}\n"));
            out.push_str(&format!(
                "  {} {}\n",
                result["tool"].as_str().unwrap_or_default(),
                serde_json::to_string_pretty(&result["input"])
                    .unwrap_or_default()
                    .replace('\n', "\n  ")
            ));
        }
        "error" => out.push_str(&format!("error: {summary}\n")),
        _ => match result {
            Value::String(text) => out.push_str(&format!("{text}\n")),
            other => out.push_str(&format!(
                "{}\n",
                serde_json::to_string_pretty(other).unwrap_or_default()
            )),
        },
    }
    if options.snippets
        && let Some(snippet) = answer["snippet"].as_str()
    {
        out.push_str(&format!("# {}\n", snippet.replace('\n', "\n# ")));
    }
    out
}

/// Whether an answer means the command failed, for the exit code.
fn failed(answer: &Value) -> bool {
    answer["kind"] == "error"
}

/// `agentos studio -c <command>`: runs one command and prints its answer; the exit code is 1
/// if it failed, 2 if it was a preview left unconfirmed. A preview runs with `--yes`, or after
/// a `y` when stdin is a terminal.
pub async fn run_once(options: Options, command: &str) -> Result<i32, TerminalError> {
    let client = Client::new(options.clone())?;
    let answer = client.send(command, None).await?;
    if answer["kind"] != "preview" {
        print!("{}", render(&answer, &options));
        return Ok(i32::from(failed(&answer)));
    }
    let token = answer["confirmToken"].as_str().unwrap_or_default().to_owned();
    let confirmed = if options.yes {
        true
    } else if std::io::stdin().is_terminal() {
        print!("{}Run it? [y/N] ", render(&answer, &options));
        std::io::stdout().flush().ok();
        let mut reply = String::new();
        std::io::stdin().lock().read_line(&mut reply).ok();
        is_yes(&reply)
    } else {
        print!("{}", render(&answer, &options));
        eprintln!("not run: pass --yes to run a preview without a terminal to ask on");
        return Ok(2);
    };
    if !confirmed {
        println!("not run");
        return Ok(2);
    }
    let ran = client.send(command, Some(&token)).await?;
    print!("{}", render(&ran, &options));
    Ok(i32::from(failed(&ran)))
}

fn is_yes(reply: &str) -> bool {
    matches!(reply.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Completes command names at the start of a line, command names after `help`, and tool
/// names after `call` and `describe`.
struct Completion {
    tools: Vec<String>,
}

impl Completer for Completion {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let typed = &line[..pos];
        let (context, word) = match typed.rsplit_once(' ') {
            Some((before, word)) => (before.trim(), word),
            None => ("", typed),
        };
        let start = pos - word.len();
        let tools_after = ["call", "describe"];
        let candidates: Vec<String> = if tools_after.contains(&context) {
            self.tools.iter().filter(|t| t.starts_with(word)).cloned().collect()
        } else {
            // A command name's next word, after what is typed of it so far (or after `help`).
            let typed_name = context.strip_prefix("help").map_or(context, str::trim);
            let prefix = if typed_name.is_empty() {
                word.to_owned()
            } else {
                format!("{typed_name} {word}")
            };
            let mut names: Vec<String> = Vec::new();
            for command in COMMANDS.iter().filter(|c| c.name.starts_with(&prefix)) {
                let next = command.name[prefix.len() - word.len()..]
                    .split(' ')
                    .next()
                    .unwrap_or_default();
                if !names.iter().any(|name| name == next) {
                    names.push(next.to_owned());
                }
            }
            names
        };
        Ok((start, candidates))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// Where the console keeps its history: `AGENTOS_STUDIO_HISTORY`, else `~/.agentos_history`.
fn history_file() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("AGENTOS_STUDIO_HISTORY") {
        return Some(path.into());
    }
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".agentos_history"))
}

/// `agentos studio`: the interactive console. Blocks; call it off the async threads.
pub fn interactive(options: Options, runtime: &tokio::runtime::Handle) -> Result<i32, TerminalError> {
    let client = Client::new(options.clone())?;
    let terminal = |error: ReadlineError| TerminalError::Terminal(error.to_string());
    // Fails early, with the reason, if the server cannot be reached or refuses the token.
    let greeting = runtime.block_on(client.send("help", None))?;
    let tools = runtime.block_on(client.tool_names());
    let mut editor: Editor<Completion, rustyline::history::DefaultHistory> = Editor::new().map_err(terminal)?;
    editor.set_helper(Some(Completion { tools }));
    let history = history_file();
    if let Some(path) = &history {
        // No history yet is the usual first run.
        let _ = editor.load_history(path);
    }
    println!(
        "agentos studio at {}: {} Tab completes; `exit` or Ctrl-D leaves.",
        options.url,
        greeting["summary"].as_str().unwrap_or_default()
    );
    loop {
        let line = match editor.readline("agentos> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(terminal(error)),
        };
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        if matches!(command, "exit" | "quit") {
            break;
        }
        let _ = editor.add_history_entry(command);
        let answer = match runtime.block_on(client.send(command, None)) {
            Ok(answer) => answer,
            Err(error) => {
                println!("error: {error}");
                continue;
            }
        };
        print!("{}", render(&answer, &options));
        if answer["kind"] != "preview" {
            continue;
        }
        let token = answer["confirmToken"].as_str().unwrap_or_default().to_owned();
        let reply = match editor.readline("Run it? [y/N] ") {
            Ok(reply) => reply,
            Err(ReadlineError::Eof) => break,
            Err(_) => String::new(),
        };
        if !is_yes(&reply) {
            println!("not run");
            continue;
        }
        match runtime.block_on(client.send(command, Some(&token))) {
            Ok(ran) => print!("{}", render(&ran, &options)),
            Err(error) => println!("error: {error}"),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str, tools: &[&str]) -> Vec<String> {
        let completion = Completion {
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        };
        let history = rustyline::history::DefaultHistory::new();
        let ctx = Context::new(&history);
        completion.complete(line, line.len(), &ctx).unwrap().1
    }

    #[test]
    fn completes_commands_their_second_words_and_tools() {
        assert_eq!(complete("me", &[]), ["mem", "metrics"]);
        assert_eq!(complete("help ap", &[]), ["approvals"]);
        assert_eq!(complete("mem s", &[]), ["set", "search"]);
        assert_eq!(complete("help approvals a", &[]), ["approve"]);
        assert_eq!(
            complete("call agentos.mem_g", &["agentos.mem_get", "agentos.hash"]),
            ["agentos.mem_get"]
        );
        assert!(complete("zz", &[]).is_empty());
    }

    #[test]
    fn answers_read_as_text_or_json() {
        let human = Options {
            url: String::new(),
            token: String::new(),
            json: false,
            yes: false,
            advanced: false,
            snippets: true,
        };
        let answer = json!({"kind": "error", "summary": "nope", "result": null, "snippet": "curl x"});
        assert_eq!(render(&answer, &human), "error: nope\n# curl x\n");
        let machine = Options { json: true, ..human };
        assert_eq!(render(&answer, &machine), answer.to_string());
        assert!(failed(&answer));
        assert!(is_yes(" Y\n") && is_yes("yes") && !is_yes("") && !is_yes("n"));
    }
}
