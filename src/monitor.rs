//! `ClusterMonitor`: the per-cluster loop. Every `monitoring-ticker` it probes every server
//! concurrently (each probe bounded by `db-servers-connect-timeout`), counts consecutive
//! failures, runs topology discovery, and records state changes, problems and log lines in the
//! shared [`ClusterState`] that the API reads.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replication_manager_api::{Action, ActionError, ActionResult, ServerAction};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster_log::{ClusterLog, Level};
use crate::config::{ClusterConfig, HostPort};
use crate::failover::crash::{CrashRecord, JournalEntry, PersistedCluster};
use crate::failover::executor::FailoverExecutor;
use crate::group::{Coordinator, ManagerGroup};
use crate::failover::planner::{self, Gate, GateInput};
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
    /// Evidence that this replica receives from its source (heartbeats, IO position) and when
    /// it last changed: a replica still "hears" a master the manager cannot reach.
    pub hear_evidence: Option<(u64, String, String, String)>,
    pub hear_changed_at: Option<Instant>,
    /// IO thread running and evidence changed recently.
    pub hearing: bool,
    /// The last known `Seconds_Behind_Master` (kept when it turns NULL, e.g. after the master
    /// died, so a lagging replica stays known as lagging).
    pub last_delay: Option<u64>,
}

