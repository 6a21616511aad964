//! The axum router: every route of the API document served so far, its status codes and bodies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::auth::{bearer, LoginLimiter, TokenError, TokenKeys};
use crate::backend::{
    Action, ActionResult, Backend, Health, HealthCheck, LeaderRoute, Lookup, Requester, ServerAction, ServerInfo, ServerRef,
};
use crate::wire::MessageView;

mod proxy_routes;

/// Largest request body accepted (login is the only route that reads one so far).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
pub struct ApiState<B> {
    pub backend: Arc<B>,
    /// The token signing key, once the manager group has replicated one.
    pub keys: std::sync::RwLock<Option<Arc<TokenKeys>>>,
    pub limiter: LoginLimiter,
    /// Client used to forward mutating requests to the leader (its own pool, no proxy).
    pub forwarder: reqwest::Client,
}

/// Header naming the node that ran a mutating request.
pub const SERVED_BY: &str = "x-replication-manager-served-by";
/// Header a client names its mutating request with, so that a retry runs it at most once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header naming the node that forwarded a mutating request to the leader.
pub const FORWARDED_BY: &str = "x-replication-manager-forwarded-by";
/// How long a forwarded action may take (a switchover waits for replicas; a reseed dumps data).
pub const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

/// A client for forwarding: no proxy, bounded connect time, long request deadline.
pub fn forwarding_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(FORWARD_TIMEOUT)
        .build()
        .unwrap_or_default()
}

pub(crate) type St<B> = State<Arc<ApiState<B>>>;

impl<B> ApiState<B> {
    /// The signing key, when available.
    pub fn keys(&self) -> Option<Arc<TokenKeys>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs the signing key.
    pub fn set_keys(&self, keys: TokenKeys) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(keys));
    }
}

/// The user a valid token names (put in request extensions by the token middleware).
#[derive(Debug, Clone)]
pub struct TokenUser(pub String);

/// The requester of a request: the token's user (empty before the token middleware ran) and
/// the node named by the forwarding header (a value that is not a node id is ignored).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Requester {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Requester, Self::Rejection> {
        let user = parts.extensions.get::<TokenUser>().map(|u| u.0.clone()).unwrap_or_default();
        let via_node = parts.headers.get(FORWARDED_BY).and_then(|v| v.to_str().ok()).and_then(|n| n.trim().parse::<u64>().ok());
        let idempotency_key = parts.headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()).map(|k| k.trim().to_string());
        Ok(Requester { user, via_node, idempotency_key })
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], body.into())
        .into_response()
}

pub(crate) fn json<T: Serialize>(v: &T) -> Response {
    Json(v).into_response()
}

pub use crate::route::{Access, UnknownNames};

/// A route of this router: its description and its handler.
pub type RouteSpec<B> = crate::route::RouteSpec<axum::routing::MethodRouter<Arc<ApiState<B>>>>;

pub(crate) const GET: &[&str] = &["GET"];
pub(crate) const GET_POST: &[&str] = &["GET", "POST"];

pub(crate) fn spec<B>(
    path: impl Into<String>,
    methods: &'static [&'static str],
    access: Access,
    mutating: bool,
    summary: &'static str,
    handler: axum::routing::MethodRouter<Arc<ApiState<B>>>,
) -> RouteSpec<B> {
    let path = path.into();
    let unknown = if path.contains("{cluster}") { UnknownNames::NotFound } else { UnknownNames::NoName };
    RouteSpec { path, methods, access, mutating, summary, unknown, handler }
}

