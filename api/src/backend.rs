//! The `Backend` trait: what the API needs from the manager node. The node implements it; the
//! API crate knows nothing else about monitors, MariaDB or Raft.

use std::time::Duration;

use crate::wire::{
    AlertsView, ClusterView, CrashView, GroupView, JobView, MasterView, MonitorView, ServerInfoView, ServerView, SettingsView,
};

/// How a route names a server: by the id the API reports (or `host:port`), or by host and port.
#[derive(Debug, Clone, Copy)]
pub enum ServerRef<'a> {
    Name(&'a str),
    HostPort(&'a str, &'a str),
}

/// Which health question is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    Master,
    Slave,
}

/// The answer to a health question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    NoCluster,
    NotFound,
    Valid,
    NotValid,
}

/// The result of looking a server up in a cluster.
#[derive(Debug, Clone)]
pub enum Lookup<T> {
    NoCluster,
    NoServer,
    Found(T),
}

/// A mutating request on a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Promote the best replica now (the master may be alive or dead).
    Failover,
    /// Graceful master change; `prefmaster` is an optional `host:port` target.
    Switchover { prefmaster: Option<String> },
    /// Reset the failover counter (`failover-limit`).
    ResetFailoverControl,
    /// Set up replication from scratch (`master-slave`, `multi-master`).
    Bootstrap { topology: String },
    /// Remove every replication connection.
    ReplicationCleanup,
    /// Toggle a server's maintenance flag.
    ToggleMaintenance { server: String },
    /// An action on one server.
    Server { server: String, action: ServerAction },
    /// Set a cluster setting (replicated; validated like the configuration file).
    SetSetting { name: String, value: String },
    /// Flip a boolean cluster setting.
    SwitchSetting { name: String },
    /// Re-read the configuration files.
    ReloadSettings,
    /// Run a named regression scenario.
    RunTest { name: String },
    /// Add a server to monitoring at runtime (replicated).
    AddServer { host: String, port: String },
    /// Provision every server of the cluster (orchestrator commands).
    ServicesProvision,
    /// Provision every server, then bootstrap master-slave replication.
    ServicesBootstrap,
    /// Physical backup of the master.
    MasterPhysicalBackup,
    /// The master back in the write backend of every proxy.
    StartTraffic,
    /// The write backend of every proxy in maintenance.
    StopTraffic,
    /// An action on one proxy (its id or host).
    Proxy { proxy: String, action: ProxyAction },
}

/// An action on one proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAction {
    Start,
    Stop,
    Provision,
    Unprovision,
}

/// A role question of an HTTP-checking balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleCheck {
    /// The writable master.
    Primary,
    /// A replicating replica, at most `max_lag` seconds behind (default: not late).
    Replica { max_lag: Option<u64> },
    /// A healthy server that refuses writes (`read_only`).
    ReadOnly,
}

/// An action on one database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    Start,
    Stop,
    BackupLogical,
    BackupPhysical,
    BackupErrorLog,
    BackupSlowQueryLog,
    Optimize,
    /// Rebuild from `logicalbackup`, `logicalmaster` or `physicalbackup`.
    Reseed(String),
    ToggleInnodbMonitor,
    ToggleSlowQuery,
    ToggleSlowQueryCapture,
    ToggleReadOnly,
    ResetMaster,
    StartSlave,
    StopSlave,
    SkipReplicationEvent,
    Provision,
    Unprovision,
}

/// Read-only information about one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInfo {
    Processlist,
    Variables,
    Status,
    StatusDelta,
    StatusInnodb,
    ErrorLog,
    SlowLog,
    Tables,
    VTables,
    Schemas,
}

/// Why an action did not succeed: the HTTP status and a plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    pub status: u16,
    pub message: String,
}

impl ActionError {
    pub fn new(status: u16, message: impl Into<String>) -> ActionError {
        ActionError { status, message: message.into() }
    }
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

/// The result of an action: a short success message or the error to answer with.
pub type ActionResult = Result<String, ActionError>;

/// Where a mutating request must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderRoute {
    /// This node is the active leader: run it here.
    Local,
    /// Another node leads: forward to its HTTP API.
    Remote { node_id: u64, http_addr: String },
    /// No leader is known (election, lost quorum).
    Unknown,
}

/// An authenticated API user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub name: String,
    /// How long a token issued to this user is valid (`api-token-timeout`).
    pub token_ttl: Duration,
}

/// Who asked for a mutating request: the authenticated user, and the node that forwarded the
/// request to the leader when it did not run where it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub user: String,
    /// The forwarding node's id (the `x-replication-manager-forwarded-by` header).
    pub via_node: Option<u64>,
    /// The client's `Idempotency-Key` header: the same key runs the operation at most once,
    /// and a retry gets the first outcome (kept when the request is forwarded).
    pub idempotency_key: Option<String>,
}

