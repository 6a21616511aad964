//! The managed proxies of a cluster: the [`ProxyDriver`] trait (HAProxy is its first
//! implementation, [`haproxy::Haproxy`]), what a backend should hold ([`Target`]), what a
//! proxy reports ([`Observation`]), the pure difference between the two ([`changes`]), and the
//! [`ProxySet`] of one cluster with the proxies' last known state for the API.
//!
//! This layer does no leadership check of its own: its callers (the failover executor and the
//! monitor, on the active leader only) check leadership right before every mutation.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::config::{HostPort, ProxySettings};

pub mod haproxy;

/// Deadline of one runtime API command (connect, write, read the answer).
pub const API_DEADLINE: Duration = Duration::from_secs(2);

/// A boxed future, so the driver trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proxy operation failed; every variant names the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy {proxy}: {what} did not answer within {after:?}")]
    Timeout { proxy: String, what: String, after: Duration },
    #[error("proxy {proxy}: {what}: {reason}")]
    Io { proxy: String, what: String, reason: String },
    #[error("proxy {proxy}: `{command}` was refused: {answer}")]
    Refused { proxy: String, command: String, answer: String },
    #[error("proxy {proxy}: {reason}")]
    Process { proxy: String, reason: String },
    #[error("proxy {proxy} runs on {host}, not on this manager's host: {what} is only possible for a local proxy")]
    NotLocal { proxy: String, host: String, what: String },
}

/// The two backends of a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Write,
    Read,
}

/// The administrative state of a server in a backend (HAProxy's `set server ... state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Takes new connections.
    Ready,
    /// Keeps its connections, takes no new ones (a lagging replica).
    Drain,
    /// Out of the backend (not the master, broken, in maintenance, traffic stopped).
    Maint,
}

impl AdminState {
    /// The word of HAProxy's `set server ... state`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// What one database server should be in each backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's name in the proxy: the manager's server id (`db...`).
    pub name: String,
    pub addr: HostPort,
    /// The manager's state of the server (`Master`, `Slave`, ...), shown beside the proxy's.
    pub status: String,
    pub write: AdminState,
    pub read: AdminState,
}

/// One server as a proxy reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedServer {
    pub backend: String,
    pub name: String,
    /// The address the proxy uses (`ip` or host), and port.
    pub addr: String,
    pub port: u16,
    /// `None` when the proxy reports a state this layer does not model.
    pub admin: Option<AdminStateSeen>,
    /// The proxy's own status word (`UP`, `MAINT`, `DRAIN`, `DOWN`, ...).
    pub status: String,
    pub connections: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_ms: u64,
}

/// An administrative state as observed (a copy of [`AdminState`] that can be compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminStateSeen(pub AdminState);

impl Default for AdminStateSeen {
    fn default() -> Self {
        AdminStateSeen(AdminState::Ready)
    }
}

/// What a proxy reported at its last observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    pub version: String,
    pub pid: Option<u32>,
    pub servers: Vec<ObservedServer>,
}

impl Observation {
    /// The server `name` of `backend`, when the proxy has it.
    pub fn server(&self, backend: &str, name: &str) -> Option<&ObservedServer> {
        self.servers.iter().find(|s| s.backend == backend && s.name == name)
    }
}

/// One change that brings a proxy to its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `set server <backend>/<name> state <state>`.
    State { role: Role, name: String, state: AdminState },
    /// `set server <backend>/<name> addr <host> port <port>`.
    Addr { role: Role, name: String, addr: HostPort },
    /// The proxy lacks servers (added to the cluster since it was provisioned): its
    /// configuration must be rendered again and the process reloaded.
    Reprovision { missing: Vec<String> },
}

