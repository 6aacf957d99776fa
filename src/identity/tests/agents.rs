//! Registering agents (self-service and by an operator) and the local owner's token.

use super::*;

#[tokio::test]
async fn self_service_registration_gets_builtin_tools_and_a_token() {
    let fx = fixture();
    let mut request = register_request("research-bot", None);
    request.description = Some("Reads papers".into());
    request.owner_email = Some(" Ada@Example.com".into());
    request.allowed_domains = Some(vec!["HttpBin.org".into()]);
    let registered = fx.identity.register_self(request, None).await.unwrap();
    let agent = &registered.agent;
    assert_eq!(agent.agent_id, "research-bot");
    assert_eq!(agent.role, Role::Agent);
    assert_eq!(agent.account_id, None);
    assert_eq!(agent.allowed_tools, vec!["agentos.*"]);
    assert_eq!(agent.allowed_domains, vec!["httpbin.org"]);
    assert_eq!(agent.owner_email.as_deref(), Some("ada@example.com"));
    assert_eq!(fx.identity.agent("research-bot").await.unwrap().as_ref(), Some(agent));

    let auth = fx
        .identity
        .authenticate_bearer(&registered.credentials.bearer_token)
        .await
        .unwrap();
    assert_eq!(&*auth.caller.agent_id, "research-bot");
    assert_eq!(auth.agent_name, "research-bot bot");

    let again = fx
        .identity
        .register_self(register_request("research-bot", None), None)
        .await
        .unwrap_err();
    assert_eq!((again.status(), again.code()), (409, "agent_exists"));
}

#[tokio::test]
async fn self_service_agents_cannot_reach_beyond_builtin_tools() {
    let fx = fixture();
    for tools in [&["mcp.github.*"][..], &["*"], &["agentos.mem_set", "mcp.x.y"]] {
        let error = fx
            .identity
            .register_self(register_request("greedy", Some(tools)), None)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 403, "{tools:?}");
        let message = error.to_string();
        assert!(message.contains(&format!("`{}`", tools[tools.len() - 1])), "{message}");
        assert!(message.contains("operator's bearer token"), "{message}");
    }
    fx.identity
        .register_self(
            register_request("modest", Some(&["agentos.mem_*", "agentos.time_now"])),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn closed_registration_refuses_self_service_but_not_operators() {
    let fx = fixture_with(|config| config.identity.open_registration = false);
    let error = fx
        .identity
        .register_self(register_request("bot", None), None)
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (403, "registration_closed"));
    let (_, operator) = fx.operator("ada@example.com").await;
    fx.identity
        .register_agent(&operator, register_request("bot", None))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_reason() {
    let fx = fixture();
    let cases: Vec<(RegisterRequest, &str)> = vec![
        (register_request("owner", None), "reserved_agent_id"),
        (register_request("agent_0123456789abcdef", None), "reserved_agent_id"),
        (register_request("Bad_Id", None), "invalid_request"),
        (register_request("ok", Some(&["a*b"])), "invalid_tool_pattern"),
        (
            RegisterRequest {
                name: " ".into(),
                ..register_request("ok", None)
            },
            "invalid_request",
        ),
        (
            RegisterRequest {
                owner_email: Some("nobody".into()),
                ..register_request("ok", None)
            },
            "invalid_email",
        ),
        (
            RegisterRequest {
                allowed_domains: Some(vec!["https://example.com/".into()]),
                ..register_request("ok", None)
            },
            "invalid_request",
        ),
    ];
    for (request, code) in cases {
        let shown = format!("{request:?}");
        let error = fx.identity.register_self(request, None).await.unwrap_err();
        assert_eq!((error.status(), error.code()), (400, code), "{shown}: {error}");
    }
    let error = fx
        .identity
        .register_self(register_request("ok", Some(&["a*b"])), None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("a*b"), "{error}");
}

#[tokio::test]
async fn operators_register_agents_of_their_account_within_their_own_tools() {
    let fx = fixture();
    let (_, operator) = fx.operator("ada@example.com").await;
    let registered = fx
        .identity
        .register_agent(&operator, register_request("helper", Some(&["agentos.mem_*"])))
        .await
        .unwrap();
    assert_eq!(registered.agent.account_id.as_deref(), operator.account_id.as_deref());
    assert_eq!(registered.agent.role, Role::Agent);
    assert_eq!(registered.agent.allowed_tools, vec!["agentos.mem_*"]);
    let helper = fx.identity.lookup("helper").await.unwrap();
    assert!(operator.oversees(&helper.agent_id, helper.account_id.as_deref()));

    let error = fx
        .identity
        .register_agent(
            &operator,
            register_request("wide", Some(&["agentos.mem_*", "mcp.github.*"])),
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), 403);
    assert!(error.to_string().contains("`mcp.github.*`"), "{error}");
    assert!(!error.to_string().contains("`agentos.mem_*`"), "{error}");

    let defaulted = fx
        .identity
        .register_agent(&operator, register_request("defaulted", None))
        .await
        .unwrap();
    assert_eq!(defaulted.agent.allowed_tools, vec!["agentos.*"]);
}

