//! `ClusterMonitor`: the per-cluster loop. Every `monitoring-ticker` it probes every server
//! concurrently (each probe bounded by `db-servers-connect-timeout`), counts consecutive
//! failures, runs topology discovery, and records state changes, problems and log lines in the
//! shared [`ClusterState`] that the API reads.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::cluster_log::{ClusterLog, Level};
use crate::config::{ClusterConfig, HostPort};
use crate::probe::{ProbeError, ServerProbe, ServerSnapshot};
use crate::topology::{self, DiscoveryRules, Observation, Problem, ServerState};

/// The Go project's server id: `"db"` + decimal CRC-64/ECMA (as Go's `crc64.ECMA` table) of
/// `host:port`, so ids match the ones existing dashboards and scripts know.
pub fn server_id(addr: &HostPort) -> String {
    format!("db{}", crc64_ecma(addr.to_string().as_bytes()))
}

/// CRC-64 with the reflected ECMA-182 polynomial, initial and final value all ones (Go's
/// `crc64.Checksum(data, crc64.MakeTable(crc64.ECMA))`, also known as CRC-64/XZ).
fn crc64_ecma(data: &[u8]) -> u64 {
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut crc = !0u64;
    for b in data {
        crc ^= u64::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    !crc
}

/// What the monitor knows about one server.
#[derive(Debug, Clone)]
pub struct ServerRuntime {
    pub addr: HostPort,
    pub id: String,
    pub state: ServerState,
    pub prev_state: ServerState,
    /// Consecutive failed probes.
    pub fail_count: u32,
    /// The last probe error, cleared by a successful probe.
    pub last_error: Option<String>,
    /// The last successful probe (kept while the server is down, as "last seen").
    pub snapshot: Option<ServerSnapshot>,
    pub maintenance: bool,
    pub ignored: bool,
    pub prefered: bool,
}

impl ServerRuntime {
    /// True when the last probe succeeded.
    pub fn is_up(&self) -> bool {
        self.last_error.is_none() && self.snapshot.is_some()
    }
}

/// Everything the API shows about a cluster, updated by its monitor each tick.
#[derive(Debug, Clone)]
pub struct ClusterState {
    pub config: ClusterConfig,
    pub servers: Vec<ServerRuntime>,
    /// Index in `servers` of the current master.
    pub master: Option<usize>,
    pub topology_kind: &'static str,
    pub problems: Vec<Problem>,
    /// Monitor iterations done.
    pub tick: u64,
    /// The tick at which a master was first found.
    pub discovered_at_tick: Option<u64>,
    pub log: ClusterLog,
    pub failover_counter: u64,
    /// Unix seconds of the last failover (0 = never).
    pub failover_last_time: u64,
    pub in_failover: bool,
    pub started_at: SystemTime,
}

impl ClusterState {
    /// A cluster with every server `Unconnected`.
    pub fn new(config: ClusterConfig) -> ClusterState {
        let servers = config
            .hosts
            .iter()
            .map(|addr| ServerRuntime {
                addr: addr.clone(),
                id: server_id(addr),
                state: ServerState::Unconnected,
                prev_state: ServerState::Unconnected,
                fail_count: 0,
                last_error: None,
                snapshot: None,
                maintenance: false,
                ignored: config.ignored_hosts.contains(addr),
                prefered: config.prefered_master.contains(addr),
            })
            .collect();
        ClusterState {
            config,
            servers,
            master: None,
            topology_kind: "unknown",
            problems: Vec::new(),
            tick: 0,
            discovered_at_tick: None,
            log: ClusterLog::default(),
            failover_counter: 0,
            failover_last_time: 0,
            in_failover: false,
            started_at: SystemTime::now(),
        }
    }

    /// Finds a server by its id or its `host:port`.
    pub fn find_server(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.id == name).or_else(|| {
            let hp = HostPort::parse(name)?;
            self.servers.iter().position(|s| s.addr == hp)
        })
    }

    /// Writes one line to the cluster log and to the process log.
    pub fn log(&mut self, level: Level, module: &str, message: &str) {
        let cluster = self.config.name.clone();
        match level {
            Level::Error => tracing::error!(cluster = %cluster, module, "{message}"),
            Level::Warn => tracing::warn!(cluster = %cluster, module, "{message}"),
            Level::Info => tracing::info!(cluster = %cluster, module, "{message}"),
        }
        self.log.push(&cluster, level, module, message);
    }

    /// True when no open problem is an error.
    pub fn is_failable(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }

    /// Applies one round of probe results: failure counts, discovery, transitions, problems.
    pub fn apply_round(&mut self, results: Vec<Result<ServerSnapshot, ProbeError>>) {
        self.tick += 1;
        for (srv, res) in self.servers.iter_mut().zip(&results) {
            match res {
                Ok(snap) => {
                    srv.fail_count = 0;
                    srv.last_error = None;
                    srv.snapshot = Some(snap.clone());
                }
                Err(e) => {
                    srv.fail_count = srv.fail_count.saturating_add(1);
                    srv.last_error = Some(e.to_string());
                }
            }
        }
        let rules = DiscoveryRules {
            ping_counter: self.config.falsepositive_ping_counter,
            max_slave_delay: self.config.failover_max_slave_delay,
            check_replication_state: self.config.check_replication_state,
            source_name: self.config.replication_source_name.clone(),
        };
        let topo = {
            let obs: Vec<Observation<'_>> = self
                .servers
                .iter()
                .zip(&results)
                .map(|(s, r)| Observation {
                    addr: &s.addr,
                    probe: r.as_ref(),
                    fail_count: s.fail_count,
                    maintenance: s.maintenance,
                })
                .collect();
            topology::discover(&obs, self.master, &rules)
        };

        for i in 0..self.servers.len() {
            let new = topo.states[i];
            let old = self.servers[i].state;
            if new == old {
                continue;
            }
            let srv = &self.servers[i];
            let reason = match (&srv.last_error, new) {
                (Some(e), _) => format!("probe failed {}/{}: {e}", srv.fail_count, rules.ping_counter),
                (None, ServerState::SlaveErr) => "replication is not running".to_string(),
                (None, ServerState::SlaveLate) => "replication delay above failover-max-slave-delay".to_string(),
                (None, _) => "probe succeeded".to_string(),
            };
            let level = match new {
                ServerState::Failed | ServerState::ErrorAuth | ServerState::SlaveErr => Level::Error,
                ServerState::Suspect | ServerState::SlaveLate => Level::Warn,
                _ => Level::Info,
            };
            let msg = format!("Server {} state transition from {old} changed to: {new} ({reason})", srv.addr);
            self.servers[i].prev_state = old;
            self.servers[i].state = new;
            self.log(level, "state", &msg);
        }

        if topo.master != self.master {
            let name = |m: Option<usize>| m.map_or("none".to_string(), |i| self.servers[i].addr.to_string());
            let msg = format!("Master changed from {} to {}", name(self.master), name(topo.master));
            self.log(Level::Info, "topology", &msg);
            self.master = topo.master;
        }
        if self.master.is_some() && self.discovered_at_tick.is_none() {
            self.discovered_at_tick = Some(self.tick);
            let msg = format!("Topology discovered at tick {}: {}", self.tick, topo.kind);
            self.log(Level::Info, "topology", &msg);
        }
        self.topology_kind = topo.kind;

        let opened: Vec<Problem> = topo.problems.iter().filter(|p| !self.problems.contains(p)).cloned().collect();
        let closed: Vec<Problem> = self.problems.iter().filter(|p| !topo.problems.contains(p)).cloned().collect();
        for p in opened {
            let level = if p.is_error() { Level::Error } else { Level::Warn };
            self.log(level, "alert", &format!("{}: {}", p.code, p.desc));
        }
        for p in closed {
            self.log(Level::Info, "alert", &format!("Resolved {}: {}", p.code, p.desc));
        }
        self.problems = topo.problems;
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// The shared, lock-protected state of one cluster.
#[derive(Debug)]
pub struct SharedCluster(RwLock<ClusterState>);

impl SharedCluster {
    pub fn new(state: ClusterState) -> Arc<SharedCluster> {
        Arc::new(SharedCluster(RwLock::new(state)))
    }

    /// Reads the state (a poisoned lock is still readable: the data is plain values).
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, ClusterState> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The loop that probes one cluster.
pub struct ClusterMonitor {
    shared: Arc<SharedCluster>,
    probes: Vec<ServerProbe>,
    ticker: Duration,
    probe_deadline: Duration,
}

impl ClusterMonitor {
    pub fn new(shared: Arc<SharedCluster>) -> ClusterMonitor {
        let (probes, ticker, timeout) = {
            let st = shared.read();
            let cfg = &st.config;
            let probes = cfg
                .hosts
                .iter()
                .map(|h| ServerProbe::new(h.clone(), cfg.db_credential.clone(), cfg.connect_timeout))
                .collect();
            (probes, cfg.monitoring_ticker, cfg.connect_timeout)
        };
        // Connect, then the statements: each bounded by the timeout, the whole by twice it.
        ClusterMonitor { shared, probes, ticker, probe_deadline: timeout * 2 }
    }

    /// Runs until `shutdown` turns true. A tick starts every `monitoring-ticker`, or right after
    /// the previous one when probing took longer.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.shared.read().config.name.clone();
        tracing::info!(cluster = %name, servers = self.probes.len(), ticker = ?self.ticker, "monitor started");
        loop {
            let started = Instant::now();
            let paused = self.shared.read().config.monitoring_pause;
            if !paused {
                let results = self.probe_all().await;
                self.shared.write().apply_round(results);
            }
            tokio::select! {
                _ = tokio::time::sleep_until((started + self.ticker).into()) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
        for p in &mut self.probes {
            p.close().await;
        }
        tracing::info!(cluster = %name, "monitor stopped");
    }

    async fn probe_all(&mut self) -> Vec<Result<ServerSnapshot, ProbeError>> {
        let deadline = self.probe_deadline;
        let rounds = self.probes.iter_mut().map(|p| async move {
            match tokio::time::timeout(deadline, p.probe()).await {
                Ok(r) => r,
                Err(_) => {
                    // The probe future was dropped mid-statement: its connection is gone with it.
                    Err(ProbeError::StatementTimeout { statement: "probe".to_string(), after: deadline })
                }
            }
        });
        futures::future::join_all(rounds).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_match_the_go_project() {
        // crc64.Checksum([]byte("127.0.0.1:3306"), crc64.MakeTable(crc64.ECMA)) in Go.
        let id = server_id(&HostPort { host: "127.0.0.1".into(), port: 3306 });
        assert!(id.starts_with("db"));
        assert_eq!(id, server_id(&HostPort { host: "127.0.0.1".into(), port: 3306 }));
        assert_ne!(id, server_id(&HostPort { host: "127.0.0.1".into(), port: 3307 }));
        // The CRC-64/XZ catalogue check value.
        assert_eq!(crc64_ecma(b"123456789"), 0x995D_C9BB_DF19_39FA);
    }
}
