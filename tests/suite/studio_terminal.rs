//! `agentos studio` as a person and a script use it: the interactive console on a real
//! pseudo-terminal (what appears on the screen, a preview confirmed with `y` and one declined,
//! Tab completion, history kept across runs), and `-c` with its exit codes.

use std::process::Command;

use serde_json::Value;

use crate::common::pty::Pty;
use crate::common::{self, Server};

fn studio_command(server: &Server, history: &std::path::Path) -> Command {
    let mut command = Command::new(common::agentos_bin());
    command
        .arg("studio")
        .args(["--url", &server.url(""), "--token", server.token()])
        .env("TERM", "xterm-256color")
        .env("AGENTOS_STUDIO_HISTORY", history)
        .env_remove("AGENTOS_TOKEN")
        .env_remove("AGENTOS_URL");
    command
}

/// The console once it shows its next prompt: what is typed before the line editor reads again
/// can be lost.
fn at_prompt(console: &mut Pty) -> &mut Pty {
    console.expect("agentos> ");
    console
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_answers_asks_before_changing_completes_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure(&dir.path().join("data"), &[]);
    let history = dir.path().join("history");
    let mut console = Pty::spawn(&mut studio_command(&server, &history));

    let greeting = console.expect("agentos> ");
    assert!(greeting.contains("commands you may run"), "{greeting}");
    console.send("mem get greeting\r");
    console.expect("\"found\": false");

    at_prompt(&mut console).send("mem set greeting hello\r");
    let preview = console.expect("Run it? [y/N] ");
    assert!(
        preview.contains("preview: `mem set` will call agentos.mem_set as owner"),
        "{preview}"
    );
    assert!(preview.contains("\"value\": \"hello\""), "{preview}");
    console.send("y\r");
    console.expect("\"created\": true");

    at_prompt(&mut console).send("mem delete greeting\r");
    console.expect("Run it? [y/N] ");
    console.send("n\r");
    console.expect("not run");
    at_prompt(&mut console).send("mem get greeting\r");
    console.expect("\"value\": \"hello\"");

    // Tab completes a tool name after `describe`.
    at_prompt(&mut console).send("describe agentos.mem_ge\t");
    console.expect("agentos.mem_get");
    console.send("\r");
    console.expect("Reads the value stored under a key");

    at_prompt(&mut console).send("help mem set\r");
    console.expect("mem set <key> <value> [ttlSeconds=<integer>]");
    at_prompt(&mut console).send("mem gte x\r");
    console.expect("did you mean `mem get`?");

    at_prompt(&mut console).send("exit\r");
    assert_eq!(console.wait(), Some(0));
    let remembered = std::fs::read_to_string(&history).unwrap();
    assert!(remembered.contains("mem set greeting hello"), "{remembered}");

    // The next run offers the history: Up brings back the last command.
    let mut again = Pty::spawn(&mut studio_command(&server, &history));
    again.expect("agentos> ");
    again.send("\x1b[A\r");
    again.expect("did you mean `mem get`?");
    at_prompt(&mut again).send("\x04");
    assert_eq!(again.wait(), Some(0));
}