/// Every route of the API.
pub fn route_specs<B: Backend>() -> Vec<RouteSpec<B>> {
    use Access::*;
    let mut v = vec![
        spec("/api/status", GET, Public, false, "Manager status: {\"alive\": \"running\"} once started", get(status::<B>)),
        spec("/api/login", &["POST"], Public, false, "Login with {\"username\",\"password\"}; returns {\"token\"}", post(login::<B>)),
        spec("/api/openapi.json", GET, Public, false, "This OpenAPI document", get(openapi::<B>)),
        spec("/", GET, Public, false, "The web dashboard (a single page, embedded in the binary)", get(crate::dashboard::index)),
        spec("/dashboard/{file}", GET, Public, false, "A file of the web dashboard (app.js, style.css)", get(crate::dashboard::file)),
        spec("/api/clusters/{cluster}/status", GET, Public, false, "Cluster status: running or errors", get(cluster_status::<B>))
            .documented_unknown(400, None),
        spec(
            "/api/internal/clusters/{cluster}/master-view",
            GET,
            Public,
            false,
            "How this node sees the master (asked by the leader before a failover)",
            get(master_view::<B>),
        ),
        spec("/metrics", GET, Public, false, "Prometheus metrics of this node (text format 0.0.4; no token, like other exporters)", get(metrics::<B>)),
        spec("/api/prometheus", GET, Public, false, "The Go project's per-server metrics (mysql_global_status_*, mysql_global_variables_*, mysql_slave_status_*)", get(legacy_prometheus::<B>)),
        spec("/api/clusters", GET, Token, false, "Every cluster object", get(clusters::<B>)),
        spec("/api/group", GET, Token, false, "The manager group as this node sees it", get(group::<B>)),
        spec("/api/monitor", GET, Token, false, "Manager object (status A/S, split brain, configs)", get(monitor::<B>)),
        spec("/api/clusters/{cluster}", GET, Token, false, "Cluster object", get(cluster::<B>)),
        spec("/api/clusters/{cluster}/topology/servers", GET, Token, false, "Server objects", get(topo_servers::<B>)),
        spec("/api/clusters/{cluster}/topology/master", GET, Token, false, "The master's server object or null", get(topo_master::<B>)),
        spec("/api/clusters/{cluster}/topology/slaves", GET, Token, false, "Replica server objects", get(topo_slaves::<B>)),
        spec("/api/clusters/{cluster}/topology/logs", GET, Token, false, "Cluster log lines, newest first", get(topo_logs::<B>)),
        spec("/api/clusters/{cluster}/topology/alerts", GET, Token, false, "Open errors and warnings", get(topo_alerts::<B>)),
        spec("/api/clusters/{cluster}/topology/crashes", GET, Token, false, "Failover and switchover records", get(topo_crashes::<B>)),
        spec("/api/clusters/{cluster}/settings", GET, Grant(&["cluster-settings"]), false, "Cluster settings (secrets masked)", get(settings::<B>)),
        spec("/api/clusters/{cluster}/tests", GET, Grant(&["cluster-test"]), false, "Regression scenarios that can be run", get(tests::<B>)),
        spec("/api/clusters/{cluster}/jobs", GET, Grant(&["cluster-process", "db-backup"]), false, "Jobs (backups, optimize)", get(jobs::<B>)),
        spec("/api/clusters/{cluster}/backups", GET, Grant(&["cluster-show-backups", "db-backup"]), false, "Backup jobs", get(jobs::<B>)),
        spec(
            "/api/clusters/{cluster}/actions/services",
            GET,
            Grant(&["prov-cluster"]),
            false,
            "Orchestrator agent services: [] (no opensvc or kube agent runs services here)",
            get(agent_services::<B>),
        ),
        spec("/api/clusters/{cluster}/servers/{server}/master-status", GET, Grant(&["db-replication"]), false, "SHOW MASTER STATUS of a server", get(server_master_status::<B>)),
        spec("/api/clusters/{cluster}/servers/{server}/all-slaves-status", GET, Grant(&["db-replication"]), false, "SHOW ALL SLAVES STATUS of a server", get(server_all_slaves_status::<B>)),
        spec(
            "/api/clusters/{cluster}/servers/{server}/service-opensvc",
            GET,
            Grant(&["prov-db-provision"]),
            false,
            "OpenSVC service configuration: a comment-only text (no opensvc orchestrator here)",
            get(service_opensvc),
        ),
        spec("/api/clusters/{cluster}/actions/switchover", GET_POST, Grant(&["cluster-switchover"]), true, "Switchover (optional prefmaster=host:port)", get(switchover::<B>).post(switchover::<B>))
            .documented_unknown(500, None),
        spec("/api/clusters/{cluster}/actions/failover", GET_POST, Grant(&["cluster-failover"]), true, "Failover now, electing the best candidate", get(failover::<B>).post(failover::<B>))
            .documented_unknown(500, None),
    ];
    let cluster_actions: &[(&str, &'static [&'static str], &'static str, Action)] = &[
        ("actions/reset-failover-control", &["cluster-settings"], "Reset the failover counter", Action::ResetFailoverControl),
        ("actions/replication/cleanup", &["cluster-replication"], "Remove replication from every server", Action::ReplicationCleanup),
        ("settings/reload", &["cluster-settings"], "Re-read the configuration files", Action::ReloadSettings),
        ("settings/actions/reload", &["cluster-settings"], "Re-read the configuration files (Go path)", Action::ReloadSettings),
        ("services/provision", &["prov-cluster"], "Provision every server (orchestrator commands)", Action::ServicesProvision),
        ("actions/services/provision", &["prov-cluster"], "Provision every server (document path)", Action::ServicesProvision),
        ("services/bootstrap", &["prov-cluster"], "Provision every server, then bootstrap replication", Action::ServicesBootstrap),
        ("actions/services/bootstrap", &["prov-cluster"], "Provision and bootstrap (document path)", Action::ServicesBootstrap),
        ("actions/master-physical-backup", &["db-backup"], "Physical backup of the master (job)", Action::MasterPhysicalBackup),
    ];
    for (suffix, grants, summary, action) in cluster_actions {
        let action = action.clone();
        let h = move |st: St<B>, requester: Requester, Path(c): Path<String>| {
            let action = action.clone();
            async move { action_answer(st.backend.run_action(&c, action, requester).await) }
        };
        v.push(spec(format!("/api/clusters/{{cluster}}/{suffix}"), GET_POST, Access::Grant(grants), true, summary, get(h.clone()).post(h)));
    }
    v.push(spec(
        "/api/clusters/{cluster}/actions/replication/bootstrap/{topology}",
        GET_POST,
        Grant(&["cluster-replication"]),
        true,
        "Bootstrap replication: master-slave or multi-master (resets binary logs)",
        get(bootstrap::<B>).post(bootstrap::<B>),
    )
    .documented_unknown(500, None));
    for p in ["settings/switch/{name}", "settings/actions/switch/{name}"] {
        v.push(spec(format!("/api/clusters/{{cluster}}/{p}"), GET_POST, Grant(&["cluster-settings"]), true, "Flip a boolean setting", get(switch_setting::<B>).post(switch_setting::<B>)));
    }
    for p in ["settings/set/{name}/{value}", "settings/actions/set/{name}/{value}"] {
        v.push(spec(format!("/api/clusters/{{cluster}}/{p}"), GET_POST, Grant(&["cluster-settings"]), true, "Set a setting", get(set_setting::<B>).post(set_setting::<B>)));
    }
    v.push(spec("/api/clusters/{cluster}/tests/actions/run/{test}", GET_POST, Grant(&["cluster-test"]), true, "Run a regression scenario", get(run_test::<B>).post(run_test::<B>)));
    v.push(spec("/api/clusters/{cluster}/actions/addserver/{host}/{port}", GET_POST, Grant(&["cluster-create-monitor"]), true, "Add a server to monitoring", get(add_server::<B>).post(add_server::<B>)));
    v.push(spec(
        "/api/clusters/{cluster}/servers/{server}/actions/switchover",
        GET_POST,
        Grant(&["cluster-switchover"]),
        true,
        "Switchover to this server (the Go React dashboard's call)",
        get(server_switchover::<B>).post(server_switchover::<B>),
    ));
    v.push(spec("/api/clusters/{cluster}/servers/{server}/actions/maintenance", GET_POST, Grant(&["db-maintenance"]), true, "Toggle maintenance", get(maintenance::<B>).post(maintenance::<B>)));
    v.push(spec("/api/clusters/{cluster}/servers/{server}/actions/reseed/{method}", GET_POST, Grant(&["db-restore"]), true, "Rebuild from logicalbackup, logicalmaster or physicalbackup", get(reseed::<B>).post(reseed::<B>)));
    let server_actions: &[(&str, &'static [&'static str], &'static str, ServerAction)] = &[
        ("start", &["db-start"], "Start the server (orchestrator)", ServerAction::Start),
        ("stop", &["db-stop"], "Stop the server (orchestrator)", ServerAction::Stop),
        ("provision", &["prov-db-provision"], "Provision the server (orchestrator)", ServerAction::Provision),
        ("unprovision", &["prov-db-unprovision"], "Unprovision the server (orchestrator)", ServerAction::Unprovision),
        ("backup", &["db-backup"], "Logical backup (job)", ServerAction::BackupLogical),
        ("backup-logical", &["db-backup"], "Logical backup with mariadb-dump (job)", ServerAction::BackupLogical),
        ("backup-physical", &["db-backup"], "Physical backup with mariadb-backup (job)", ServerAction::BackupPhysical),
        ("backup-error-log", &["db-backup"], "Copy of the error log (job)", ServerAction::BackupErrorLog),
        ("backup-slow-query-log", &["db-backup"], "Copy of the slow query log (job)", ServerAction::BackupSlowQueryLog),
        ("backup-slowquery-log", &["db-backup"], "Copy of the slow query log (job, Go path)", ServerAction::BackupSlowQueryLog),
        ("optimize", &["db-maintenance"], "OPTIMIZE every table (job)", ServerAction::Optimize),
        ("toogle-innodb-monitor", &["db-logs"], "Toggle innodb_status_output", ServerAction::ToggleInnodbMonitor),
        ("toogle-slow-query", &["db-logs"], "Toggle slow_query_log", ServerAction::ToggleSlowQuery),
        ("toogle-slow-query-capture", &["db-logs", "db-capture"], "Toggle capture of every query in the slow log", ServerAction::ToggleSlowQueryCapture),
        ("toogle-read-only", &["db-readonly"], "Toggle read_only", ServerAction::ToggleReadOnly),
        ("reset-master", &["db-replication"], "RESET MASTER (refused on the master)", ServerAction::ResetMaster),
        ("start-slave", &["db-replication", "db-start"], "START SLAVE", ServerAction::StartSlave),
        ("stop-slave", &["db-replication", "db-stop"], "STOP SLAVE", ServerAction::StopSlave),
        ("toggle-innodb-monitor", &["db-logs"], "Toggle innodb_status_output (Go React spelling)", ServerAction::ToggleInnodbMonitor),
        ("toggle-slow-query", &["db-logs"], "Toggle slow_query_log (Go React spelling)", ServerAction::ToggleSlowQuery),
        ("toggle-slow-query-capture", &["db-logs", "db-capture"], "Toggle slow query capture (Go React spelling)", ServerAction::ToggleSlowQueryCapture),
        ("toggle-read-only", &["db-readonly"], "Toggle read_only (Go React spelling)", ServerAction::ToggleReadOnly),
        ("skip-replication-event", &["db-replication"], "Skip one replication event and restart replication", ServerAction::SkipReplicationEvent),
    ];
    for (suffix, grants, summary, action) in server_actions {
        let action = action.clone();
        let h = move |st: St<B>, requester: Requester, Path((c, server)): Path<(String, String)>| {
            let action = action.clone();
            async move { action_answer(st.backend.run_action(&c, Action::Server { server, action }, requester).await) }
        };
        v.push(spec(
            format!("/api/clusters/{{cluster}}/servers/{{server}}/actions/{suffix}"),
            GET_POST,
            Access::Grant(grants),
            true,
            summary,
            get(h.clone()).post(h),
        ));
        if *suffix == "skip-replication-event" {
            // The document's spelling (missing '/').
            let action = ServerAction::SkipReplicationEvent;
            let h = move |st: St<B>, requester: Requester, Path((c, server)): Path<(String, String)>| {
                let action = action.clone();
                async move { action_answer(st.backend.run_action(&c, Action::Server { server, action }, requester).await) }
            };
            v.push(spec(
                "/api/clusters/{cluster}/servers/{server}/actionsskip-replication-event",
                GET_POST,
                Access::Grant(grants),
                true,
                "Skip one replication event (document spelling)",
                get(h.clone()).post(h),
            ));
        }
    }
    let infos: &[(&str, &'static [&'static str], &'static str, ServerInfo)] = &[
        ("processlist", &["db-logs", "db-show-process"], "Processlist (?limit=N)", ServerInfo::Processlist),
        ("variables", &["db-show-variables"], "Global variables", ServerInfo::Variables),
        ("status", &["db-show-status"], "Global status", ServerInfo::Status),
        ("status-delta", &["db-show-status"], "Global status per-second deltas since the previous sample", ServerInfo::StatusDelta),
        ("status-innodb", &["db-logs", "db-show-status"], "InnoDB status counters", ServerInfo::StatusInnodb),
        ("errorlog", &["db-logs"], "Error log lines (?limit=N)", ServerInfo::ErrorLog),
        ("slowlog", &["db-logs"], "Slow query log entries (?limit=N)", ServerInfo::SlowLog),
        ("slow-queries", &["db-logs"], "Slow query log entries (Go path)", ServerInfo::SlowLog),
        ("tables", &["db-show-schema"], "Tables of the user schemas", ServerInfo::Tables),
        ("vtables", &["db-show-schema"], "Tables keyed by schema.table", ServerInfo::VTables),
        ("schemas", &["db-show-schema"], "Schemas", ServerInfo::Schemas),
    ];
    for (suffix, grants, summary, info) in infos {
        let info = *info;
        let h = move |st: St<B>, Path((c, server)): Path<(String, String)>, q: axum::extract::RawQuery| async move {
            server_info(st, c, server, info, q.0).await
        };
        v.push(spec(format!("/api/clusters/{{cluster}}/servers/{{server}}/{suffix}"), GET, Access::Grant(grants), false, summary, get(h)));
    }
    // Health checks: 2.0 paths without /api, and 2.1 paths under both prefixes.
    for prefix in ["/clusters", "/api/clusters"] {
        for (suffix, check) in [
            ("is-master", HealthCheck::Master),
            ("is-slave", HealthCheck::Slave),
            ("master-status", HealthCheck::Master),
            ("slave-status", HealthCheck::Slave),
        ] {
            let by_host = get(move |s: St<B>, p: Path<(String, String, String)>| health_host_port(s, p, check));
            // The user's document: 500 `No cluster!`, and 503 for a server that is not valid.
            v.push(
                spec(format!("{prefix}/{{cluster}}/servers/{{server}}/{{port}}/{suffix}"), GET, Public, false, "Health check by host and port", by_host)
                    .documented_unknown(500, Some(503)),
            );
            // Under /api the by-name master-status is the protected binlog-status route.
            if !(prefix == "/api/clusters" && suffix == "master-status") {
                let by_name = get(move |s: St<B>, p: Path<(String, String)>| health_by_name(s, p, check));
                v.push(
                    spec(format!("{prefix}/{{cluster}}/servers/{{server}}/{suffix}"), GET, Public, false, "Health check by server id or host:port", by_name)
                        .documented_unknown(500, Some(503)),
                );
            }
        }
    }
    v.extend(proxy_routes::route_specs::<B>());
    v
}

