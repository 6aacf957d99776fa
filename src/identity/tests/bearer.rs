//! Bearer tokens: verification, every kind of bad token, revocation, minting, the directory.

use super::*;

#[tokio::test]
async fn a_verified_token_is_cached() {
    let fx = fixture();
    let token = fx.signup("ada@example.com").await.credentials.bearer_token;
    assert_eq!(fx.identity.cache.len(), 0);
    let first = fx.identity.authenticate_bearer(&token).await.unwrap();
    assert_eq!(fx.identity.cache.len(), 1);
    let second = fx.identity.authenticate_bearer(&format!(" {token} ")).await.unwrap();
    assert!(Arc::ptr_eq(&first.caller, &second.caller), "answered from the cache");
    assert_eq!(fx.identity.cache.len(), 1);
    let AuthMethod::Bearer { expires_at, .. } = first.via else {
        panic!("a bearer token");
    };
    let days = (expires_at - chrono::Utc::now()).num_days();
    assert!((89..=90).contains(&days), "{days}");
}

#[tokio::test]
async fn expired_forged_and_foreign_tokens_are_refused() {
    let fx = fixture();
    let agent_id = fx.signup("ada@example.com").await.credentials.agent_id;
    let now = chrono::Utc::now().timestamp();

    let mut expired = fx.claims(&agent_id);
    (expired.iat, expired.exp) = (now - 3600, now - 60);
    let error = fx.identity.authenticate_bearer(&fx.sign(&expired)).await.unwrap_err();
    assert_eq!(error, AuthError::Expired);
    assert!(error.to_string().contains("POST /api/session/token"), "{error}");
    assert_eq!(error.status(), 401);

    let claims = fx.claims(&agent_id);
    let forged = other_signer("agentos").sign(&claims).unwrap();
    assert_eq!(
        fx.identity.authenticate_bearer(&forged).await.unwrap_err(),
        AuthError::BadSignature
    );

    let mut foreign = fx.claims(&agent_id);
    foreign.iss = "someone-else".into();
    assert_eq!(
        fx.identity.authenticate_bearer(&fx.sign(&foreign)).await.unwrap_err(),
        AuthError::WrongIssuer
    );

    let genuine = fx.sign(&claims);
    let tampered = genuine.replacen('.', ".x", 1);
    assert_ne!(fx.identity.authenticate_bearer(&tampered).await.map(|_| ()), Ok(()));
    assert_eq!(
        fx.identity.authenticate_bearer("").await.unwrap_err(),
        AuthError::Missing
    );
    assert_eq!(
        fx.identity.authenticate_bearer("not-a-jwt").await.unwrap_err(),
        AuthError::Malformed
    );
    fx.identity.authenticate_bearer(&genuine).await.unwrap();
}

#[tokio::test]
async fn only_hs256_is_accepted() {
    let fx = fixture();
    let agent_id = fx.signup("ada@example.com").await.credentials.agent_id;
    let claims = fx.claims(&agent_id);
    let genuine_signature = fx.sign(&claims).rsplit('.').next().unwrap().to_owned();

    let none = hand_built(serde_json::json!({"alg": "none", "typ": "JWT"}), &claims, "");
    assert!(none.ends_with('.'));
    let rs256 = hand_built(
        serde_json::json!({"alg": "RS256", "typ": "JWT"}),
        &claims,
        &genuine_signature,
    );
    let es256 = hand_built(serde_json::json!({"alg": "ES256"}), &claims, "c2ln");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&crypto::signing_key("", fx.dir.path()).unwrap()),
    )
    .unwrap();
    for token in [none, rs256, es256, hs512] {
        assert_eq!(
            fx.identity.authenticate_bearer(&token).await.unwrap_err(),
            AuthError::WrongAlgorithm,
            "{token}"
        );
    }
}

