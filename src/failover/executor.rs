//! `FailoverExecutor`: runs failover, switchover and rejoin steps against the servers. Every
//! statement has a deadline, every database mutation is preceded by a fresh leadership check
//! ([`Coordinator::check`]), each operation is journaled through the manager group before its
//! first mutation and at each milestone, and a switchover that fails before the promotion undoes
//! what it did.

use std::time::Duration;

use replication_manager_api::ActionError;

use crate::admin::{AdminConn, AdminError};
use crate::cluster_log::Level;
use crate::config::{ClusterConfig, HostPort};
use crate::failover::crash::{CrashRecord, JournalEntry, CRASHES_KEPT, JOURNAL_KEPT};
use crate::group::Coordinator;
use crate::failover::planner::{self, Candidate, ElectionKind, ElectionRules};
use crate::gtid::GtidPos;
use crate::monitor::{ClusterState, SharedCluster};
use crate::sql::{self, ChangeMaster, Flavor};
use crate::topology::ServerState;

/// How long a promoted replica may take to apply its relay log before the failover gives up.
pub const RELAY_APPLY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a reseed by dump may take.
pub const DUMP_DEADLINE: Duration = Duration::from_secs(1800);

/// Fault-injection hook for the chaos tests (environment, never configuration): with
/// `REPLICATION_MANAGER_FAULT_PAUSE_AFTER_PROMOTE_MS` set, a failover pauses right after its
/// "promoted" journal entry is replicated, so a test can kill the leader at that point and check
/// that the next leader finishes the operation.
async fn fault_pause_after_promote(op: &str) {
    let Some(ms) = std::env::var("REPLICATION_MANAGER_FAULT_PAUSE_AFTER_PROMOTE_MS").ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    tracing::warn!(op, ms, "fault injection: pausing after the promotion was journaled");
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn err500(e: impl std::fmt::Display) -> ActionError {
    ActionError::new(500, e.to_string())
}

impl From<AdminError> for ActionError {
    fn from(e: AdminError) -> ActionError {
        err500(e)
    }
}

/// Runs actions on one cluster. Lives inside the cluster's monitor task, so actions and
/// probing never interleave.
pub struct FailoverExecutor<'a> {
    pub shared: &'a SharedCluster,
    pub coord: &'a dyn Coordinator,
}

/// Resets `in_failover` however the action ends.
struct InFailover<'a>(&'a SharedCluster);

impl<'a> InFailover<'a> {
    fn enter(shared: &'a SharedCluster) -> Result<InFailover<'a>, ActionError> {
        let mut st = shared.write();
        if st.in_failover {
            return Err(ActionError::new(409, "Cancel: the cluster is already in failover or switchover"));
        }
        st.in_failover = true;
        Ok(InFailover(shared))
    }
}

impl Drop for InFailover<'_> {
    fn drop(&mut self) {
        self.0.write().in_failover = false;
    }
}

/// Candidates of a master `m` in replication domain `domain`.
pub fn candidates(st: &ClusterState, m: usize, domain: u32, requested: Option<usize>) -> Vec<Candidate> {
    let cfg = &st.config;
    let maddr = &st.servers[m].addr;
    st.servers
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != m)
        .map(|(i, s)| {
            let snap = s.snapshot.as_ref().filter(|_| s.is_up());
            let repl = snap.and_then(|sn| sn.managed_replication(&cfg.replication_source_name));
            Candidate {
                index: i,
                name: s.addr.to_string(),
                reachable: snap.is_some(),
                replicates_from_master: repl.is_some_and(|r| crate::topology::same_server(&r.source(), maddr)),
                log_bin: snap.is_some_and(|sn| sn.log_bin),
                io_running: repl.is_some_and(|r| r.io_running.eq_ignore_ascii_case("yes")),
                sql_running: repl.is_some_and(|r| r.sql_running.eq_ignore_ascii_case("yes")),
                received_seq: repl.map_or(0, |r| GtidPos::parse_lenient(&r.gtid_io_pos).seq_in(domain)),
                applied_seq: snap.map_or(0, |sn| sn.gtid_current_pos.seq_in(domain).max(sn.gtid_slave_pos.seq_in(domain))),
                seconds_behind: repl.and_then(|r| r.seconds_behind_master).or(s.last_delay),
                configured_delay: repl.map_or(0, |r| r.sql_delay),
                semi_sync_in_sync: snap.is_some_and(|sn| sn.semi_sync_slave_status),
                maintenance: s.maintenance,
                ignored: s.ignored,
                prefered_rank: cfg.prefered_master.iter().position(|p| *p == s.addr),
            }
        })
        .map(|mut c| {
            if requested == Some(c.index) {
                c.prefered_rank = Some(0);
            }
            c
        })
        .collect()
}

/// The replication domain of a master: its `gtid_domain_id`, or the single domain it wrote.
fn master_domain(st: &ClusterState, m: usize) -> u32 {
    st.servers[m].snapshot.as_ref().map_or(0, |s| s.gtid_domain_id)
}