/// The changes that bring a proxy whose backends are named `write_backend` / `read_backend`
/// from `seen` to `targets` (pure; the reconciliation of every tick).
pub fn changes(targets: &[Target], seen: &Observation, write_backend: &str, read_backend: &str) -> Vec<Change> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for t in targets {
        for (role, backend, want) in [(Role::Write, write_backend, t.write), (Role::Read, read_backend, t.read)] {
            let Some(s) = seen.server(backend, &t.name) else {
                missing.push(format!("{backend}/{}", t.name));
                continue;
            };
            if !same_addr(s, &t.addr) {
                out.push(Change::Addr { role, name: t.name.clone(), addr: t.addr.clone() });
            }
            if s.admin != Some(AdminStateSeen(want)) {
                out.push(Change::State { role, name: t.name.clone(), state: want });
            }
        }
    }
    if !missing.is_empty() {
        out.push(Change::Reprovision { missing });
    }
    out
}

fn same_addr(s: &ObservedServer, want: &HostPort) -> bool {
    if s.port != want.port {
        return false;
    }
    // HAProxy reports the resolved address: a configured host name matches any address.
    let is_ip = want.host.parse::<std::net::IpAddr>().is_ok();
    !is_ip || s.addr == want.host || (want.host == "localhost" && s.addr == "127.0.0.1")
}

/// A proxy the manager drives.
pub trait ProxyDriver: Send + Sync + std::fmt::Debug {
    /// The Go project's proxy id (`px` + CRC-64 of cluster, host and write port).
    fn id(&self) -> &str;
    /// `haproxy`, `proxysql`, ...
    fn kind(&self) -> &'static str;
    fn host(&self) -> &str;
    /// True when this manager runs the proxy process itself (a loopback host).
    fn is_local(&self) -> bool;
    /// Where its files live (local proxies).
    fn datadir(&self) -> String;
    /// Reads the proxy's servers and their states (no change).
    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProxyError>>;
    /// Sets a server's administrative state in a backend.
    fn set_state<'a>(&'a self, role: Role, name: &'a str, state: AdminState) -> BoxFuture<'a, Result<(), ProxyError>>;
    /// Points a server of a backend at another address.
    fn set_addr<'a>(&'a self, role: Role, name: &'a str, addr: &'a HostPort) -> BoxFuture<'a, Result<(), ProxyError>>;
    /// Cuts the sessions a server of a backend still carries (after it left the backend).
    fn shutdown_sessions<'a>(&'a self, role: Role, name: &'a str) -> BoxFuture<'a, Result<(), ProxyError>>;
    /// Writes the configuration for `targets` and starts the process, or reloads it when it
    /// runs (local proxies). Returns what was done.
    fn provision<'a>(&'a self, targets: &'a [Target]) -> BoxFuture<'a, Result<String, ProxyError>>;
    /// Starts the process from the configuration written last (local proxies).
    fn start(&self) -> BoxFuture<'_, Result<String, ProxyError>>;
    /// Stops the process by its PID (local proxies).
    fn stop(&self) -> BoxFuture<'_, Result<String, ProxyError>>;
    /// Stops the process and removes its files (local proxies).
    fn unprovision(&self) -> BoxFuture<'_, Result<String, ProxyError>>;
}

/// The last known state of one proxy (shown in the API).
#[derive(Debug, Clone, Default)]
pub struct ProxyStatus {
    /// `ProxyRunning`, `Failed` (its API does not answer), `Stopped` (stopped by an operator).
    pub state: String,
    pub prev_state: String,
    /// Observations that failed in a row.
    pub fail_count: u32,
    pub observed: Option<Observation>,
    pub last_error: Option<String>,
    /// Stopped or unprovisioned by an operator: the leader does not start it again by itself.
    pub held_stopped: bool,
    /// A master change could not update it; kept until the proxy is seen in line again.
    pub fence_error: Option<String>,
}

/// Everything shown about one proxy.
#[derive(Debug, Clone)]
pub struct ProxyReport {
    pub id: String,
    pub kind: &'static str,
    pub host: String,
    pub datadir: String,
    pub status: ProxyStatus,
}

/// The proxies of one cluster.
#[derive(Debug)]
pub struct ProxySet {
    cluster: String,
    drivers: RwLock<(Option<ProxySettings>, Vec<Arc<dyn ProxyDriver>>)>,
    status: Mutex<BTreeMap<String, ProxyStatus>>,
    traffic_stopped: AtomicBool,
    /// One mutation pass at a time (a reconciliation, a failover's fence step, an action).
    ops: tokio::sync::Mutex<()>,
}