#[tokio::test]
async fn signing_out_revokes_the_bearer_token_for_good() {
    let fx = fixture();
    let signed_in = fx.signup("ada@example.com").await;
    let token = signed_in.credentials.bearer_token.clone();
    let auth = fx.identity.authenticate_bearer(&token).await.unwrap();
    let other = fx.identity.mint_token(&auth).await.unwrap();
    fx.identity.sign_out(&auth).await.unwrap();

    assert_eq!(
        fx.identity.authenticate_bearer(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert!(fx.identity.revoked.contains_key(&signed_in.credentials.jti));
    fx.identity.authenticate_bearer(&other.bearer_token).await.unwrap();
    let restarted = fx.reopen();
    assert_eq!(
        restarted.authenticate_bearer(&token).await.unwrap_err(),
        AuthError::Revoked,
        "revocations are persisted"
    );
    restarted.authenticate_bearer(&other.bearer_token).await.unwrap();
}

#[tokio::test]
async fn minting_gives_a_second_working_token() {
    let fx = fixture();
    let signed_in = fx.signup("ada@example.com").await;
    let auth = fx
        .identity
        .authenticate_session(&signed_in.session.cookie_value)
        .await
        .unwrap();
    let minted = fx.identity.mint_token(&auth).await.unwrap();
    assert_eq!(minted.agent_id, signed_in.credentials.agent_id);
    assert_ne!(minted.bearer_token, signed_in.credentials.bearer_token);
    for token in [&minted.bearer_token, &signed_in.credentials.bearer_token] {
        fx.identity.authenticate_bearer(token).await.unwrap();
    }
}

#[tokio::test]
async fn revoking_an_agents_tokens_kills_old_ones_only() {
    let fx = fixture();
    let (signed_in, operator) = fx.operator("ada@example.com").await;
    let old = signed_in.credentials.bearer_token;
    let stranger = fx.operator("eve@example.com").await.1;
    let error = fx
        .identity
        .revoke_agent_tokens(&stranger, &operator.agent_id)
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (403, "forbidden"));
    let missing = fx.identity.revoke_agent_tokens(&operator, "ghost").await.unwrap_err();
    assert_eq!(missing.status(), 404);

    let auth = fx.identity.authenticate_bearer(&old).await.unwrap();
    fx.identity
        .revoke_agent_tokens(&operator, &operator.agent_id)
        .await
        .unwrap();
    assert_eq!(
        fx.identity.authenticate_bearer(&old).await.unwrap_err(),
        AuthError::Revoked
    );
    let fresh = fx.identity.mint_token(&auth).await.unwrap();
    fx.identity
        .authenticate_bearer(&fresh.bearer_token)
        .await
        .expect("a token minted after the revocation works");
}

#[tokio::test]
async fn revoking_one_token_needs_oversight_of_its_agent() {
    let fx = fixture();
    let (_, operator) = fx.operator("ada@example.com").await;
    let (_, stranger) = fx.operator("eve@example.com").await;
    let registered = fx
        .identity
        .register_agent(&operator, register_request("helper", None))
        .await
        .unwrap();
    let jti = &registered.credentials.jti;
    let error = fx.identity.revoke_token(&stranger, jti).await.unwrap_err();
    assert_eq!(error.code(), "forbidden");
    let missing = fx.identity.revoke_token(&operator, "no-such-jti").await.unwrap_err();
    assert_eq!((missing.status(), missing.code()), (404, "token_not_found"));

    fx.identity
        .authenticate_bearer(&registered.credentials.bearer_token)
        .await
        .unwrap();
    fx.identity.revoke_token(&operator, jti).await.unwrap();
    assert_eq!(
        fx.identity
            .authenticate_bearer(&registered.credentials.bearer_token)
            .await
            .unwrap_err(),
        AuthError::Revoked
    );
}

#[tokio::test]
async fn tokens_of_unknown_agents_are_refused() {
    let fx = fixture();
    let token = fx.sign(&fx.claims("ghost"));
    assert_eq!(
        fx.identity.authenticate_bearer(&token).await.unwrap_err(),
        AuthError::UnknownAgent
    );
}

#[tokio::test]
async fn the_directory_finds_active_agents_with_their_current_policy() {
    let fx = fixture();
    let mut request = register_request("reader", Some(&["agentos.mem_*"]));
    request.allowed_domains = Some(vec!["httpbin.org".into()]);
    fx.identity.register_self(request, None).await.unwrap();
    let caller = fx.identity.lookup("reader").await.unwrap();
    assert_eq!(caller.role, Role::Agent);
    assert_eq!(caller.account_id, None);
    assert!(caller.tools.allows("agentos.mem_get"));
    assert!(!caller.tools.allows("agentos.net_http_get"));
    assert_eq!(&*caller.allowed_domains, ["httpbin.org".to_owned()]);
    assert!(fx.identity.lookup("ghost").await.is_none());
}

#[tokio::test]
async fn an_agent_registered_under_a_reserved_name_before_it_was_reserved_cannot_act() {
    let fx = fixture();
    // Databases written before names were reserved may hold such an agent: its token must not
    // let it act as (and read the records of) unauthenticated callers.
    fx.sql(
        "INSERT INTO agents (id, name, role, status, allowed_domains, allowed_tools, created_at, updated_at)
         VALUES ('anonymous', 'squatter', 'agent', 'active', '[]', '[\"*\"]', 0, 0)",
    );
    let token = fx.sign(&fx.claims("anonymous"));
    assert_eq!(
        fx.identity.authenticate_bearer(&token).await.unwrap_err(),
        AuthError::UnknownAgent
    );
    assert!(fx.identity.lookup("anonymous").await.is_none());
}
