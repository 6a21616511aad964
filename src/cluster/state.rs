//! `ClusterState`: everything known about one cluster, shared between its monitor (which
//! writes a probe round into it every tick), the failover executor and the API (which reads
//! it). It applies probe rounds (failure counts, discovery, transitions, problems), the state
//! replicated by the manager group, and the availability counters.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cluster::events::{ClusterEvent, EventOutbox};
use crate::cluster::log::{ClusterLog, Level};
use crate::cluster::records::{CrashRecord, JournalEntry, PersistedCluster};
pub use crate::cluster::server::ServerRuntime;
use crate::cluster::topology::{self, DiscoveryRules, Observation, Problem, ServerState};
use crate::config::{ClusterConfig, HostPort};
use crate::db::probe::{ProbeError, ServerSnapshot};

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
    /// Host spellings seen as a replica's source that resolve to a configured server's host
    /// (`alias` -> configured host), kept up to date by the monitor.
    pub host_aliases: BTreeMap<String, String>,
    /// Replicated writes of this node in flight: memory is newer than the replicated copy.
    pub pending_writes: u32,
    /// Failover and switchover records, oldest first.
    pub crashes: Vec<CrashRecord>,
    /// Problems from topology discovery (recomputed every tick).
    pub topo_problems: Vec<Problem>,
    /// Why an automatic failover is blocked now (recomputed every tick).
    pub blockers: Vec<Problem>,
    /// Returning old masters left out of replication, by server index.
    pub quarantined: BTreeMap<usize, Problem>,
    /// The master the group decided (replicated), a hint that outranks stale replicas.
    pub intent: Option<HostPort>,
    /// Latest failover/switchover operations (replicated).
    pub journal: Vec<JournalEntry>,
    /// The configuration from the files; `config` is it plus `settings` and `extra_hosts`.
    pub base_config: ClusterConfig,
    /// Settings changed through the API (replicated).
    pub settings: BTreeMap<String, String>,
    /// Servers added through the API (replicated).
    pub extra_hosts: Vec<HostPort>,
    /// Bumped whenever `config` changes (the monitor then rebuilds its probes).
    pub config_generation: u64,
    /// Availability counters since the start: ticks, ticks with a healthy writable master,
    /// with also a healthy replica (failable), with semi-sync on at the master.
    pub sla: Sla,
    /// The master's `Queries` counter at the previous tick, and when (for queries per second).
    pub last_queries: Option<(u64, Instant)>,
    pub qps: f64,
    /// The cluster's managed proxies and their last known state (shared by every copy).
    pub proxies: Arc<crate::proxy::ProxySet>,
    /// Events waiting for the alert dispatcher (drained by the monitor every tick).
    pub events: EventOutbox,
    /// The last alerted end of an automatic failover that did not succeed, and when: an
    /// automatic failover is retried every tick, its veto or failure is alerted once a minute.
    pub auto_outcome_alerted: Option<(crate::cluster::events::Outcome, Instant)>,
}

/// Availability counters (the Go project's uptime, uptimeFailable, uptimeSemisync).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sla {
    pub ticks: u64,
    pub up: u64,
    pub failable: u64,
    pub semisync: u64,
}

impl Sla {
    /// Percentages: (uptime, failable, semi-sync); 0 before the first tick.
    pub fn percents(&self) -> (f64, f64, f64) {
        if self.ticks == 0 {
            return (0.0, 0.0, 0.0);
        }
        let p = |n: u64| 100.0 * n as f64 / self.ticks as f64;
        (p(self.up), p(self.failable), p(self.semisync))
    }
}

