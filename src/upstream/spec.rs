//! How an upstream MCP server is described: in `[[mcp_servers]]` of the config file, in one
//! file per server under `tools/servers/*.toml`, or as the input of `agentos.mcp_server_add`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::ToolPattern;

/// One upstream MCP server: a program spoken to over stdio (`command`) or a streamable HTTP
/// endpoint (`url`), exactly one of the two.
#[derive(Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Name used in tool names (`mcp.<name>.<tool>`): 1-64 of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// stdio: the program to run, e.g. `npx` or `/usr/local/bin/my-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// stdio: extra environment variables for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// stdio: working directory; defaults to agentos's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP: the endpoint, e.g. `https://example.com/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Streamable HTTP: extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Streamable HTTP: name of an environment variable holding a bearer token to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Connect it at start-up (config and tools/servers files only).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long one call to one of its tools may take, in seconds.
    #[serde(default = "default_timeout_secs")]
    #[schemars(range(min = 1))]
    pub timeout_secs: u64,
    /// How long it may stay down (restarting) before its tools leave the list, in seconds.
    #[serde(default = "default_grace_secs")]
    pub unavailable_grace_secs: u64,
    /// Upstream tool names to offer: exact names, `prefix*` or `*`. Empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Upstream tool names to hide, same patterns; applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Standby endpoints (crew): when the active endpoint fails, the next one in turn is used.
    /// Each is a stdio `command` (with `args`, `env`, `cwd`) or a `url` (with `headers`,
    /// `bearer_token_env`), like the main one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby: Vec<Endpoint>,
    /// How often the active connection is pinged, in seconds (0: never); a dead one fails over.
    #[serde(default = "default_health_interval_secs")]
    pub health_interval_secs: u64,
    /// Also publish the server's tools, prompts and resources under their own names (`echo`,
    /// not only `mcp.<server>.echo`) where no other tool or prompt has that name, for a server put
    /// behind agentos for its policy and audit alone. Policies still name them `mcp.<server>.*`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transparent: bool,
}

/// One way to reach a server: a stdio program or a streamable HTTP endpoint.
#[derive(Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// stdio: the program to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// stdio: extra environment variables for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// stdio: working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP: the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Streamable HTTP: extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Streamable HTTP: name of an environment variable holding a bearer token to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
}

impl Endpoint {
    /// `command args` or the URL: never environment, header values or tokens.
    pub fn describe(&self) -> String {
        match (&self.command, &self.url) {
            (Some(command), _) => std::iter::once(command.as_str())
                .chain(self.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            (None, Some(url)) => url.clone(),
            (None, None) => String::new(),
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |map: &BTreeMap<String, String>| map.keys().map(|k| format!("{k}=***")).collect::<Vec<_>>();
        f.debug_struct("Endpoint")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &redacted(&self.env))
            .field("cwd", &self.cwd)
            .field("url", &self.url)
            .field("headers", &redacted(&self.headers))
            .field("bearer_token_env", &self.bearer_token_env)
            .finish()
    }
}

fn default_health_interval_secs() -> u64 {
    30
}

fn yes() -> bool {
    true
}

fn default_timeout_secs() -> u64 {
    60
}

fn default_grace_secs() -> u64 {
    10
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment and header values often carry secrets: show only their names.
        let redacted = |map: &BTreeMap<String, String>| map.keys().map(|k| format!("{k}=***")).collect::<Vec<_>>();
        f.debug_struct("ServerSpec")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &redacted(&self.env))
            .field("cwd", &self.cwd)
            .field("url", &self.url)
            .field("headers", &redacted(&self.headers))
            .field("bearer_token_env", &self.bearer_token_env)
            .field("enabled", &self.enabled)
            .field("timeout_secs", &self.timeout_secs)
            .field("unavailable_grace_secs", &self.unavailable_grace_secs)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("standby", &self.standby)
            .field("health_interval_secs", &self.health_interval_secs)
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("MCP server `{name}`: {message}")]
pub struct SpecError {
    pub name: String,
    pub message: String,
}

/// Which tools of a server are offered.
#[derive(Debug, Clone)]
pub struct ToolFilter {
    include: Vec<ToolPattern>,
    exclude: Vec<ToolPattern>,
}

impl ToolFilter {
    pub fn allows(&self, upstream_tool: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(upstream_tool)))
            && !self.exclude.iter().any(|p| p.matches(upstream_tool))
    }
}