/// Builds the router over `state` from [`route_specs`].
pub fn router<B: Backend>(state: Arc<ApiState<B>>) -> Router {
    let mut public = Router::new();
    let mut protected = Router::new();
    let mut mutating = Router::new();
    let mut grants = std::collections::HashMap::new();
    let mut unknown = std::collections::HashMap::new();
    for s in route_specs::<B>() {
        if let Access::Grant(g) = s.access {
            grants.insert(s.path.clone(), g);
        }
        unknown.insert(s.path.clone(), s.unknown);
        match (s.access, s.mutating) {
            (Access::Public, _) => public = public.route(&s.path, s.handler),
            (_, true) => mutating = mutating.route(&s.path, s.handler),
            (_, false) => protected = protected.route(&s.path, s.handler),
        }
    }
    let grants = Arc::new(grants);
    let names = middleware::from_fn_with_state((state.clone(), Arc::new(unknown)), require_known_names::<B>);
    // Layers added later run first: token, then grant, then (mutating) forward or run here,
    // then the unknown-name check on the node that runs the request.
    let public = public.route_layer(names.clone());
    let protected = protected.route_layer(names.clone());
    let mutating = mutating
        .route_layer(names)
        .route_layer(middleware::from_fn_with_state(state.clone(), forward_to_leader::<B>));
    let protected = protected
        .merge(mutating)
        .route_layer(middleware::from_fn_with_state((state.clone(), grants), require_grant::<B>))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token::<B>));
    public
        .merge(protected)
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404 page not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(cors))
        .layer(middleware::from_fn_with_state(state.clone(), record_request::<B>))
        .with_state(state)
}