impl ServerRuntime {
    /// A server not probed yet.
    pub fn new(addr: &HostPort, config: &ClusterConfig) -> ServerRuntime {
        ServerRuntime {
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
            hear_evidence: None,
            hear_changed_at: None,
            hearing: false,
            last_delay: None,
        }
    }

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
            crashes: Vec::new(),
            topo_problems: Vec::new(),
            blockers: Vec::new(),
            quarantined: BTreeMap::new(),
            intent: None,
            journal: Vec::new(),
        }
    }

    /// Applies the state replicated by the group (the truth on every node, the leader too).
    pub fn sync_replicated(&mut self, p: Option<PersistedCluster>) {
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
        all.extend(self.quarantined.values().cloned());
        all.sort();
        all.dedup();
        let opened: Vec<Problem> = all.iter().filter(|p| !self.problems.contains(p)).cloned().collect();
        let closed: Vec<Problem> = self.problems.iter().filter(|p| !all.contains(p)).cloned().collect();
        for p in opened {
            let level = if p.is_error() { Level::Error } else { Level::Warn };
            self.log(level, "alert", &format!("{}: {}", p.code, p.desc));
        }
        for p in closed {
            self.log(Level::Info, "alert", &format!("Resolved {}: {}", p.code, p.desc));
        }
        self.problems = all;
    }

    /// Tracks, per replica, whether it still receives from its source: IO thread running and
    /// heartbeats or positions advancing within a window longer than the heartbeat period.
    fn update_hearing(&mut self, results: &[Result<ServerSnapshot, ProbeError>]) {
        let source = self.config.replication_source_name.clone();
        let min_window = self.config.falsepositive_heartbeat_timeout.max(self.config.monitoring_ticker * 2);
        let now = Instant::now();
        for (srv, res) in self.servers.iter_mut().zip(results) {
            let repl = res.as_ref().ok().and_then(|s| s.managed_replication(&source));
            let Some(r) = repl else {
                srv.hear_evidence = None;
                srv.hear_changed_at = None;
                srv.hearing = false;
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
            let period = Duration::from_secs_f64(r.slave_heartbeat_period.clamp(0.0, 3600.0));
            let window = min_window.max(period.mul_f64(1.5) + self.config.monitoring_ticker);
            srv.hearing = r.io_running.eq_ignore_ascii_case("yes")
                && srv.hear_changed_at.is_some_and(|t| now.duration_since(t) <= window);
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

/// The trigger name of automatic failovers (their refusals go to alerts, not to the log each tick).
pub const AUTOMATIC: &str = "automatic: master failed";

/// A request for the monitor task, answered on `reply`.
pub struct ClusterCommand {
    pub action: Action,
    /// Who asked (API user, and the node that forwarded the request), for the journal.
    pub requester: String,
    pub reply: oneshot::Sender<ActionResult>,
}

/// The loop that probes one cluster and acts on it.
pub struct ClusterMonitor {
    shared: Arc<SharedCluster>,
    probes: Vec<ServerProbe>,
    ticker: Duration,
    probe_deadline: Duration,
    /// The config generation the probes were built for.
    generation: u64,
    commands: mpsc::Receiver<ClusterCommand>,
    group: Arc<ManagerGroup>,
    env: Arc<MonitorEnv>,
    /// Servers whose rejoin task runs now.
    rejoining: Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
}

/// What every cluster monitor shares: where the configuration came from (for reloads) and
/// the job registry (backups, optimize).
pub struct MonitorEnv {
    /// `monitoring-datadir` (instances of the local orchestrator live under it).
    pub datadir: std::path::PathBuf,
    pub config_source: Option<std::path::PathBuf>,
    pub cli_overrides: Vec<(String, String)>,
    pub jobs: Arc<crate::jobs::JobRegistry>,
}

impl ClusterMonitor {
    pub fn new(
        shared: Arc<SharedCluster>,
        commands: mpsc::Receiver<ClusterCommand>,
        group: Arc<ManagerGroup>,
        env: Arc<MonitorEnv>,
    ) -> ClusterMonitor {
        let mut m = ClusterMonitor {
            shared,
            probes: Vec::new(),
            ticker: Duration::from_secs(1),
            probe_deadline: Duration::from_secs(1),
            generation: u64::MAX,
            commands,
            group,
            env,
            rejoining: Arc::default(),
        };
        m.rebuild_probes();
        m
    }

    /// (Re)creates one probe per server from the current configuration.
    fn rebuild_probes(&mut self) {
        let st = self.shared.read();
        let cfg = &st.config;
        self.probes = st
            .servers
            .iter()
            .map(|s| ServerProbe::new(s.addr.clone(), cfg.db_credential.clone(), cfg.connect_timeout))
            .collect();
        self.ticker = cfg.monitoring_ticker;
        // Connect, then the statements: each bounded by the timeout, the whole by twice it.
        self.probe_deadline = cfg.connect_timeout * 2;
        self.generation = st.config_generation;
    }

    fn executor(&self) -> FailoverExecutor<'_> {
        FailoverExecutor { shared: &self.shared, coord: self.group.as_ref() }
    }

    /// Runs until `shutdown` turns true. A tick starts every `monitoring-ticker`, or right after
    /// the previous one when probing took longer. Actions are run between ticks, one at a time.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.shared.read().config.name.clone();
        tracing::info!(cluster = %name, servers = self.probes.len(), ticker = ?self.ticker, "monitor started");
        let mut next_tick = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_tick.into()) => {
                    let started = Instant::now();
                    let paused = self.shared.read().config.monitoring_pause;
                    if !paused {
                        self.tick().await;
                    }
                    next_tick = started + self.ticker;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        let result = self.handle(cmd.action, &cmd.requester).await;
                        let _ = cmd.reply.send(result);
                    }
                    None => break,
                },
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

    /// One probe round (every node), then the automatic decisions (the active leader only).
    async fn tick(&mut self) {
        // On the leader, a fresh quorum round first: it also guarantees this node applied every
        // committed decision before it reads them and acts on them.
        let active = self.group.is_active() && self.group.check("monitor tick").await.is_ok();
        self.refresh().await;
        if !active {
            // A standby never decides: its alerts show no failover blockers of its own.
            let mut st = self.shared.write();
            if !st.blockers.is_empty() {
                st.blockers.clear();
                st.publish_problems();
            }
            return;
        }
        self.resume_interrupted().await;
        self.check_automatic_failover().await;
        self.check_rejoin().await;
    }

    /// Finishes or rolls back operations a previous leader left open in the journal. They are
    /// not subject to the failover gate: a counter must never stop completing a failover that
    /// already promoted a new master.
    async fn resume_interrupted(&mut self) {
        let open: Vec<JournalEntry> = self.shared.read().journal.iter().filter(|j| j.is_open()).cloned().collect();
        for j in open {
            if let Err(e) = self.executor().resume(j.clone()).await {
                let mut st = self.shared.write();
                st.log(Level::Error, "failover", &format!("Resuming {} failed: {}", j.op_id, e.message));
            }
        }
    }

    async fn handle(&mut self, action: Action, requester: &str) -> ActionResult {
        tracing::info!(cluster = %self.shared.read().config.name, ?action, requester, "action requested");
        let (term, node) = self.group.epoch();
        if !self.group.is_active() {
            return Err(ActionError::new(503, format!("node {node} is not the active leader (term {term}): action not run")));
        }
        match action {
            Action::Failover => {
                self.refresh().await;
                self.executor().failover(&format!("API failover by {requester}")).await
            }
            Action::Switchover { prefmaster } => {
                self.refresh().await;
                self.executor().switchover(prefmaster.as_deref(), &format!("API switchover by {requester}")).await
            }
            Action::ResetFailoverControl => self.executor().reset_failover_control().await,
            Action::ToggleMaintenance { server } => self.executor().toggle_maintenance(&server).await,
            Action::Bootstrap { topology } => {
                self.refresh().await;
                self.executor().bootstrap(&topology).await
            }
            Action::ReplicationCleanup => {
                self.refresh().await;
                self.executor().cleanup().await
            }
            Action::SetSetting { name, value } => self.executor().set_setting(&name, &value).await,
            Action::SwitchSetting { name } => self.executor().switch_setting(&name).await,
            Action::ReloadSettings => {
                let env = self.env.clone();
                self.executor().reload_settings(env.config_source.as_deref(), &env.cli_overrides).await
            }
            Action::AddServer { host, port } => self.executor().add_server(&host, &port).await,
            Action::RunTest { name } => {
                self.refresh().await;
                self.executor().run_test(&name).await
            }
            Action::ServicesProvision => {
                let datadir = self.env.datadir.clone();
                self.executor().services(false, &datadir).await
            }
            Action::ServicesBootstrap => {
                let datadir = self.env.datadir.clone();
                self.executor().services(true, &datadir).await
            }
            Action::MasterPhysicalBackup => {
                let master = {
                    let st = self.shared.read();
                    st.master.map(|m| st.servers[m].addr.to_string())
                };
                match master {
                    Some(m) => self.server_action(&m, ServerAction::BackupPhysical).await,
                    None => Err(ActionError::new(500, "No master known: no physical backup")),
                }
            }
            Action::Server { server, action } => self.server_action(&server, action).await,
        }
    }

    /// One server action: SQL toggles, orchestrator commands, jobs, reseeds.
    async fn server_action(&mut self, server: &str, action: ServerAction) -> ActionResult {
        match &action {
            ServerAction::Start | ServerAction::Stop | ServerAction::Provision | ServerAction::Unprovision => {
                let datadir = self.env.datadir.clone();
                self.executor().orchestrate(server, &action, &datadir).await
            }
            ServerAction::BackupLogical
            | ServerAction::BackupPhysical
            | ServerAction::BackupErrorLog
            | ServerAction::BackupSlowQueryLog
            | ServerAction::Optimize => self.start_job(server, &action).await,
            ServerAction::Reseed(method) => {
                self.refresh().await;
                self.reseed(server, method).await
            }
            _ => self.executor().server_sql_action(server, &action).await,
        }
    }

    /// Starts a background job (backups, optimize) on a server and answers at once.
    async fn start_job(&mut self, server: &str, action: &ServerAction) -> ActionResult {
        use crate::jobs::JobKind;
        let (addr, cluster, cred, deadline) = {
            let st = self.shared.read();
            let Some(i) = st.find_server(server) else { return Err(ActionError::new(500, "Server Not Found")) };
            if !st.servers[i].is_up() {
                return Err(ActionError::new(500, "503 -Not a Valid Server!"));
            }
            (st.servers[i].addr.clone(), st.config.name.clone(), st.config.db_credential.clone(), st.config.backup_timeout)
        };
        let kind = match action {
            ServerAction::BackupLogical => JobKind::BackupLogical,
            ServerAction::BackupPhysical => JobKind::BackupPhysical,
            ServerAction::BackupErrorLog => JobKind::BackupErrorLog,
            ServerAction::BackupSlowQueryLog => JobKind::BackupSlowQueryLog,
            _ => JobKind::Optimize,
        };
        self.group.check("start a job").await.map_err(|w| ActionError::new(503, w))?;
        let job = self.env.jobs.start(kind, &cluster, &addr, &cred, deadline).map_err(|e| ActionError::new(409, e))?;
        let msg = format!("Job {} ({kind:?}) started on {addr}", job.id);
        self.shared.write().log(Level::Info, "job", &msg);
        Ok(msg)
    }

    /// Rebuilds a replica: `logicalmaster` (dump of the master now), `logicalbackup` (the latest
    /// logical backup of the cluster), `physicalbackup` (needs a local orchestrator: refused).
    async fn reseed(&mut self, server: &str, method: &str) -> ActionResult {
        let (addr, flavor, master, cfg) = {
            let st = self.shared.read();
            let Some(i) = st.find_server(server) else { return Err(ActionError::new(500, "Server Not Found")) };
            let Some(m) = st.master else { return Err(ActionError::new(500, "No master known: cannot reseed")) };
            if i == m {
                return Err(ActionError::new(409, "Refused: the master cannot be reseeded from itself"));
            }
            let flavor = st.servers[i].snapshot.as_ref().map_or(crate::sql::Flavor::MariaDB, |s| s.flavor);
            (st.servers[i].addr.clone(), flavor, st.servers[m].addr.clone(), st.config.clone())
        };
        let backup = match method {
            "logicalmaster" => None,
            "logicalbackup" => Some(
                self.env
                    .jobs
                    .list(&cfg.name)
                    .into_iter()
                    .find(|j| j.kind == crate::jobs::JobKind::BackupLogical && j.state == "done")
                    .ok_or_else(|| ActionError::new(409, "No finished logical backup in this cluster: run actions/backup-logical first"))?,
            ),
            "physicalbackup" => {
                return Err(ActionError::new(
                    501,
                    "Reseed from a physical backup needs an orchestrator that stops the server and replaces its datadir: not available here (use logicalbackup or logicalmaster)",
                ))
            }
            other => {
                return Err(ActionError::new(400, format!("Unknown reseed method {other}: use logicalbackup, logicalmaster or physicalbackup")))
            }
        };
        self.group.check("reseed").await.map_err(|w| ActionError::new(503, w))?;
        let job = self.env.jobs.track(crate::jobs::JobKind::Reseed, &cfg.name, &addr).map_err(|e| ActionError::new(409, e))?;
        // A reseed copies data: it runs as a job, so the monitor keeps probing meanwhile.
        let (shared, group, jobs, id) = (self.shared.clone(), self.group.clone(), self.env.jobs.clone(), job.id.clone());
        let msg = format!("Job {} (reseed from {method}) started on {addr}", job.id);
        tokio::spawn(async move {
            let started = Instant::now();
            let ex = FailoverExecutor { shared: &shared, coord: group.as_ref() };
            let r = match &backup {
                None => ex.reseed_by_dump(&cfg, &addr, flavor, &master).await,
                Some(b) => ex.reseed_from_backup(&cfg, &addr, flavor, &master, b).await,
            };
            jobs.complete(&id, r.map_err(|e| e.message), started.elapsed());
        });
        self.shared.write().log(Level::Info, "job", &msg);
        Ok(msg)
    }

    /// A probe round on top of the replicated decisions (also before an action, so it decides
    /// on current positions).
    async fn refresh(&mut self) {
        let name = self.shared.read().config.name.clone();
        let replicated = self.group.load(&name);
        let generation = {
            let mut st = self.shared.write();
            st.sync_replicated(replicated);
            st.config_generation
        };
        if generation != self.generation {
            for p in &mut self.probes {
                p.close().await;
            }
            self.rebuild_probes();
        }
        let results = self.probe_all().await;
        let mut st = self.shared.write();
        if results.len() == st.servers.len() {
            st.apply_round(results);
        }
    }

    async fn check_automatic_failover(&mut self) {
        let gate = {
            let st = self.shared.read();
            let Some(m) = st.master else { return };
            let cfg = &st.config;
            let master_failed = st.servers[m].state == ServerState::Failed;
            let hearing: Vec<String> = if cfg.falsepositive_heartbeat {
                st.servers
                    .iter()
                    .filter(|s| {
                        s.hearing
                            && s.snapshot.as_ref().and_then(|sn| sn.managed_replication(&cfg.replication_source_name)).is_some_and(
                                |r| topology::same_server(&r.source(), &st.servers[m].addr),
                            )
                    })
                    .map(|s| s.addr.to_string())
                    .collect()
            } else {
                Vec::new()
            };
            let since = (st.failover_last_time > 0)
                .then(|| Duration::from_secs(ClusterState::now_unix().saturating_sub(st.failover_last_time)));
            planner::automatic_gate(&GateInput {
                mode: cfg.failover_mode,
                master_failed,
                failover_limit: cfg.failover_limit,
                failover_counter: st.failover_counter,
                time_limit: Duration::from_secs(cfg.failover_time_limit),
                since_last_failover: since,
                replicas_hearing_master: hearing,
            })
        };
        let gate = match gate {
            Gate::Go => self.agreement().await,
            other => other,
        };
        let blockers = match &gate {
            Gate::Blocked { code, reason } => vec![Problem { code, desc: reason.clone(), server: None }],
            Gate::Go => match self.executor().failover(AUTOMATIC).await {
                Ok(_) => Vec::new(),
                Err(e) => vec![Problem { code: "ERR00032", desc: format!("Automatic failover failed: {}", e.message), server: None }],
            },
            Gate::Idle => Vec::new(),
        };
        // Published only when it changes: a refusal repeated every tick is logged once.
        let mut st = self.shared.write();
        if st.blockers != blockers {
            st.blockers = blockers;
            st.publish_problems();
        }
    }

    /// The other managers' view: a master is failed over only when a majority of the managers
    /// that answer (this one included) see it failed. Unreachable managers abstain.
    async fn agreement(&self) -> Gate {
        let (name, master) = {
            let st = self.shared.read();
            let Some(m) = st.master else { return Gate::Idle };
            (st.config.name.clone(), st.servers[m].addr.to_string())
        };
        let (answered, failed) = self.group.failed_votes(&name, &master).await;
        let (voters, votes) = (answered + 1, failed + 1);
        if votes * 2 > voters {
            if voters > 1 {
                let msg = format!("{votes} of {voters} answering managers see master {master} failed: failing over");
                self.shared.write().log(Level::Info, "failover", &msg);
            }
            Gate::Go
        } else {
            Gate::Blocked {
                code: "ERR00089",
                reason: format!("Only {votes} of {voters} answering managers see master {master} failed: no failover without a majority"),
            }
        }
    }

    /// Rejoins returning old masters (`autorejoin`), or quarantines the ones ahead.
    async fn check_rejoin(&mut self) {
        {
            // A quarantined server that was fixed (replicating again, or gone) leaves quarantine.
            let mut st = self.shared.write();
            let before = st.quarantined.len();
            let states: Vec<ServerState> = st.servers.iter().map(|s| s.state).collect();
            st.quarantined.retain(|i, _| states.get(*i) == Some(&ServerState::StandAlone));
            if st.quarantined.len() != before {
                st.publish_problems();
            }
        }
        let todo: Vec<(usize, CrashRecord)> = {
            let st = self.shared.read();
            if !st.config.autorejoin || st.in_failover {
                return;
            }
            let Some(m) = st.master else { return };
            if !st.servers[m].is_up() {
                return;
            }
            st.servers
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    *i != m
                        && s.is_up()
                        && !s.maintenance
                        && s.state == ServerState::StandAlone
                        && !st.quarantined.contains_key(i)
                })
                .filter_map(|(i, s)| st.crash_of(&s.addr).map(|c| (i, c.clone())))
                .collect()
        };
        for (i, record) in todo {
            // A rejoin may reload a server (flashback, dump): it runs beside the monitor, so
            // detection goes on meanwhile; one rejoin per server at a time.
            if !self.rejoining.lock().unwrap_or_else(|e| e.into_inner()).insert(i) {
                continue;
            }
            let (shared, group, rejoining) = (self.shared.clone(), self.group.clone(), self.rejoining.clone());
            tokio::spawn(async move {
                let ex = FailoverExecutor { shared: &shared, coord: group.as_ref() };
                let result = ex.rejoin(i, &record).await;
                {
                    let mut st = shared.write();
                    match result {
                        Ok(_) => {
                            st.quarantined.remove(&i);
                        }
                        Err(e) if e.status == 409 => {
                            let addr = st.servers[i].addr.clone();
                            st.quarantined.insert(i, Problem { code: "ERR00070", desc: e.message.clone(), server: Some(addr.to_string()) });
                        }
                        Err(e) => {
                            let msg = format!("Rejoin of {} failed: {}", st.servers[i].addr, e.message);
                            st.log(Level::Error, "rejoin", &msg);
                        }
                    }
                    st.publish_problems();
                }
                rejoining.lock().unwrap_or_else(|e| e.into_inner()).remove(&i);
            });
        }
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

/// Sends `action` to a cluster's monitor and waits for the outcome.
pub async fn request(tx: &mpsc::Sender<ClusterCommand>, action: Action, requester: String) -> ActionResult {
    let (reply, rx) = oneshot::channel();
    tx.send(ClusterCommand { action, requester, reply })
        .await
        .map_err(|_| ActionError::new(503, "the cluster monitor is stopping"))?;
    rx.await.map_err(|_| ActionError::new(500, "the cluster monitor stopped before answering"))?
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
