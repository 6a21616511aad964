//! `ClusterMonitor`: the per-cluster loop. Every `monitoring-ticker` it probes every server
//! concurrently (each probe bounded by `db-servers-connect-timeout`) and applies the round to
//! the shared [`ClusterState`]; on the active leader it then takes the automatic decisions
//! (resume an interrupted operation, fail over a dead master, rejoin an old master).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use replication_manager_api::Action;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::cluster::events::ClusterEvent;
use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::cluster::records::{CrashRecord, JournalEntry};
use crate::cluster::state::{ClusterState, SharedCluster};
use crate::cluster::topology::{Problem, ServerState};
use crate::db::probe::{ProbeError, ServerProbe, ServerSnapshot};
use crate::failover::executor::FailoverExecutor;
use crate::failover::hooks::VETO_CODE;
use crate::failover::plan;
use crate::failover::planner::Gate;
use crate::failover::AUTOMATIC;
use crate::group::{Coordinator, ManagerGroup};

mod actions;
mod verbose;

use actions::{ActionTask, SlotGuard};


/// Deadline of one proxy pass (every proxy observed and reconciled; each command has its own).
const PROXY_PASS_DEADLINE: Duration = Duration::from_secs(60);

/// Host name lookups per round at most (each bounded by a second).
const MAX_LOOKUPS: usize = 4;
/// A spelling that did not resolve to a configured host is tried again after this.
const ALIAS_RETRY: Duration = Duration::from_secs(60);
/// The probe cadence while the master refuses connections (see `ClusterMonitor::next_interval`).
const QUICK_REPROBE: Duration = Duration::from_millis(100);

/// The addresses of `host` (None: no answer within a second).
async fn resolve(host: &str) -> Option<Vec<std::net::IpAddr>> {
    let lookup = tokio::net::lookup_host((host, 0));
    let addrs = tokio::time::timeout(Duration::from_secs(1), lookup).await.ok()?.ok()?;
    Some(addrs.map(|a| a.ip()).collect())
}

/// A request for the monitor task, answered on `reply`.
pub struct ClusterCommand {
    pub action: Action,
    /// The client's `Idempotency-Key`: the action runs at most once per key, and a retry gets
    /// the first outcome.
    pub idempotency_key: Option<String>,
    /// Who asked (API user, and the node that forwarded the request), for the journal.
    pub requester: String,
    pub reply: oneshot::Sender<OpResult>,
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
    /// Set while an API action of this cluster runs (one at a time).
    action_slot: Arc<AtomicBool>,
    /// Probe rounds (started, completed): an action waits on it for a fresh round.
    rounds: watch::Sender<(u64, u64)>,
    /// An action asks for a probe round now.
    round_now: Arc<Notify>,
    /// When each unknown source spelling was last looked up.
    alias_lookups: Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
    /// Set while a proxy pass (observation or reconciliation) runs beside the loop.
    proxy_pass: Arc<AtomicBool>,
}

/// What every cluster monitor shares: where the configuration came from (for reloads) and
/// the job registry (backups, optimize).
pub struct MonitorEnv {
    /// `monitoring-datadir` (instances of the local orchestrator live under it).
    pub datadir: std::path::PathBuf,
    pub config_source: Option<std::path::PathBuf>,
    pub cli_overrides: Vec<(String, String)>,
    pub jobs: Arc<crate::actions::jobs::JobRegistry>,
    /// Failover/switchover outcomes and probe latency are counted here (exposed on `/metrics`).
    pub counters: Arc<crate::cluster::counters::ClusterCounters>,
    /// Where the active leader hands its clusters' events for alerting (never waits).
    pub alerts: crate::actions::alerts::AlertQueue,
}

