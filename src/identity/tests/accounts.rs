//! Sign-up, sign-in, sessions and sign-out.

use super::*;

#[tokio::test]
async fn signup_creates_an_operator_with_a_session_and_a_working_token() {
    let fx = fixture();
    let signed_in = fx.signup("  Ada@Example.com ").await;
    let agent_id = &signed_in.credentials.agent_id;
    assert!(agent_id.starts_with("agent_") && agent_id.len() == 22, "{agent_id}");
    assert_eq!(signed_in.agent_name, "ada");
    assert_eq!(signed_in.credentials.to_json()["expiresIn"], "90 days");

    let agent = fx.identity.agent(agent_id).await.unwrap().unwrap();
    assert_eq!(agent.role, Role::Operator);
    assert_eq!(agent.status, "active");
    assert_eq!(agent.allowed_tools, vec!["agentos.*", "skill.*"]);
    assert_eq!(agent.owner_email.as_deref(), Some("ada@example.com"));
    assert!(agent.account_id.is_some());
    assert!(chrono::DateTime::parse_from_rfc3339(&agent.created_at).is_ok());

    let auth = fx
        .identity
        .authenticate_bearer(&signed_in.credentials.bearer_token)
        .await
        .unwrap();
    assert_eq!(&*auth.caller.agent_id, agent_id.as_str());
    assert_eq!(auth.caller.role, Role::Operator);
    assert_eq!(auth.caller.account_id.as_deref(), agent.account_id.as_deref());
    assert!(auth.caller.tools.allows("agentos.mem_set"));
    assert!(!auth.caller.tools.allows("mcp.github.create_issue"));
    assert_eq!(auth.agent_name, "ada");

    let session = fx
        .identity
        .authenticate_session(&signed_in.session.cookie_value)
        .await
        .unwrap();
    assert_eq!(&*session.caller.agent_id, agent_id.as_str());
    let AuthMethod::Session {
        session_id, csrf_token, ..
    } = &session.via
    else {
        panic!("a session");
    };
    assert_ne!(session_id, &signed_in.session.cookie_value, "only the hash is kept");
    assert_eq!(csrf_token, &signed_in.session.csrf_token);
}

