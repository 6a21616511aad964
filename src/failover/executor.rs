//! `FailoverExecutor`: runs failover, switchover and rejoin steps against the servers. Every
//! statement has a deadline, every database mutation is preceded by a fresh leadership check
//! ([`Coordinator::check`]), each operation is journaled through the manager group before its
//! first mutation and at each milestone, and a switchover that fails before the promotion undoes
//! what it did.

use std::time::{Duration, Instant};

use crate::db::conn::{AdminConn, DbError};
use crate::db::gtid::GtidPos;
use crate::cluster::events::ChangeKind;
use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::config::{ClusterConfig, HostPort};
use crate::cluster::records::{CrashRecord, JournalEntry, CRASHES_KEPT, JOURNAL_KEPT};
use crate::group::Coordinator;
use crate::cluster::records::{OpKind, OpStatus};
use crate::cluster::state::{ClusterState, SharedCluster};
use crate::failover::plan::{self, FailoverStep};
use crate::failover::planner;
use crate::failover::AUTOMATIC;
use crate::db::sql::{self, ChangeMaster, Flavor};
use crate::cluster::topology::ServerState;

/// How often a long step re-checks that this node still leads ([`FailoverExecutor::while_leader`]).
pub const LEADERSHIP_RECHECK: Duration = Duration::from_secs(2);

/// Attempts of kill-then-read_only in a fence, and the lock wait of each.
const FENCE_ATTEMPTS: usize = 5;
const FENCE_LOCK_WAIT_SECS: u64 = 1;

/// How long a promoted replica may take to apply its relay log before the failover gives up.
pub const RELAY_APPLY_DEADLINE: Duration = Duration::from_secs(60);

/// Fault-injection hooks for the chaos tests (environment, never configuration): with the
/// variable `var` set to a number of milliseconds, the operation pauses there, so a test can
/// kill or isolate the leader at that point and check what the next leader does.
/// `REPLICATION_MANAGER_FAULT_PAUSE_AFTER_PROMOTE_MS`: a failover, right after its "promoted"
/// journal entry is replicated. `REPLICATION_MANAGER_FAULT_PAUSE_AFTER_FENCE_MS`: a
/// switchover, right after the old master is fenced and locked.
pub(crate) async fn fault_pause(var: &str, what: &str, op: &str) {
    let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    tracing::warn!(op, ms, "fault injection: pausing {what}");
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs master changes and cluster operations on one cluster, from the monitor's automatic
/// decisions or from an action task beside it.
pub struct FailoverExecutor<'a> {
    pub shared: &'a SharedCluster,
    pub coord: &'a dyn Coordinator,
}

/// Resets `in_failover` however the action ends.
pub(crate) struct InFailover<'a>(&'a SharedCluster);

impl<'a> InFailover<'a> {
    pub(crate) fn enter(shared: &'a SharedCluster) -> Result<InFailover<'a>, FailoverError> {
        let mut st = shared.write();
        if st.in_failover {
            return Err(FailoverError::new(ErrorKind::Conflict, "Cancel: the cluster is already in failover or switchover"));
        }
        st.in_failover = true;
        Ok(InFailover(shared))
    }
}

/// Counts a replicated write in flight (see [`FailoverExecutor::commit`]), however it ends.
struct PendingWrite<'a>(&'a SharedCluster);

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        let mut st = self.0.write();
        st.pending_writes = st.pending_writes.saturating_sub(1);
    }
}

impl Drop for InFailover<'_> {
    fn drop(&mut self) {
        self.0.write().in_failover = false;
    }
}

pub(crate) fn now_unix() -> u64 {
    ClusterState::now_unix()
}

pub(crate) fn op_id(kind: &str) -> String {
    format!("{kind}-{}-{:08x}", now_unix(), rand::random::<u32>())
}

