//! `ManagerNode`: wires the configuration, one monitor per cluster and the API listeners, and
//! implements the API's [`Backend`] over the monitors' shared state.

pub mod json_log;
pub mod proxy_views;
pub mod metrics;
pub mod tls;
pub mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replication_manager_api::wire::{
    AlertsView, ClusterView, CrashView, GroupView, JobView, MasterView, MonitorConfigView, MonitorView, ServerInfoView,
    ServerView, SettingsView,
};
use replication_manager_api::{
    acl, Action, ActionError, ActionResult, ApiState, AuthUser, Backend, Health, HealthCheck, LeaderRoute, LoginLimiter, Lookup,
    Requester, ServerInfo, ServerRef, TokenKeys,
};
use tokio::sync::watch;

use crate::config::{Config, HostPort};
use crate::config::NodeRole;
use crate::failover::error::{ErrorKind, FailoverError};
use crate::group::ManagerGroup;
use crate::cluster::state::{ClusterState, SharedCluster};
use crate::monitor::{self, ClusterCommand, ClusterMonitor};
use crate::cluster::topology::ServerState;
use views::GroupStatus;

/// The manager's view of every cluster, shared with the API.
pub struct NodeBackend {
    config: Config,
    clusters: BTreeMap<String, Arc<SharedCluster>>,
    commands: BTreeMap<String, tokio::sync::mpsc::Sender<ClusterCommand>>,
    started: AtomicBool,
    hostname: String,
    uuid: String,
    group: Arc<ManagerGroup>,
    jobs: Arc<crate::actions::jobs::JobRegistry>,
    status_cache: Arc<crate::actions::server_info::StatusCache>,
    /// `/metrics`: the cluster counters and the API's.
    metrics: Arc<metrics::NodeMetrics>,
}

impl NodeBackend {
    fn cluster_state(&self, name: &str) -> Option<&Arc<SharedCluster>> {
        self.clusters.get(name)
    }

    /// Active/standby and split-brain, from the manager group.
    fn group_status(&self) -> GroupStatus {
        let s = self.group.status();
        GroupStatus {
            active: s.active,
            split_brain: s.split_brain,
            lost_majority: s.lost_quorum,
            failed_arbitrator: self.group.arbitrator_down(),
        }
    }

    fn working_dir(&self, cluster: &str) -> String {
        self.config.server.datadir.join(cluster).display().to_string()
    }
}


/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The server a route names: by id or `host:port`, or by host and port.
fn server_index(st: &ClusterState, server: ServerRef<'_>) -> Option<usize> {
    match server {
        ServerRef::Name(n) => st.find_server(n),
        ServerRef::HostPort(h, p) => {
            p.parse::<u16>().ok().and_then(|port| st.servers.iter().position(|s| s.addr == HostPort { host: h.to_string(), port }))
        }
    }
}

fn health_of(st: &ClusterState, idx: usize, check: HealthCheck) -> Health {
    let srv = &st.servers[idx];
    let Some(snap) = &srv.snapshot else { return Health::NotValid };
    if srv.maintenance || srv.state.is_down() || !srv.is_up() {
        return Health::NotValid;
    }
    let valid = match check {
        HealthCheck::Master => {
            !st.in_failover
                && st.master == Some(idx)
                && st.intent_index().is_none_or(|i| i == idx)
                && srv.state == ServerState::Master
                && !snap.read_only
        }
        HealthCheck::Slave => {
            srv.state == ServerState::Slave
                && snap.managed_replication(&st.config.replication_source_name).is_some_and(|r| r.is_running())
        }
    };
    if valid { Health::Valid } else { Health::NotValid }
}

impl Backend for NodeBackend {
    fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    fn cluster_names(&self) -> Vec<String> {
        self.clusters.keys().cloned().collect()
    }

    fn cluster(&self, name: &str) -> Option<ClusterView> {
        let c = self.cluster_state(name)?;
        Some(views::cluster_view(&c.read(), &self.working_dir(name), self.group_status(), &self.jobs.list(name)))
    }

