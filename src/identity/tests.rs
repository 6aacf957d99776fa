//! Tests of the identity service through its public API, on a real SQLite store in a temporary
//! data directory. Shared helpers live here; the flows are in one file per part.

mod accounts;
mod agents;
mod bearer;
mod reset;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::tokens::{Claims, Signer};
use super::*;
use crate::config::Config;
use crate::store::{SqliteStore, Synchronous};

pub(super) const PASSWORD: &str = "correct horse battery";

pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub identity: Arc<Identity>,
    pub config: Config,
}

pub(super) fn fixture() -> Fixture {
    fixture_with(|_| {})
}

pub(super) fn fixture_with(edit: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    edit(&mut config);
    let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
    let identity = Identity::open(store, &config).unwrap();
    Fixture { dir, identity, config }
}

impl Fixture {
    /// A second service on the same data directory, as another process or a restart would see it.
    pub fn reopen(&self) -> Arc<Identity> {
        let store = Arc::new(SqliteStore::open(self.dir.path(), Synchronous::Normal).unwrap());
        Identity::open(store, &self.config).unwrap()
    }

    pub async fn signup(&self, email: &str) -> SignedIn {
        self.identity
            .signup(SignupRequest {
                email: email.into(),
                password: PASSWORD.into(),
                agent_name: None,
            })
            .await
            .unwrap()
    }

    /// The caller a signed-up account's token authenticates as.
    pub async fn operator(&self, email: &str) -> (SignedIn, Arc<Caller>) {
        let signed_in = self.signup(email).await;
        let auth = self
            .identity
            .authenticate_bearer(&signed_in.credentials.bearer_token)
            .await
            .unwrap();
        (signed_in, auth.caller.clone())
    }

    /// Runs SQL straight on the database, to put rows into states the API never produces (an
    /// expired session or reset token).
    pub fn sql(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.dir.path().join("agentos.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    /// Signs arbitrary claims with the service's own key.
    pub fn sign(&self, claims: &Claims) -> String {
        self.identity.signer.sign(claims).unwrap()
    }

    pub fn claims(&self, agent_id: &str) -> Claims {
        self.identity.signer.claims(agent_id, crate::store::now_ms(), 0)
    }
}

pub(super) fn register_request(agent_id: &str, tools: Option<&[&str]>) -> RegisterRequest {
    RegisterRequest {
        agent_id: agent_id.into(),
        name: format!("{agent_id} bot"),
        allowed_tools: tools.map(|tools| tools.iter().map(|t| (*t).to_owned()).collect()),
        ..Default::default()
    }
}

/// A token assembled by hand: `base64url(header).base64url(claims).signature`.
pub(super) fn hand_built(header: serde_json::Value, claims: &Claims, signature: &str) -> String {
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = serde_json::to_value(claims).unwrap();
    format!("{}.{}.{signature}", encode(&header), encode(&claims))
}

pub(super) fn other_signer(issuer: &str) -> Signer {
    Signer::new(&[42u8; 32], issuer, 90)
}

/// The HTTP layer runs these futures on a multi-threaded runtime: every one must be `Send`.
#[test]
fn every_public_future_is_send() {
    fn send<T: Send>(_: &T) {}
    fn shared<T: Send + Sync>() {}
    shared::<Identity>();
    let fx = fixture();
    let identity = &fx.identity;
    let caller = Caller::owner(ToolPolicy::allow_all());
    let auth = Authenticated {
        caller: Arc::new(caller.clone()),
        agent_name: "owner".into(),
        via: AuthMethod::Bearer {
            jti: "j".into(),
            expires_at: chrono::Utc::now(),
        },
    };
    let signup = SignupRequest {
        email: "a@b.co".into(),
        password: PASSWORD.into(),
        agent_name: None,
    };
    let signin = SigninRequest {
        email: "a@b.co".into(),
        password: PASSWORD.into(),
    };
    let reset = ResetConfirm {
        email: "a@b.co".into(),
        token: "t".into(),
        new_password: PASSWORD.into(),
    };
    send(&identity.ensure_owner(&caller.tools));
    send(&identity.authenticate_bearer("t"));
    send(&identity.authenticate_session("c"));
    send(&identity.signup(signup));
    send(&identity.signin(signin));
    send(&identity.sign_out(&auth));
    send(&identity.mint_token(&auth));
    send(&identity.revoke_token(&caller, "j"));
    send(&identity.revoke_agent_tokens(&caller, "a"));
    send(&identity.forgot_password("a@b.co"));
    send(&identity.confirm_reset(reset));
    send(&identity.register_agent(&caller, register_request("a", None)));
    send(&identity.agent("a"));
    send(&identity.set_agent_active(&caller, "a", true));
    send(&identity.prune_expired());
    send(&identity.lookup("a"));
}