fn now_unix() -> u64 {
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

    pub(crate) async fn admin(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor) -> Result<AdminConn, AdminError> {
        // Admin statements get a longer deadline than probes: a busy master may be slow to lock.
        AdminConn::connect(addr, &cfg.db_credential, flavor, cfg.connect_timeout, cfg.connect_timeout.max(Duration::from_secs(5)) * 2).await
    }

    /// Runs `statement` on `conn` after a fresh leadership check.
    pub(crate) async fn mutate(&self, conn: &mut AdminConn, step: &str, statement: &str) -> Result<(), ActionError> {
        self.coord
            .check(step)
            .await
            .map_err(|why| ActionError::new(503, format!("not acting on databases ({step}): {why}")))?;
        let (term, node) = self.coord.epoch();
        tracing::info!(server = conn.server(), step, term, node, "executing");
        conn.exec(statement).await.map_err(ActionError::from)
    }

    fn change_master_sql<'c>(cfg: &'c ClusterConfig, new: &'c HostPort) -> ChangeMaster<'c> {
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
    pub(crate) async fn repoint(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor, new: &HostPort) -> Result<(), ActionError> {
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

    /// Replicates the cluster's decisions through the group; Ok once a quorum has them.
    pub(crate) async fn replicate(&self, op_id: &str) -> Result<(), ActionError> {
        let (name, state) = {
            let st = self.shared.read();
            (st.config.name.clone(), st.to_persisted())
        };
        self.coord.save(&name, state, op_id.to_string()).await.map_err(|e| {
            self.log(Level::Error, &format!("Could not replicate the decision {op_id}: {e}"));
            ActionError::new(503, format!("decision not replicated by the manager group: {e}"))
        })
    }

    /// Records `entry` in the journal (replacing the same op id) and replicates it.
    async fn journal(&self, entry: &JournalEntry) -> Result<(), ActionError> {
        {
            let mut st = self.shared.write();
            st.journal.retain(|j| j.op_id != entry.op_id);
            st.journal.push(JournalEntry { updated_at: now_unix(), ..entry.clone() });
            let excess = st.journal.len().saturating_sub(JOURNAL_KEPT);
            st.journal.drain(..excess);
        }
        // Unique per write: a resumed step must not be taken for a duplicate of the first try.
        let step = format!("{}:{}:{:08x}", entry.op_id, entry.status, rand::random::<u32>());
        self.replicate(&step).await
    }

    fn new_journal(&self, kind: &str, trigger: &str, old: &HostPort, candidate: &HostPort, evidence: CrashRecord) -> JournalEntry {
        let (term, node) = self.coord.epoch();
        JournalEntry {
            op_id: evidence.id.clone(),
            kind: kind.to_string(),
            trigger: trigger.to_string(),
            old_master: old.to_string(),
            candidate: candidate.to_string(),
            status: "started".to_string(),
            term,
            node,
            evidence,
            updated_at: now_unix(),
        }
    }

    /// Failover: promote the most up-to-date replica of the master (dead or alive).
    pub async fn failover(&self, trigger: &str) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let Some(m) = st.master else {
            return Err(ActionError::new(500, "No master known in this cluster: nothing to fail over"));
        };
        let old = st.servers[m].clone();
        let domain = master_domain(&st, m);
        let cands = candidates(&st, m, domain, None);
        let rules = ElectionRules {
            check_replication_state: cfg.check_replication_state,
            max_slave_delay: cfg.failover_max_slave_delay,
            require_semi_sync: cfg.failover_at_sync,
        };
        let election = match planner::elect(&cands, &rules, ElectionKind::Failover, None) {
            Ok(e) => e,
            Err(e) => {
                if trigger != crate::monitor::AUTOMATIC {
                    self.log(Level::Error, &format!("Failover of {} refused ({}): {}", old.addr, e.code, e.reason));
                }
                return Err(ActionError::new(409, format!("{}: {}", e.code, e.reason)));
            }
        };
        let _busy = InFailover::enter(self.shared)?;
        let w = election.winner;
        let cand = st.servers[w].clone();
        let Some(cand_snap) = cand.snapshot.clone() else {
            return Err(ActionError::new(500, format!("{} has no snapshot", cand.addr)));
        };
        for (name, why) in &election.skipped {
            self.log(Level::Info, &format!("Election: {name} passed over: {why}"));
        }
        self.log(
            Level::Warn,
            &format!("Failover ({trigger}): electing {} to replace master {} (domain {domain})", cand.addr, old.addr),
        );

        let repl = cand_snap.managed_replication(&cfg.replication_source_name).cloned().unwrap_or_default();
        let old_gtid = old.snapshot.as_ref().map(|s| s.gtid_binlog_pos.clone()).unwrap_or_default();
        let io = GtidPos::parse_lenient(&repl.gtid_io_pos);
        let at_risk: Vec<String> = old_gtid
            .ahead_of(&io)
            .into_iter()
            .map(|(g, base)| format!("{}-{}-{}..{}", g.domain_id, g.server_id, base + 1, g.seq_no))
            .collect();
        let semi_sync = old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_enabled);
        let mut record = CrashRecord {
            id: op_id("failover"),
            old_master: old.addr.to_string(),
            old_master_gtid: old_gtid.to_string(),
            old_master_log_file: repl.master_log_file.clone(),
            old_master_log_pos: repl.read_master_log_pos.clone(),
            elected_master: cand.addr.to_string(),
            elected_io_gtid: repl.gtid_io_pos.clone(),
            old_master_semi_sync: old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_status),
            elected_semi_sync: cand_snap.semi_sync_slave_status,
            gtids_at_risk: at_risk,
            domain,
            unix_timestamp: now_unix(),
            switchover: false,
            trigger: trigger.to_string(),
            semi_sync_cluster: semi_sync,
            ..Default::default()
        };
        // Journaled before the first mutation: a new leader can finish or abort it.
        let mut journal = self.new_journal("failover", trigger, &old.addr, &cand.addr, record.clone());
        self.journal(&journal).await?;
        let (term, node) = self.coord.epoch();
        self.log(Level::Info, &format!("Operation {} started by node {node} in term {term}", record.id));

        // A live old master is fenced first, so there is never a second writable master.
        if old.is_up() {
            let flavor = old.snapshot.as_ref().map_or(Flavor::MariaDB, |s| s.flavor);
            match self.admin(&cfg, &old.addr, flavor).await {
                Ok(mut c) => {
                    self.mutate(&mut c, "fence old master", sql::READ_ONLY_ON).await?;
                    c.close().await;
                    self.log(Level::Info, &format!("Old master {} set read_only before failover", old.addr));
                }
                Err(e) => self.log(Level::Warn, &format!("Could not fence the old master: {e}")),
            }
        }

        let mut c = self.admin(&cfg, &cand.addr, cand_snap.flavor).await?;
        if !repl.gtid_io_pos.is_empty() {
            let wait = sql::master_gtid_wait(&repl.gtid_io_pos, RELAY_APPLY_DEADLINE.as_secs());
            let r = c.value(&wait, RELAY_APPLY_DEADLINE + Duration::from_secs(5)).await?;
            if r.as_deref() != Some("0") {
                let msg = format!(
                    "Failover cancelled: {} did not apply its relay log up to {} within {:?}",
                    cand.addr, repl.gtid_io_pos, RELAY_APPLY_DEADLINE
                );
                self.log(Level::Error, &msg);
                journal.status = "aborted".to_string();
                let _ = self.journal(&journal).await;
                return Err(ActionError::new(500, msg));
            }
        }
        self.mutate(&mut c, "stop replication on candidate", &sql::stop_slave(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "reset replication on candidate", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        c.close().await;
        self.promote(&cfg, w, semi_sync, &mut record).await?;
        journal.status = "promoted".to_string();
        journal.evidence = record.clone();
        self.shared.write().intent = Some(cand.addr.clone());
        self.journal(&journal).await?;
        fault_pause_after_promote(&record.id).await;
        self.finish_failover(&cfg, m, w, record, journal).await
    }

    /// Opens the candidate `w` for writes (semi-sync master first when the cluster used it) and
    /// records its new coordinates in `record`.
    async fn promote(&self, cfg: &ClusterConfig, w: usize, semi_sync: bool, record: &mut CrashRecord) -> Result<(), ActionError> {
        let cand = self.shared.read().servers[w].clone();
        let flavor = cand.snapshot.as_ref().map_or(Flavor::MariaDB, |s| s.flavor);
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

    /// Repoints every reachable server but `skip` (and those in maintenance) to `new`, unless it
    /// already replicates from it. Returns the servers that could not be repointed.
    async fn repoint_others(&self, cfg: &ClusterConfig, skip: &[usize], new: &HostPort) -> Vec<String> {
        let st = self.snapshot();
        let mut errors = Vec::new();
        for (i, s) in st.servers.iter().enumerate() {
            if skip.contains(&i) || !s.is_up() || s.maintenance {
                continue;
            }
            let already = s.snapshot.as_ref().and_then(|x| x.managed_replication(&cfg.replication_source_name)).is_some_and(|r| {
                crate::topology::same_server(&r.source(), new) && r.is_running()
            });
            if already {
                continue;
            }
            let flavor = s.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            match self.repoint(cfg, &s.addr, flavor, new).await {
                Ok(()) => self.log(Level::Info, &format!("Replica {} now replicates from {new}", s.addr)),
                Err(e) => {
                    self.log(Level::Error, &format!("Could not repoint {}: {}", s.addr, e.message));
                    errors.push(s.addr.to_string());
                }
            }
        }
        errors
    }

    /// After the promotion of `w`: repoints the other replicas, records the crash, bumps the
    /// counter, and replicates it all with the journal entry closed.
    async fn finish_failover(&self, cfg: &ClusterConfig, m: usize, w: usize, record: CrashRecord, mut journal: JournalEntry) -> Result<String, ActionError> {
        let cand = self.shared.read().servers[w].addr.clone();
        let repoint_errors = self.repoint_others(cfg, &[m, w], &cand).await;
        if !record.gtids_at_risk.is_empty() {
            self.log(
                Level::Warn,
                &format!("Transactions of {} last seen but not received by {cand}: {}", record.old_master, record.gtids_at_risk.join(",")),
            );
        }
        {
            let mut st = self.shared.write();
            st.crashes.push(record);
            let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
            st.crashes.drain(..excess);
            st.failover_counter += 1;
            st.failover_last_time = now_unix();
            st.master = Some(w);
            st.intent = Some(cand.clone());
            st.servers[w].state = ServerState::Master;
            st.servers[w].fail_count = 0;
            let msg = format!(
                "Master switch on {cand} complete: failover counter {}{}",
                st.failover_counter,
                if repoint_errors.is_empty() { String::new() } else { format!(", not repointed: {}", repoint_errors.join(", ")) }
            );
            st.log(Level::Warn, "failover", &msg);
        }
        journal.status = "done".to_string();
        self.journal(&journal).await?;
        Ok(format!("Failover done: new master {cand}"))
    }

    /// Finishes or rolls back an operation a previous leader left open (see
    /// [`planner::resume_step`]).
    pub async fn resume(&self, j: JournalEntry) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let find = |a: &str| {
            let hp = HostPort::parse(a)?;
            st.servers.iter().position(|s| crate::topology::same_server(&s.addr, &hp))
        };
        let mut j = j;
        let (Some(m), Some(w)) = (find(&j.old_master), find(&j.candidate)) else {
            j.status = "failed".to_string();
            self.journal(&j).await?;
            return Err(ActionError::new(500, format!("{}: servers of the journal are not in this cluster", j.op_id)));
        };
        let cand = st.servers[w].clone();
        let replicating = cand.snapshot.as_ref().and_then(|s| s.managed_replication(&cfg.replication_source_name)).is_some();
        let writable = cand.snapshot.as_ref().is_some_and(|s| !s.read_only);
        let step = planner::resume_step(&j.status, cand.is_up(), replicating);
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
                j.status = "failed".to_string();
                self.journal(&j).await?;
                Err(ActionError::new(500, format!("{}: candidate {} is down", j.op_id, cand.addr)))
            }
            planner::ResumeStep::Abort => {
                if j.kind == "switchover" {
                    // The dead leader's lock went with its session; the old master is still the
                    // master, only read-only: reopen it.
                    let old = st.servers[m].clone();
                    if old.is_up() {
                        let flavor = old.snapshot.as_ref().map_or(Flavor::MariaDB, |s| s.flavor);
                        let mut c = self.admin(&cfg, &old.addr, flavor).await?;
                        self.mutate(&mut c, "reopen old master", sql::READ_ONLY_OFF).await?;
                        c.close().await;
                    }
                    j.status = "rolled_back".to_string();
                } else {
                    j.status = "aborted".to_string();
                }
                self.journal(&j).await?;
                Ok(format!("{} {}", j.op_id, j.status))
            }
            planner::ResumeStep::Complete => {
                let mut record = j.evidence.clone();
                if !writable {
                    self.promote(&cfg, w, record.semi_sync_cluster, &mut record).await?;
                }
                j.status = "promoted".to_string();
                j.evidence = record.clone();
                self.shared.write().intent = Some(cand.addr.clone());
                self.journal(&j).await?;
                if j.kind == "switchover" {
                    let old = st.servers[m].clone();
                    if old.is_up() {
                        let flavor = old.snapshot.as_ref().map_or(Flavor::MariaDB, |s| s.flavor);
                        let mut c = self.admin(&cfg, &old.addr, flavor).await?;
                        self.mutate(&mut c, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await?;
                        c.close().await;
                        self.repoint(&cfg, &old.addr, flavor, &cand.addr).await?;
                    }
                    self.repoint_others(&cfg, &[m, w], &cand.addr).await;
                    {
                        let mut st = self.shared.write();
                        st.crashes.push(record);
                        let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
                        st.crashes.drain(..excess);
                        st.master = Some(w);
                    }
                    j.status = "done".to_string();
                    self.journal(&j).await?;
                    return Ok(format!("{} completed", j.op_id));
                }
                self.finish_failover(&cfg, m, w, record, j).await
            }
        }
    }

    /// Switchover: fence the live master, let the candidate catch up, promote it, and make the
    /// old master its replica. Any failure before the promotion is undone.
    pub async fn switchover(&self, prefmaster: Option<&str>, trigger: &str) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let m = match st.master {
            Some(m) if st.servers[m].is_up() && st.servers[m].state == ServerState::Master => m,
            _ => return Err(ActionError::new(400, "Master failed")),
        };
        let requested = match prefmaster.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match st.find_server(p) {
                Some(i) if i != m => Some(i),
                Some(_) => return Err(ActionError::new(400, format!("prefmaster {p} is already the master"))),
                None => return Err(ActionError::new(400, format!("prefmaster {p} is not a server of this cluster"))),
            },
        };
        let old = st.servers[m].clone();
        let Some(old_snap) = old.snapshot.clone() else { return Err(ActionError::new(400, "Master failed")) };
        let domain = master_domain(&st, m);
        let rules = ElectionRules {
            check_replication_state: cfg.check_replication_state,
            max_slave_delay: cfg.failover_max_slave_delay,
            require_semi_sync: cfg.switchover_at_sync,
        };
        let election = planner::elect(&candidates(&st, m, domain, requested), &rules, ElectionKind::Switchover, requested)
            .map_err(|e| {
                self.log(Level::Error, &format!("Switchover refused ({}): {}", e.code, e.reason));
                ActionError::new(409, format!("{}: {}", e.code, e.reason))
            })?;
        let w = election.winner;
        let cand = st.servers[w].clone();
        let cand_flavor = cand.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);

        let mut oldc = self.admin(&cfg, &old.addr, old_snap.flavor).await?;
        let long = oldc.value(&sql::long_writes(cfg.switchover_wait_write_query), Duration::from_secs(5)).await?;
        if long.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) > 0 {
            let msg = format!(
                "Long updates running on master {}: writes or transactions older than {} s; cannot switchover",
                old.addr, cfg.switchover_wait_write_query
            );
            self.log(Level::Error, &msg);
            return Err(ActionError::new(409, msg));
        }
        let _busy = InFailover::enter(self.shared)?;
        self.log(Level::Warn, &format!("Switchover: {} replaces master {}", cand.addr, old.addr));
        let mut record = CrashRecord {
            id: op_id("switchover"),
            old_master: old.addr.to_string(),
            elected_master: cand.addr.to_string(),
            old_master_semi_sync: old_snap.semi_sync_master_status,
            elected_semi_sync: cand.snapshot.as_ref().is_some_and(|s| s.semi_sync_slave_status),
            domain,
            unix_timestamp: now_unix(),
            switchover: true,
            trigger: trigger.to_string(),
            semi_sync_cluster: old_snap.semi_sync_master_enabled,
            ..Default::default()
        };
        let mut journal = self.new_journal("switchover", trigger, &old.addr, &cand.addr, record.clone());
        self.journal(&journal).await?;

        // 1. Fence the old master: no new write is accepted from here on.
        self.mutate(&mut oldc, "read_only on old master", sql::READ_ONLY_ON).await?;
        let fenced = self.fence_and_read_position(&cfg, &mut oldc).await;
        let pos = match fenced {
            Ok(pos) => pos,
            Err(e) => return Err(self.undo_switchover(oldc, None, &old.addr, e, &mut journal).await),
        };
        self.log(Level::Info, &format!("Old master {} fenced at gtid_binlog_pos {pos}", old.addr));

        // 2. Candidate catches up, then is promoted.
        let mut candc = match self.admin(&cfg, &cand.addr, cand_flavor).await {
            Ok(c) => c,
            Err(e) => return Err(self.undo_switchover(oldc, None, &old.addr, e.into(), &mut journal).await),
        };
        let catchup = cfg.switchover_wait_catch;
        let wait = sql::master_gtid_wait(&pos, catchup.as_secs());
        match candc.value(&wait, catchup + Duration::from_secs(5)).await {
            Ok(Some(v)) if v == "0" => {}
            Ok(v) => {
                let e = ActionError::new(500, format!("{} did not reach {pos} within {catchup:?} ({v:?})", cand.addr));
                return Err(self.undo_switchover(oldc, Some(candc), &old.addr, e, &mut journal).await);
            }
            Err(e) => return Err(self.undo_switchover(oldc, Some(candc), &old.addr, e.into(), &mut journal).await),
        }
        if let Err(e) = self.mutate(&mut candc, "stop replication on candidate", &sql::stop_slave(&cfg.replication_source_name)).await {
            return Err(self.undo_switchover(oldc, Some(candc), &old.addr, e, &mut journal).await);
        }
        // Past this point the candidate forgets its source: forward only.
        self.mutate(&mut candc, "reset replication on candidate", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        candc.close().await;
        record.old_master_gtid = pos.clone();
        record.elected_io_gtid = pos.clone();
        self.promote(&cfg, w, old_snap.semi_sync_master_enabled, &mut record).await?;
        journal.status = "promoted".to_string();
        journal.evidence = record.clone();
        self.shared.write().intent = Some(cand.addr.clone());
        self.journal(&journal).await?;

        // 3. The old master becomes a replica of the new one.
        let cm = Self::change_master_sql(&cfg, &cand.addr);
        let demote = async {
            // read_only stays on: releasing the lock lets no application write in, and
            // replication statements cannot run while this session holds it.
            self.mutate(&mut oldc, "release lock", sql::UNLOCK_TABLES).await?;
            if old_snap.semi_sync_master_enabled {
                self.mutate(&mut oldc, "semi-sync master off", sql::SEMISYNC_MASTER_OFF).await?;
            }
            self.mutate(&mut oldc, "stop replication", &sql::stop_slave(&cfg.replication_source_name)).await?;
            self.mutate(&mut oldc, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await?;
            self.mutate(&mut oldc, "change master", &sql::change_master(old_snap.flavor, &cm)).await?;
            self.mutate(&mut oldc, "start replication", &sql::start_slave(&cfg.replication_source_name)).await
        };
        let demoted = demote.await;
        oldc.close().await;
        match &demoted {
            Ok(()) => self.log(Level::Info, &format!("Old master {} now replicates from {}", old.addr, cand.addr)),
            Err(e) => self.log(Level::Error, &format!("Old master {} could not be demoted: {}", old.addr, e.message)),
        }

        // 4. The other replicas follow.
        for (i, s) in st.servers.iter().enumerate() {
            if i == w || i == m || !s.is_up() || s.maintenance {
                continue;
            }
            let flavor = s.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            if let Ok(mut c) = self.admin(&cfg, &s.addr, flavor).await {
                let wait = sql::master_gtid_wait(&pos, cfg.switchover_wait_catch.as_secs());
                if c.value(&wait, cfg.switchover_wait_catch + Duration::from_secs(5)).await.ok().flatten().as_deref() != Some("0") {
                    self.log(Level::Warn, &format!("Replica {} did not reach {pos} before repointing", s.addr));
                }
                c.close().await;
            }
            match self.repoint(&cfg, &s.addr, flavor, &cand.addr).await {
                Ok(()) => self.log(Level::Info, &format!("Replica {} now replicates from {}", s.addr, cand.addr)),
                Err(e) => self.log(Level::Error, &format!("Could not repoint {}: {}", s.addr, e.message)),
            }
        }

        {
            let mut st = self.shared.write();
            st.crashes.push(record);
            let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
            st.crashes.drain(..excess);
            st.master = Some(w);
            st.servers[w].state = ServerState::Master;
            st.log(Level::Warn, "failover", &format!("Master switch on {} complete (switchover)", cand.addr));
        }
        journal.status = "done".to_string();
        journal.evidence = self.shared.read().crashes.last().cloned().unwrap_or_default();
        self.journal(&journal).await?;
        demoted.map(|()| format!("Switchover done: new master {}", cand.addr)).map_err(|e| {
            ActionError::new(500, format!("new master {} is writable but the old master was not demoted: {}", cand.addr, e.message))
        })
    }

    /// After read_only: drain writes for `switchover-wait-kill`, kill client connections, take
    /// the global read lock with a short lock wait, and read the final GTID position.
    async fn fence_and_read_position(&self, cfg: &ClusterConfig, oldc: &mut AdminConn) -> Result<String, ActionError> {
        let drain_until = std::time::Instant::now() + cfg.switchover_wait_kill;
        loop {
            let busy = oldc.value(&sql::long_writes(0), Duration::from_secs(5)).await?;
            if busy.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) == 0 || std::time::Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ids = oldc.column(sql::CLIENT_THREADS).await?;
        for id in ids.iter().filter_map(|i| i.parse::<u64>().ok()) {
            // A connection may end by itself meanwhile: failures to kill are not errors.
            if let Err(e) = oldc.exec(&sql::kill_connection(id)).await {
                tracing::debug!(error = %e, id, "kill connection");
            }
        }
        self.mutate(oldc, "lock wait bound", &sql::lock_wait_timeout(cfg.switchover_wait_trx)).await?;
        let t = Duration::from_secs(cfg.switchover_wait_trx + 2);
        self.coord.check("flush tables with read lock").await.map_err(|w| ActionError::new(503, w))?;
        oldc.exec_within(sql::FLUSH_TABLES_WITH_READ_LOCK, t).await.map_err(|e| {
            ActionError::new(500, format!("Long running transaction on master, no read lock within {} s: {e}", cfg.switchover_wait_trx))
        })?;
        let pos = oldc.value(sql::GTID_BINLOG_POS, Duration::from_secs(5)).await?.unwrap_or_default();
        Ok(pos)
    }

    /// Undoes a switchover that failed before the promotion: the candidate replicates again and
    /// the old master is unlocked and writable. Returns the error to report.
    async fn undo_switchover(
        &self,
        mut oldc: AdminConn,
        candc: Option<AdminConn>,
        old: &HostPort,
        cause: ActionError,
        journal: &mut JournalEntry,
    ) -> ActionError {
        let src = self.shared.read().config.replication_source_name.clone();
        if let Some(mut c) = candc {
            if let Err(e) = c.exec(&sql::start_slave(&src)).await {
                tracing::warn!(error = %e, "undo: start replication on candidate");
            }
            c.close().await;
        }
        let mut undo_errors = Vec::new();
        for stmt in [sql::UNLOCK_TABLES, sql::READ_ONLY_OFF] {
            if let Err(e) = oldc.exec(stmt).await {
                undo_errors.push(e.to_string());
            }
        }
        oldc.close().await;
        let msg = if undo_errors.is_empty() {
            format!("Switchover cancelled and undone ({old} writable again): {}", cause.message)
        } else {
            format!("Switchover cancelled; undo incomplete on {old} ({}): {}", undo_errors.join("; "), cause.message)
        };
        self.log(Level::Error, &msg);
        journal.status = "rolled_back".to_string();
        let _ = self.journal(journal).await;
        ActionError::new(cause.status.max(500), msg)
    }

    /// Rejoins a returning old master `i` as a replica when it holds nothing the new master
    /// lacks; otherwise leaves it read-only and reports its extra GTIDs.
    pub async fn rejoin(&self, i: usize, record: &CrashRecord) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let Some(m) = st.master else { return Err(ActionError::new(409, "no master to rejoin")) };
        let srv = st.servers[i].clone();
        let Some(snap) = srv.snapshot.clone() else { return Err(ActionError::new(409, "server is down")) };
        let mine = snap.gtid_binlog_pos.seq_in(record.domain).max(snap.gtid_current_pos.seq_in(record.domain));
        let received = GtidPos::parse_lenient(&record.elected_io_gtid).seq_in(record.domain);
        let new_master = st.servers[m].addr.clone();
        let mut c = self.admin(&cfg, &srv.addr, snap.flavor).await?;
        if mine > received {
            let server_id = snap.gtid_binlog_pos.get(record.domain).map_or(snap.server_id, |g| g.server_id);
            let extra = format!("{}-{server_id}-{}..{mine}", record.domain, received + 1);
            if cfg.autorejoin_flashback {
                c.close().await;
                self.log(
                    Level::Warn,
                    &format!("Old master {} is ahead ({extra}): rolling its extra transactions back (autorejoin-flashback)", srv.addr),
                );
                match self.rejoin_by_flashback(&cfg, &srv.addr, snap.flavor, &new_master, record).await {
                    Ok(msg) => return Ok(msg),
                    Err(e) if cfg.autorejoin_mysqldump => {
                        self.log(Level::Error, &format!("Flashback of {} failed, trying a dump: {}", srv.addr, e.message));
                    }
                    Err(e) => return Err(e),
                }
                return self.reseed_by_dump(&cfg, &srv.addr, snap.flavor, &new_master).await;
            }
            if cfg.autorejoin_mysqldump {
                c.close().await;
                self.log(
                    Level::Warn,
                    &format!("Old master {} is ahead ({extra}): reloading it from {new_master} with a dump (autorejoin-mysqldump)", srv.addr),
                );
                return self.reseed_by_dump(&cfg, &srv.addr, snap.flavor, &new_master).await;
            }
            // Never writable, never rejoined silently.
            self.mutate(&mut c, "keep ahead old master read-only", sql::READ_ONLY_ON).await?;
            c.close().await;
            return Err(ActionError::new(
                409,
                format!(
                    "Old master {} holds transactions the new master {new_master} never received ({extra}); left read-only, not rejoined (enable autorejoin-flashback or autorejoin-mysqldump, or resolve by hand)",
                    srv.addr
                ),
            ));
        }
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        if snap.semi_sync_master_enabled {
            self.mutate(&mut c, "semi-sync master off", sql::SEMISYNC_MASTER_OFF).await?;
        }
        c.close().await;
        {
            // Runs beside the monitor: if a failover changed the master meanwhile, stop here and
            // let the next tick decide again.
            let now = self.shared.read();
            if now.in_failover || now.master != Some(m) {
                return Err(ActionError::new(503, format!("master changed while rejoining {}: retried next tick", srv.addr)));
            }
        }
        {
            let mut c = self.admin(&cfg, &srv.addr, snap.flavor).await?;
            self.mutate(&mut c, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await?;
            c.close().await;
        }
        self.repoint(&cfg, &srv.addr, snap.flavor, &new_master).await?;
        let msg = format!("Rejoined old master {} as a replica of {new_master} (position {mine} <= {received})", srv.addr);
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Reloads `addr` from a consistent dump of `master` and makes it a replica from the dump's
    /// GTID position. Its own extra transactions are discarded (binary log reset).
    pub async fn reseed_by_dump(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor, master: &HostPort) -> Result<String, ActionError> {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "discard own binary log", sql::RESET_MASTER).await?;
        let mut mc = self.admin(cfg, master, flavor).await?;
        let dbs = mc.column(sql::USER_SCHEMAS).await?;
        let fallback_pos = mc.value(sql::GTID_BINLOG_POS, Duration::from_secs(5)).await?.unwrap_or_default();
        mc.close().await;
        self.coord.check("load dump").await.map_err(|w| ActionError::new(503, w))?;
        let pos = if dbs.is_empty() {
            fallback_pos
        } else {
            crate::failover::dump::copy_databases(&cfg.db_credential, master, addr, &dbs, DUMP_DEADLINE)
                .await
                .map_err(|e| ActionError::new(500, format!("reseed of {addr} from {master} failed: {e:#}")))?
        };
        self.mutate(&mut c, "replica position from dump", &sql::set_slave_pos(&pos)).await?;
        c.close().await;
        self.repoint(cfg, addr, flavor, master).await?;
        let msg = format!("Reloaded {addr} from {master} ({} databases) and replicating from GTID {pos}", dbs.len());
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Reloads `addr` from a logical backup job and makes it a replica of `master` from the
    /// backup's GTID position (its own binary log is reset first).
    pub async fn reseed_from_backup(
        &self,
        cfg: &ClusterConfig,
        addr: &HostPort,
        flavor: Flavor,
        master: &HostPort,
        job: &crate::jobs::Job,
    ) -> Result<String, ActionError> {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "discard own binary log", sql::RESET_MASTER).await?;
        self.coord.check("load backup").await.map_err(|w| ActionError::new(503, w))?;
        let pos = crate::jobs::restore_logical(job, addr, &cfg.db_credential, DUMP_DEADLINE)
            .await
            .map_err(|e| ActionError::new(500, format!("restoring backup {} into {addr} failed: {e:#}", job.id)))?;
        self.mutate(&mut c, "replica position from backup", &sql::set_slave_pos(&pos)).await?;
        c.close().await;
        self.repoint(cfg, addr, flavor, master).await?;
        let msg = format!("Reseeded {addr} from backup {} (GTID {pos}) and replicating from {master}", job.id);
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Rolls back the transactions `addr` wrote after the position the new master received
    /// (crash record), then makes it a replica from that position.
    async fn rejoin_by_flashback(
        &self,
        cfg: &ClusterConfig,
        addr: &HostPort,
        flavor: Flavor,
        master: &HostPort,
        record: &CrashRecord,
    ) -> Result<String, ActionError> {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.coord.check("flashback").await.map_err(|w| ActionError::new(503, w))?;
        crate::failover::dump::flashback(&cfg.db_credential, addr, &record.old_master_log_file, &record.old_master_log_pos, DUMP_DEADLINE)
            .await
            .map_err(|e| ActionError::new(500, format!("flashback of {addr} failed: {e:#}")))?;
        // Its binary log still holds the rolled-back GTIDs: discard it, or replicating the new
        // master's transactions would break GTID strict ordering.
        self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "discard own binary log", sql::RESET_MASTER).await?;
        self.mutate(&mut c, "replica position from crash record", &sql::set_slave_pos(&record.elected_io_gtid)).await?;
        c.close().await;
        self.repoint(cfg, addr, flavor, master).await?;
        let msg = format!("Rolled back {addr} to {} with flashback and rejoined it to {master}", record.elected_io_gtid);
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Sets up replication from scratch. WARNING (as documented): removes current replication
    /// and resets every server's binary log.
    pub async fn bootstrap(&self, topology: &str) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        if !matches!(topology, "master-slave" | "multi-master") {
            return Err(ActionError::new(400, format!("Unsupported topology {topology}: use master-slave or multi-master")));
        }
        // Every server must answer before anything is reset: never a half-done bootstrap.
        let mut conns = Vec::new();
        for srv in &st.servers {
            let flavor = srv.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            match self.admin(&cfg, &srv.addr, flavor).await {
                Ok(c) => conns.push(c),
                Err(e) => return Err(ActionError::new(500, format!("Cannot bootstrap: {e}"))),
            }
        }
        let _busy = InFailover::enter(self.shared)?;
        let master = cfg.prefered_master.first().and_then(|p| st.servers.iter().position(|s| s.addr == *p)).unwrap_or(0);
        self.log(Level::Warn, &format!("Bootstrap {topology}: {} becomes master; replication and binary logs reset", st.servers[master].addr));
        for mut c in conns {
            self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
            self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
            self.mutate(&mut c, "reset binary log", sql::RESET_MASTER).await?;
            self.mutate(&mut c, "clear replica position", sql::CLEAR_SLAVE_POS).await?;
            self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
            c.close().await;
        }
        let maddr = st.servers[master].addr.clone();
        for (i, s) in st.servers.iter().enumerate() {
            let flavor = s.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            if i == master {
                continue;
            }
            self.repoint(&cfg, &s.addr, flavor, &maddr).await?;
        }
        if topology == "multi-master" && st.servers.len() >= 2 {
            let peer = if master == 0 { 1 } else { 0 };
            let flavor = st.servers[master].snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            let mut c = self.admin(&cfg, &maddr, flavor).await?;
            let cm = Self::change_master_sql(&cfg, &st.servers[peer].addr);
            self.mutate(&mut c, "change master to peer", &sql::change_master(flavor, &cm)).await?;
            self.mutate(&mut c, "start replication", &sql::start_slave(&cfg.replication_source_name)).await?;
            c.close().await;
        }
        let flavor = st.servers[master].snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
        let mut c = self.admin(&cfg, &maddr, flavor).await?;
        self.mutate(&mut c, "open master for writes", sql::READ_ONLY_OFF).await?;
        c.close().await;
        {
            let mut st = self.shared.write();
            st.master = Some(master);
            st.intent = Some(maddr.clone());
        }
        self.replicate(&op_id("bootstrap")).await?;
        let msg = format!("Bootstrap {topology} done: master {maddr}");
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Removes every replication connection of every reachable server.
    pub async fn cleanup(&self) -> Result<String, ActionError> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let _busy = InFailover::enter(self.shared)?;
        for s in st.servers.iter().filter(|s| s.is_up()) {
            let flavor = s.snapshot.as_ref().map_or(Flavor::MariaDB, |x| x.flavor);
            let mut c = self.admin(&cfg, &s.addr, flavor).await?;
            self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
            self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
            c.close().await;
        }
        let msg = "Replication removed on every reachable server".to_string();
        self.log(Level::Warn, &msg);
        Ok(msg)
    }

    /// Resets the failover counter.
    pub async fn reset_failover_control(&self) -> Result<String, ActionError> {
        self.coord.check("reset failover counter").await.map_err(|w| ActionError::new(503, w))?;
        self.shared.write().failover_counter = 0;
        self.replicate(&op_id("reset-failover-control")).await?;
        self.log(Level::Info, "Failover counter reset");
        Ok("failover counter reset".to_string())
    }

    /// Toggles a server's maintenance flag.
    pub async fn toggle_maintenance(&self, server: &str) -> Result<String, ActionError> {
        self.coord.check("toggle maintenance").await.map_err(|w| ActionError::new(503, w))?;
        let msg = {
            let mut st = self.shared.write();
            let Some(i) = st.find_server(server) else { return Err(ActionError::new(500, "Server Not Found")) };
            st.servers[i].maintenance = !st.servers[i].maintenance;
            let msg = format!("Server {} maintenance {}", st.servers[i].addr, if st.servers[i].maintenance { "on" } else { "off" });
            st.log(Level::Info, "maintenance", &msg);
            msg
        };
        self.replicate(&op_id("maintenance")).await?;
        Ok(msg)
    }
}
