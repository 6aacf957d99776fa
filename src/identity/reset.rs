//! Forgotten passwords: a single-use reset token delivered through the outbox (the server log or
//! a JSON-lines file a mailer can pick up), and the confirmation that sets a new password.

use std::path::PathBuf;

use chrono::{Duration, Utc};

use super::error::IdentityError;
use super::types::{ResetConfirm, rfc3339};
use super::{Identity, crypto, validate};
use crate::config::ResetOutbox;
use crate::store::{PasswordReset, now_ms};

const SUBJECT: &str = "Reset your agentos password";

impl Identity {
    /// Always Ok for a well-formed email, whether or not an account exists (no account enumeration).
    pub async fn forgot_password(&self, email: &str) -> Result<(), IdentityError> {
        let email = validate::email(email, "email")?;
        let account = self.store.identity_account_by_email(&email).await?;
        // The same work either way (a token, its hash, one store write) so the answer's timing
        // does not tell whether the account exists; only a known account gets a message.
        let token = crypto::random_token()?;
        let token_hash = crypto::sha256_hex(&token);
        let now = now_ms();
        let expires_at_ms = now + Duration::minutes(i64::from(self.config.reset_token_ttl_minutes)).num_milliseconds();
        let Some(account) = account else {
            self.store.identity_prune(now).await?;
            return Ok(());
        };
        self.store
            .identity_create_reset(&token_hash, &account.id, expires_at_ms)
            .await?;
        let message = serde_json::json!({
            "to": account.email,
            "subject": SUBJECT,
            "token": token,
            "expiresAt": rfc3339(expires_at_ms),
            "sentAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        self.deliver(&account.email, message).await
    }

    /// Sets a new password with a reset token; every session of the account ends and every token
    /// its agent held until now stops working.
    pub async fn confirm_reset(&self, request: ResetConfirm) -> Result<(), IdentityError> {
        // The password rule first: a weak password must not use up the token.
        validate::password(&request.new_password)?;
        let email = request.email.trim().to_lowercase();
        let token = request.token.trim().to_owned();
        // Hashed before the lookup so an unknown email takes as long as a known one.
        let password_hash = crypto::hash_password(request.new_password).await?;
        let account = self.store.identity_account_by_email(&email).await?;
        let (Some(account), false) = (account, token.is_empty()) else {
            return Err(IdentityError::InvalidResetToken);
        };
        let reset = PasswordReset {
            token_hash: crypto::sha256_hex(&token),
            account_id: account.id.clone(),
            password_hash,
            now_ms: now_ms(),
        };
        if !self.store.identity_reset_password(reset).await? {
            return Err(IdentityError::InvalidResetToken);
        }
        self.cache.clear();
        tracing::info!(agent = %account.agent_id, "password reset; sessions ended and old tokens revoked");
        Ok(())
    }

    async fn deliver(&self, to: &str, message: serde_json::Value) -> Result<(), IdentityError> {
        match self.config.reset_outbox {
            ResetOutbox::Log => {
                tracing::warn!(
                    to,
                    token = %message["token"].as_str().unwrap_or_default(),
                    expires_at = %message["expiresAt"].as_str().unwrap_or_default(),
                    "password reset requested (reset_outbox = \"log\"): pass this token to the account holder"
                );
                Ok(())
            }
            ResetOutbox::File => {
                let path = self.outbox_path();
                let line = message.to_string();
                let shown = path.display().to_string();
                tokio::task::spawn_blocking(move || crypto::append_private(&path, &line))
                    .await
                    .map_err(|e| IdentityError::internal(format!("outbox task failed: {e}")))?
                    .map_err(|e| IdentityError::internal(format!("cannot append to the outbox {shown}: {e}")))
            }
        }
    }

    fn outbox_path(&self) -> PathBuf {
        if self.config.reset_outbox_file.is_empty() {
            self.data_dir.join("outbox.jsonl")
        } else {
            PathBuf::from(&self.config.reset_outbox_file)
        }
    }
}