impl FailoverExecutor<'_> {
    pub(crate) fn snapshot(&self) -> ClusterState {
        self.shared.read().clone()
    }

    pub(crate) fn log(&self, level: Level, msg: &str) {
        self.shared.write().log(level, "failover", msg);
    }

    pub(crate) async fn admin(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor) -> Result<AdminConn, DbError> {
        // Admin statements get a longer deadline than probes: a busy master may be slow to lock.
        AdminConn::connect(addr, &cfg.db_credential, flavor, cfg.connect_timeout, cfg.connect_timeout.max(Duration::from_secs(5)) * 2).await
    }

    /// Runs `statement` on `conn` after a fresh leadership check.
    pub(crate) async fn mutate(&self, conn: &mut AdminConn, step: &str, statement: &str) -> Result<(), FailoverError> {
        let (term, _) = self.coord.epoch();
        self.coord.check(step).await.map_err(|why| FailoverError::from(why).at_step(step, term))?;
        let (term, node) = self.coord.epoch();
        tracing::info!(server = conn.server(), step, term, node, "executing");
        conn.exec(statement).await.map_err(|e| FailoverError::from(e).at_step(step, term))
    }

    pub(crate) fn change_master_sql<'c>(cfg: &'c ClusterConfig, new: &'c HostPort) -> ChangeMaster<'c> {
        ChangeMaster {
            connection_name: &cfg.replication_source_name,
            host: &new.host,
            port: new.port,
            user: &cfg.replication_credential.user,
            password: &cfg.replication_credential.password,
            connect_retry: cfg.slave_heartbeat_retry,
            heartbeat_period: cfg.slave_heartbeat_time,
        }
    }

    /// Points `addr` at `new` with GTID and starts replication; read-only when configured.
    pub(crate) async fn repoint(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor, new: &HostPort) -> Result<(), FailoverError> {
        let mut c = self.admin(cfg, addr, flavor).await?;
        let cm = Self::change_master_sql(cfg, new);
        self.mutate(&mut c, "stop replica", &sql::stop_slave(&cfg.replication_source_name)).await?;
        tracing::info!(server = %addr, statement = %sql::change_master_for_log(flavor, &cm), "repointing");
        self.mutate(&mut c, "change master", &sql::change_master(flavor, &cm)).await?;
        self.mutate(&mut c, "start replica", &sql::start_slave(&cfg.replication_source_name)).await?;
        if cfg.failover_readonly_state {
            self.mutate(&mut c, "read_only on replica", sql::READ_ONLY_ON).await?;
        }
        c.close().await;
        Ok(())
    }

    /// Applies `change` to the cluster's decisions and replicates the result through the
    /// group; Ok once a quorum has it. The write builds on the latest replicated copy (read after
    /// a fresh leadership check, so this node has applied everything committed before) and is a
    /// compare-and-set on it: a copy another leader changed meanwhile is never overwritten with
    /// an older one. Every change of a replicated field goes through here, inside `change`.
    pub(crate) async fn commit<T>(
        &self,
        op_id: &str,
        change: impl FnOnce(&mut ClusterState) -> Result<T, FailoverError>,
    ) -> Result<T, FailoverError> {
        let name = self.shared.read().config.name.clone();
        let _turn = self.shared.write_turn().await;
        let (term, _) = self.coord.epoch();
        self.coord.check("replicate a decision").await.map_err(|e| FailoverError::from(e).at_step("replicate a decision", term))?;
        let base = self.coord.load_raw(&name);
        let (state, out) = {
            let mut st = self.shared.write();
            st.adopt_replicated(base.clone().and_then(|v| crate::group::decode_cluster(&name, v)));
            let out = change(&mut st)?;
            st.pending_writes += 1;
            (st.to_persisted(), out)
        };
        let _pending = PendingWrite(self.shared);
        self.coord.save_if(&name, base, state, op_id.to_string()).await.map_err(|e| {
            self.log(Level::Error, &format!("Could not replicate the decision {op_id}: {e}"));
            FailoverError::new(ErrorKind::NotLeader, format!("decision not replicated by the manager group: {e}"))
        })?;
        Ok(out)
    }

    /// Records `entry` in the journal (replacing the same op id) and replicates it.
    pub(crate) async fn journal(&self, entry: &JournalEntry) -> Result<(), FailoverError> {
        self.journal_with(entry, |_| {}).await
    }

    /// Records `entry` in the journal together with `also` (other decisions that must be
    /// replicated in the same write, e.g. the new master), and replicates both.
    pub(crate) async fn journal_with(&self, entry: &JournalEntry, also: impl FnOnce(&mut ClusterState)) -> Result<(), FailoverError> {
        // Unique per write: a resumed step must not be taken for a duplicate of the first try.
        let step = format!("{}:{}:{:08x}", entry.op_id, entry.status, rand::random::<u32>());
        self.commit(&step, |st| {
            also(st);
            st.journal.retain(|j| j.op_id != entry.op_id);
            st.journal.push(JournalEntry { updated_at: now_unix(), ..entry.clone() });
            let excess = st.journal.len().saturating_sub(JOURNAL_KEPT);
            st.journal.drain(..excess);
            Ok(())
        })
        .await
    }

    pub(crate) fn new_journal(&self, kind: OpKind, trigger: &str, old: &HostPort, candidate: &HostPort, evidence: CrashRecord) -> JournalEntry {
        let (term, node) = self.coord.epoch();
        JournalEntry {
            op_id: evidence.id.clone(),
            kind,
            trigger: trigger.to_string(),
            old_master: old.to_string(),
            candidate: candidate.to_string(),
            status: OpStatus::Started,
            term,
            node,
            evidence,
            updated_at: now_unix(),
        }
    }

    /// The steps of [`FailoverExecutor::failover`] (which records how they ended): promote the
    /// most up-to-date replica of the master (dead or alive), following the plan of
    /// [`plan::plan_failover`] step by step.
    pub(crate) async fn failover_steps(&self, trigger: &str) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let plan = match plan::plan_failover(&st) {
            Ok(p) => p,
            Err(e) => {
                if trigger != AUTOMATIC {
                    self.log(Level::Error, &format!("Failover refused ({}): {}", e.code, e.reason));
                }
                return Err(FailoverError::new(ErrorKind::Conflict, format!("{}: {}", e.code, e.reason)));
            }
        };
        let _busy = InFailover::enter(self.shared)?;
        let (m, w) = (plan.old_master, plan.candidate);
        let old = st.servers[m].clone();
        let cand = st.servers[w].clone();
        let Some(cand_snap) = cand.snapshot.clone() else {
            return Err(FailoverError::new(ErrorKind::Failed, format!("{} has no snapshot", cand.addr)));
        };
        for (name, why) in &plan.skipped {
            self.log(Level::Info, &format!("Election: {name} passed over: {why}"));
        }
        self.log(
            Level::Warn,
            &format!("Failover ({trigger}): electing {} to replace master {} (domain {})", cand.addr, old.addr, plan.domain),
        );

        let repl = cand_snap.managed_replication(&cfg.replication_source_name).cloned().unwrap_or_default();
        let mut record = CrashRecord {
            id: op_id("failover"),
            old_master: old.addr.to_string(),
            old_master_gtid: old.snapshot.as_ref().map(|s| s.gtid_binlog_pos.to_string()).unwrap_or_default(),
            old_master_log_file: repl.master_log_file.clone(),
            old_master_log_pos: repl.read_master_log_pos.clone(),
            elected_master: cand.addr.to_string(),
            elected_io_gtid: repl.gtid_io_pos.clone(),
            old_master_semi_sync: old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_status),
            elected_semi_sync: cand_snap.semi_sync_slave_status,
            gtids_at_risk: plan.at_risk.clone(),
            domain: plan.domain,
            unix_timestamp: now_unix(),
            switchover: false,
            trigger: trigger.to_string(),
            semi_sync_cluster: old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_enabled),
            semi_sync_idle_at_ms: old.snapshot.as_ref().filter(|s| s.semi_sync_acks_before_commit()).and(old.semi_sync_idle_at_ms).unwrap_or(0),
            semi_sync_timeout_ms: old.snapshot.as_ref().map_or(0, |s| s.semi_sync_timeout_ms),
            detection: plan::master_death(&st).unwrap_or_default(),
            detected_after_ms: old.failing_since.map_or(0, |t| t.elapsed().as_millis() as u64),
            ..Default::default()
        };
        if !record.detection.is_empty() {
            self.log(Level::Warn, &format!("Master {} is dead: {} (first failed probe {} ms ago)", old.addr, record.detection, record.detected_after_ms));
        }
        let mut journal = self.new_journal(OpKind::Failover, trigger, &old.addr, &cand.addr, record.clone());
        // The old master's final position, once fenced: the candidate must reach it.
        let mut fenced_at: Option<String> = None;
        // The fence connection holding the old master's global read lock, until the promotion.
        let mut fence_lock: Option<AdminConn> = None;
        // The candidate's received position read after its IO thread stopped (nothing more
        // can arrive): fresher than the election's snapshot.
        let mut received_at: Option<String> = None;
        let mut repoint_errors = Vec::new();
        let mut repointed = false;
        // Proxy updates that failed: reported, alerted, and recorded in the outcome.
        let mut proxy_failures: Vec<String> = Vec::new();
        let op = record.id.clone();
        let outcome = async {
            for step in &plan.steps {
                tracing::debug!(op = %record.id, ?step, "failover step");
                let step_started = Instant::now();
                match step {
                    FailoverStep::PreScript => self.run_pre_script(ChangeKind::Failover, &old.addr, &cand.addr).await?,
                    FailoverStep::JournalStarted => {
                        // Journaled before the first mutation: a new leader can finish or abort it.
                        self.journal(&journal).await?;
                        let (term, node) = self.coord.epoch();
                        self.log(Level::Info, &format!("Operation {} started by node {node} in term {term}", record.id));
                    }
                    FailoverStep::ProxyWriteOut => proxy_failures.extend(self.proxies_write_out(m).await),
                    FailoverStep::ProxyWriteIn => proxy_failures.extend(self.proxies_write_in(w).await),
                    FailoverStep::FenceOldMaster => match self.fence_live_master(&cfg, &old.addr, old.flavor()).await {
                        Ok((pos, lock)) => {
                            let how = if lock.is_some() { "read_only, clients killed, global read lock held" } else { "read_only, clients killed" };
                            self.log(Level::Info, &format!("Old master {} fenced ({how}) at {pos}", old.addr));
                            record.old_master_gtid = pos.clone();
                            fenced_at = Some(pos);
                            fence_lock = lock;
                        }
                        Err(e) => {
                            // A live master that cannot be fenced stays the master: never two writers.
                            let msg = format!("Failover cancelled: the live old master {} could not be fenced: {}", old.addr, e.message);
                            return Err(self.abort(&mut journal, msg).await);
                        }
                    },
                    FailoverStep::FenceScript => {
                        if let Err(e) = self.run_fence_script(&cfg, &old.addr).await {
                            return Err(self.abort(&mut journal, format!("Failover cancelled: {}", e.message)).await);
                        }
                    }
                    FailoverStep::StopReplicaIo { servers } => {
                        let results = futures::future::join_all(servers.iter().map(|i| self.stop_replica_io(&cfg, *i))).await;
                        let mut others: Vec<(usize, String)> = Vec::new();
                        for (i, r) in servers.iter().zip(results) {
                            match r {
                                Ok(pos) if *i == w => received_at = pos,
                                Ok(Some(pos)) => others.push((*i, pos)),
                                Ok(None) => {}
                                // Not fatal: the candidate's detach and each repoint stop it again.
                                Err(e) => self.log(Level::Warn, &format!("Could not stop the IO thread of {}: {}", self.shared.read().servers[*i].addr, e.message)),
                            }
                        }
                        // The election read positions up to a tick old: once nothing more can
                        // arrive, a replica that received more than the candidate must win
                        // (it may hold an acknowledged commit). Cancelled here, before any
                        // promotion; the next tick elects on the final positions.
                        let cand_seq = received_at.as_deref().map(|p| GtidPos::parse_lenient(p).seq_in(plan.domain));
                        let ahead = cand_seq.and_then(|c| others.iter().find(|(_, p)| GtidPos::parse_lenient(p).seq_in(plan.domain) > c));
                        if let Some((i, pos)) = ahead {
                            let other = self.shared.read().servers[*i].addr.clone();
                            let msg = format!(
                                "Failover cancelled: {other} received {pos} once its IO thread stopped, more than the candidate {} ({}): electing again on the final positions",
                                cand.addr,
                                received_at.as_deref().unwrap_or("unknown")
                            );
                            return Err(self.abort(&mut journal, msg).await);
                        }
                    }
                    FailoverStep::WaitApplied => {
                        let target = fenced_at.clone().or_else(|| received_at.clone()).unwrap_or_else(|| repl.gtid_io_pos.clone());
                        if target.is_empty() {
                            record.push_step(step.name(), step_started);
                            continue;
                        }
                        let mut c = self.admin(&cfg, &cand.addr, cand_snap.flavor).await?;
                        let wait = sql::master_gtid_wait(&target, RELAY_APPLY_DEADLINE.as_secs());
                        let r = c.value(&wait, RELAY_APPLY_DEADLINE + Duration::from_secs(5)).await;
                        c.close().await;
                        if r.as_ref().ok().and_then(|v| v.as_deref()) != Some("0") {
                            let msg = format!(
                                "Failover cancelled: {} did not apply up to {target} within {:?} ({})",
                                cand.addr,
                                RELAY_APPLY_DEADLINE,
                                r.map_or_else(|e| e.to_string(), |v| format!("{v:?}"))
                            );
                            return Err(self.abort(&mut journal, msg).await);
                        }
                        record.elected_io_gtid = target;
                    }
                    FailoverStep::DetachCandidate => {
                        let mut c = self.admin(&cfg, &cand.addr, cand_snap.flavor).await?;
                        self.mutate(&mut c, "stop replication on candidate", &sql::stop_slave(&cfg.replication_source_name)).await?;
                        self.mutate(&mut c, "reset replication on candidate", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
                        c.close().await;
                    }
                    FailoverStep::Promote { semi_sync } => self.promote(&cfg, w, *semi_sync, &mut record).await?,
                    FailoverStep::JournalPromoted => {
                        journal.status = OpStatus::Promoted;
                        journal.evidence = record.clone();
                        self.journal_with(&journal, |st| st.intent = Some(cand.addr.clone())).await?;
                        // The new master is decided and writable: the old one's read lock can go
                        // (read_only stays, and fence on sight keeps it so).
                        if let Some(c) = fence_lock.take() {
                            c.close().await;
                        }
                        fault_pause("REPLICATION_MANAGER_FAULT_PAUSE_AFTER_PROMOTE_MS", "after the promotion was journaled", &record.id).await;
                    }
                    FailoverStep::Repoint { .. } if repointed => {}
                    FailoverStep::Repoint { .. } => {
                        // Every repoint of the plan at once, side by side.
                        let targets: Vec<usize> =
                            plan.steps.iter().filter_map(|s| if let FailoverStep::Repoint { server } = s { Some(*server) } else { None }).collect();
                        repoint_errors.extend(self.repoint_servers(&cfg, &targets, &cand.addr).await);
                        repointed = true;
                    }
                    FailoverStep::Finish => {
                        let done = self.finish_failover(m, w, record, journal, repoint_errors).await?;
                        return Ok(plan::with_proxy_failures(done, &proxy_failures));
                    }
                }
                record.push_step(step.name(), step_started);
            }
            Err(FailoverError::new(ErrorKind::Failed, format!("failover plan {} ended without its Finish step", journal.op_id)))
        };
        // Every event of the failover carries its operation id and the term it started in.
        let span = tracing::info_span!("failover", op = %op, term = self.coord.epoch().0);
        let outcome = tracing::Instrument::instrument(outcome, span).await;
        outcome.map_err(|e| e.in_op(&op))
    }

    /// Fences a reachable master: `read_only`, every client connection killed, then a global
    /// read lock taken on the fence connection, and its final GTID position read under that
    /// lock. `read_only` does not stop accounts with `READ_ONLY ADMIN` (WARN0112); the lock
    /// does, so nothing can commit there past the position the candidate must reach. The
    /// connection is returned holding the lock: the caller keeps it until the candidate is
    /// promoted. When the lock cannot be had within the fence's lock wait (a statement that
    /// will not yield), `read_only` and the kills stand and the connection comes back as `None`,
    /// with a warning in the cluster log.
    async fn fence_live_master(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor) -> Result<(String, Option<AdminConn>), FailoverError> {
        let mut c = self.admin(cfg, addr, flavor).await?;
        if let Err(e) = self.fence_server(&mut c, "fence old master").await {
            c.close().await;
            return Err(e);
        }
        let lock_deadline = Duration::from_secs(FENCE_LOCK_WAIT_SECS + 2);
        let locked = match self.coord.check("fence old master: global read lock").await {
            Ok(()) => c.exec_within(sql::FLUSH_TABLES_WITH_READ_LOCK, lock_deadline).await,
            Err(why) => {
                c.close().await;
                return Err(FailoverError::from(why).at_step("fence old master: global read lock", self.coord.epoch().0));
            }
        };
        if let Err(e) = &locked {
            self.log(
                Level::Warn,
                &format!("Old master {addr}: no global read lock within {} s ({e}); read_only and the kills stand, accounts with READ_ONLY ADMIN could still write there", FENCE_LOCK_WAIT_SECS),
            );
            // A lock attempt past its deadline leaves the session unusable: read on a new one.
            c.close().await;
            c = self.admin(cfg, addr, flavor).await?;
        }
        match c.value(sql::GTID_BINLOG_POS, Duration::from_secs(5)).await {
            Ok(pos) if locked.is_ok() => Ok((pos.unwrap_or_default(), Some(c))),
            Ok(pos) => {
                c.close().await;
                Ok((pos.unwrap_or_default(), None))
            }
            Err(e) => {
                c.close().await;
                Err(FailoverError::from(e))
            }
        }
    }

    /// Runs a long step (a dump reload, a flashback, a restore) while this node stays the
    /// active leader: leadership is checked before it starts and every
    /// [`LEADERSHIP_RECHECK`] while it runs; when a check fails the step is dropped (its
    /// client processes are killed with it) and the error says why.
    pub(crate) async fn while_leader<T>(&self, step: &str, work: impl std::future::Future<Output = anyhow::Result<T>>) -> Result<T, FailoverError> {
        let (term, _) = self.coord.epoch();
        self.coord.check(step).await.map_err(|e| FailoverError::from(e).at_step(step, term))?;
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => return r.map_err(|e| FailoverError::new(ErrorKind::Failed, format!("{step}: {e:#}")).at_step(step, term)),
                _ = tokio::time::sleep(LEADERSHIP_RECHECK) => {
                    if let Err(e) = self.coord.check(step).await {
                        self.log(Level::Error, &format!("{step} stopped: this node lost the lead ({e})"));
                        return Err(FailoverError::from(e).at_step(step, term));
                    }
                }
            }
        }
    }

    /// Runs `failover-fence-script <host> <port>` for the old master (after a leadership
    /// check: fencing is part of the decision this leader makes).
    async fn run_fence_script(&self, cfg: &ClusterConfig, old: &HostPort) -> Result<(), FailoverError> {
        let (term, _) = self.coord.epoch();
        self.coord.check("fence script").await.map_err(|e| FailoverError::from(e).at_step("fence script", term))?;
        let command = format!("{} {} {}", cfg.fence_script.trim(), crate::command::shell_word(&old.host), old.port);
        let started = std::time::Instant::now();
        match crate::command::run_command(&command, cfg.fence_script_timeout).await {
            Ok(out) => {
                self.log(Level::Warn, &format!("Fence script fenced old master {old} in {} ms: {out}", started.elapsed().as_millis()));
                Ok(())
            }
            Err(e) => Err(FailoverError::new(ErrorKind::Failed, format!("the fence script could not fence old master {old}: {e}")).at_step("fence script", term)),
        }
    }

    /// Makes the server `conn` is on read-only with its clients cut: kills the client
    /// connections FIRST, then sets `read_only`, a few times over. `SET GLOBAL read_only`
    /// waits for the commits in progress, and a commit waiting for a semi-sync
    /// acknowledgement that no replica will send (a master cut off and back) would hold it
    /// until the semi-sync timeout, then be acknowledged: killing it first means it never
    /// is. Returns the connections killed.
    pub(crate) async fn fence_server(&self, conn: &mut AdminConn, step: &str) -> Result<usize, FailoverError> {
        self.mutate(conn, "short lock wait for the fence", &sql::lock_wait_timeout(FENCE_LOCK_WAIT_SECS)).await?;
        let mut killed = 0;
        let mut last = None;
        for _ in 0..FENCE_ATTEMPTS {
            killed += self.kill_clients(conn).await?;
            match self.mutate(conn, step, sql::READ_ONLY_ON).await {
                Ok(()) => {
                    // Sessions that connected meanwhile may hold transactions: cut them too.
                    killed += self.kill_clients(conn).await?;
                    return Ok(killed);
                }
                Err(e) if e.kind == ErrorKind::NotLeader => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| FailoverError::new(ErrorKind::Failed, format!("{step}: read_only not set"))))
    }

    /// Kills every client connection of the server `conn` is on (replication, system threads
    /// and the manager's own session excluded), after a leadership check.
    pub(crate) async fn kill_clients(&self, conn: &mut AdminConn) -> Result<usize, FailoverError> {
        let ids = conn.column(sql::CLIENT_THREADS).await?;
        self.coord
            .check("kill client connections")
            .await
            .map_err(|why| FailoverError::new(ErrorKind::NotLeader, format!("not acting on databases (kill client connections): {why}")))?;
        let mut killed = 0;
        for id in ids.iter().filter_map(|i| i.parse::<u64>().ok()) {
            // A connection may end by itself meanwhile: failures to kill are not errors.
            match conn.exec(&sql::kill_connection(id)).await {
                Ok(()) => killed += 1,
                Err(e) => tracing::debug!(error = %e, id, "kill connection"),
            }
        }
        Ok(killed)
    }

    /// Journals the operation as aborted (best effort) and returns the error to report.
    async fn abort(&self, journal: &mut JournalEntry, msg: String) -> FailoverError {
        self.log(Level::Error, &msg);
        journal.status = OpStatus::Aborted;
        if let Err(e) = self.journal(journal).await {
            tracing::warn!(op = %journal.op_id, error = %e, "could not journal the abort");
        }
        FailoverError::new(ErrorKind::Failed, msg)
    }

    /// Opens the candidate `w` for writes (semi-sync master first when the cluster used it) and
    /// records its new coordinates in `record`.
    pub(crate) async fn promote(&self, cfg: &ClusterConfig, w: usize, semi_sync: bool, record: &mut CrashRecord) -> Result<(), FailoverError> {
        let cand = self.shared.read().servers[w].clone();
        let flavor = cand.flavor();
        let mut c = self.admin(cfg, &cand.addr, flavor).await?;
        if semi_sync {
            self.mutate(&mut c, "semi-sync master on", sql::SEMISYNC_MASTER_ON).await?;
        }
        self.mutate(&mut c, "open new master for writes", sql::READ_ONLY_OFF).await?;
        let status = c.row(sql::master_status(flavor)).await.ok().flatten().unwrap_or_default();
        record.new_master_gtid = c.value(sql::GTID_BINLOG_POS, Duration::from_secs(5)).await.ok().flatten().unwrap_or_default();
        record.new_master_log_file = status.first().cloned().flatten().unwrap_or_default();
        record.new_master_log_pos = status.get(1).cloned().flatten().unwrap_or_default();
        c.close().await;
        self.log(Level::Info, &format!("New master {} is writable (gtid_binlog_pos {})", cand.addr, record.new_master_gtid));
        Ok(())
    }

    /// Repoints server `i` to `new` unless it already replicates from it; the error names it.
    pub(crate) async fn repoint_server(&self, cfg: &ClusterConfig, i: usize, new: &HostPort) -> Result<(), String> {
        let s = self.shared.read().servers[i].clone();
        let already = s
            .snapshot
            .as_ref()
            .and_then(|x| x.managed_replication(&cfg.replication_source_name))
            .is_some_and(|r| crate::cluster::topology::same_server(&r.source(), new) && r.is_running());
        if already {
            return Ok(());
        }
        match self.repoint(cfg, &s.addr, s.flavor(), new).await {
            Ok(()) => {
                self.log(Level::Info, &format!("Replica {} now replicates from {new}", s.addr));
                Ok(())
            }
            Err(e) => {
                self.log(Level::Error, &format!("Could not repoint {}: {}", s.addr, e.message));
                Err(s.addr.to_string())
            }
        }
    }

    /// Stops the IO thread of replica `i`, still connected to a master that does not answer
    /// ([`FailoverStep::StopReplicaIo`]); returns its received GTID position once stopped
    /// (MariaDB). A semi-sync replica's stop waits for `rpl_semi_sync_slave_kill_conn_timeout`
    /// on its kill connection to the silent master: lowered to 1 s for the statement, then
    /// restored.
    async fn stop_replica_io(&self, cfg: &ClusterConfig, i: usize) -> Result<Option<String>, FailoverError> {
        let s = self.shared.read().servers[i].clone();
        let flavor = s.flavor();
        let mut c = self.admin(cfg, &s.addr, flavor).await?;
        let kill_wait = if flavor == Flavor::MariaDB {
            c.value(sql::SEMISYNC_KILL_CONN_TIMEOUT, cfg.connect_timeout).await.ok().flatten().and_then(|v| v.parse::<u64>().ok())
        } else {
            None
        };
        let lowered = kill_wait.filter(|w| *w != 1);
        if let Some(w) = lowered {
            self.mutate(&mut c, "bound the semi-sync kill wait", &sql::set_semisync_kill_conn_timeout(1)).await?;
            tracing::info!(server = %s.addr, was = w, "rpl_semi_sync_slave_kill_conn_timeout lowered to 1 s for the IO thread stop");
        }
        let stopped = self.mutate(&mut c, "stop replica IO thread", &sql::stop_io_thread(&cfg.replication_source_name)).await;
        if let Some(w) = lowered {
            if let Err(e) = self.mutate(&mut c, "restore the semi-sync kill wait", &sql::set_semisync_kill_conn_timeout(w)).await {
                self.log(Level::Warn, &format!("Could not restore rpl_semi_sync_slave_kill_conn_timeout = {w} on {}: {}", s.addr, e.message));
            }
        }
        stopped?;
        let received = if flavor == Flavor::MariaDB {
            match c.rows(&sql::show_slave_status(&cfg.replication_source_name)).await {
                Ok((names, rows)) => {
                    let col = names.iter().position(|n| n.eq_ignore_ascii_case("Gtid_IO_Pos"));
                    col.and_then(|k| rows.first().and_then(|r| r.get(k).cloned().flatten()))
                }
                Err(e) => {
                    tracing::warn!(server = %s.addr, error = %e, "could not read the received position after the IO thread stop");
                    None
                }
            }
        } else {
            None
        };
        c.close().await;
        self.log(Level::Info, &format!("IO thread of {} stopped (received {})", s.addr, received.as_deref().unwrap_or("unknown")));
        Ok(received.filter(|p| !p.is_empty()))
    }

    /// Repoints every server [`plan::repoint_targets`] names for a master change `m` -> `w`.
    /// Returns the servers that could not be repointed.
    pub(crate) async fn repoint_others(&self, cfg: &ClusterConfig, m: usize, w: usize, new: &HostPort) -> Vec<String> {
        let targets = plan::repoint_targets(&self.snapshot(), m, w);
        self.repoint_servers(cfg, &targets, new).await
    }

    /// Repoints `targets` at `new` side by side (each is its own connection, leadership check
    /// and statements). Returns the servers that could not be repointed.
    pub(crate) async fn repoint_servers(&self, cfg: &ClusterConfig, targets: &[usize], new: &HostPort) -> Vec<String> {
        let results = futures::future::join_all(targets.iter().map(|i| self.repoint_server(cfg, *i, new))).await;
        results.into_iter().filter_map(Result::err).collect()
    }

    /// After the promotion of `w`: records the crash, bumps the counter, and replicates it all
    /// with the journal entry closed.
    async fn finish_failover(
        &self,
        m: usize,
        w: usize,
        record: CrashRecord,
        mut journal: JournalEntry,
        repoint_errors: Vec<String>,
    ) -> OpResult {
        let cand = self.shared.read().servers[w].addr.clone();
        let timing = record.timing_line();
        if !record.gtids_at_risk.is_empty() {
            self.log(
                Level::Warn,
                &format!("Transactions of {} last seen but not received by {cand}: {}", record.old_master, record.gtids_at_risk.join(",")),
            );
        }
        journal.status = OpStatus::Done;
        let mut counter = 0;
        self.journal_with(&journal, |st| {
            st.crashes.push(record);
            let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
            st.crashes.drain(..excess);
            st.failover_counter += 1;
            st.failover_last_time = now_unix();
            st.master = Some(w);
            st.intent = Some(cand.clone());
            st.servers[w].state = ServerState::Master;
            st.servers[w].fail_count = 0;
            counter = st.failover_counter;
        })
        .await?;
        let old = self.shared.read().servers[m].addr.clone();
        self.log(Level::Info, &format!("Failover {} timing: {timing}", journal.op_id));
        let msg = format!(
            "Master switch on {cand} complete (old master {old}): failover counter {counter}{}",
            if repoint_errors.is_empty() { String::new() } else { format!(", not repointed: {}", repoint_errors.join(", ")) }
        );
        self.log(Level::Warn, &msg);
        Ok(format!("Failover done: new master {cand}"))
    }

    /// Finishes or rolls back an operation a previous leader left open (see
    /// [`planner::resume_step`]).
    pub async fn resume(&self, j: JournalEntry) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let find = |a: &str| {
            let hp = HostPort::parse(a)?;
            st.servers.iter().position(|s| crate::cluster::topology::same_server(&s.addr, &hp))
        };
        let mut j = j;
        let (Some(m), Some(w)) = (find(&j.old_master), find(&j.candidate)) else {
            j.status = OpStatus::Failed;
            self.journal(&j).await?;
            return Err(FailoverError::new(ErrorKind::Failed, format!("{}: servers of the journal are not in this cluster", j.op_id)));
        };
        let cand = st.servers[w].clone();
        let replicating = cand.snapshot.as_ref().and_then(|s| s.managed_replication(&cfg.replication_source_name)).is_some();
        let writable = cand.snapshot.as_ref().is_some_and(|s| !s.read_only);
        let step = planner::resume_step(j.status, cand.is_up(), replicating);
        let (term, node) = self.coord.epoch();
        self.log(
            Level::Warn,
            &format!(
                "Resuming {} {} left '{}' by node {} in term {}: {step:?} (now node {node}, term {term})",
                j.kind, j.op_id, j.status, j.node, j.term
            ),
        );
        let _busy = InFailover::enter(self.shared)?;
        match step {
            planner::ResumeStep::CandidateDown => {
                j.status = OpStatus::Failed;
                self.journal(&j).await?;
                Err(FailoverError::new(ErrorKind::Failed, format!("{}: candidate {} is down", j.op_id, cand.addr)))
            }
            planner::ResumeStep::Abort => {
                // The candidate replicates again if the previous leader stopped it.
                let stopped = cand.snapshot.as_ref().and_then(|s| s.managed_replication(&cfg.replication_source_name)).is_some_and(|r| !r.is_running());
                if stopped {
                    let mut c = self.admin(&cfg, &cand.addr, cand.flavor()).await?;
                    let r = self.mutate(&mut c, "restart replication on the candidate", &sql::start_slave(&cfg.replication_source_name)).await;
                    c.close().await;
                    r?;
                }
                if j.kind == OpKind::Switchover {
                    // The old master is still the master, only read-only: its clients are cut
                    // (a previous leader's session holding its global read lock with them),
                    // then it is reopened.
                    let old = st.servers[m].clone();
                    if old.is_up() {
                        let mut c = self.admin(&cfg, &old.addr, old.flavor()).await?;
                        let r = match self.kill_clients(&mut c).await {
                            Ok(_) => self.mutate(&mut c, "reopen old master", sql::READ_ONLY_OFF).await,
                            Err(e) => Err(e),
                        };
                        c.close().await;
                        r?;
                    }
                    j.status = OpStatus::RolledBack;
                } else {
                    j.status = OpStatus::Aborted;
                }
                self.journal(&j).await?;
                Ok(format!("{} {}", j.op_id, j.status))
            }
            planner::ResumeStep::Complete => {
                // Never two writable masters: an old master that answers is fenced first (its
                // clients killed, a previous leader's session holding its global read lock
                // with them, then read_only).
                let old = st.servers[m].clone();
                if old.is_up() {
                    let mut c = self.admin(&cfg, &old.addr, old.flavor()).await?;
                    let fenced = self.fence_server(&mut c, "fence old master (resume)").await;
                    c.close().await;
                    fenced?;
                }
                let mut record = j.evidence.clone();
                if !writable {
                    self.promote(&cfg, w, record.semi_sync_cluster, &mut record).await?;
                }
                j.status = OpStatus::Promoted;
                j.evidence = record.clone();
                self.journal_with(&j, |st| st.intent = Some(cand.addr.clone())).await?;
                if j.kind == OpKind::Switchover {
                    // The other replicas first: the old master last, so nothing waits on it.
                    self.repoint_others(&cfg, m, w, &cand.addr).await;
                    if old.is_up() {
                        let flavor = old.flavor();
                        let mut c = self.admin(&cfg, &old.addr, flavor).await?;
                        let r = self.mutate(&mut c, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await;
                        c.close().await;
                        r?;
                        self.repoint(&cfg, &old.addr, flavor, &cand.addr).await?;
                    }
                    j.status = OpStatus::Done;
                    self.journal_with(&j, |st| {
                        st.crashes.push(record);
                        let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
                        st.crashes.drain(..excess);
                        st.master = Some(w);
                    })
                    .await?;
                    return Ok(format!("{} completed", j.op_id));
                }
                let errors = self.repoint_others(&cfg, m, w, &cand.addr).await;
                self.finish_failover(m, w, record, j, errors).await
            }
        }
    }

}