impl ServerSpec {
    /// A stdio server with defaults for everything else.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            name: name.into(),
            command: Some(command.into()),
            args,
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            bearer_token_env: None,
            enabled: true,
            timeout_secs: default_timeout_secs(),
            unavailable_grace_secs: default_grace_secs(),
            include: Vec::new(),
            exclude: Vec::new(),
            standby: Vec::new(),
            health_interval_secs: default_health_interval_secs(),
            transparent: false,
        }
    }

    /// The main endpoint.
    pub fn primary(&self) -> Endpoint {
        Endpoint {
            command: self.command.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            bearer_token_env: self.bearer_token_env.clone(),
        }
    }

    /// The main endpoint, then the standby ones.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        std::iter::once(self.primary())
            .chain(self.standby.iter().cloned())
            .collect()
    }

    /// This spec reached through endpoint `index` of `endpoints()` (the primary if out of range).
    pub fn at_endpoint(&self, index: usize) -> ServerSpec {
        let mut spec = self.clone();
        if let Some(endpoint) = index.checked_sub(1).and_then(|i| self.standby.get(i)).cloned() {
            spec.command = endpoint.command;
            spec.args = endpoint.args;
            spec.env = endpoint.env;
            spec.cwd = endpoint.cwd;
            spec.url = endpoint.url;
            spec.headers = endpoint.headers;
            spec.bearer_token_env = endpoint.bearer_token_env;
        }
        spec.standby.clear();
        spec
    }

    fn error(&self, message: impl Into<String>) -> SpecError {
        SpecError {
            name: self.name.clone(),
            message: message.into(),
        }
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        if !super::valid_server_name(&self.name) {
            return Err(
                self.error("the name is invalid: use 1-64 of a-z, 0-9, `_` and `-`, starting with a letter or digit")
            );
        }
        self.validate_endpoint()?;
        if self.timeout_secs == 0 || self.timeout_secs > 86_400 {
            return Err(self.error("`timeout_secs` must be between 1 and 86400"));
        }
        self.filter()?;
        if self.standby.len() > 16 {
            return Err(self.error("at most 16 `standby` endpoints"));
        }
        for index in 1..=self.standby.len() {
            self.at_endpoint(index)
                .validate_endpoint()
                .map_err(|e| self.error(format!("standby endpoint {index}: {}", e.message)))?;
        }
        Ok(())
    }

    /// Checks the transport fields: exactly one of `command` and `url`, each with its own options.
    fn validate_endpoint(&self) -> Result<(), SpecError> {
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => return Err(self.error("give either `command` (stdio) or `url` (HTTP), not both")),
            (None, None) => return Err(self.error("give `command` (stdio) or `url` (streamable HTTP)")),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(self.error("`command` is empty"));
                }
                if !self.headers.is_empty() || self.bearer_token_env.is_some() {
                    return Err(self.error("`headers` and `bearer_token_env` apply only to `url` servers"));
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(self.error(format!("`url` must start with http:// or https://, got `{url}`")));
                }
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err(self.error("`args`, `env` and `cwd` apply only to `command` servers"));
                }
                self.http_headers()?;
            }
        }
        Ok(())
    }

    pub fn filter(&self) -> Result<ToolFilter, SpecError> {
        let parse = |patterns: &[String], field: &str| {
            patterns
                .iter()
                .map(|p| ToolPattern::parse(p).map_err(|e| self.error(format!("`{field}`: {e}"))))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(ToolFilter {
            include: parse(&self.include, "include")?,
            exclude: parse(&self.exclude, "exclude")?,
        })
    }

    pub fn http_headers(&self) -> Result<HashMap<http::HeaderName, http::HeaderValue>, SpecError> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let header = http::HeaderName::try_from(name.as_str())
                    .map_err(|_| self.error(format!("`{name}` is not a valid header name")))?;
                let value = http::HeaderValue::try_from(value.as_str())
                    .map_err(|_| self.error(format!("the value of header `{name}` is not valid")))?;
                Ok((header, value))
            })
            .collect()
    }

    /// The bearer token, read from the named environment variable.
    pub fn bearer_token(&self) -> Result<Option<String>, SpecError> {
        match &self.bearer_token_env {
            None => Ok(None),
            Some(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| self.error(format!("environment variable `{var}` (bearer_token_env) is not set"))),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.unavailable_grace_secs)
    }
}

/// Validates each spec and checks that names are unique.
pub fn validate_all(specs: &[ServerSpec]) -> Result<(), SpecError> {
    let mut seen = HashSet::new();
    for spec in specs {
        spec.validate()?;
        if !seen.insert(spec.name.as_str()) {
            return Err(spec.error("another server has the same name"));
        }
    }
    Ok(())
}

/// The presets directory: `tools/servers` beside the config file when agentos was given one,
/// else in the current directory; `None` when that directory does not exist. With a config file
/// the current directory is never consulted, so starting agentos from a checkout (whose own
/// `tools/servers` ships presets) with `--config elsewhere.toml` picks up nothing by surprise.
pub fn servers_dir(config_file: Option<&Path>) -> Option<PathBuf> {
    let dir = match config_file {
        Some(config) => config.parent().unwrap_or(Path::new(".")).join("tools").join("servers"),
        None => PathBuf::from("tools").join("servers"),
    };
    dir.is_dir().then_some(dir)
}