/// Counts every answered request by route template, method and status, with its latency.
async fn record_request<B: Backend>(State(st): St<B>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    st.backend.record_request(&route, &method, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

/// The Prometheus text format's content type (version 0.0.4).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics<B: Backend>(State(st): St<B>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT))], st.backend.metrics()).into_response()
}

async fn legacy_prometheus<B: Backend>(State(st): St<B>) -> Response {
    let body = st.backend.legacy_prometheus().await;
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT))], body).into_response()
}

async fn openapi<B: Backend>() -> Response {
    json(&crate::openapi::document(&route_specs::<B>()))
}

async fn cors(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

async fn require_token<B: Backend>(State(st): St<B>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(keys) = st.keys() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "The manager group has not replicated a token signing key yet (no leader): retry");
    };
    let checked = bearer(header).and_then(|t| keys.verify(t)).and_then(|claims| {
        if st.backend.user_exists(&claims.user.name) {
            Ok(claims)
        } else {
            Err(TokenError::UnknownUser(claims.user.name))
        }
    });
    match checked {
        Ok(claims) => {
            req.extensions_mut().insert(TokenUser(claims.user.name));
            next.run(req).await
        }
        Err(e) => text(StatusCode::UNAUTHORIZED, format!("Unauthorised access to this resource: {e}")),
    }
}

