//! Forgotten passwords through the file outbox: delivery, confirmation, single use, expiry.

use super::*;

fn file_outbox() -> Fixture {
    fixture_with(|config| config.identity.reset_outbox = crate::config::ResetOutbox::File)
}

/// Every message delivered so far.
fn outbox(fx: &Fixture) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(fx.dir.path().join("outbox.jsonl")) {
        Ok(text) => text.lines().map(|line| serde_json::from_str(line).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

fn confirm(token: &str, password: &str) -> ResetConfirm {
    ResetConfirm {
        email: "Ada@example.com".into(),
        token: token.into(),
        new_password: password.into(),
    }
}

fn signin(password: &str) -> SigninRequest {
    SigninRequest {
        email: "ada@example.com".into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn a_reset_sets_the_password_ends_sessions_and_revokes_old_tokens() {
    let fx = file_outbox();
    let signed_in = fx.signup("ada@example.com").await;
    fx.identity.forgot_password(" ADA@example.com ").await.unwrap();
    let messages = outbox(&fx);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["to"], "ada@example.com");
    assert!(message["subject"].as_str().unwrap().contains("password"));
    for field in ["expiresAt", "sentAt"] {
        assert!(chrono::DateTime::parse_from_rfc3339(message[field].as_str().unwrap()).is_ok());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fx.dir.path().join("outbox.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = message["token"].as_str().unwrap();

    let weak = fx.identity.confirm_reset(confirm(token, "short")).await.unwrap_err();
    assert_eq!(weak.code(), "weak_password");
    fx.identity
        .confirm_reset(confirm(token, "a brand new password"))
        .await
        .expect("a weak attempt does not use up the token");

    assert_eq!(
        fx.identity.signin(signin(PASSWORD)).await.unwrap_err().code(),
        "invalid_credentials"
    );
    fx.identity.signin(signin("a brand new password")).await.unwrap();
    assert_eq!(
        fx.identity
            .authenticate_bearer(&signed_in.credentials.bearer_token)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        fx.identity
            .authenticate_session(&signed_in.session.cookie_value)
            .await
            .unwrap_err(),
        AuthError::SessionExpired
    );

    let reused = fx
        .identity
        .confirm_reset(confirm(token, "yet another password"))
        .await
        .unwrap_err();
    assert_eq!((reused.status(), reused.code()), (400, "invalid_reset_token"));
}

#[tokio::test]
async fn bad_expired_and_used_tokens_get_the_same_answer() {
    let fx = file_outbox();
    fx.signup("ada@example.com").await;
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    let messages = outbox(&fx);
    let (first, second) = (
        messages[0]["token"].as_str().unwrap().to_owned(),
        messages[1]["token"].as_str().unwrap().to_owned(),
    );
    fx.sql("UPDATE password_resets SET expires_at = 1");
    let expired = fx
        .identity
        .confirm_reset(confirm(&first, "a brand new password"))
        .await
        .unwrap_err();
    let made_up = fx
        .identity
        .confirm_reset(confirm("made-up", "a brand new password"))
        .await
        .unwrap_err();
    let wrong_email = fx
        .identity
        .confirm_reset(ResetConfirm {
            email: "eve@example.com".into(),
            ..confirm(&second, "a brand new password")
        })
        .await
        .unwrap_err();
    for error in [&expired, &made_up, &wrong_email] {
        assert_eq!(error.code(), "invalid_reset_token");
        assert_eq!(error.to_string(), expired.to_string());
    }
    fx.identity
        .signin(signin(PASSWORD))
        .await
        .expect("the password is unchanged");
}

#[tokio::test]
async fn a_new_password_uses_up_the_accounts_other_reset_tokens() {
    let fx = file_outbox();
    fx.signup("ada@example.com").await;
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    let messages = outbox(&fx);
    let token = |i: usize| messages[i]["token"].as_str().unwrap().to_owned();
    fx.identity
        .confirm_reset(confirm(&token(1), "a brand new password"))
        .await
        .unwrap();
    let error = fx
        .identity
        .confirm_reset(confirm(&token(0), "another new password"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_reset_token");
}

#[tokio::test]
async fn unknown_emails_get_the_same_answer_and_no_message() {
    let fx = file_outbox();
    fx.identity.forgot_password("nobody@example.com").await.unwrap();
    assert!(outbox(&fx).is_empty());
    let error = fx.identity.forgot_password("not an email").await.unwrap_err();
    assert_eq!((error.status(), error.code()), (400, "invalid_email"));
}

#[tokio::test]
async fn the_log_outbox_writes_no_file() {
    let fx = fixture();
    fx.signup("ada@example.com").await;
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    assert!(outbox(&fx).is_empty());
}

#[tokio::test]
async fn a_configured_outbox_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail").join("resets.jsonl");
    let shown = path.display().to_string();
    let fx = fixture_with(move |config| {
        config.identity.reset_outbox = crate::config::ResetOutbox::File;
        config.identity.reset_outbox_file = shown;
    });
    fx.signup("ada@example.com").await;
    fx.identity.forgot_password("ada@example.com").await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
}