#[tokio::test]
async fn an_operator_without_builtin_tools_hands_on_its_own_patterns_by_default() {
    let fx = fixture();
    let mut operator = Caller::agent("github-op", ToolPolicy::parse(&["mcp.github.*"]).unwrap(), Vec::new());
    operator.role = Role::Operator;
    operator.account_id = Some(Arc::from("acct_x"));
    let registered = fx
        .identity
        .register_agent(&operator, register_request("gh-helper", None))
        .await
        .unwrap();
    assert_eq!(registered.agent.allowed_tools, vec!["mcp.github.*"]);
    assert_eq!(registered.agent.account_id.as_deref(), Some("acct_x"));
    let admin = Caller::owner(ToolPolicy::allow_all());
    let everything = fx
        .identity
        .register_agent(&admin, register_request("root-helper", Some(&["*"])))
        .await
        .unwrap();
    assert_eq!(everything.agent.allowed_tools, vec!["*"]);
}

#[tokio::test]
async fn agents_cannot_register_agents() {
    let fx = fixture();
    let registered = fx
        .identity
        .register_self(register_request("plain", None), None)
        .await
        .unwrap();
    let agent = fx
        .identity
        .authenticate_bearer(&registered.credentials.bearer_token)
        .await
        .unwrap()
        .caller
        .clone();
    let error = fx
        .identity
        .register_agent(&agent, register_request("child", None))
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (403, "forbidden"));
}

#[tokio::test]
async fn the_owner_token_is_private_authenticates_as_the_owner_and_is_reused() {
    let fx = fixture();
    let tools = ToolPolicy::allow_all();
    let path = fx.identity.ensure_owner(&tools).await.unwrap();
    assert_eq!(path, fx.dir.path().join("owner-token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&path).unwrap();
    let auth = fx.identity.authenticate_bearer(&token).await.unwrap();
    assert_eq!(&*auth.caller.agent_id, Caller::OWNER_ID);
    assert_eq!(auth.caller.role, Role::OpsAdmin);
    assert!(auth.caller.tools.allows("mcp.anything.at_all"));

    let narrower = ToolPolicy::parse(&["agentos.*"]).unwrap();
    // A restart with a narrower configuration: same token, new tools.
    let restarted = fx.reopen();
    restarted.authenticate_bearer(&token).await.unwrap();
    let again = restarted.ensure_owner(&narrower).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        token,
        "a still-valid token is reused"
    );
    let owner = restarted.lookup(Caller::OWNER_ID).await.unwrap();
    assert_eq!(owner.tools, narrower, "the owner's tools follow the configuration");
    let auth = restarted.authenticate_bearer(&token).await.unwrap();
    assert!(
        !auth.caller.tools.allows("mcp.anything.at_all"),
        "no stale cached policy"
    );

    std::fs::write(&path, "garbage").unwrap();
    fx.identity.ensure_owner(&narrower).await.unwrap();
    let fresh = std::fs::read_to_string(&path).unwrap();
    assert_ne!(fresh, "garbage");
    fx.identity.authenticate_bearer(&fresh).await.unwrap();
}

#[tokio::test]
async fn approval_mode_registers_pending_agents_that_work_once_enabled() {
    let fx = fixture_with(|config| config.identity.self_registration = crate::config::SelfRegistration::Approval);
    let registered = fx
        .identity
        .register_self(register_request("hopeful", None), None)
        .await
        .unwrap();
    assert_eq!(registered.agent.status, "pending");
    let token = registered.credentials.bearer_token;
    assert_eq!(
        fx.identity.authenticate_bearer(&token).await.unwrap_err(),
        AuthError::AgentDisabled
    );
    let admin = Caller::owner(ToolPolicy::allow_all());
    fx.identity.set_agent_active(&admin, "hopeful", true).await.unwrap();
    fx.identity.authenticate_bearer(&token).await.unwrap();
}

#[tokio::test]
async fn one_address_registers_only_so_many_agents_an_hour() {
    let fx = fixture_with(|config| config.identity.registrations_per_address_per_hour = 2);
    let (here, there): (std::net::IpAddr, std::net::IpAddr) =
        ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    for id in ["one", "two"] {
        fx.identity
            .register_self(register_request(id, None), Some(here))
            .await
            .unwrap();
    }
    let error = fx
        .identity
        .register_self(register_request("three", None), Some(here))
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (429, "too_many_registrations"));
    fx.identity
        .register_self(register_request("three", None), Some(there))
        .await
        .unwrap();
}