/// Where in the tick cluster `name` probes: a stable fraction of `ticker` (never zero) taken
/// from the name's hash, spreading many clusters' ticks evenly over the ticker.
fn tick_phase(name: &str, ticker: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    // DefaultHasher::new() is SipHash with fixed keys: the same phase at every start.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let frac = (h.finish() % 1000 + 1) as f64 / 1000.0;
    ticker.mul_f64(frac)
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
            action_slot: Arc::default(),
            rounds: watch::Sender::new((0, 0)),
            round_now: Arc::default(),
            alias_lookups: Arc::default(),
            proxy_pass: Arc::default(),
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
    /// the previous one when probing took longer. Actions run as tasks of their own beside the
    /// loop, one at a time per cluster, so ticks never wait for them.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        // Every event of this monitor (and of the tasks it starts) carries the cluster's name.
        let span = tracing::info_span!("monitor", cluster = %self.shared.read().config.name);
        tracing::Instrument::instrument(self.run_loop(shutdown), span).await
    }

    async fn run_loop(mut self, mut shutdown: watch::Receiver<bool>) {
        let name = self.shared.read().config.name.clone();
        tracing::info!(cluster = %name, servers = self.probes.len(), ticker = ?self.ticker, "monitor started");
        let mut next_tick = Instant::now();
        // The first tick runs at once (topology known at start); the second comes after a
        // fraction of the ticker fixed by the cluster's name, so the monitors of many clusters
        // started together do not all probe in the same instant of every tick (bursts that
        // would delay each other and the API).
        let mut phase = Some(tick_phase(&name, self.ticker));
        let mut active = self.group.active_changes();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_tick.into()) => {
                    let started = Instant::now();
                    self.env.counters.tick_late(&name, started.saturating_duration_since(next_tick));
                    let paused = self.shared.read().config.monitoring_pause;
                    if !paused {
                        self.tick().await;
                    }
                    self.hand_over_events();
                    let regular = self.next_interval();
                    // A hurried reprobe (a refusing master) is never put off by the phase.
                    let wait = if regular < self.ticker { regular } else { phase.unwrap_or(regular) };
                    phase = None;
                    next_tick = started + wait;
                }
                _ = self.round_now.notified() => {
                    // An action wants current positions: a probe round now, no decisions.
                    self.refresh().await;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.dispatch(cmd),
                    None => break,
                },
                _ = shutdown.changed() => break,
                // A new leader takes over at once, on the positions its follower-side probes keep
                // current, rather than at its next tick.
                Ok(()) = active.changed() => {
                    if *active.borrow_and_update() {
                        tracing::info!(cluster = %name, term = self.group.epoch().0, "this node became the active leader: monitor tick now");
                        next_tick = Instant::now();
                    }
                }
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

    /// The wait until the next tick: `monitoring-ticker`, or [`QUICK_REPROBE`] while the master
    /// refuses connections and the refused-connection detection is on, so its replicas' and the
    /// other managers' confirmation is read within a fraction of a tick. Bounded: once the
    /// master was refused `failover-falsepositive-ping-counter` times, the ticker again. A
    /// probe that times out never hurries the ticks (a freeze waits the whole window).
    fn next_interval(&self) -> Duration {
        let st = self.shared.read();
        let cfg = &st.config;
        let hurry = st.master.is_some_and(|m| {
            let r = st.servers[m].refused_count;
            cfg.falsepositive_refused_counter > 0 && r > 0 && r <= cfg.falsepositive_ping_counter
        });
        if hurry {
            self.ticker.min(QUICK_REPROBE)
        } else {
            self.ticker
        }
    }

    /// Starts `cmd` as a supervised task with its deadline, unless another action of this
    /// cluster runs (409) or this node is not the active leader (503). The reply goes to the
    /// requester when the task ends.
    fn dispatch(&self, cmd: ClusterCommand) {
        let name = self.shared.read().config.name.clone();
        tracing::info!(cluster = %name, action = ?cmd.action, requester = %cmd.requester, "action requested");
        if !self.group.is_active() {
            let (term, node) = self.group.epoch();
            let _ = cmd.reply.send(Err(FailoverError::new(ErrorKind::NotLeader, format!("node {node} is not the active leader (term {term}): action not run"))));
            return;
        }
        if self.action_slot.swap(true, Ordering::AcqRel) {
            let _ = cmd.reply.send(Err(FailoverError::new(ErrorKind::Conflict, format!("Cancel: another action is running on cluster {name}"))));
            return;
        }
        let guard = SlotGuard(self.action_slot.clone());
        let task = ActionTask {
            shared: self.shared.clone(),
            group: self.group.clone(),
            env: self.env.clone(),
            rounds: self.rounds.subscribe(),
            round_now: self.round_now.clone(),
        };
        let deadline = actions::deadline(&cmd.action);
        let label = format!("{:?}", cmd.action);
        let cluster = name.clone();
        let work = spawn_in_span(async move {
            let _guard = guard;
            let run = async {
                match tokio::time::timeout(deadline, task.handle(cmd.action.clone(), &cmd.requester)).await {
                    Ok(r) => r.map_err(|e| e.in_cluster(&cluster)),
                    Err(_) => Err(FailoverError::new(ErrorKind::Timeout, format!("the action did not finish within its deadline of {} s", deadline.as_secs()))),
                }
            };
            let result = match &cmd.idempotency_key {
                None => run.await,
                Some(key) => task.once(&cluster, key, &cmd.action, run).await,
            };
            let _ = cmd.reply.send(result);
        });
        // Supervision: a panicking action is reported (its slot is freed by the guard).
        spawn_in_span(async move {
            if let Err(e) = work.await {
                tracing::error!(cluster = %name, action = %label, error = %e, "action task failed");
            }
        });
    }

    /// One probe round (every node), then the automatic decisions (the active leader only).
    async fn tick(&mut self) {
        // On the leader, a fresh quorum round first: it also guarantees this node applied every
        // committed decision before it reads them and acts on them.
        let active = self.group.is_active() && self.group.check("monitor tick").await.is_ok();
        self.refresh().await;
        self.log_round_if_verbose();
        self.learn_host_aliases();
        self.check_read_only_bypass();
        if !active {
            // A standby never decides: its alerts show no failover blockers of its own.
            let mut st = self.shared.write();
            if !st.blockers.is_empty() {
                st.blockers.clear();
                st.publish_problems();
            }
            drop(st);
            self.proxies(false);
            return;
        }
        self.resume_interrupted().await;
        self.guard_writes().await;
        self.check_automatic_failover().await;
        self.proxies(true);
        self.check_rejoin().await;
    }

    /// Proxies follow the topology: on the active leader a reconciliation (drift repaired, a
    /// local proxy that does not answer provisioned), elsewhere an observation only (a standby
    /// never changes a proxy). It runs beside the loop, one pass at a time, so a proxy that
    /// does not answer never delays detection.
    fn proxies(&self, leader: bool) {
        {
            let st = self.shared.read();
            if st.proxies.is_empty() && !st.config.proxy.enabled() {
                return;
            }
        }
        if self.proxy_pass.swap(true, Ordering::AcqRel) {
            return;
        }
        let (shared, group, pass) = (self.shared.clone(), self.group.clone(), self.proxy_pass.clone());
        tokio::spawn(async move {
            let _done = SlotGuard(pass);
            let ex = FailoverExecutor { shared: &shared, coord: group.as_ref() };
            let work = async {
                if leader {
                    ex.reconcile_proxies().await;
                } else {
                    ex.observe_proxies().await;
                }
            };
            if tokio::time::timeout(PROXY_PASS_DEADLINE, work).await.is_err() {
                tracing::warn!(cluster = %shared.read().config.name, "proxy pass did not finish within {PROXY_PASS_DEADLINE:?}");
            }
        });
    }

    /// Takes the cluster's events: counts the master changes that ended, and on the active
    /// leader offers them to the alert queue (a standby drops them: one node alerts). Never
    /// waits on a delivery.
    fn hand_over_events(&self) {
        let (name, events) = {
            let mut st = self.shared.write();
            if st.events.is_empty() {
                return;
            }
            (st.config.name.clone(), st.events.drain())
        };
        for e in &events {
            if let ClusterEvent::MasterChange { kind, outcome, .. } = e {
                self.env.counters.operation(&name, *kind, *outcome);
            }
        }
        if self.group.is_active() {
            self.env.alerts.offer(&self.shared, events);
        }
    }

    /// Learns how replicas spell their source when it is not a configured host: both are
    /// resolved beside the loop (each lookup bounded by a second, at most [`MAX_LOOKUPS`] per
    /// round, a spelling tried at most once a minute) and one that resolves to a configured
    /// host's address is recorded as its alias.
    fn learn_host_aliases(&self) {
        let now = Instant::now();
        let (unknown, hosts) = {
            let st = self.shared.read();
            let hosts: Vec<String> = st.servers.iter().map(|s| s.addr.host.clone()).collect();
            let tried = self.alias_lookups.lock().unwrap_or_else(|e| e.into_inner());
            let mut unknown: Vec<String> = st
                .servers
                .iter()
                .filter_map(|s| s.snapshot.as_ref())
                .flat_map(|sn| sn.replications.iter().map(|r| r.master_host.clone()))
                .filter(|h| !h.is_empty() && !hosts.iter().any(|c| c.eq_ignore_ascii_case(h)) && !st.host_aliases.contains_key(h))
                .filter(|h| tried.get(h).is_none_or(|t| now.duration_since(*t) > ALIAS_RETRY))
                .collect();
            unknown.sort();
            unknown.dedup();
            unknown.truncate(MAX_LOOKUPS);
            (unknown, hosts)
        };
        if unknown.is_empty() {
            return;
        }
        {
            let mut tried = self.alias_lookups.lock().unwrap_or_else(|e| e.into_inner());
            for h in &unknown {
                tried.insert(h.clone(), now);
            }
            // Bounded: spellings not seen for a while are forgotten.
            tried.retain(|_, t| now.duration_since(*t) <= ALIAS_RETRY * 10);
        }
        let shared = self.shared.clone();
        spawn_in_span(async move {
            for alias in unknown {
                let Some(ips) = resolve(&alias).await else { continue };
                for host in &hosts {
                    if resolve(host).await.is_some_and(|h| h.iter().any(|ip| ips.contains(ip))) {
                        let mut st = shared.write();
                        let msg = format!("{alias} (a replica's source) resolves to the configured host {host}: taken as the same server");
                        st.host_aliases.insert(alias.clone(), host.clone());
                        st.log(Level::Info, "topology", &msg);
                        break;
                    }
                }
            }
        });
    }

    /// Reads once per server which accounts can bypass `read_only` (WARN0112), beside the loop.
    fn check_read_only_bypass(&self) {
        let todo: Vec<(usize, crate::config::HostPort, crate::db::sql::Flavor, String)> = {
            let mut st = self.shared.write();
            let todo: Vec<_> = st
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.read_only_bypass.is_none() && s.is_up())
                .filter_map(|(i, s)| s.snapshot.as_ref().map(|sn| (i, s.addr.clone(), sn.flavor, sn.version.clone())))
                .collect();
            for (i, ..) in &todo {
                st.servers[*i].read_only_bypass = Some(Vec::new());
            }
            todo
        };
        if todo.is_empty() {
            return;
        }
        let (shared, cfg) = (self.shared.clone(), self.shared.read().config.clone());
        spawn_in_span(async move {
            for (i, addr, flavor, version) in todo {
                let read = async {
                    let mut c = crate::db::conn::AdminConn::connect(&addr, &cfg.db_credential, flavor, cfg.connect_timeout, cfg.connect_timeout * 2).await?;
                    let r = c.column(crate::db::sql::read_only_bypass_accounts(&version)).await;
                    c.close().await;
                    r
                };
                let own = format!("'{}'@", cfg.db_credential.user);
                let result = read.await;
                let mut st = shared.write();
                let Some(server) = st.servers.get_mut(i) else { continue };
                match result {
                    Ok(accounts) => {
                        server.read_only_bypass = Some(accounts.into_iter().filter(|a| !a.starts_with(&own)).collect());
                        st.publish_problems();
                    }
                    // Retried next tick.
                    Err(e) => {
                        tracing::debug!(server = %addr, error = %e, "reading the accounts that bypass read_only");
                        server.read_only_bypass = None;
                    }
                }
            }
        });
    }

    /// Fence on sight: only the intended master stays writable (see [`plan::write_guards`]).
    async fn guard_writes(&mut self) {
        for r in self.executor().guard_writes().await {
            if let Err(e) = r {
                let name = self.shared.read().config.name.clone();
                let e = e.in_cluster(&name);
                tracing::error!(error = %e.with_context(), "write guard failed");
                self.shared.write().log(Level::Error, "fence", &format!("Write guard failed: {}", e.message));
            }
        }
    }

    /// Finishes or rolls back operations a previous leader left open in the journal. They are
    /// not subject to the failover gate: a counter must never stop completing a failover that
    /// already promoted a new master.
    async fn resume_interrupted(&mut self) {
        if self.shared.read().in_failover {
            // The operation in the journal is running now (an action task): not interrupted.
            return;
        }
        let open: Vec<JournalEntry> = self.shared.read().journal.iter().filter(|j| j.is_open()).cloned().collect();
        for j in open {
            if let Err(e) = self.executor().resume(j.clone()).await {
                let mut st = self.shared.write();
                st.log(Level::Error, "failover", &format!("Resuming {} failed: {}", j.op_id, e.message));
            }
        }
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
        self.rounds.send_modify(|r| r.0 += 1);
        let results = self.probe_all().await;
        {
            let mut st = self.shared.write();
            if results.len() == st.servers.len() {
                st.apply_round(results);
            }
        }
        self.rounds.send_modify(|r| r.1 += 1);
    }

    async fn check_automatic_failover(&mut self) {
        let gate = {
            let st = self.shared.read();
            plan::automatic_gate(&st, Instant::now(), ClusterState::now_unix())
        };
        let gate = match gate {
            Gate::Go => self.agreement().await,
            other => other,
        };
        let blockers = match &gate {
            Gate::Blocked { code, reason } => vec![Problem { code, desc: reason.clone(), server: None }],
            Gate::Go => match self.executor().failover(AUTOMATIC).await {
                Ok(_) => Vec::new(),
                Err(e) => {
                    let e = e.in_cluster(&self.shared.read().config.name);
                    tracing::error!(error = %e.with_context(), "automatic failover failed");
                    if e.message.starts_with(VETO_CODE) {
                        vec![Problem { code: VETO_CODE, desc: format!("Automatic failover vetoed: {}", e.message), server: None }]
                    } else {
                        vec![Problem { code: "ERR00032", desc: format!("Automatic failover failed: {}", e.message), server: None }]
                    }
                }
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

    /// The other managers' view (see [`plan::tally`]). Unreachable managers abstain.
    async fn agreement(&self) -> Gate {
        let (name, master) = {
            let st = self.shared.read();
            let Some(m) = st.master else { return Gate::Idle };
            (st.config.name.clone(), st.servers[m].addr.to_string())
        };
        let (answered, failed) = self.group.failed_votes(&name, &master).await;
        let gate = plan::tally(&master, answered, failed);
        if gate == Gate::Go && answered > 0 {
            let msg = format!("{} of {} answering managers see master {master} failed: failing over", failed + 1, answered + 1);
            self.shared.write().log(Level::Info, "failover", &msg);
        }
        gate
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
            spawn_in_span(async move {
                let ex = FailoverExecutor { shared: &shared, coord: group.as_ref() };
                let result = ex.rejoin(i, &record).await;
                {
                    let mut st = shared.write();
                    match result {
                        Ok(_) => {
                            st.quarantined.remove(&i);
                        }
                        Err(e) if e.kind == ErrorKind::Conflict => {
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
        let (cluster, addrs): (String, Vec<String>) = {
            let st = self.shared.read();
            (st.config.name.clone(), st.servers.iter().map(|s| s.addr.to_string()).collect())
        };
        let (counters, cluster) = (&self.env.counters, &cluster);
        let rounds = self.probes.iter_mut().zip(addrs).map(|(p, addr)| async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(deadline, p.probe()).await {
                Ok(r) => r,
                Err(_) => {
                    // The probe future was dropped mid-statement: its connection is gone with it.
                    Err(ProbeError::StatementTimeout { statement: "probe".to_string(), after: deadline })
                }
            };
            counters.probe(cluster, &addr, started.elapsed());
            result
        });
        futures::future::join_all(rounds).await
    }
}

/// Sends `action` to a cluster's monitor and waits for the outcome.
/// Bounded by the action's own deadline plus a margin: the task answers (or times out) first.
pub async fn request(tx: &mpsc::Sender<ClusterCommand>, action: Action, requester: String, idempotency_key: Option<String>) -> OpResult {
    let limit = actions::deadline(&action) + Duration::from_secs(30);
    let (reply, rx) = oneshot::channel();
    tokio::time::timeout(Duration::from_secs(10), tx.send(ClusterCommand { action, idempotency_key, requester, reply }))
        .await
        .map_err(|_| FailoverError::new(ErrorKind::NotLeader, "the cluster monitor did not take the request within 10 s"))?
        .map_err(|_| FailoverError::new(ErrorKind::NotLeader, "the cluster monitor is stopping"))?;
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(FailoverError::new(ErrorKind::Failed, "the cluster monitor stopped before answering")),
        Err(_) => Err(FailoverError::new(ErrorKind::Timeout, format!("no answer within {} s", limit.as_secs()))),
    }
}

/// `tokio::spawn` keeping the current span (the monitor's cluster), so a task's log events
/// still say which cluster they are about.
fn spawn_in_span<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(tracing::Instrument::in_current_span(task))
}

#[cfg(test)]
mod phase_tests {
    use super::tick_phase;
    use std::time::Duration;

    #[test]
    fn tick_phases_are_stable_within_the_ticker_and_spread() {
        let t = Duration::from_secs(1);
        let phases: Vec<Duration> = (0..400).map(|i| tick_phase(&format!("farm{i}"), t)).collect();
        assert!(phases.iter().all(|p| *p > Duration::ZERO && *p <= t));
        assert_eq!(tick_phase("farm7", t), phases[7], "the same name, the same phase");
        // Spread: every tenth of the ticker holds some clusters, none holds most of them.
        for decile in 0..10 {
            let n = phases.iter().filter(|p| (p.as_secs_f64() * 10.0).ceil() as usize == decile + 1).count();
            assert!(n > 10 && n < 100, "decile {decile}: {n} of 400");
        }
    }
}