/// Runs a mutating request here when this node leads; otherwise forwards it to the leader and
/// returns the leader's answer unchanged, with headers naming who served and who forwarded it.
async fn forward_to_leader<B: Backend>(State(st): St<B>, req: Request, next: Next) -> Response {
    let me = st.backend.node_id().to_string();
    let mut resp = match st.backend.leader_route() {
        // The handler takes the requester from the token's user and the forwarding header.
        LeaderRoute::Local => next.run(req).await,
        LeaderRoute::Unknown => {
            return text(StatusCode::SERVICE_UNAVAILABLE, "No leader in the manager group: the request was not run; retry when a leader is elected");
        }
        LeaderRoute::Remote { node_id, http_addr } => {
            if req.headers().contains_key(FORWARDED_BY) {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Forwarded request reached node {me}, which is not the leader (leader is {node_id}): leadership is changing, retry"),
                );
            }
            let mut r = forward(&st, req, node_id, &http_addr).await;
            if let Ok(v) = HeaderValue::from_str(&me) {
                r.headers_mut().insert(FORWARDED_BY, v);
            }
            return r;
        }
    };
    if let Ok(v) = HeaderValue::from_str(&me) {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    resp
}

async fn forward<B: Backend>(st: &ApiState<B>, req: Request, leader: u64, http_addr: &str) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{http_addr}{path}");
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    };
    let mut out = st.forwarder.request(method, &url).header(FORWARDED_BY, st.backend.node_id().to_string()).body(body.to_vec());
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, header::HeaderName::from_static(IDEMPOTENCY_KEY)] {
        if let Some(v) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            out = out.header(name.as_str(), v);
        }
    }
    tracing::info!(%url, leader, "forwarding a mutating request to the leader");
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Leader node {leader} ({http_addr}) did not answer: {e}; the request may or may not have run there"),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (k, v) in answer.headers() {
        if let (Ok(k), Ok(v)) = (header::HeaderName::from_bytes(k.as_str().as_bytes()), HeaderValue::from_bytes(v.as_bytes())) {
            if k != header::TRANSFER_ENCODING && k != header::CONNECTION && k != header::CONTENT_LENGTH {
                headers.insert(k, v);
            }
        }
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("Reading the leader's answer failed: {e}")),
    };
    (status, headers, bytes).into_response()
}

