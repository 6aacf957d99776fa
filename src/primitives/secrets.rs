//! Secrets: per-agent values encrypted at rest with AES-256-GCM (see `crate::sealing` for the
//! key). Each value is bound to its owner and name as associated data, so a sealed row copied
//! to another agent or name does not decrypt. The values are marked sensitive in the tools'
//! schemas, so records of these calls (run histories, approvals) show them redacted.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::{Empty, Hints, Tool, ToolBuilder, ToolFailure};
use crate::sealing::{SealError, Sealed};

fn associated_data(owner: &str, name: &str) -> Vec<u8> {
    format!("agentos-secret\0{owner}\0{name}").into_bytes()
}

/// What a model is told when sealing fails: what is wrong, never key material.
fn failure(error: SealError) -> ToolFailure {
    ToolFailure::new(match error {
        SealError::KeyUnavailable(message) => format!("secrets are unavailable: {message}"),
        SealError::NoRandomness(message) => format!("no randomness for a nonce: {message}"),
        SealError::Encrypt => "could not encrypt the secret".to_owned(),
        SealError::BadNonce => "the stored secret is damaged (bad nonce)".to_owned(),
        SealError::Decrypt => "the secret cannot be decrypted: it was sealed with another key or is damaged".to_owned(),
    })
}

fn check_name(name: &str) -> Result<(), ToolFailure> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ToolFailure::new(
            "`name` must be 1-128 characters from A-Z, a-z, 0-9, `_`, `-` and `.`, e.g. `GITHUB_TOKEN`",
        ))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetArgs {
    /// Secret name: 1-128 of A-Z, a-z, 0-9, `_`, `-`, `.`, e.g. `GITHUB_TOKEN`.
    #[schemars(length(min = 1, max = 128))]
    name: String,
    /// The secret value (text). It is encrypted before it is stored.
    #[schemars(extend("x-sensitive" = true))]
    value: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SetResult {
    name: String,
    /// True if the name was new; false if an older value was replaced.
    created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    /// The secret's name.
    #[schemars(length(min = 1, max = 128))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GetResult {
    name: String,
    /// Whether a secret of that name exists.
    found: bool,
    /// The decrypted value; absent when not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-sensitive" = true))]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    updated_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ListResult {
    /// Names only; values are never listed.
    secrets: Vec<Listed>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct DeleteResult {
    name: String,
    /// False if there was no such secret.
    deleted: bool,
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (set_services, get_services, list_services, delete_services) =
        (services.clone(), services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.secret_set")
            .title("Store a secret")
            .description(
                "Stores a secret value (an API key, a password) under a name, encrypted at rest \
                 and readable only by you. Replaces an existing secret of that name. Use it \
                 instead of agentos.mem_set for anything sensitive.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: SetArgs, ctx| {
                let services = set_services.clone();
                async move {
                    check_name(&args.name)?;
                    let limits = &services.config.secrets;
                    if args.value.len() > limits.max_value_bytes {
                        return Err(ToolFailure::new(format!(
                            "`value` is {} bytes; secrets are limited to {} bytes",
                            args.value.len(),
                            limits.max_value_bytes
                        )));
                    }
                    let owner = &ctx.caller.agent_id;
                    let is_new = services.store.secret_fetch(owner, &args.name).await?.is_none();
                    if is_new && services.store.secret_count(owner).await? >= limits.max_secrets_per_agent {
                        return Err(ToolFailure::new(format!(
                            "you already keep {} secrets, the limit; delete one with agentos.secret_delete first",
                            limits.max_secrets_per_agent
                        )));
                    }
                    let sealed = services
                        .sealer
                        .seal(&associated_data(owner, &args.name), args.value.as_bytes())
                        .map_err(failure)?;
                    let created = services
                        .store
                        .secret_put(owner, &args.name, sealed.nonce, sealed.ciphertext)
                        .await?;
                    Ok(SetResult {
                        name: args.name,
                        created,
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_get")
            .title("Read a secret")
            .description(
                "Returns the decrypted value of one of your secrets, or found=false if there is \
                 none of that name (agentos.secret_list shows the names).",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: NameArgs, ctx| {
                let services = get_services.clone();
                async move {
                    check_name(&args.name)?;
                    let owner = &ctx.caller.agent_id;
                    let Some(sealed) = services.store.secret_fetch(owner, &args.name).await? else {
                        return Ok(GetResult {
                            name: args.name,
                            found: false,
                            value: None,
                            updated_at_ms: None,
                        });
                    };
                    let plaintext = services
                        .sealer
                        .open(
                            &associated_data(owner, &args.name),
                            &Sealed {
                                nonce: sealed.nonce,
                                ciphertext: sealed.ciphertext,
                            },
                        )
                        .map_err(failure)?;
                    let value = String::from_utf8(plaintext)
                        .map_err(|_| ToolFailure::new("the stored secret is not valid text"))?;
                    Ok(GetResult {
                        name: args.name,
                        found: true,
                        value: Some(value),
                        updated_at_ms: Some(sealed.updated_at_ms),
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_list")
            .title("List secrets")
            .description("Lists the names of your secrets (never their values), in name order.")
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, ctx| {
                let services = list_services.clone();
                async move {
                    let names = services.store.secret_names(&ctx.caller.agent_id).await?;
                    Ok(ListResult {
                        secrets: names
                            .into_iter()
                            .map(|(name, updated_at_ms)| Listed { name, updated_at_ms })
                            .collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.secret_delete")
            .title("Delete a secret")
            .description("Deletes one of your secrets. Returns deleted=false if there was none of that name.")
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: NameArgs, ctx| {
                let services = delete_services.clone();
                async move {
                    check_name(&args.name)?;
                    let deleted = services.store.secret_remove(&ctx.caller.agent_id, &args.name).await?;
                    Ok(DeleteResult {
                        name: args.name,
                        deleted,
                    })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::Sealer;

    #[test]
    fn sealed_values_open_only_for_their_owner_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::new(dir.path().join("secrets.key"));
        let sealed = sealer.seal(&associated_data("a", "TOKEN"), b"hunter2").unwrap();
        assert_eq!(
            sealer.open(&associated_data("a", "TOKEN"), &sealed).unwrap(),
            b"hunter2"
        );
        assert!(
            sealer.open(&associated_data("b", "TOKEN"), &sealed).is_err(),
            "another owner"
        );
        assert!(
            sealer.open(&associated_data("a", "OTHER"), &sealed).is_err(),
            "another name"
        );
        let error = failure(sealer.open(&associated_data("b", "TOKEN"), &sealed).unwrap_err());
        assert!(error.message.contains("another key"), "{}", error.message);
    }
}
