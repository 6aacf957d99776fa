//! The one route table. Each row says how a route is reached (method, path), who may reach it
//! (access), what it is charged to (rate limits), where the OpenAPI document files it (tag), what
//! serves it (handler) and how it is described (its OpenAPI operation). The router, the
//! authentication in front of each route and the OpenAPI document are all built from this list,
//! so none can drift from the others.

use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Map, Value};

use super::openapi::Op;
use super::{
    HttpState, accounts, console, governance, mcp_route, metrics, ops, probes, skills, studio, tools, traces, voice,
};

/// How a route may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Liveness and readiness probes, and metrics when `[metrics] public`: never authenticated,
    /// never limited.
    Unchecked,
    /// Open to anyone; credentials, when sent, must be valid and shape the answer.
    Public,
    /// The gate that produces credentials (sign-up, sign-in, reset): presented credentials are
    /// ignored so a stale cookie never blocks signing in again.
    Gate,
    /// Needs a bearer token or a browser session.
    Protected,
}

/// What a request to the route is charged to. Calls are charged by the registry's pipeline,
/// whichever door they come through; the front door charges only what reaches no tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Charge {
    /// Never limited (probes, metrics).
    Nothing,
    /// The `api` budget, charged here: the route answers without a tool call.
    Api,
    /// The `auth` budget of the client address, charged here when the caller is anonymous (the
    /// gate, self-service registration); with credentials the route's tool call is charged.
    Auth,
    /// Charged by the registry: the route's handler makes tool calls (and MCP listings charge
    /// themselves).
    Calls,
}

/// Describes a route's operation in the OpenAPI document: given the operation with its method,
/// path, access and tag filled in, adds its id, parameters, body and answers. Tool-backed routes
/// put their tools' schemas into the document's `components/schemas`.
pub(super) type Describe = fn(Op, &mut Map<String, Value>) -> Op;

pub(super) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub charge: Charge,
    pub tag: &'static str,
    pub handler: MethodRouter<HttpState>,
    pub describe: Describe,
    /// What bounds its request bodies.
    pub body: BodyCap,
}

/// What bounds a route's request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum BodyCap {
    /// `http.max_body_bytes`.
    Standard,
    /// As large as a published skill (`skills.max_component_bytes`, in base64).
    Component,
    /// As large as an audio file to transcribe (`voice.max_audio_bytes`).
    Audio,
}

impl Route {
    fn with_body(mut self, cap: BodyCap) -> Self {
        self.body = cap;
        self
    }
}

struct Row {
    access: Access,
    charge: Charge,
    tag: &'static str,
}

const PROBE: Row = Row {
    access: Access::Unchecked,
    charge: Charge::Nothing,
    tag: "health",
};

fn route<H, T>(method: Method, path: &'static str, row: Row, handler: H, describe: Describe) -> Route
where
    H: axum::handler::Handler<T, HttpState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        method,
        path,
        access: row.access,
        charge: row.charge,
        tag: row.tag,
        handler: on(filter, handler),
        describe,
        body: BodyCap::Standard,
    }
}

fn row(access: Access, charge: Charge, tag: &'static str) -> Row {
    Row { access, charge, tag }
}