impl ProxySet {
    /// The proxies `settings` describes for `cluster`.
    pub fn new(cluster: &str, settings: &ProxySettings) -> ProxySet {
        let set = ProxySet {
            cluster: cluster.to_string(),
            drivers: RwLock::new((None, Vec::new())),
            status: Mutex::new(BTreeMap::new()),
            traffic_stopped: AtomicBool::new(false),
            ops: tokio::sync::Mutex::new(()),
        };
        set.configure(settings);
        set
    }

    /// Rebuilds the drivers when the settings changed (a setting set through the API, a reload).
    pub fn configure(&self, settings: &ProxySettings) {
        let mut d = self.drivers.write().unwrap_or_else(|e| e.into_inner());
        if d.0.as_ref() == Some(settings) {
            return;
        }
        let drivers: Vec<Arc<dyn ProxyDriver>> = if settings.enabled() {
            settings
                .haproxy_hosts
                .iter()
                .map(|h| Arc::new(haproxy::Haproxy::new(&self.cluster, h, settings)) as Arc<dyn ProxyDriver>)
                .collect()
        } else {
            Vec::new()
        };
        *d = (Some(settings.clone()), drivers);
    }

    /// The drivers now.
    pub fn drivers(&self) -> Vec<Arc<dyn ProxyDriver>> {
        self.drivers.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// The backend names.
    pub fn backends(&self) -> (String, String) {
        let d = self.drivers.read().unwrap_or_else(|e| e.into_inner());
        d.0.as_ref().map_or_else(|| ("service_write".to_string(), "service_read".to_string()), |s| (s.write_backend.clone(), s.read_backend.clone()))
    }

    /// True when the cluster has proxies.
    pub fn is_empty(&self) -> bool {
        self.drivers.read().unwrap_or_else(|e| e.into_inner()).1.is_empty()
    }

    /// The driver with id or host `name`.
    pub fn find(&self, name: &str) -> Option<Arc<dyn ProxyDriver>> {
        self.drivers().into_iter().find(|d| d.id() == name || d.host() == name)
    }

    /// Serializes mutation passes over this cluster's proxies.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ops.lock().await
    }

    /// `stop-traffic` is in force: the write backend holds no server.
    pub fn traffic_stopped(&self) -> bool {
        self.traffic_stopped.load(Ordering::Acquire)
    }

    pub fn set_traffic_stopped(&self, stopped: bool) {
        self.traffic_stopped.store(stopped, Ordering::Release);
    }

