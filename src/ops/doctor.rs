//! `agentos doctor`: what agentos needs from this machine, checked before it runs: the data
//! directory (there, private, writable), the owner's token file, the programs of enabled MCP
//! servers, and the address it would listen on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::upstream::{ServerSpec, spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One finding: what was checked, how it stands, and what to do about it.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub subject: String,
    pub detail: String,
}

fn check(status: Status, subject: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        status,
        subject: subject.into(),
        detail: detail.into(),
    }
}

/// Every check, for `config` as loaded from `config_file` (whose directory may hold
/// `tools/servers/*.toml`).
pub fn run(config: &Config, config_file: Option<&Path>) -> Vec<Check> {
    let mut checks = data_dir(&config.data_dir);
    checks.extend(servers(config, config_file));
    checks.push(listen(config.listen));
    checks
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
}

fn data_dir(dir: &Path) -> Vec<Check> {
    let shown = dir.display().to_string();
    let subject = format!("data directory {shown}");
    if !dir.exists() {
        return vec![check(
            Status::Ok,
            subject,
            "not there yet: created (mode 700) at the first start",
        )];
    }
    if !dir.is_dir() {
        return vec![check(Status::Fail, subject, "is not a directory")];
    }
    let mut checks = Vec::new();
    match mode_of(dir) {
        Some(mode) if mode & 0o077 != 0 => checks.push(check(
            Status::Warn,
            subject.clone(),
            format!("others may read it (mode {mode:o}): chmod 700 {shown}"),
        )),
        _ => checks.push(check(Status::Ok, subject.clone(), "private to its owner")),
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(error) => checks.push(check(Status::Fail, subject, format!("cannot write in it: {error}"))),
    }
    let token = dir.join("owner-token");
    match mode_of(&token) {
        None => checks.push(check(
            Status::Ok,
            "owner token",
            "not there yet: written at the first start",
        )),
        Some(mode) if mode & 0o077 != 0 => checks.push(check(
            Status::Fail,
            "owner token",
            format!(
                "{} may be read by others (mode {mode:o}): chmod 600 it",
                token.display()
            ),
        )),
        Some(_) => checks.push(check(
            Status::Ok,
            "owner token",
            format!("{} (mode 600)", token.display()),
        )),
    }
    checks
}

/// Where `program` is: itself if it names a path, else the first match on `PATH`.
fn find_program(program: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    let executable = |path: &Path| mode_of(path).is_some_and(|mode| mode & 0o111 != 0) && path.is_file();
    if program.contains('/') {
        let path = match cwd {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

fn servers(config: &Config, config_file: Option<&Path>) -> Vec<Check> {
    let mut specs: Vec<ServerSpec> = config.mcp_servers.clone();
    if let Some(dir) = spec::servers_dir(config_file) {
        match spec::load_dir(&dir) {
            Ok(found) => specs.extend(found),
            Err(error) => {
                return vec![check(
                    Status::Fail,
                    format!("servers in {}", dir.display()),
                    error.to_string(),
                )];
            }
        }
    }
    let enabled: Vec<&ServerSpec> = specs.iter().filter(|s| s.enabled).collect();
    if enabled.is_empty() {
        return vec![check(Status::Ok, "MCP servers", "none enabled")];
    }
    enabled
        .into_iter()
        .map(|server| {
            let subject = format!("MCP server `{}`", server.name);
            match (&server.command, &server.url) {
                (Some(command), _) => match find_program(command, server.cwd.as_deref()) {
                    Some(path) => check(Status::Ok, subject, format!("runs {}", path.display())),
                    None => check(
                        Status::Fail,
                        subject,
                        format!("its command `{command}` is not found (not on PATH, or not executable)"),
                    ),
                },
                (None, Some(url)) => check(Status::Ok, subject, format!("remote, at {url}")),
                (None, None) => check(Status::Fail, subject, "has neither a command nor a url"),
            }
        })
        .collect()
}

/// Whether an agentos answers `GET /health` at `addr`.
fn agentos_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains("\"status\":\"ok\"") && answer.contains("\"tools\"")
}

fn listen(addr: SocketAddr) -> Check {
    let subject = format!("listen address {addr}");
    match TcpListener::bind(addr) {
        Ok(_) => check(Status::Ok, subject, "free"),
        Err(_) if agentos_answers(addr) => check(Status::Warn, subject, "an agentos is already serving there"),
        Err(error) => check(
            Status::Fail,
            subject,
            format!("cannot listen there ({error}): another program holds it; --listen picks another"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_or_by_path() {
        assert!(find_program("sh", None).is_some());
        assert!(find_program("/bin/sh", None).is_some());
        assert!(find_program("no-such-program-agentos", None).is_none());
        assert!(find_program("./no-such", Some(Path::new("/"))).is_none());
    }

    #[test]
    fn a_private_data_directory_passes_and_an_open_one_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(data_dir(dir.path()).iter().all(|c| c.status == Status::Ok));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let token = dir.path().join("owner-token");
        std::fs::write(&token, "t").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let checks = data_dir(dir.path());
        assert!(
            checks
                .iter()
                .any(|c| c.status == Status::Warn && c.detail.contains("chmod 700"))
        );
        assert!(
            checks
                .iter()
                .any(|c| c.status == Status::Fail && c.detail.contains("chmod 600"))
        );
    }
}