/// How this node sees the master of a cluster (asked by the leader before a failover).
async fn master_view<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.master_view(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn group<B: Backend>(State(st): St<B>) -> Response {
    json(&st.backend.group())
}

type GrantMap = Arc<std::collections::HashMap<String, &'static [&'static str]>>;

/// Checks the route's grants for the token's user: 403 `No valid ACL`.
async fn require_grant<B: Backend>(
    State((st, grants)): State<(Arc<ApiState<B>>, GrantMap)>,
    matched: Option<axum::extract::MatchedPath>,
    params: axum::extract::RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let needed: &[&str] = matched.and_then(|m| grants.get(m.as_str()).copied()).unwrap_or(&[]);
    if needed.is_empty() {
        return next.run(req).await;
    }
    let user = req.extensions().get::<TokenUser>().map(|u| u.0.clone()).unwrap_or_default();
    let cluster = params.iter().find(|(k, _)| *k == "cluster").map(|(_, v)| v.to_string());
    if needed.iter().any(|g| st.backend.has_grant(cluster.as_deref(), &user, g)) {
        next.run(req).await
    } else {
        tracing::info!(%user, path = %req.uri().path(), "ACL check failed");
        text(StatusCode::FORBIDDEN, "No valid ACL")
    }
}

type UnknownMap = Arc<std::collections::HashMap<String, UnknownNames>>;

/// Answers 404 for a cluster, or a server of a known cluster, that the path names and the
/// backend does not know, before the handler runs. Routes whose answers to unknown names the
/// user's document fixes ([`UnknownNames::Documented`]) are left to their handler.
async fn require_known_names<B: Backend>(
    State((st, unknown)): State<(Arc<ApiState<B>>, UnknownMap)>,
    matched: Option<axum::extract::MatchedPath>,
    params: axum::extract::RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let template = matched.as_ref().map(|m| m.as_str()).unwrap_or_default();
    if unknown.get(template) != Some(&UnknownNames::NotFound) {
        return next.run(req).await;
    }
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let Some(cluster) = param("cluster") else { return next.run(req).await };
    if !st.backend.cluster_names().contains(&cluster) {
        tracing::debug!(%cluster, path = %req.uri().path(), "unknown cluster");
        return text(StatusCode::NOT_FOUND, format!("Unknown cluster: {cluster}"));
    }
    if let Some(server) = param("server") {
        let port = param("port").filter(|_| template.contains("{server}/{port}"));
        let (lookup, shown) = match &port {
            Some(p) => (st.backend.server_lookup(&cluster, ServerRef::HostPort(&server, p)), format!("{server}:{p}")),
            None => (st.backend.server_lookup(&cluster, ServerRef::Name(&server)), server.clone()),
        };
        match lookup {
            Lookup::Found(()) => {}
            Lookup::NoCluster => return text(StatusCode::NOT_FOUND, format!("Unknown cluster: {cluster}")),
            Lookup::NoServer => {
                tracing::debug!(%cluster, server = %shown, path = %req.uri().path(), "unknown server");
                return text(StatusCode::NOT_FOUND, format!("Unknown server: {shown} (cluster {cluster})"));
            }
        }
    }
    next.run(req).await
}

async fn status<B: Backend>(State(st): St<B>) -> Response {
    let body = if st.backend.is_started() { r#"{"alive": "running"}"# } else { r#"{"alive": "starting"}"# };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(serde::Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login<B: Backend>(State(st): St<B>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<LoginRequest>(&body) else {
        return text(StatusCode::FORBIDDEN, "Error in request");
    };
    if !st.limiter.allowed(&req.username) {
        tracing::warn!(user = %req.username, "3 authentication errors for the user, please try again in 3 minutes");
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let Some(user) = st.backend.authenticate(&req.username, &req.password) else {
        st.limiter.failed(&req.username);
        tracing::info!(user = %req.username, "API login refused: invalid credentials");
        return text(StatusCode::FORBIDDEN, "Invalid credentials");
    };
    st.limiter.succeeded(&req.username);
    let Some(keys) = st.keys() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "The manager group has not replicated a token signing key yet (no leader): retry");
    };
    let token = match keys.issue(&user.name, user.token_ttl) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "signing a token failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Error while signing the token");
        }
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return text(StatusCode::OK, token);
    }
    json(&crate::wire::TokenView { token })
}