impl ClusterState {
    /// A cluster with every server `Unconnected`.
    pub fn new(config: ClusterConfig) -> ClusterState {
        let servers = config.hosts.iter().map(|addr| ServerRuntime::new(addr, &config)).collect();
        ClusterState {
            base_config: config.clone(),
            settings: BTreeMap::new(),
            extra_hosts: Vec::new(),
            config_generation: 0,
            sla: Sla::default(),
            last_queries: None,
            qps: 0.0,
            proxies: Arc::new(crate::proxy::ProxySet::new(&config.name, &config.proxy)),
            events: EventOutbox::default(),
            auto_outcome_alerted: None,
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
            pending_writes: 0,
            host_aliases: BTreeMap::new(),
            crashes: Vec::new(),
            topo_problems: Vec::new(),
            blockers: Vec::new(),
            quarantined: BTreeMap::new(),
            intent: None,
            journal: Vec::new(),
        }
    }

    /// Applies the state replicated by the group (the truth on every node, the leader too).
    ///
    /// Skipped while this node changes them (a master change runs, or a replicated write is in
    /// flight): its memory is then newer than the replicated copy, which would undo the change.
    pub fn sync_replicated(&mut self, p: Option<PersistedCluster>) {
        if self.in_failover || self.pending_writes > 0 {
            return;
        }
        self.adopt_replicated(p);
    }

    /// Takes the replicated decisions as they are (before a write that builds on them).
    pub fn adopt_replicated(&mut self, p: Option<PersistedCluster>) {
        let Some(p) = p else { return };
        self.crashes = p.crashes;
        self.failover_counter = p.failover_counter;
        self.failover_last_time = p.failover_last_time;
        for s in &mut self.servers {
            s.maintenance = p.maintenance.contains(&s.addr.to_string());
        }
        self.intent = p.master.as_deref().and_then(HostPort::parse);
        self.journal = p.journal;
        let extra: Vec<HostPort> = p.extra_hosts.iter().filter_map(|h| HostPort::parse(h)).collect();
        if p.settings != self.settings || extra != self.extra_hosts {
            self.settings = p.settings;
            self.extra_hosts = extra;
            if let Err(e) = self.apply_config() {
                self.log(Level::Error, "settings", &format!("Replicated settings rejected: {e}"));
            }
        }
    }

    /// Recomputes `config` from the files' configuration, the API settings and added servers.
    pub fn apply_config(&mut self) -> Result<(), crate::config::ConfigError> {
        let mut cfg = self.base_config.with_settings(&self.settings)?;
        for h in &self.extra_hosts {
            if !cfg.hosts.contains(h) {
                cfg.hosts.push(h.clone());
            }
        }
        for h in &cfg.hosts {
            if !self.servers.iter().any(|s| s.addr == *h) {
                self.servers.push(ServerRuntime::new(h, &cfg));
            }
        }
        for s in &mut self.servers {
            s.ignored = cfg.ignored_hosts.contains(&s.addr);
            s.prefered = cfg.prefered_master.contains(&s.addr);
        }
        self.config = cfg;
        self.config_generation += 1;
        Ok(())
    }

    /// The decisions to replicate.
    pub fn to_persisted(&self) -> PersistedCluster {
        PersistedCluster {
            version: 1,
            crashes: self.crashes.clone(),
            failover_counter: self.failover_counter,
            failover_last_time: self.failover_last_time,
            maintenance: self.servers.iter().filter(|s| s.maintenance).map(|s| s.addr.to_string()).collect(),
            master: self.intent.as_ref().map(HostPort::to_string),
            journal: self.journal.clone(),
            settings: self.settings.clone(),
            extra_hosts: self.extra_hosts.iter().map(HostPort::to_string).collect(),
        }
    }