    fn cluster_is_failable(&self, name: &str) -> Option<bool> {
        Some(self.cluster_state(name)?.read().is_failable())
    }

    fn servers(&self, cluster: &str) -> Option<Vec<ServerView>> {
        let st = self.cluster_state(cluster)?.read();
        Some((0..st.servers.len()).map(|i| views::server_view(&st, i)).collect())
    }

    fn master(&self, cluster: &str) -> Option<Option<ServerView>> {
        let st = self.cluster_state(cluster)?.read();
        Some(st.master.map(|m| views::server_view(&st, m)))
    }

    fn slaves(&self, cluster: &str) -> Option<Vec<ServerView>> {
        let st = self.cluster_state(cluster)?.read();
        let source = st.config.replication_source_name.clone();
        Some(
            (0..st.servers.len())
                .filter(|&i| Some(i) != st.master)
                .filter(|&i| {
                    st.servers[i].snapshot.as_ref().is_some_and(|s| s.managed_replication(&source).is_some())
                })
                .map(|i| views::server_view(&st, i))
                .collect(),
        )
    }

    fn logs(&self, cluster: &str) -> Option<Vec<String>> {
        let st = self.cluster_state(cluster)?.read();
        Some(st.log.entries().map(|e| e.line()).collect())
    }

    fn alerts(&self, cluster: &str) -> Option<AlertsView> {
        Some(views::alerts_view(&self.cluster_state(cluster)?.read().problems))
    }

    fn crashes(&self, cluster: &str) -> Option<Vec<CrashView>> {
        let st = self.cluster_state(cluster)?.read();
        Some(st.crashes.iter().map(views::crash_view).collect())
    }

    fn monitor(&self) -> MonitorView {
        let group = self.group_status();
        let mut logs = crate::cluster::log::ClusterLog::default();
        let mut confs = BTreeMap::new();
        let mut acl_source = String::new();
        for (name, c) in &self.clusters {
            let st = c.read();
            confs.insert(name.clone(), views::settings_view(&st.config));
            if acl_source.is_empty() {
                acl_source = st.config.api_acl_allow.clone();
            }
            // Manager-wide log: the newest entries of every cluster.
            for e in st.log.entries().take(20).collect::<Vec<_>>().into_iter().rev() {
                logs.push(&e.group, e.level, "cluster", e.text.as_str());
            }
        }
        MonitorView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            full_version: format!("{} (rust)", env!("CARGO_PKG_VERSION")),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            memprofile: String::new(),
            cpuprofile: String::new(),
            agents: None,
            uuid: self.uuid.clone(),
            hostname: self.hostname.clone(),
            status: if group.active { "A" } else { "S" }.to_string(),
            spit_brain: group.split_brain,
            clusters: self.cluster_names(),
            tests: crate::actions::operations::TESTS.iter().map(|t| t.to_string()).collect(),
            config: MonitorConfigView {
                api_bind: self.config.server.api_bind.clone(),
                api_credentials: "*:*".to_string(),
                api_port: self.config.server.api_port,
                http_bind_address: self.config.server.http_bind_address.clone(),
                http_port: self.config.server.http_port,
                log_level: self.config.server.log_level.clone(),
                monitoring_datadir: self.config.server.datadir.display().to_string(),
            },
            logs: views::http_log(&logs),
            service_plans: None,
            service_orchestrators: vec![views::local_orchestrator(crate::actions::orchestrator::available())],
            service_acl: views::service_acl(),
            service_repos: Vec::new(),
            service_tarballs: Vec::new(),
            service_fs: views::none_of(views::FS_KINDS),
            service_vm: views::none_of(views::VM_KINDS),
            service_disk: views::disk_kinds(),
            service_pool: views::none_of(views::POOL_KINDS),
            // Logical backups use mariadb-dump (mysqldump), physical ones mariadb-backup.
            backup_logical_list: [("dumpling", false), ("internal", false), ("mydumper", false), ("mysqldump", true)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            backup_physical_list: [("mariabackup", true), ("xtrabackup", false)].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            confs,
        }
    }