async fn cluster_status<B: Backend>(State(st): St<B>, Path(cluster): Path<String>) -> Response {
    match st.backend.cluster_is_failable(&cluster) {
        None => text(StatusCode::BAD_REQUEST, format!("No cluster found : {cluster}")),
        Some(ok) => {
            let body = if ok { r#"{"alive": "running"}"# } else { r#"{"alive": "errors"}"# };
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

fn health_answer(h: Health, check: HealthCheck) -> Response {
    let role = match check {
        HealthCheck::Master => "Master",
        HealthCheck::Slave => "Slave",
    };
    match h {
        Health::NoCluster => text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster!"),
        Health::Valid => text(StatusCode::OK, format!("200 -Valid {role}!")),
        Health::NotValid => text(StatusCode::SERVICE_UNAVAILABLE, format!("503 -Not a Valid {role}!")),
        Health::NotFound => text(StatusCode::SERVICE_UNAVAILABLE, "503 -Node not Found!"),
    }
}

async fn health_by_name<B: Backend>(State(st): St<B>, Path((c, s)): Path<(String, String)>, check: HealthCheck) -> Response {
    let h = match st.backend.health(&c, ServerRef::Name(&s), check) {
        // By name, an unknown server is simply not a valid one (document: 503 body).
        Health::NotFound => Health::NotValid,
        other => other,
    };
    health_answer(h, check)
}

async fn health_host_port<B: Backend>(
    State(st): St<B>,
    Path((c, host, port)): Path<(String, String, String)>,
    check: HealthCheck,
) -> Response {
    health_answer(st.backend.health(&c, ServerRef::HostPort(&host, &port), check), check)
}

pub(crate) fn no_cluster() -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster")
}

async fn clusters<B: Backend>(State(st): St<B>) -> Response {
    let all: Vec<_> = st.backend.cluster_names().iter().filter_map(|n| st.backend.cluster(n)).collect();
    json(&all)
}

async fn cluster<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.cluster(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn monitor<B: Backend>(State(st): St<B>, Extension(user): Extension<TokenUser>) -> Response {
    tracing::debug!(user = %user.0, "monitor requested");
    json(&st.backend.monitor())
}

async fn topo_servers<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.servers(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn topo_master<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.master(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn topo_slaves<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.slaves(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn topo_logs<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.logs(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn topo_alerts<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.alerts(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn topo_crashes<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend
        .crashes(&c)
        .map_or_else(|| text(StatusCode::INTERNAL_SERVER_ERROR, "Cluster Not Found"), |v| json(&v))
}

fn server_read<B: Backend, T: Serialize>(
    st: &ApiState<B>,
    c: &str,
    s: &str,
    pick: impl FnOnce(crate::wire::ServerView) -> T,
) -> Response {
    match st.backend.live_server(c, s) {
        Lookup::NoCluster => no_cluster(),
        Lookup::NoServer => text(StatusCode::INTERNAL_SERVER_ERROR, "503 -Not a Valid Server!"),
        Lookup::Found(v) => json(&pick(v)),
    }
}

async fn server_master_status<B: Backend>(State(st): St<B>, Path((c, s)): Path<(String, String)>) -> Response {
    server_read(&st, &c, &s, |v| v.master_status)
}

async fn server_all_slaves_status<B: Backend>(State(st): St<B>, Path((c, s)): Path<(String, String)>) -> Response {
    server_read(&st, &c, &s, |v| v.replications)
}

pub(crate) fn action_answer(r: ActionResult) -> Response {
    match r {
        Ok(msg) => text(StatusCode::OK, msg),
        Err(e) => text(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.message),
    }
}

/// `prefmaster` from the query string or an urlencoded form body (as the Go CLI sends it).
fn prefmaster(query: Option<&str>, body: &[u8]) -> Option<String> {
    let from = |s: &str| {
        s.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "prefmaster").then(|| percent_decode(v))
        })
    };
    query.and_then(from).or_else(|| std::str::from_utf8(body).ok().and_then(from)).filter(|v| !v.is_empty())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn switchover<B: Backend>(State(st): St<B>, requester: Requester, Path(c): Path<String>, req: Request) -> Response {
    let query = req.uri().query().map(str::to_string);
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.unwrap_or_default();
    let prefmaster = prefmaster(query.as_deref(), &body);
    tracing::info!(cluster = %c, ?prefmaster, "Rest API receive switchover request");
    action_answer(st.backend.run_action(&c, Action::Switchover { prefmaster }, requester).await)
}

/// A switchover to the server the path names (id or `host:port`).
async fn server_switchover<B: Backend>(State(st): St<B>, requester: Requester, Path((c, server)): Path<(String, String)>) -> Response {
    tracing::info!(cluster = %c, %server, "Rest API receive switchover request to a server");
    action_answer(st.backend.run_action(&c, Action::Switchover { prefmaster: Some(server) }, requester).await)
}

async fn failover<B: Backend>(State(st): St<B>, requester: Requester, Path(c): Path<String>) -> Response {
    tracing::info!(cluster = %c, "Rest API receive failover request");
    action_answer(st.backend.run_action(&c, Action::Failover, requester).await)
}


async fn bootstrap<B: Backend>(State(st): St<B>, requester: Requester, Path((c, topology)): Path<(String, String)>) -> Response {
    action_answer(st.backend.run_action(&c, Action::Bootstrap { topology }, requester).await)
}


async fn maintenance<B: Backend>(State(st): St<B>, requester: Requester, Path((c, server)): Path<(String, String)>) -> Response {
    action_answer(st.backend.run_action(&c, Action::ToggleMaintenance { server }, requester).await)
}


/// Largest `limit` accepted by server-info routes.
pub const MAX_LIMIT: usize = 10_000;

/// `limit=N` from a query string (default 1000, at most [`MAX_LIMIT`]).
fn parse_limit(query: Option<&str>) -> Result<usize, String> {
    let Some(q) = query else { return Ok(1000) };
    match q.split('&').find_map(|kv| kv.strip_prefix("limit=")) {
        None => Ok(1000),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("Bad parameter limit={v}: expected 1 to {MAX_LIMIT}")),
        },
    }
}

async fn server_info<B: Backend>(st: St<B>, c: String, server: String, info: ServerInfo, query: Option<String>) -> Response {
    let limit = match parse_limit(query.as_deref()) {
        Ok(l) => l,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    match st.backend.server_info(&c, &server, info, limit).await {
        Ok(v) => json(&v),
        // The information is not kept, or not readable from the manager host (a log file of a
        // remote server, log_output=NONE): the server's configuration, not a missing feature.
        Err(e) if e.status == 501 => text(StatusCode::CONFLICT, e.message),
        Err(e) => text(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.message),
    }
}

async fn settings<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.settings(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn tests<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.tests(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn jobs<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.jobs(&c).map_or_else(no_cluster, |v| json(&v))
}

async fn switch_setting<B: Backend>(State(st): St<B>, requester: Requester, Path((c, name)): Path<(String, String)>) -> Response {
    action_answer(st.backend.run_action(&c, Action::SwitchSetting { name }, requester).await)
}

async fn set_setting<B: Backend>(
    State(st): St<B>,
    requester: Requester,
    Path((c, name, value)): Path<(String, String, String)>,
) -> Response {
    action_answer(st.backend.run_action(&c, Action::SetSetting { name, value: percent_decode(&value) }, requester).await)
}

async fn run_test<B: Backend>(State(st): St<B>, requester: Requester, Path((c, name)): Path<(String, String)>) -> Response {
    match st.backend.run_action(&c, Action::RunTest { name }, requester).await {
        // The result is a JSON test report.
        Ok(report) => ([(header::CONTENT_TYPE, "application/json")], report).into_response(),
        Err(e) => text(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.message),
    }
}

async fn add_server<B: Backend>(
    State(st): St<B>,
    requester: Requester,
    Path((c, host, port)): Path<(String, String, String)>,
) -> Response {
    let r = st.backend.run_action(&c, Action::AddServer { host, port }, requester).await;
    // The Go project answers this route in JSON.
    match r {
        Ok(_) => json(&MessageView { msg: "Monitor added".to_string() }),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(MessageView { msg: e.message }),
        )
            .into_response(),
    }
}

async fn reseed<B: Backend>(
    State(st): St<B>,
    requester: Requester,
    Path((c, server, method)): Path<(String, String, String)>,
) -> Response {
    let action = Action::Server { server, action: ServerAction::Reseed(method) };
    action_answer(st.backend.run_action(&c, action, requester).await)
}

/// Services run for this cluster by an orchestrator agent (opensvc, kube): this manager has no
/// such agent, so there are none.
async fn agent_services<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.cluster_is_failable(&c).map_or_else(no_cluster, |_| json(&Vec::<crate::wire::NotReported>::new()))
}

/// The opensvc service configuration of a server: no server is an opensvc service here, so the
/// answer is a configuration made of comments only, saying so (the server is a known one: the
/// router checked the names).
async fn service_opensvc(Path((_, s)): Path<(String, String)>) -> Response {
    text(
        StatusCode::OK,
        format!("# {s}: no opensvc service.\n# This manager does not use the opensvc orchestrator: the server is not an opensvc service and has no service configuration.\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(1000));
        assert_eq!(parse_limit(Some("limit=5")), Ok(5));
        assert_eq!(parse_limit(Some("x=1&limit=10000")), Ok(10000));
        assert!(parse_limit(Some("limit=0")).is_err());
        assert!(parse_limit(Some("limit=abc")).is_err());
        assert!(parse_limit(Some("limit=10001")).is_err());
    }

    #[test]
    fn prefmaster_from_query_or_form() {
        assert_eq!(prefmaster(Some("prefmaster=127.0.0.1%3A3311"), b""), Some("127.0.0.1:3311".to_string()));
        assert_eq!(prefmaster(None, b"a=1&prefmaster=db2:3306"), Some("db2:3306".to_string()));
        assert_eq!(prefmaster(Some("x=1"), b""), None);
        assert_eq!(prefmaster(Some("prefmaster="), b""), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
