//! Accounts, sessions and tokens against the real `agentos serve`, and the attacks on them.
//!
//! Attacks tried, and the outcome each must have:
//! - no credentials on a protected route (/mcp, /api/session, /agent/me) → 401 + WWW-Authenticate
//! - an expired token, a token signed with another key, `alg: none`, an HS512 token with the
//!   right key, a token with the wrong issuer, a signed-out (revoked) token, a token of an
//!   agent whose tokens were revoked, garbage, a `Basic` header → 401
//! - wrong password, unknown email (same answer), duplicate email, weak password, malformed
//!   emails, unknown fields → 4xx with a clear message
//! - a cookie-authenticated state change without the CSRF token → 403; with it → allowed
//! - a password-reset token used twice, or for another email → 400; after a reset the old
//!   password, the old session and the old bearer token stop working
//! - the owner token file is private (0600) and works; a second start keeps it
//! - one address self-registering agent after agent → 429 `too_many_registrations` past
//!   `identity.registrations_per_address_per_hour`; with `self_registration = "approval"` a new
//!   agent is `pending` (202) and its token works only once an operator enables it
//! - registering an agent under a name the server uses for itself (`anonymous`, `system`,
//!   `owner`, ...), by anyone, even the operator → 400 `reserved_agent_id`

use crate::common;

use std::os::unix::fs::PermissionsExt;

use crate::common::Server;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SIGNING_KEY: &str = "test-signing-key-that-is-at-least-32-bytes-long";