    fn health(&self, cluster: &str, server: ServerRef<'_>, check: HealthCheck) -> Health {
        let Some(c) = self.cluster_state(cluster) else { return Health::NoCluster };
        let st = c.read();
        match server_index(&st, server) {
            None => Health::NotFound,
            // The same answer on every node: the group's decided master, seen healthy here.
            Some(i) => health_of(&st, i, check),
        }
    }

    fn role_health(&self, cluster: &str, server: ServerRef<'_>, check: replication_manager_api::RoleCheck) -> Health {
        let Some(c) = self.cluster_state(cluster) else { return Health::NoCluster };
        let st = c.read();
        server_index(&st, server).map_or(Health::NotFound, |i| proxy_views::role_health(&st, i, check))
    }

    fn proxies(&self, cluster: &str) -> Option<Vec<replication_manager_api::proxy_wire::ProxyView>> {
        Some(proxy_views::proxy_views(&self.cluster_state(cluster)?.read()))
    }

    fn live_server(&self, cluster: &str, server: &str) -> Lookup<ServerView> {
        let Some(c) = self.cluster_state(cluster) else { return Lookup::NoCluster };
        let st = c.read();
        match st.find_server(server) {
            Some(i) if st.servers[i].is_up() && !st.servers[i].state.is_down() => Lookup::Found(views::server_view(&st, i)),
            _ => Lookup::NoServer,
        }
    }

    fn authenticate(&self, user: &str, password: &str) -> Option<AuthUser> {
        self.clusters.values().find_map(|c| {
            let st = c.read();
            st.config.api_users.iter().find(|u| u.user == user && same_secret(&u.password, password)).map(|_| AuthUser {
                name: user.to_string(),
                token_ttl: Duration::from_secs(st.config.api_token_timeout_hours.saturating_mul(3600)),
            })
        })
    }

    fn user_exists(&self, user: &str) -> bool {
        self.clusters.values().any(|c| c.read().config.api_users.iter().any(|u| u.user == user))
    }

    fn has_grant(&self, cluster: Option<&str>, user: &str, grant: &str) -> bool {
        let allowed = |c: &Arc<SharedCluster>| {
            let st = c.read();
            st.config.api_users.iter().any(|u| u.user == user)
                && acl::grants_for(&st.config.api_acl_allow, user).get(grant).copied().unwrap_or(false)
        };
        match cluster {
            // An unknown cluster: let the handler answer its own "No cluster" error.
            Some(c) => self.clusters.get(c).is_none_or(allowed),
            None => self.clusters.values().any(allowed),
        }
    }