    /// Index of the decided master, if it is one of this cluster's servers.
    pub fn intent_index(&self) -> Option<usize> {
        let hp = self.intent.as_ref()?;
        self.servers.iter().position(|s| topology::same_server(&s.addr, hp))
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
    pub fn apply_round(&mut self, mut results: Vec<Result<ServerSnapshot, ProbeError>>) {
        self.tick += 1;
        // A replica may name its source differently from db-servers-hosts (an IP for a name):
        // spell it as configured, so the topology sees who replicates from whom.
        for snap in results.iter_mut().flatten() {
            for r in &mut snap.replications {
                if let Some(configured) = self.host_aliases.get(&r.master_host) {
                    r.master_host = configured.clone();
                }
            }
        }
        for (srv, res) in self.servers.iter_mut().zip(&results) {
            match res {
                Ok(snap) => {
                    srv.fail_count = 0;
                    srv.refused_count = 0;
                    srv.failing_since = None;
                    srv.last_error = None;
                    srv.snapshot = Some(snap.clone());
                    if !snap.semi_sync_acks_before_commit() {
                        srv.semi_sync_idle_at_ms = None;
                    } else if snap.semi_sync_wait_sessions == 0 {
                        srv.semi_sync_idle_at_ms = snap.taken_at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_millis() as u64);
                    }
                }
                Err(e) => {
                    srv.fail_count = srv.fail_count.saturating_add(1);
                    srv.refused_count = if e.is_refused() { srv.refused_count.saturating_add(1) } else { 0 };
                    srv.failing_since.get_or_insert_with(Instant::now);
                    srv.last_error = Some(e.to_string());
                }
            }
        }
        self.update_hearing(&results);
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
            topology::discover(&obs, self.intent_index().or(self.master), &rules)
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
            let server = self.servers[i].addr.clone();
            self.events.push(ClusterEvent::ServerState { server, from: old, to: new });
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

        self.topo_problems = topo.problems;
        self.publish_problems();
        self.account();
    }

    /// Updates the availability counters and the master's queries per second.
    fn account(&mut self) {
        self.sla.ticks += 1;
        let Some(m) = self.master else { return };
        let master = &self.servers[m];
        let Some(snap) = master.snapshot.as_ref().filter(|_| master.is_up() && master.state == ServerState::Master) else {
            return;
        };
        if snap.read_only {
            return;
        }
        self.sla.up += 1;
        if self.servers.iter().any(|s| s.state == ServerState::Slave) {
            self.sla.failable += 1;
        }
        if snap.semi_sync_master_status {
            self.sla.semisync += 1;
        }
        let now = Instant::now();
        if let Some((prev, at)) = self.last_queries {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 && snap.queries >= prev {
                self.qps = (snap.queries - prev) as f64 / secs;
            }
        }
        self.last_queries = Some((snap.queries, now));
    }

    /// Merges topology problems, failover blockers and quarantines into `problems`, logging
    /// every problem that opens or resolves.
    pub fn publish_problems(&mut self) {
        let mut all = self.topo_problems.clone();
        all.extend(self.blockers.iter().cloned());
        for s in &self.servers {
            if let Some(accounts) = s.read_only_bypass.as_ref().filter(|a| !a.is_empty()) {
                all.push(Problem {
                    code: "WARN0112",
                    desc: format!(
                        "Accounts that can write on {} although it is read-only (a fence does not stop them): {}",
                        s.addr,
                        accounts.join(", ")
                    ),
                    server: Some(s.addr.to_string()),
                });
            }
        }
        all.extend(self.quarantined.values().cloned());
        all.extend(self.proxies.problems().into_iter().map(|(code, desc)| Problem { code, desc, server: None }));
        all.sort();
        all.dedup();
        let opened: Vec<Problem> = all.iter().filter(|p| !self.problems.contains(p)).cloned().collect();
        let closed: Vec<Problem> = self.problems.iter().filter(|p| !all.contains(p)).cloned().collect();
        for p in opened {
            let level = if p.is_error() { Level::Error } else { Level::Warn };
            self.log(level, "alert", &format!("{}: {}", p.code, p.desc));
            self.events.push(ClusterEvent::Problem { code: p.code, desc: p.desc, server: p.server, resolved: false });
        }
        for p in closed {
            self.log(Level::Info, "alert", &format!("Resolved {}: {}", p.code, p.desc));
            self.events.push(ClusterEvent::Problem { code: p.code, desc: p.desc, server: p.server, resolved: true });
        }
        self.problems = all;
    }