/// A server whose signing key the test knows, so it can forge tokens the server must refuse.
fn start(dir: &std::path::Path, extra_toml: &str) -> Server {
    let config = dir.join("agentos.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nsigning_key = \"{SIGNING_KEY}\"\nreset_outbox = \"file\"\n{extra_toml}\n[rate_limits]\nenabled = false\n"
        ),
    )
    .unwrap();
    Server::start_secure(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

async fn post(server: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    let response = common::http().post(server.url(path)).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_as(server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let response = common::http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(sub: &str, iss: &str, exp_offset_secs: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "iss": iss, "jti": uuid::Uuid::new_v4().to_string(), "iat": now - 10, "exp": now + exp_offset_secs})
}

fn forge(algorithm: jsonwebtoken::Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

async fn signup(server: &Server, email: &str, password: &str) -> Value {
    let (status, body) = post(server, "/api/signup", json!({"email": email, "password": password})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn sign_up_sign_in_session_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");

    let response = common::http()
        .post(server.url("/api/signup"))
        .json(&json!({"email": "Ada@Example.com", "password": "correct horse", "agentName": "Ada's agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["agentos_session=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not Secure unless configured: {cookie}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    let credentials = &body["credentials"];
    let token = credentials["bearerToken"].as_str().unwrap().to_owned();
    assert_eq!(credentials["apiKey"], credentials["bearerToken"]);
    assert_eq!(credentials["expiresIn"], "90 days");
    let agent_id = credentials["agentId"].as_str().unwrap().to_owned();
    assert!(agent_id.starts_with("agent_"), "{agent_id}");

    let (status, session) = get_as(&server, "/api/session", &token).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["authenticated"], true);
    assert_eq!(session["session"]["agentId"], agent_id.as_str());
    assert_eq!(session["session"]["agentName"], "Ada's agent");
    assert_eq!(session["session"]["role"], "operator");

    let (status, me) = get_as(&server, "/agent/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["agentId"], agent_id.as_str());
    assert_eq!(me["status"], "active");
    assert_eq!(me["allowedTools"], json!(["agentos.*", "skill.*"]));
    for field in [
        "totalCalls",
        "lastActiveAt",
        "createdAt",
        "allowedDomains",
        "mcpEndpoint",
    ] {
        assert!(me.get(field).is_some(), "{field} in {me}");
    }

    // Sign in (email case does not matter): a fresh token, both work.
    let (status, signed) = post(
        &server,
        "/api/signin",
        json!({"email": "ada@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["credentials"]["agentName"], "Ada's agent");
    let second = signed["credentials"]["bearerToken"].as_str().unwrap().to_owned();
    assert_ne!(second, token);

    // Mint another token with the first one; all three work.
    let response = common::http()
        .post(server.url("/api/session/token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let minted: Value = response.json().await.unwrap();
    let third = minted["credentials"]["bearerToken"].as_str().unwrap().to_owned();
    for t in [&token, &second, &third] {
        assert_eq!(get_as(&server, "/agent/me", t).await.0, StatusCode::OK);
    }

    // Signing out with a bearer token revokes exactly that token.
    let response = common::http()
        .delete(server.url("/api/session"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, refused) = get_as(&server, "/agent/me", &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked token: {refused}");
    assert_eq!(get_as(&server, "/agent/me", &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn sign_up_and_sign_in_refusals_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    signup(&server, "grace@example.com", "long enough").await;

    let cases = [
        (
            "/api/signup",
            json!({"email": "grace@example.com", "password": "another one"}),
            StatusCode::CONFLICT,
        ),
        (
            "/api/signup",
            json!({"email": "new@example.com", "password": "short"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/signup",
            json!({"email": "not-an-email", "password": "long enough"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/signup",
            json!({"email": "two@@example.com", "password": "long enough"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/signup",
            json!({"email": "sp ace@example.com", "password": "long enough"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/signup",
            json!({"email": "x@example.com", "password": "long enough", "admin": true}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/signin",
            json!({"email": "grace@example.com", "password": "wrong password"}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/api/signin",
            json!({"email": "nobody@example.com", "password": "long enough"}),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    let mut signin_messages = Vec::new();
    for (path, body, expected) in cases {
        let (status, answer) = post(&server, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body} → {answer}");
        let message = answer["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.len() > 10, "a clear message for {body}: {answer}");
        if path == "/api/signin" {
            signin_messages.push(answer);
        }
    }
    assert_eq!(
        signin_messages[0], signin_messages[1],
        "wrong password and unknown email look the same"
    );
    let (status, weak) = post(
        &server,
        "/api/signup",
        json!({"email": "new@example.com", "password": "short"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(weak["message"].as_str().unwrap().contains('8'), "{weak}");
}

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let body = signup(&server, "eve@example.com", "long enough").await;
    let agent = body["credentials"]["agentId"].as_str().unwrap().to_owned();
    let good = forge(
        jsonwebtoken::Algorithm::HS256,
        SIGNING_KEY.as_bytes(),
        &claims(&agent, "agentos", 3600),
    );
    assert_eq!(
        get_as(&server, "/agent/me", &good).await.0,
        StatusCode::OK,
        "a well-made token works"
    );

    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = b64(claims(&agent, "agentos", 3600).to_string().as_bytes());
    let attacks = [
        (
            "expired",
            forge(
                jsonwebtoken::Algorithm::HS256,
                SIGNING_KEY.as_bytes(),
                &claims(&agent, "agentos", -120),
            ),
        ),
        (
            "forged signature",
            forge(
                jsonwebtoken::Algorithm::HS256,
                b"another-key-another-key-another-key!",
                &claims(&agent, "agentos", 3600),
            ),
        ),
        ("alg none", format!("{none_header}.{none_claims}.")),
        (
            "HS512 with the right key",
            forge(
                jsonwebtoken::Algorithm::HS512,
                SIGNING_KEY.as_bytes(),
                &claims(&agent, "agentos", 3600),
            ),
        ),
        (
            "wrong issuer",
            forge(
                jsonwebtoken::Algorithm::HS256,
                SIGNING_KEY.as_bytes(),
                &claims(&agent, "evil", 3600),
            ),
        ),
        (
            "unknown agent",
            forge(
                jsonwebtoken::Algorithm::HS256,
                SIGNING_KEY.as_bytes(),
                &claims("ghost", "agentos", 3600),
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (attack, token) in attacks {
        let (status, answer) = get_as(&server, "/agent/me", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{attack}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{attack}: {answer}"
        );
        let mcp = common::http()
            .post(server.mcp_url())
            .bearer_auth(&token)
            .json(&json!({"tool": "agentos.time_now", "input": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(mcp.status(), StatusCode::UNAUTHORIZED, "{attack} on /mcp");
    }

    let response = common::http()
        .get(server.url("/agent/me"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "Basic auth is not a bearer token"
    );

    // The operator revokes every token of the agent: the good one dies, a new sign-in works.
    let owner = server.token().to_owned();
    let response = common::http()
        .delete(server.url(&format!("/api/agents/{agent}/tokens")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(get_as(&server, "/agent/me", &good).await.0, StatusCode::UNAUTHORIZED);
    let (_, signed) = post(
        &server,
        "/api/signin",
        json!({"email": "eve@example.com", "password": "long enough"}),
    )
    .await;
    let fresh = signed["credentials"]["bearerToken"].as_str().unwrap();
    assert_eq!(get_as(&server, "/agent/me", fresh).await.0, StatusCode::OK);

    // Revoking one token by its jti.
    let payload = fresh.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let response = common::http()
        .post(server.url("/api/tokens/revoke"))
        .bearer_auth(&owner)
        .json(&json!({ "jti": jti }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(get_as(&server, "/agent/me", fresh).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn protected_routes_need_credentials_and_public_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    for (method, path) in [
        ("POST", "/mcp"),
        ("GET", "/api/session"),
        ("GET", "/agent/me"),
        ("GET", "/api/audit"),
        ("GET", "/api/approvals"),
        ("GET", "/api/mcp/servers"),
        ("POST", "/api/session/token"),
    ] {
        let request = match method {
            "POST" => common::http().post(server.url(path)).json(&json!({})),
            _ => common::http().get(server.url(path)),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(response.headers().contains_key("www-authenticate"), "{method} {path}");
    }
    for path in ["/health", "/tools"] {
        let response = common::http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }
    // The public catalog is the built-in primitives, without admin tools.
    let tools: Value = common::http()
        .get(server.url("/tools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"agentos.mem_set"));
    assert!(!names.contains(&"agentos.mcp_server_add"), "admin tools are not public");
    // The owner sees the admin tools.
    let (_, owner_tools) = get_as(&server, "/tools", server.token()).await;
    assert!(owner_tools.to_string().contains("agentos.mcp_server_add"));

    // Crew coverage: counts for anyone, per-server details for ops-admins only.
    let public: Value = common::http()
        .get(server.url("/api/ops/crew"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["requiresAuthForDetails"], true, "{public}");
    assert!(public["summary"]["servers"].is_number(), "{public}");
    assert!(public.get("servers").is_none(), "{public}");
    let (status, admin) = get_as(&server, "/api/ops/crew", server.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin["requiresAuthForDetails"], false, "{admin}");
    assert!(admin["servers"].is_array(), "{admin}");
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_change_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let response = common::http()
        .post(server.url("/api/signup"))
        .json(&json!({"email": "carol@example.com", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();

    let session: Value = common::http()
        .get(server.url("/api/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["session"]["via"], "session");
    assert_eq!(session["session"]["csrfToken"], csrf.as_str());

    let without = common::http()
        .post(server.url("/api/session/token"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let wrong = common::http()
        .post(server.url("/api/session/token"))
        .header("cookie", &pair)
        .header("x-csrf-token", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "a wrong CSRF token");
    let with = common::http()
        .post(server.url("/api/session/token"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), StatusCode::OK);

    // Signing out ends the session and clears the cookie.
    let out = common::http()
        .delete(server.url("/api/session"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = common::http()
        .get(server.url("/api/session"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // A stale cookie never blocks signing in again.
    let again = common::http()
        .post(server.url("/api/signin"))
        .header("cookie", &pair)
        .json(&json!({"email": "carol@example.com", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn password_reset_is_single_use_and_ends_old_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let body = signup(&server, "dan@example.com", "old password").await;
    let old_token = body["credentials"]["bearerToken"].as_str().unwrap().to_owned();

    for email in ["dan@example.com", "nobody@example.com"] {
        let (status, answer) = post(&server, "/api/forgot-password", json!({ "email": email })).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!({"success": true}), "the same answer for {email}");
    }
    let outbox = std::fs::read_to_string(dir.path().join("data/outbox.jsonl")).expect("the file outbox");
    let messages: Vec<Value> = outbox.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.len(), 1, "nothing is sent for an unknown email: {outbox}");
    assert_eq!(messages[0]["to"], "dan@example.com");
    let token = messages[0]["token"].as_str().unwrap().to_owned();
    let mode = std::fs::metadata(dir.path().join("data/outbox.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let confirm = |email: &'static str, new_password: &'static str| {
        post(
            &server,
            "/api/forgot-password/confirm",
            json!({"email": email, "token": token, "newPassword": new_password}),
        )
    };
    let (status, _) = confirm("other@example.com", "new password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a token only works for its own email");
    let (status, _) = confirm("dan@example.com", "short").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the new password follows the rule");
    let (status, answer) = confirm("dan@example.com", "new password").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = confirm("dan@example.com", "third password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");

    assert_eq!(
        get_as(&server, "/agent/me", &old_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = post(
        &server,
        "/api/signin",
        json!({"email": "dan@example.com", "password": "old password"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(
        &server,
        "/api/signin",
        json!({"email": "dan@example.com", "password": "new password"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_owner_token_is_private_works_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("data/owner-token");
    let first = {
        let server = start(dir.path(), "");
        assert!(
            server.log().contains("owner-token"),
            "the path is printed: {}",
            server.log()
        );
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (status, me) = get_as(&server, "/agent/me", server.token()).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["agentId"], "owner");
        assert_eq!(me["role"], "ops-admin");
        server.token().to_owned()
    };
    let server = start(dir.path(), "");
    assert_eq!(server.token(), first, "a valid token file is kept");
    assert_eq!(get_as(&server, "/agent/me", &first).await.0, StatusCode::OK);
}

#[tokio::test]
async fn no_auth_is_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = common::refused_start(&["serve", "--no-auth", "--listen", "0.0.0.0:0"], dir.path());
    assert!(stderr.contains("--no-auth"), "{stderr}");
}

#[tokio::test]
async fn signup_and_open_registration_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "open_signup = false\nopen_registration = false");
    let (status, answer) = post(
        &server,
        "/api/signup",
        json!({"email": "x@example.com", "password": "long enough"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = post(&server, "/register", json!({"agentId": "bot", "name": "Bot"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    // The operator can still register agents.
    let response = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": "bot", "name": "Bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn agentos_mcp_with_a_token_acts_as_that_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let response = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": "desk", "name": "Desk", "allowedTools": ["agentos.mem_*"]}))
        .send()
        .await
        .unwrap();
    let registered: Value = response.json().await.unwrap();
    let token = registered["token"].as_str().unwrap().to_owned();
    let config = dir.path().join("agentos.toml");
    let data = dir.path().join("data");
    let args = ["--config", config.to_str().unwrap(), "--token", token.as_str()];
    let (client, _, _) = common::stdio_client(&data, &args).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    assert!(tools.iter().all(|t| t.name.starts_with("agentos.mem_")), "{tools:?}");
    client.cancel().await.unwrap();

    let output = std::process::Command::new(common::agentos_bin())
        .args(["mcp", "--data-dir"])
        .arg(&data)
        .args(["--config", config.to_str().unwrap(), "--token", "not-a-token"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "a bad token is refused at start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--token"), "{stderr}");
}

#[tokio::test]
async fn names_the_server_uses_for_itself_cannot_be_registered() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    // Found in an attack: an agent registered as `anonymous` read every unauthenticated
    // caller's records in audit_query and traces_query.
    for reserved in [
        "anonymous",
        "system",
        "owner",
        "admin",
        "root",
        "agentos",
        "scheduler",
        "agent_x1",
    ] {
        let (status, answer) = post(&server, "/register", json!({"agentId": reserved, "name": "Squatter"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reserved}: {answer}");
        assert_eq!(answer["error"], "reserved_agent_id", "{reserved}: {answer}");
        assert!(
            answer["message"].as_str().unwrap_or_default().contains(reserved),
            "{answer}"
        );
        let response = common::http()
            .post(server.url("/register"))
            .bearer_auth(server.token())
            .json(&json!({"agentId": reserved, "name": "Squatter"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "operator registering {reserved}"
        );
    }
    let (status, answer) = post(&server, "/register", json!({"agentId": "anonymous-fan", "name": "Fan"})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a name that merely contains a reserved word is fine: {answer}"
    );
}

#[tokio::test]
async fn self_registration_can_need_approval_and_is_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "self_registration = \"approval\"\nregistrations_per_address_per_hour = 2",
    );
    let (status, answer) = post(&server, "/register", json!({"agentId": "hopeful", "name": "H"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "pending", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("agentos.agent_enable"),
        "{answer}"
    );
    let token = answer["token"].as_str().unwrap().to_owned();
    let (status, _) = get_as(&server, "/agent/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a pending agent cannot act");

    let response = common::http()
        .get(server.url("/api/agents?status=pending"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["agents"][0]["agentId"], "hopeful", "{listed}");
    let response = common::http()
        .post(server.url("/api/agents/hopeful/enable"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, me) = get_as(&server, "/agent/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // A second registration from this address fits the budget of 2 an hour; a third does not.
    let (status, answer) = post(&server, "/register", json!({"agentId": "second", "name": "S"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = post(&server, "/register", json!({"agentId": "third", "name": "T"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"], "too_many_registrations", "{answer}");
}