    fn server_info(
        &self,
        cluster: &str,
        server: &str,
        info: ServerInfo,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<ServerInfoView, ActionError>> + Send {
        let target = match self.cluster_state(cluster) {
            None => Err(ActionError::new(500, "No cluster")),
            Some(c) => {
                let st = c.read();
                match st.find_server(server) {
                    Some(i) if st.servers[i].is_up() && !st.servers[i].state.is_down() => Ok((
                        st.servers[i].addr.clone(),
                        st.config.db_credential.clone(),
                        st.config.connect_timeout.max(Duration::from_secs(2)) * 2,
                    )),
                    _ => Err(ActionError::new(500, "503 -Not a Valid Server!")),
                }
            }
        };
        let cache = self.status_cache.clone();
        async move {
            use crate::actions::server_info::{read_info, InfoError, InfoRequest};
            let (addr, cred, timeout) = target?;
            let name = addr.to_string();
            let req = InfoRequest { addr: &addr, cred: &cred, timeout, limit, server_name: &name };
            read_info(info, &req, &cache).await.map_err(|e| match e {
                InfoError::NotAvailable(m) => ActionError::new(501, m),
                InfoError::Failed(m) => ActionError::new(500, m),
            })
        }
    }

    fn settings(&self, cluster: &str) -> Option<SettingsView> {
        Some(views::settings_view(&self.cluster_state(cluster)?.read().config))
    }

    fn tests(&self, cluster: &str) -> Option<Vec<String>> {
        self.cluster_state(cluster)?;
        Some(crate::actions::operations::TESTS.iter().map(|t| t.to_string()).collect())
    }

    fn jobs(&self, cluster: &str) -> Option<Vec<JobView>> {
        self.cluster_state(cluster)?;
        Some(self.jobs.list(cluster).iter().map(views::job_view).collect())
    }

    fn master_view(&self, cluster: &str) -> Option<MasterView> {
        let st = self.cluster_state(cluster)?.read();
        let (master, state, fail_count) = match st.master {
            Some(m) => (st.servers[m].addr.to_string(), st.servers[m].state.to_string(), st.servers[m].fail_count),
            None => (String::new(), String::new(), 0),
        };
        let death = crate::failover::plan::master_death(&st).unwrap_or_default();
        Some(MasterView { fail_count, master, role: self.group.role().as_str().to_string(), state, death })
    }

    fn node_id(&self) -> u64 {
        self.group.node_id()
    }

    fn leader_route(&self) -> LeaderRoute {
        self.group.leader_route()
    }

    fn group(&self) -> GroupView {
        self.group.view()
    }

    fn run_action(
        &self,
        cluster: &str,
        action: Action,
        requester: Requester,
    ) -> impl std::future::Future<Output = ActionResult> + Send {
        let tx = self.commands.get(cluster).cloned();
        let key = requester.idempotency_key.clone();
        let requester = requester.to_string();
        async move {
            // One action at a time per cluster is the monitor's rule (409 for a second one);
            // the action runs as its own task, so it ends even if this request goes away.
            let Some(tx) = tx else { return Err(ActionError::new(500, "No Cluster")) };
            monitor::request(&tx, action, requester, key).await.map_err(http_error)
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode(&self.clusters, &self.group.status())
    }

    fn legacy_prometheus(&self) -> impl std::future::Future<Output = String> + Send {
        let targets: Vec<metrics::LegacyTarget> = self.clusters.values().flat_map(|c| metrics::legacy_targets(&c.read())).collect();
        let cache = self.status_cache.clone();
        async move { metrics::legacy_prometheus(targets, &cache).await }
    }

    fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.metrics.record_request(route, method, status, seconds);
    }
}

/// The API edge: the HTTP status and text of a failed operation. The only place where the
/// manager's error kinds become status codes.
fn http_error(e: FailoverError) -> ActionError {
    let status = match e.kind {
        ErrorKind::BadRequest => 400,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::NotAvailable => 501,
        ErrorKind::NotLeader => 503,
        ErrorKind::Timeout => 504,
        ErrorKind::Failed => 500,
    };
    if status >= 500 {
        tracing::warn!(status, error = %e.with_context(), "action failed");
    }
    ActionError::new(status, e.message)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Runs a manager node until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let datadir = config.server.datadir.clone();
    std::fs::create_dir_all(&datadir).with_context(|| format!("creating monitoring-datadir {}", datadir.display()))?;
    let group = ManagerGroup::start(&config.server).await?;
    let jobs = crate::actions::jobs::JobRegistry::open(&datadir)?;
    let counters = Arc::new(crate::cluster::counters::ClusterCounters::default());
    let (alerts, alert_dispatcher) = crate::actions::alerts::channel(counters.clone(), hostname());
    let env = Arc::new(crate::monitor::MonitorEnv {
        datadir: datadir.clone(),
        config_source: config.source.clone(),
        cli_overrides: config.cli_overrides.clone(),
        jobs: jobs.clone(),
        counters: counters.clone(),
        alerts,
    });

    let mut clusters = BTreeMap::new();
    let mut commands = BTreeMap::new();
    let mut receivers = Vec::new();
    for c in &config.clusters {
        let mut state = ClusterState::new(c.clone());
        state.sync_replicated(crate::group::Coordinator::load(group.as_ref(), &c.name));
        clusters.insert(c.name.clone(), SharedCluster::new(state));
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        commands.insert(c.name.clone(), tx);
        receivers.push((c.name.clone(), rx));
    }
    let backend = Arc::new(NodeBackend {
        config: config.clone(),
        clusters,
        commands,
        started: AtomicBool::new(false),
        hostname: hostname(),
        uuid: format!("{:032x}", rand::random::<u128>()),
        group: group.clone(),
        jobs,
        status_cache: Arc::new(crate::actions::server_info::StatusCache::default()),
        metrics: Arc::new(metrics::NodeMetrics::new(counters)),
    });
    // Peers ask this node's view of a master (failure vote) over the raft channel.
    let viewer = Arc::downgrade(&backend);
    group.serve_master_views(move |cluster| viewer.upgrade()?.master_view(cluster).and_then(|v| serde_json::to_value(v).ok()));
    let state = Arc::new(ApiState {
        backend: backend.clone(),
        keys: std::sync::RwLock::new(None),
        limiter: LoginLimiter::default(),
        forwarder: replication_manager_api::router::forwarding_client(),
    });
    let app = replication_manager_api::router(state.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(alert_dispatcher.run(stop_rx.clone()));
    {
        let g = group.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                g.check_arbitrators().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
    if group.role() == NodeRole::Manager {
        for (name, rx) in receivers {
            let Some(shared) = backend.clusters.get(&name) else { continue };
            let monitor = ClusterMonitor::new(shared.clone(), rx, group.clone(), env.clone());
            tasks.spawn(monitor.run(stop_rx.clone()));
        }
    } else {
        tracing::info!("arbitrator: no database is probed or touched by this node");
        let g = group.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                g.hand_over_if_arbitrator().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => break,
                }
            }
        });
    }
    {
        // The token key is replicated by the group; login waits for it (503 until then).
        let g = group.clone();
        let st = state.clone();
        let b = backend.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    key = g.token_key(Duration::from_secs(5)) => match key {
                        Ok(k) => {
                            st.set_keys(TokenKeys::new(&k));
                            b.started.store(true, Ordering::Relaxed);
                            tracing::info!("token signing key available: API logins open");
                            break;
                        }
                        Err(e) => tracing::warn!(error = %e, "waiting for the manager group"),
                    },
                    _ = stop.changed() => break,
                }
            }
        });
    }

    if config.server.http_server {
        let addr = format!("{}:{}", config.server.http_bind_address, config.server.http_port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding http-bind-address:http-port {addr}"))?;
        tracing::info!(%addr, "HTTP API listening");
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP API stopped with an error");
            }
        });
    }
    if config.server.api_port != 0 {
        let addr: SocketAddr = format!("{}:{}", config.server.api_bind, config.server.api_port)
            .parse()
            .with_context(|| format!("api-bind {} is not an IP address", config.server.api_bind))?;
        let tls = crate::node::tls::load_or_generate(&config.server).await?;
        let handle = axum_server::Handle::new();
        let server = axum_server::bind_rustls(addr, tls).handle(handle.clone());
        tracing::info!(%addr, "HTTPS API listening");
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            handle.graceful_shutdown(Some(Duration::from_secs(2)));
        });
        tasks.spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!(error = %e, "HTTPS API stopped with an error");
            }
        });
    }
    tracing::info!(clusters = ?backend.cluster_names(), node = group.node_id(), "replication-manager started");

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain).await.is_err() {
        tracing::warn!("some tasks did not stop within 10 s; exiting anyway");
    }
    group.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret("repman", "repman"));
        assert!(!same_secret("repman", "repmam"));
        assert!(!same_secret("repman", "repman1"));
        assert!(!same_secret("", "x"));
    }
}