impl std::fmt::Display for Requester {
    /// `admin`, or `admin via node 2` for a forwarded request.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.via_node {
            Some(n) => write!(f, "{} via node {n}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// What the node provides to the API. Every method answers from memory (no database I/O), so
/// a read route never waits on a slow server.
pub trait Backend: Send + Sync + 'static {
    /// True once the monitors have started (`/api/status` says "running").
    fn is_started(&self) -> bool;
    /// Cluster names, sorted.
    fn cluster_names(&self) -> Vec<String>;
    /// The cluster object, or `None` for an unknown cluster.
    fn cluster(&self, name: &str) -> Option<ClusterView>;
    /// `Some(true)` when the cluster has no open error, `None` for an unknown cluster.
    fn cluster_is_failable(&self, name: &str) -> Option<bool>;
    fn servers(&self, cluster: &str) -> Option<Vec<ServerView>>;
    /// `Some(None)`: the cluster exists but no master is known.
    fn master(&self, cluster: &str) -> Option<Option<ServerView>>;
    fn slaves(&self, cluster: &str) -> Option<Vec<ServerView>>;
    /// One line per log entry, newest first.
    fn logs(&self, cluster: &str) -> Option<Vec<String>>;
    fn alerts(&self, cluster: &str) -> Option<AlertsView>;
    fn crashes(&self, cluster: &str) -> Option<Vec<CrashView>>;
    fn monitor(&self) -> MonitorView;
    fn health(&self, cluster: &str, server: ServerRef<'_>, check: HealthCheck) -> Health;
    /// The answer to a role check (`primary`, `replica`, `read-only`).
    fn role_health(&self, cluster: &str, server: ServerRef<'_>, check: RoleCheck) -> Health;
    /// The cluster's proxies as this node last saw them; `None` for an unknown cluster.
    fn proxies(&self, cluster: &str) -> Option<Vec<crate::proxy_wire::ProxyView>>;
    /// A reachable server of the cluster (down servers are `NoServer` for read routes).
    fn live_server(&self, cluster: &str, server: &str) -> Lookup<ServerView>;
    /// Whether `server` is a server of `cluster`, up or down. The router asks it before a route
    /// that names a server runs (an unknown one is answered 404). The default asks
    /// [`Backend::health`], which looks servers up as the actions do (id, then `host:port`).
    fn server_lookup(&self, cluster: &str, server: ServerRef<'_>) -> Lookup<()> {
        match self.health(cluster, server, HealthCheck::Slave) {
            Health::NoCluster => Lookup::NoCluster,
            Health::NotFound => Lookup::NoServer,
            Health::Valid | Health::NotValid => Lookup::Found(()),
        }
    }
    /// Checks a user's password; `None` when unknown or wrong.
    fn authenticate(&self, user: &str, password: &str) -> Option<AuthUser>;
    /// True while `user` is still a configured API user (checked on every request).
    fn user_exists(&self, user: &str) -> bool;
    /// True when `user` holds `grant` in `cluster` (or in any cluster when `None`).
    fn has_grant(&self, cluster: Option<&str>, user: &str, grant: &str) -> bool;
    /// How this node sees the cluster's master; `None` for an unknown cluster.
    fn master_view(&self, cluster: &str) -> Option<MasterView>;
    /// This node's id in the manager group.
    fn node_id(&self) -> u64;
    /// Where mutating requests run now.
    fn leader_route(&self) -> LeaderRoute;
    /// The manager group as this node sees it.
    fn group(&self) -> GroupView;
    /// Reads live information from one server (`limit` rows at most). An error with status 501
    /// (the information is not kept, or not readable from the manager host) is answered 409:
    /// read routes never answer 501.
    fn server_info(
        &self,
        cluster: &str,
        server: &str,
        info: ServerInfo,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<ServerInfoView, ActionError>> + Send;
    /// The cluster's settings, secrets masked; `None` for an unknown cluster.
    fn settings(&self, cluster: &str) -> Option<SettingsView>;
    /// Names of the regression scenarios; `None` for an unknown cluster.
    fn tests(&self, cluster: &str) -> Option<Vec<String>>;
    /// Jobs (backups, optimize) of the cluster, newest first; `None` for an unknown cluster.
    fn jobs(&self, cluster: &str) -> Option<Vec<JobView>>;
    /// Runs a mutating action on a cluster for `requester` and waits for its outcome.
    fn run_action(
        &self,
        cluster: &str,
        action: Action,
        requester: Requester,
    ) -> impl std::future::Future<Output = ActionResult> + Send;
    /// `/metrics`: this node's metrics in the Prometheus text format (version 0.0.4).
    fn metrics(&self) -> String;
    /// `/api/prometheus`: the Go project's per-server metrics (`mysql_global_status_*`,
    /// `mysql_global_variables_*`, `mysql_slave_status_*`), read live from every server.
    fn legacy_prometheus(&self) -> impl std::future::Future<Output = String> + Send;
    /// Records one answered request for the API metrics: the route template (not the raw
    /// path; `unmatched` for no route), the method, the status and the seconds it took.
    fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_text() {
        assert_eq!(Requester { user: "admin".to_string(), via_node: None, idempotency_key: None }.to_string(), "admin");
        assert_eq!(Requester { user: "admin".to_string(), via_node: Some(2), idempotency_key: Some("k".to_string()) }.to_string(), "admin via node 2");
    }
}