    /// The status of proxy `id`.
    pub fn status(&self, id: &str) -> ProxyStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned().unwrap_or_default()
    }

    /// Records an observation of proxy `id`.
    pub fn record(&self, id: &str, seen: Result<Observation, &ProxyError>) {
        let mut all = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let st = all.entry(id.to_string()).or_default();
        let state = match &seen {
            Ok(_) => "ProxyRunning",
            Err(_) if st.held_stopped => "Stopped",
            Err(_) => "Failed",
        };
        if st.state != state {
            st.prev_state = std::mem::replace(&mut st.state, state.to_string());
        }
        match seen {
            Ok(o) => {
                st.observed = Some(o);
                st.fail_count = 0;
                st.last_error = None;
            }
            Err(e) => {
                st.observed = None;
                st.fail_count = st.fail_count.saturating_add(1);
                st.last_error = Some(e.to_string());
            }
        }
    }

    /// Marks proxy `id` held stopped (or not) by an operator.
    pub fn hold_stopped(&self, id: &str, held: bool) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_default().held_stopped = held;
    }

    /// Records an error of proxy `id` (a failed change), shown until the next good observation.
    pub fn record_error(&self, id: &str, error: &ProxyError) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_default().last_error = Some(error.to_string());
    }

    /// Records that a master change could not update proxy `id` (alerted until it is in line).
    pub fn record_fence_error(&self, id: &str, error: &str) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).entry(id.to_string()).or_default().fence_error = Some(error.to_string());
    }

    /// Proxy `id` was seen in line with the topology.
    pub fn clear_fence_error(&self, id: &str) {
        if let Some(st) = self.status.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
            st.fence_error = None;
        }
    }

    /// Open problems: (code, description). `ERR00052` a proxy that does not answer or refused a
    /// change, `ERR00095` a proxy a master change could not update.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for r in self.reports() {
            if let Some(e) = &r.status.last_error {
                if !r.status.held_stopped {
                    out.push(("ERR00052", format!("Proxy {} ({} on {}): {e}", r.id, r.kind, r.host)));
                }
            }
            if let Some(e) = &r.status.fence_error {
                out.push(("ERR00095", format!("A master change could not update {}: {e}", r.id)));
            }
        }
        out
    }

    /// Every proxy with its last known state.
    pub fn reports(&self) -> Vec<ProxyReport> {
        self.drivers()
            .iter()
            .map(|d| ProxyReport { id: d.id().to_string(), kind: d.kind(), host: d.host().to_string(), datadir: d.datadir(), status: self.status(d.id()) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, port: u16, write: AdminState, read: AdminState) -> Target {
        Target { name: name.into(), addr: HostPort { host: "127.0.0.1".into(), port }, status: "Slave".into(), write, read }
    }

    fn seen(backend: &str, name: &str, port: u16, admin: AdminState) -> ObservedServer {
        ObservedServer {
            backend: backend.into(),
            name: name.into(),
            addr: "127.0.0.1".into(),
            port,
            admin: Some(AdminStateSeen(admin)),
            ..Default::default()
        }
    }

    #[test]
    fn changes_repair_states_addresses_and_missing_servers() {
        use AdminState::*;
        let targets = vec![target("db1", 3310, Ready, Maint), target("db2", 3311, Maint, Ready), target("db3", 3312, Maint, Drain)];
        let obs = Observation {
            servers: vec![
                seen("w", "db1", 3310, Ready),
                seen("r", "db1", 3310, Maint),
                seen("w", "db2", 3311, Ready),
                seen("r", "db2", 3399, Ready),
                seen("w", "db3", 3312, Maint),
            ],
            ..Default::default()
        };
        let c = changes(&targets, &obs, "w", "r");
        assert_eq!(
            c,
            vec![
                Change::State { role: Role::Write, name: "db2".into(), state: Maint },
                Change::Addr { role: Role::Read, name: "db2".into(), addr: HostPort { host: "127.0.0.1".into(), port: 3311 } },
                Change::Reprovision { missing: vec!["r/db3".into()] },
            ]
        );
        // In line: nothing to do.
        let obs = Observation {
            servers: vec![seen("w", "db1", 3310, Ready), seen("r", "db1", 3310, Maint)],
            ..Default::default()
        };
        assert!(changes(&targets[..1], &obs, "w", "r").is_empty());
    }

    #[test]
    fn status_follows_observations() {
        let set = ProxySet::new("c1", &crate::config::Config::from_toml_str("[c1]\ndb-servers-hosts=\"127.0.0.1:1\"\nhaproxy=true\n", std::path::Path::new("t"), &[]).unwrap().clusters[0].proxy);
        assert_eq!(set.drivers().len(), 1);
        let id = set.drivers()[0].id().to_string();
        assert!(id.starts_with("px"));
        set.record(&id, Ok(Observation::default()));
        assert_eq!(set.status(&id).state, "ProxyRunning");
        let e = ProxyError::Process { proxy: id.clone(), reason: "gone".into() };
        set.record(&id, Err(&e));
        let st = set.status(&id);
        assert_eq!((st.state.as_str(), st.prev_state.as_str(), st.fail_count), ("Failed", "ProxyRunning", 1));
        set.hold_stopped(&id, true);
        set.record(&id, Err(&e));
        assert_eq!(set.status(&id).state, "Stopped");
    }
}