#[tokio::test]
async fn one_command_for_scripts_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure(&dir.path().join("data"), &[]);
    let history = dir.path().join("history");
    let run = |args: &[&str]| {
        let output = studio_command(&server, &history).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, out, _) = run(&["-c", "mem set k 1"]);
    assert_eq!(code, Some(2), "a preview without a terminal is not run: {out}");
    let (code, out, _) = run(&["-c", "mem get k", "--json"]);
    assert_eq!(code, Some(0));
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["result"]["found"], false, "{answer}");

    let (code, out, _) = run(&["-c", "mem set k 1", "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"created\": true"), "{out}");
    let (code, out, _) = run(&["-c", "mem get k", "--snippets"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("# curl -sS") && out.contains("\"value\": 1"), "{out}");

    let (code, out, _) = run(&["-c", "mem gte k"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("error: unknown command `mem gte`: did you mean `mem get`?"),
        "{out}"
    );

    // A wrong token and an unreachable server say so.
    let output = Command::new(common::agentos_bin())
        .args(["studio", "--url", &server.url(""), "--token", "nope", "-c", "help"])
        .env_remove("AGENTOS_TOKEN")
        .output()
        .unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused the token"));
    let output = Command::new(common::agentos_bin())
        .args(["studio", "--url", "http://127.0.0.1:9", "--token", "x", "-c", "help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach agentos at http://127.0.0.1:9"));
}

#[tokio::test]
async fn the_everyday_shortcuts_list_call_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_secure(&data, &[]);
    let agentos = |args: &[&str]| {
        let output = Command::new(common::agentos_bin())
            .args(args)
            .current_dir(dir.path())
            .env_remove("AGENTOS_TOKEN")
            .env_remove("AGENTOS_URL")
            .env_remove("AGENTOS_CONFIG")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let url = server.url("");
    let data_dir = data.to_str().unwrap();

    // The owner's token comes from the data directory when none is given.
    let (code, out, err) = agentos(&["tools", "agentos.mem_*", "--url", &url, "--data-dir", data_dir]);
    assert_eq!(code, Some(0), "{err}");
    let names: Vec<&str> = out.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "agentos.mem_delete",
            "agentos.mem_get",
            "agentos.mem_list",
            "agentos.mem_search",
            "agentos.mem_set"
        ]
    );
    assert!(out.contains("Stores any JSON value under a key"), "{out}");
    let (_, out, _) = agentos(&[
        "tools",
        "agentos.mem_*",
        "--json",
        "--url",
        &url,
        "--token",
        server.token(),
    ]);
    let listed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed["tools"].as_array().unwrap().len(), 5);

    let call = |args: &[&str]| {
        let mut all = vec!["call", "--url", &url, "--token", server.token()];
        all.extend_from_slice(args);
        agentos(&all)
    };
    let (code, out, _) = call(&["agentos.mem_set", r#"{"key": "a", "value": 1}"#]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"created\": true"), "{out}");
    let (code, out, _) = call(&["agentos.mem_get", r#"{"key": "a"}"#, "--json"]);
    assert_eq!(code, Some(0));
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["result"]["value"], 1);
    let (code, out, _) = call(&["agentos.nothing_here"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("error: unknown tool `agentos.nothing_here`"), "{out}");
    let (code, _, err) = call(&["agentos.mem_get", "not json"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("must be a JSON object"), "{err}");

    // A token minted for an agent works as that agent; an unknown agent gets none.
    server.register_agent("reporter", &["agentos.time_now"]).await;
    let (code, minted, err) = agentos(&["token", "reporter", "--url", &url, "--token", server.token()]);
    assert_eq!(code, Some(0), "{err}");
    let minted = minted.trim();
    let (code, out, _) = agentos(&["tools", "--url", &url, "--token", minted]);
    assert_eq!(code, Some(0));
    assert_eq!(out.lines().count(), 1, "reporter may call one tool: {out}");
    assert!(out.starts_with("agentos.time_now"), "{out}");
    let (code, _, err) = agentos(&["token", "nobody", "--url", &url, "--token", server.token()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nobody"), "{err}");

    // The doctor: a server whose program is missing, and the port an agentos already holds.
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[[mcp_servers]]\nname = \"ghost\"\ncommand = \"no-such-program-for-agentos\"\n",
    )
    .unwrap();
    let listen = url.trim_start_matches("http://");
    let (code, out, _) = agentos(&[
        "doctor",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir,
        "--listen",
        listen,
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  MCP server `ghost`: its command `no-such-program-for-agentos` is not found"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "warn  listen address {listen}: an agentos is already serving there"
        )),
        "{out}"
    );
    assert!(out.contains("ok    data directory"), "{out}");
    let fresh = dir.path().join("fresh");
    let (code, out, _) = agentos(&[
        "doctor",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok    MCP servers: none enabled"), "{out}");
}