/// Every route. `public_metrics`: whether `GET /metrics` answers without credentials.
pub(super) fn table(public_metrics: bool) -> Vec<Route> {
    use Access::{Gate, Protected, Public};
    use Charge::{Api, Auth, Calls};
    use Method as M;
    let metrics_access = if public_metrics {
        row(Access::Unchecked, Charge::Nothing, "observability")
    } else {
        row(Protected, Api, "observability")
    };
    let account = |access, charge| row(access, charge, "accounts");
    vec![
        route(M::GET, "/health", PROBE, probes::liveness, probes::liveness_doc),
        // Public, not a bare probe: credentials, when sent, are checked, and an ops-admin's
        // add the connection detail. Never charged, so probes are never limited.
        route(
            M::GET,
            "/health/ready",
            row(Public, Charge::Nothing, "health"),
            probes::ready,
            probes::ready_doc,
        ),
        route(M::GET, "/health/{service}", PROBE, probes::service, probes::service_doc),
        route(M::GET, "/metrics", metrics_access, metrics::scrape, metrics::scrape_doc),
        route(
            M::GET,
            "/tools",
            row(Public, Api, "tools"),
            tools::list,
            tools::list_doc,
        ),
        route(
            M::POST,
            "/mcp",
            row(Protected, Calls, "tools"),
            mcp_route::entry,
            mcp_route::post_doc,
        ),
        route(
            M::GET,
            "/mcp",
            row(Protected, Calls, "tools"),
            mcp_route::entry,
            mcp_route::stream_doc,
        ),
        route(
            M::DELETE,
            "/mcp",
            row(Protected, Calls, "tools"),
            mcp_route::entry,
            mcp_route::end_doc,
        ),
        route(
            M::POST,
            "/api/signup",
            account(Gate, Auth),
            accounts::signup,
            accounts::signup_doc,
        ),
        route(
            M::POST,
            "/api/signin",
            account(Gate, Auth),
            accounts::signin,
            accounts::signin_doc,
        ),
        route(
            M::GET,
            "/api/session",
            account(Protected, Api),
            accounts::session,
            accounts::session_doc,
        ),
        route(
            M::DELETE,
            "/api/session",
            account(Protected, Api),
            accounts::sign_out,
            accounts::sign_out_doc,
        ),
        route(
            M::POST,
            "/api/session/token",
            account(Protected, Api),
            accounts::mint_token,
            accounts::mint_token_doc,
        ),
        route(
            M::POST,
            "/api/forgot-password",
            account(Gate, Auth),
            accounts::forgot_password,
            accounts::forgot_doc,
        ),
        route(
            M::POST,
            "/api/forgot-password/confirm",
            account(Gate, Auth),
            accounts::confirm_reset,
            accounts::confirm_doc,
        ),
        route(
            M::POST,
            "/register",
            account(Public, Auth),
            accounts::register,
            accounts::register_doc,
        ),
        route(
            M::GET,
            "/agent/me",
            account(Protected, Api),
            accounts::me,
            accounts::me_doc,
        ),
        route(
            M::GET,
            "/api/agents",
            account(Protected, Calls),
            accounts::agents,
            accounts::agents_doc,
        ),
        route(
            M::POST,
            "/api/agents/{agentId}/disable",
            account(Protected, Calls),
            accounts::disable,
            accounts::disable_doc,
        ),
        route(
            M::POST,
            "/api/agents/{agentId}/enable",
            account(Protected, Calls),
            accounts::enable,
            accounts::enable_doc,
        ),
        route(
            M::DELETE,
            "/api/agents/{agentId}/tokens",
            account(Protected, Calls),
            accounts::revoke_agent_tokens,
            accounts::revoke_agent_tokens_doc,
        ),
        route(
            M::POST,
            "/api/tokens/revoke",
            account(Protected, Calls),
            accounts::revoke_token,
            accounts::revoke_token_doc,
        ),
        route(
            M::GET,
            "/api/ops/metrics",
            row(Public, Calls, "observability"),
            ops::metrics,
            ops::metrics_doc,
        ),
        route(
            M::GET,
            "/api/ops/crew",
            row(Public, Calls, "ops"),
            ops::crew,
            ops::crew_doc,
        ),
        route(
            M::POST,
            "/api/ops/crew/failover",
            row(Protected, Calls, "ops"),
            ops::failover,
            ops::failover_doc,
        ),
        route(
            M::POST,
            "/api/ops/crew/bootstrap",
            row(Protected, Calls, "ops"),
            ops::bootstrap,
            ops::bootstrap_doc,
        ),
        route(
            M::POST,
            "/api/ops/crew/cron",
            row(Protected, Calls, "ops"),
            ops::cron,
            ops::cron_doc,
        ),
        route(
            M::GET,
            "/api/mcp/servers",
            row(Protected, Calls, "ops"),
            ops::servers,
            ops::servers_doc,
        ),
        route(
            M::POST,
            "/api/mcp/servers",
            row(Protected, Calls, "ops"),
            ops::add_server,
            ops::add_server_doc,
        ),
        route(
            M::DELETE,
            "/api/mcp/servers/{name}",
            row(Protected, Calls, "ops"),
            ops::remove_server,
            ops::remove_server_doc,
        ),
        route(
            M::POST,
            "/api/studio/command",
            row(Protected, Calls, "studio"),
            studio::command,
            studio::command_doc,
        ),
        route(
            M::GET,
            "/api/skills",
            row(Public, Calls, "skills"),
            skills::list,
            skills::list_doc,
        ),
        route(
            M::POST,
            "/api/skills/install",
            row(Protected, Calls, "skills"),
            skills::install,
            skills::install_doc,
        ),
        route(
            M::POST,
            "/api/skills/uninstall",
            row(Protected, Calls, "skills"),
            skills::uninstall,
            skills::uninstall_doc,
        ),
        route(
            M::GET,
            "/api/skills/installed",
            row(Protected, Calls, "skills"),
            skills::installed,
            skills::installed_doc,
        ),
        route(
            M::POST,
            "/api/skills/use",
            row(Protected, Calls, "skills"),
            skills::use_capability,
            skills::use_doc,
        ),
        route(
            M::POST,
            "/api/skills/publish",
            row(Protected, Calls, "skills"),
            skills::publish,
            skills::publish_doc,
        )
        .with_body(BodyCap::Component),
        route(
            M::GET,
            "/api/audit",
            row(Protected, Calls, "governance"),
            governance::audit,
            governance::audit_doc,
        ),
        route(
            M::GET,
            "/api/approvals",
            row(Protected, Calls, "governance"),
            governance::approvals,
            governance::approvals_doc,
        ),
        route(
            M::POST,
            "/api/approvals/{id}",
            row(Protected, Calls, "governance"),
            governance::decide,
            governance::decide_doc,
        ),
        route(
            M::GET,
            "/api/traces",
            row(Protected, Calls, "observability"),
            traces::list,
            traces::list_doc,
        ),
        route(
            M::GET,
            "/api/traces/{id}",
            row(Protected, Calls, "observability"),
            traces::one,
            traces::one_doc,
        ),
        route(
            M::GET,
            "/openapi.json",
            row(Public, Api, "docs"),
            super::openapi::document,
            super::openapi::document_doc,
        ),
        route(
            M::GET,
            "/docs",
            row(Public, Api, "docs"),
            super::openapi::docs,
            super::openapi::docs_doc,
        ),
        route(
            M::POST,
            "/api/voice/transcribe",
            row(Protected, Calls, "voice"),
            voice::transcribe,
            voice::transcribe_doc,
        )
        .with_body(BodyCap::Audio),
        route(
            M::POST,
            "/api/voice/speak",
            row(Protected, Calls, "voice"),
            voice::speak,
            voice::speak_doc,
        ),
        route(
            M::GET,
            "/api/voice/status",
            row(Protected, Calls, "voice"),
            voice::status,
            voice::status_doc,
        ),
        route(
            M::GET,
            "/api/voice/stats",
            row(Protected, Calls, "voice"),
            voice::stats,
            voice::stats_doc,
        ),
        route(
            M::GET,
            "/console",
            row(Public, Api, "studio"),
            console::page,
            console::page_doc,
        ),
        route(
            M::GET,
            "/console/app.js",
            row(Public, Api, "studio"),
            console::script,
            console::script_doc,
        ),
        route(
            M::GET,
            "/console/app.css",
            row(Public, Api, "studio"),
            console::style,
            console::style_doc,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn each_method_and_path_is_routed_once() {
        let mut seen = BTreeSet::new();
        for route in table(true) {
            assert!(
                seen.insert((route.method.to_string(), route.path)),
                "{} {} twice",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn the_gate_and_probes_are_the_only_routes_open_without_credentials() {
        for route in table(true) {
            let open = route.access != Access::Protected;
            let expected_open = route.path.starts_with("/health")
                || route.path == "/metrics"
                || matches!(
                    route.path,
                    "/tools"
                        | "/openapi.json"
                        | "/docs"
                        | "/register"
                        | "/api/skills"
                        | "/console"
                        | "/console/app.js"
                        | "/console/app.css"
                )
                || route.path.starts_with("/api/sign")
                || route.path.starts_with("/api/forgot-password")
                || matches!(route.path, "/api/ops/metrics" | "/api/ops/crew");
            assert_eq!(open, expected_open, "{} {}", route.method, route.path);
            if route.access == Access::Gate {
                assert_eq!(route.charge, Charge::Auth, "{} {}", route.method, route.path);
            }
        }
        let private = table(false);
        let metrics = private.iter().find(|r| r.path == "/metrics").unwrap();
        assert_eq!(metrics.access, Access::Protected);
    }
}