    /// Records, per replica, the evidence that it still receives from its source (heartbeat
    /// count, received positions) and when it last changed; the failover planner judges it.
    fn update_hearing(&mut self, results: &[Result<ServerSnapshot, ProbeError>]) {
        let source = self.config.replication_source_name.clone();
        let now = Instant::now();
        for (srv, res) in self.servers.iter_mut().zip(results) {
            let repl = res.as_ref().ok().and_then(|s| s.managed_replication(&source));
            let Some(r) = repl else {
                srv.hear_evidence = None;
                srv.hear_changed_at = None;
                srv.hear_io_running = false;
                if res.is_ok() {
                    srv.last_delay = None;
                }
                continue;
            };
            if r.seconds_behind_master.is_some() {
                srv.last_delay = r.seconds_behind_master;
            }
            let evidence = (
                r.slave_received_heartbeats,
                r.gtid_io_pos.clone(),
                r.master_log_file.clone(),
                r.read_master_log_pos.clone(),
            );
            if srv.hear_evidence.as_ref() != Some(&evidence) {
                srv.hear_evidence = Some(evidence);
                srv.hear_changed_at = Some(now);
            }
            srv.hear_period = Duration::from_secs_f64(r.slave_heartbeat_period.clamp(0.0, 3600.0));
            srv.hear_io_running = r.io_running.eq_ignore_ascii_case("yes");
        }
    }

    /// The latest crash record naming `addr` as the replaced master.
    pub fn crash_of(&self, addr: &HostPort) -> Option<&CrashRecord> {
        let name = addr.to_string();
        self.crashes.iter().rev().find(|c| c.old_master == name)
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// The shared, lock-protected state of one cluster.
#[derive(Debug)]
pub struct SharedCluster {
    state: RwLock<ClusterState>,
    /// Held across a replicated write (read the replicated copy, change it, compare-and-set):
    /// one such write at a time per cluster on this node.
    writes: tokio::sync::Mutex<()>,
}

impl SharedCluster {
    pub fn new(state: ClusterState) -> Arc<SharedCluster> {
        Arc::new(SharedCluster { state: RwLock::new(state), writes: tokio::sync::Mutex::new(()) })
    }

    /// Serializes the replicated writes of this cluster.
    pub async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Reads the state (a poisoned lock is still readable: the data is plain values).
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, ClusterState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::db::probe::ReplicationStatus;

    fn round(aliases: &[(&str, &str)]) -> ClusterState {
        let toml = "[c1]\ndb-servers-hosts = \"127.0.0.1:3310,127.0.0.1:3311\"\n";
        let cfg = Config::from_toml_str(toml, std::path::Path::new("t.toml"), &[]).expect("config").clusters.remove(0);
        let mut st = ClusterState::new(cfg);
        for (a, c) in aliases {
            st.host_aliases.insert(a.to_string(), c.to_string());
        }
        let master = ServerSnapshot { read_only: false, ..ServerSnapshot::for_tests() };
        let mut replica = ServerSnapshot::for_tests();
        replica.replications.push(ReplicationStatus {
            master_host: "db1.example".into(),
            master_port: 3310,
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            seconds_behind_master: Some(0),
            ..Default::default()
        });
        st.apply_round(vec![Ok(master), Ok(replica)]);
        st
    }

    #[test]
    fn a_source_spelled_differently_is_recognised_through_its_alias() {
        let st = round(&[("db1.example", "127.0.0.1")]);
        assert_eq!(st.master, Some(0));
        assert_eq!(st.servers[1].state, ServerState::Slave);
        assert!(!st.topo_problems.iter().any(|p| p.code == "ERR00010" || p.code == "ERR00064"), "{:?}", st.topo_problems);
        // Without the alias the replica's source is not a server of the cluster: the master
        // has no replica.
        let st = round(&[]);
        assert!(st.topo_problems.iter().any(|p| p.code == "ERR00010" || p.code == "ERR00064"), "{:?}", st.topo_problems);
    }
}
