//! Input rules for emails, passwords, agent ids, names and domain allowlists, each refusal
//! saying what to fix.

use super::error::IdentityError;

const MAX_EMAIL: usize = 254;
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;
const MAX_AGENT_ID: usize = 64;
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_DOMAINS: usize = 100;

/// Trims and lowercases an email and checks its shape; `field` names it in the refusal.
pub(crate) fn email(raw: &str, field: &'static str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    if is_email(&email) {
        Ok(email)
    } else {
        Err(IdentityError::InvalidEmail { field })
    }
}

/// The shape only (one `@`, a non-empty local part, a dotted domain, no whitespace): whether the
/// mailbox exists is the mail system's business.
fn is_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL || email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

pub(crate) fn password(password: &str) -> Result<(), IdentityError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(IdentityError::WeakPassword)
    }
}

/// `^[a-z0-9-]+$`, 1 to 64 characters; the ids in `Caller::RESERVED_IDS` and `agent_…` belong
/// to the server itself.
pub(crate) fn agent_id(id: &str) -> Result<(), IdentityError> {
    if crate::registry::Caller::is_reserved_id(id) {
        return Err(IdentityError::ReservedAgentId(id.to_owned()));
    }
    let ok = (1..=MAX_AGENT_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidRequest(
            "`agentId` must be 1 to 64 characters from a-z, 0-9 and `-`, e.g. `research-bot`".into(),
        ))
    }
}

/// Trims a display name and checks it is 1 to 200 characters.
pub(crate) fn name(raw: &str, field: &str) -> Result<String, IdentityError> {
    let name = raw.trim();
    if (1..=MAX_NAME).contains(&name.chars().count()) {
        Ok(name.to_owned())
    } else {
        Err(IdentityError::InvalidRequest(format!(
            "`{field}` must be 1 to {MAX_NAME} characters"
        )))
    }
}

pub(crate) fn description(raw: Option<String>) -> Result<Option<String>, IdentityError> {
    match raw.map(|text| text.trim().to_owned()) {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(IdentityError::InvalidRequest(format!(
            "`description` must be at most {MAX_DESCRIPTION} characters"
        ))),
        Some(text) if text.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Lowercases, checks and de-duplicates an allowlist of plain host names (no scheme, port,
/// path or wildcard): the network primitives compare hosts exactly.
pub(crate) fn domains(raw: Vec<String>) -> Result<Vec<String>, IdentityError> {
    if raw.len() > MAX_DOMAINS {
        return Err(IdentityError::InvalidRequest(format!(
            "`allowedDomains` may list at most {MAX_DOMAINS} hosts"
        )));
    }
    let mut hosts: Vec<String> = Vec::with_capacity(raw.len());
    for entry in raw {
        let host = entry.trim().to_lowercase();
        if !is_host(&host) {
            return Err(IdentityError::InvalidRequest(format!(
                "`allowedDomains` entry `{}` is not a plain host name; write it like `api.example.com` \
                 (no scheme, port, path or `*`)",
                entry.trim()
            )));
        }
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

fn is_host(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_malformed_ones_refused() {
        assert_eq!(email("  Ada@Example.COM ", "email").unwrap(), "ada@example.com");
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a@b@c.com",
            "ada @example.com",
            "ada@example..com",
            "ada@.com",
            &long,
        ] {
            let error = email(bad, "email").unwrap_err();
            assert_eq!(error.code(), "invalid_email", "{bad:?}");
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn passwords_must_be_8_to_256_characters() {
        assert!(password("12345678").is_ok());
        assert!(password(&"x".repeat(256)).is_ok());
        for bad in ["", "1234567", &"x".repeat(257)] {
            let error = password(bad).unwrap_err();
            assert_eq!(error.code(), "weak_password");
            assert!(error.to_string().contains("8 to 256"));
        }
    }

    #[test]
    fn agent_ids_follow_the_pattern_and_reserved_ones_are_refused() {
        assert!(agent_id("research-bot-2").is_ok());
        assert!(agent_id(&"a".repeat(64)).is_ok());
        for bad in ["", "Bot", "bot_1", "bot.1", "bot 1", &"a".repeat(65)] {
            assert_eq!(agent_id(bad).unwrap_err().code(), "invalid_request", "{bad:?}");
        }
        assert_eq!(agent_id("owner").unwrap_err().code(), "reserved_agent_id");
        assert_eq!(agent_id("agent_0123").unwrap_err().code(), "reserved_agent_id");
        for reserved in ["anonymous", "system", "admin", "root", "agentos", "scheduler"] {
            assert_eq!(
                agent_id(reserved).unwrap_err().code(),
                "reserved_agent_id",
                "{reserved}"
            );
        }
    }

    #[test]
    fn names_and_descriptions_have_limits() {
        assert_eq!(name("  Bot ", "name").unwrap(), "Bot");
        assert!(name("  ", "name").is_err());
        assert!(name(&"n".repeat(201), "name").is_err());
        assert_eq!(description(Some(" ".into())).unwrap(), None);
        assert!(description(Some("d".repeat(2001))).is_err());
    }

    #[test]
    fn domains_are_plain_hosts() {
        let hosts = domains(vec![
            "HttpBin.org".into(),
            "api.example.com".into(),
            "httpbin.org".into(),
        ])
        .unwrap();
        assert_eq!(hosts, vec!["httpbin.org", "api.example.com"]);
        for bad in [
            "https://example.com",
            "example.com:443",
            "example.com/x",
            "*.example.com",
            "",
            "-a.com",
            "a..com",
        ] {
            let error = domains(vec![bad.into()]).unwrap_err();
            assert!(error.to_string().contains("plain host name"), "{bad:?}: {error}");
        }
        assert!(domains(vec!["a.com".into(); 101]).is_err());
    }
}