#[tokio::test]
async fn admin_emails_make_ops_admins_and_agent_names_are_kept() {
    let fx = fixture_with(|config| config.identity.admin_emails = vec!["Root@Example.com".into()]);
    let signed_in = fx
        .identity
        .signup(SignupRequest {
            email: "root@example.COM".into(),
            password: PASSWORD.into(),
            agent_name: Some("  Control Room ".into()),
        })
        .await
        .unwrap();
    assert_eq!(signed_in.agent_name, "Control Room");
    let agent = fx
        .identity
        .agent(&signed_in.credentials.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(agent.role, Role::OpsAdmin);
    let blank = fx
        .identity
        .signup(SignupRequest {
            email: "grace@example.com".into(),
            password: PASSWORD.into(),
            agent_name: Some(" ".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        blank.agent_name, "grace",
        "a blank name falls back to the email's local part"
    );
}

#[tokio::test]
async fn the_account_role_follows_admin_emails_at_sign_in() {
    let fx = fixture();
    let (signed_in, caller) = fx.operator("ada@example.com").await;
    assert_eq!(caller.role, Role::Operator);
    let mut config = fx.config.clone();
    config.identity.admin_emails = vec!["ada@example.com".into()];
    let store = Arc::new(SqliteStore::open(fx.dir.path(), Synchronous::Normal).unwrap());
    let restarted = Identity::open(store, &config).unwrap();
    let again = restarted
        .signin(SigninRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    for token in [&again.credentials.bearer_token, &signed_in.credentials.bearer_token] {
        let auth = restarted.authenticate_bearer(token).await.unwrap();
        assert_eq!(auth.caller.role, Role::OpsAdmin);
    }
}

#[tokio::test]
async fn signup_refusals_say_what_is_wrong() {
    let fx = fixture();
    fx.signup("ada@example.com").await;
    let request = |email: &str, password: &str| SignupRequest {
        email: email.into(),
        password: password.into(),
        agent_name: None,
    };
    let taken = fx
        .identity
        .signup(request(" ADA@example.com", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!((taken.status(), taken.code()), (409, "email_taken"));

    let weak = fx
        .identity
        .signup(request("bob@example.com", "short"))
        .await
        .unwrap_err();
    assert_eq!((weak.status(), weak.code()), (400, "weak_password"));
    assert!(weak.to_string().contains("8 to 256"), "{weak}");

    for email in [
        "bob",
        "bob@example",
        "bob@@example.com",
        "b ob@example.com",
        "@example.com",
    ] {
        let error = fx.identity.signup(request(email, PASSWORD)).await.unwrap_err();
        assert_eq!((error.status(), error.code()), (400, "invalid_email"), "{email}");
    }
    let long_name = fx
        .identity
        .signup(SignupRequest {
            agent_name: Some("n".repeat(201)),
            ..request("bob@example.com", PASSWORD)
        })
        .await
        .unwrap_err();
    assert_eq!(long_name.status(), 400);
}

#[tokio::test]
async fn closed_signup_is_refused() {
    let fx = fixture_with(|config| config.identity.open_signup = false);
    let error = fx
        .identity
        .signup(SignupRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
            agent_name: None,
        })
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (403, "signup_closed"));
}

#[tokio::test]
async fn signin_needs_the_right_password_and_refuses_unknown_emails_alike() {
    let fx = fixture();
    let first = fx.signup("ada@example.com").await;
    let signin = |email: &str, password: &str| SigninRequest {
        email: email.into(),
        password: password.into(),
    };
    let wrong = fx
        .identity
        .signin(signin("ada@example.com", "not the password"))
        .await
        .unwrap_err();
    let unknown = fx
        .identity
        .signin(signin("eve@example.com", PASSWORD))
        .await
        .unwrap_err();
    for error in [&wrong, &unknown] {
        assert_eq!((error.status(), error.code()), (401, "invalid_credentials"));
    }
    assert_eq!(wrong.to_string(), unknown.to_string());

    let signed_in = fx.identity.signin(signin(" ADA@example.com ", PASSWORD)).await.unwrap();
    assert_eq!(signed_in.credentials.agent_id, first.credentials.agent_id);
    assert_eq!(signed_in.agent_name, "ada");
    assert_ne!(signed_in.credentials.jti, first.credentials.jti, "a fresh token");
    assert_ne!(
        signed_in.session.cookie_value, first.session.cookie_value,
        "a fresh session"
    );
    for token in [&signed_in.credentials.bearer_token, &first.credentials.bearer_token] {
        fx.identity.authenticate_bearer(token).await.unwrap();
    }
    fx.identity
        .authenticate_session(&signed_in.session.cookie_value)
        .await
        .unwrap();
}

#[tokio::test]
async fn signing_out_of_a_session_ends_only_that_session() {
    let fx = fixture();
    let signed_in = fx.signup("ada@example.com").await;
    let cookie = &signed_in.session.cookie_value;
    let auth = fx.identity.authenticate_session(cookie).await.unwrap();
    fx.identity.sign_out(&auth).await.unwrap();
    assert_eq!(
        fx.identity.authenticate_session(cookie).await.unwrap_err(),
        AuthError::SessionExpired
    );
    fx.identity
        .authenticate_bearer(&signed_in.credentials.bearer_token)
        .await
        .expect("the bearer token outlives the browser session");
    assert_eq!(
        fx.identity.authenticate_session("  ").await.unwrap_err(),
        AuthError::Missing
    );
    assert_eq!(
        fx.identity.authenticate_session("made-up").await.unwrap_err(),
        AuthError::SessionExpired
    );
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let fx = fixture();
    let signed_in = fx.signup("ada@example.com").await;
    fx.sql("UPDATE sessions SET expires_at = 1");
    let error = fx
        .identity
        .authenticate_session(&signed_in.session.cookie_value)
        .await
        .unwrap_err();
    assert_eq!(error.status(), 401);
    assert_eq!(error, AuthError::SessionExpired);
}

#[tokio::test]
async fn a_disabled_agent_loses_tokens_sessions_and_sign_in_until_enabled() {
    let fx = fixture();
    let signed_in = fx.signup("ada@example.com").await;
    let agent_id = signed_in.credentials.agent_id.clone();
    let token = &signed_in.credentials.bearer_token;
    fx.identity.authenticate_bearer(token).await.unwrap();
    let admin = Caller::owner(ToolPolicy::allow_all());
    fx.identity.set_agent_active(&admin, &agent_id, false).await.unwrap();

    assert_eq!(
        fx.identity.authenticate_bearer(token).await.unwrap_err(),
        AuthError::AgentDisabled
    );
    assert_eq!(
        fx.identity
            .authenticate_session(&signed_in.session.cookie_value)
            .await
            .unwrap_err(),
        AuthError::AgentDisabled
    );
    let signin = SigninRequest {
        email: "ada@example.com".into(),
        password: PASSWORD.into(),
    };
    assert_eq!(
        fx.identity.signin(signin.clone()).await.unwrap_err().code(),
        "agent_disabled"
    );
    assert!(fx.identity.lookup(&agent_id).await.is_none());
    assert_eq!(fx.identity.agent(&agent_id).await.unwrap().unwrap().status, "disabled");

    let stranger = fx.operator("eve@example.com").await.1;
    let error = fx
        .identity
        .set_agent_active(&stranger, &agent_id, true)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "forbidden");
    fx.identity.set_agent_active(&admin, &agent_id, true).await.unwrap();
    fx.identity.authenticate_bearer(token).await.unwrap();
    fx.identity.signin(signin).await.unwrap();
}