/// Reads every `*.toml` in `dir`, each one server, in file-name order.
pub fn load_dir(dir: &Path) -> Result<Vec<ServerSpec>, SpecError> {
    let unreadable = |message: String| SpecError {
        name: dir.display().to_string(),
        message,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(format!("cannot read the directory: {e}")))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
            let spec: ServerSpec = toml::from_str(&text).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
            spec.validate()?;
            Ok(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerSpec, String> {
        let spec: ServerSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn presets_are_read_beside_the_config_file_only() {
        let root = tempfile::tempdir().unwrap();
        let with_presets = root.path().join("with");
        std::fs::create_dir_all(with_presets.join("tools").join("servers")).unwrap();
        let without = root.path().join("without");
        std::fs::create_dir_all(&without).unwrap();
        assert_eq!(
            servers_dir(Some(&with_presets.join("agentos.toml"))),
            Some(with_presets.join("tools").join("servers"))
        );
        // The crate's own checkout has tools/servers in the current directory of `cargo test`;
        // a config file elsewhere must not pick it up.
        assert!(Path::new("tools/servers").is_dir());
        assert_eq!(servers_dir(Some(&without.join("agentos.toml"))), None);
        assert_eq!(servers_dir(None), Some(PathBuf::from("tools").join("servers")));
    }

    #[test]
    fn stdio_and_http_specs_parse_with_defaults() {
        let stdio = parse("name = \"fs\"\ncommand = \"npx\"\nargs = [\"-y\", \"x\"]").unwrap();
        assert!(stdio.enabled);
        assert_eq!(stdio.timeout_secs, 60);
        assert_eq!(stdio.unavailable_grace_secs, 10);
        let http = parse("name = \"web\"\nurl = \"http://127.0.0.1:1/mcp\"\nbearer_token_env = \"T\"").unwrap();
        assert_eq!(http.url.as_deref(), Some("http://127.0.0.1:1/mcp"));
    }

    #[test]
    fn exactly_one_transport_and_no_unknown_keys() {
        assert!(parse("name = \"a\"").unwrap_err().contains("`command`"));
        assert!(
            parse("name = \"a\"\ncommand = \"x\"\nurl = \"http://h\"")
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            parse("name = \"a\"\ncommand = \"x\"\ncomand = \"y\"")
                .unwrap_err()
                .contains("comand")
        );
        assert!(parse("name = \"A b\"\ncommand = \"x\"").unwrap_err().contains("name"));
        assert!(
            parse("name = \"a\"\nurl = \"ftp://h\"")
                .unwrap_err()
                .contains("http://")
        );
    }

    #[test]
    fn names_must_be_unique() {
        let a = ServerSpec::stdio("a", "x", vec![]);
        let error = validate_all(&[a.clone(), a]).unwrap_err();
        assert!(error.to_string().contains("same name"), "{error}");
    }

    #[test]
    fn include_and_exclude_filter_tool_names() {
        let mut spec = ServerSpec::stdio("a", "x", vec![]);
        spec.include = vec!["get_*".into(), "echo".into()];
        spec.exclude = vec!["get_secret".into()];
        let filter = spec.filter().unwrap();
        assert!(filter.allows("echo"));
        assert!(filter.allows("get_time"));
        assert!(!filter.allows("get_secret"));
        assert!(!filter.allows("put"));
        spec.include.clear();
        assert!(spec.filter().unwrap().allows("put"));
    }

    #[test]
    fn standby_endpoints_parse_and_are_validated() {
        let spec = parse(
            "name = \"a\"\ncommand = \"x\"\nargs = [\"1\"]\n\
             standby = [{ command = \"y\", args = [\"2\"], env = { K = \"v\" } }, { url = \"http://h/mcp\", headers = { X-Key = \"k\" } }]",
        )
        .unwrap();
        assert_eq!(spec.health_interval_secs, 30);
        let endpoints: Vec<String> = spec.endpoints().iter().map(Endpoint::describe).collect();
        assert_eq!(endpoints, ["x 1", "y 2", "http://h/mcp"]);
        let second = spec.at_endpoint(2);
        assert_eq!(second.url.as_deref(), Some("http://h/mcp"));
        assert!(second.command.is_none() && second.args.is_empty() && second.env.is_empty());
        assert_eq!(second.headers.get("X-Key").map(String::as_str), Some("k"));
        assert_eq!(spec.at_endpoint(9).command.as_deref(), Some("x"));
        assert!(
            parse("name = \"a\"\ncommand = \"x\"\nstandby = [{ url = \"ftp://h\" }]")
                .unwrap_err()
                .contains("standby endpoint 1")
        );
        assert!(parse("name = \"a\"\ncommand = \"x\"\nstandby = [{ name = \"b\" }]").is_err());
        assert!(!format!("{spec:?}").contains("\"v\""));
    }

    #[test]
    fn debug_hides_secret_values() {
        let mut spec = ServerSpec::stdio("a", "x", vec![]);
        spec.env.insert("TOKEN".into(), "s3cret".into());
        spec.headers.insert("X-Key".into(), "hunter2".into());
        let shown = format!("{spec:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("TOKEN"));
    }
}
