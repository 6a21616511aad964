//! Switchover: fence the live master (read_only, drain, kill, global read lock), let the
//! candidate reach the master's final GTID position, promote it, and make the old master its
//! replica. A failure before the promotion is undone.

use std::time::Duration;

use crate::cluster::events::ChangeKind;
use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::cluster::records::{CrashRecord, JournalEntry, CRASHES_KEPT};
use crate::cluster::topology::ServerState;
use crate::config::{ClusterConfig, HostPort};
use crate::db::conn::AdminConn;
use crate::db::sql;
use crate::cluster::records::{OpKind, OpStatus};
use crate::failover::executor::{fault_pause, now_unix, op_id, FailoverExecutor, InFailover};
use crate::db::probe::ServerSnapshot;
use crate::failover::plan::{self, SwitchoverStep};

impl FailoverExecutor<'_> {
    /// The steps of [`FailoverExecutor::switchover`] (which records how they ended): fence the
    /// live master, let the candidate catch up, promote it, and make the old master its
    /// replica. Any failure before the promotion is undone.
    pub(crate) async fn switchover_steps(&self, prefmaster: Option<&str>, trigger: &str) -> OpResult {
        // Every event of the switchover carries its operation id and the term it started in.
        let op = op_id("switchover");
        let span = tracing::info_span!("switchover", op = %op, term = self.coord.epoch().0);
        tracing::Instrument::instrument(self.run_switchover(&op, prefmaster, trigger), span).await
    }

    async fn run_switchover(&self, op: &str, prefmaster: Option<&str>, trigger: &str) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let requested = match prefmaster.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match st.find_server(p) {
                Some(i) => Some(i),
                None => return Err(FailoverError::new(ErrorKind::BadRequest, format!("prefmaster {p} is not a server of this cluster"))),
            },
        };
        let plan = plan::plan_switchover(&st, requested).map_err(|e| {
            self.log(Level::Error, &format!("Switchover refused ({}): {}", e.code, e.reason));
            if e.reason == "Master failed" || requested == st.master {
                FailoverError::new(ErrorKind::BadRequest, e.reason)
            } else {
                FailoverError::from(e)
            }
        })?;
        let (m, w, domain) = (plan.old_master, plan.candidate, plan.domain);
        let old = st.servers[m].clone();
        let Some(old_snap) = old.snapshot.clone() else { return Err(FailoverError::new(ErrorKind::BadRequest, "Master failed")) };
        let cand = st.servers[w].clone();
        let cand_flavor = cand.flavor();
        for (name, why) in &plan.skipped {
            self.log(Level::Info, &format!("Election: {name} passed over: {why}"));
        }

        // The old master's session holds the global read lock from FenceAndLock to
        // DemoteOldMaster: lock and unlock run on it.
        let mut oldc = self.admin(&cfg, &old.addr, old_snap.flavor).await?;
        let mut candc: Option<AdminConn> = None;
        let mut busy = None;
        let mut record = CrashRecord {
            id: op.to_string(),
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
        let mut journal = self.new_journal(OpKind::Switchover, trigger, &old.addr, &cand.addr, record.clone());
        let mut pos = String::new();
        let mut demoted: Result<(), FailoverError> = Ok(());
        // Proxy updates that failed: reported, alerted, and recorded in the outcome.
        let mut proxy_failures: Vec<String> = Vec::new();
        for step in &plan.steps {
            tracing::debug!(op = %record.id, ?step, "switchover step");
            match step {
                SwitchoverStep::CheckMaster => {
                    if let Err(e) = self.switchover_preconditions(&cfg, &mut oldc, &old.addr).await {
                        oldc.close().await;
                        self.log(Level::Error, &e.message);
                        return Err(e);
                    }
                    busy = Some(InFailover::enter(self.shared)?);
                    self.log(Level::Warn, &format!("Switchover: {} replaces master {}", cand.addr, old.addr));
                }
                SwitchoverStep::PreScript => {
                    // Nothing changed yet: a veto leaves the master as it is.
                    if let Err(e) = self.run_pre_script(ChangeKind::Switchover, &old.addr, &cand.addr).await {
                        oldc.close().await;
                        return Err(e);
                    }
                }
                SwitchoverStep::JournalStarted => self.journal(&journal).await?,
                SwitchoverStep::ProxyWriteOut => proxy_failures.extend(self.proxies_write_out(m).await),
                SwitchoverStep::ProxyWriteIn => proxy_failures.extend(self.proxies_write_in(w).await),
                SwitchoverStep::FenceAndLock => {
                    // No new write is accepted from here on.
                    let fenced = match self.mutate(&mut oldc, "read_only on old master", sql::READ_ONLY_ON).await {
                        Ok(()) => self.fence_and_read_position(&cfg, &mut oldc).await,
                        Err(e) => Err(e),
                    };
                    match fenced {
                        Ok(p) => pos = p,
                        Err(e) => return Err(self.undo_switchover(oldc, None, &old.addr, e, &mut journal).await),
                    }
                    self.log(Level::Info, &format!("Old master {} fenced at gtid_binlog_pos {pos}", old.addr));
                    fault_pause("REPLICATION_MANAGER_FAULT_PAUSE_AFTER_FENCE_MS", "after the old master was fenced", &record.id).await;
                }
                SwitchoverStep::WaitCaughtUp => {
                    let mut c = match self.admin(&cfg, &cand.addr, cand_flavor).await {
                        Ok(c) => c,
                        Err(e) => return Err(self.undo_switchover(oldc, None, &old.addr, e.into(), &mut journal).await),
                    };
                    let catchup = cfg.switchover_wait_catch;
                    let wait = sql::master_gtid_wait(&pos, catchup.as_secs());
                    let reached = match c.value(&wait, catchup + Duration::from_secs(5)).await {
                        Ok(Some(v)) if v == "0" => Ok(()),
                        Ok(v) => Err(FailoverError::new(ErrorKind::Failed, format!("{} did not reach {pos} within {catchup:?} ({v:?})", cand.addr))),
                        Err(e) => Err(e.into()),
                    };
                    if let Err(e) = reached {
                        return Err(self.undo_switchover(oldc, Some(c), &old.addr, e, &mut journal).await);
                    }
                    candc = Some(c);
                }
                SwitchoverStep::DetachCandidate => {
                    let Some(mut c) = candc.take() else {
                        let e = FailoverError::new(ErrorKind::Failed, "switchover plan: DetachCandidate before WaitCaughtUp");
                        return Err(self.undo_switchover(oldc, None, &old.addr, e, &mut journal).await);
                    };
                    if let Err(e) = self.mutate(&mut c, "stop replication on candidate", &sql::stop_slave(&cfg.replication_source_name)).await {
                        return Err(self.undo_switchover(oldc, Some(c), &old.addr, e, &mut journal).await);
                    }
                    // Past this point the candidate forgets its source: forward only.
                    let reset = self.mutate(&mut c, "reset replication on candidate", &sql::reset_slave_all(&cfg.replication_source_name)).await;
                    c.close().await;
                    reset?;
                    record.old_master_gtid = pos.clone();
                    record.elected_io_gtid = pos.clone();
                }
                SwitchoverStep::Promote { semi_sync } => self.promote(&cfg, w, *semi_sync, &mut record).await?,
                SwitchoverStep::JournalPromoted => {
                    journal.status = OpStatus::Promoted;
                    journal.evidence = record.clone();
                    self.journal_with(&journal, |st| st.intent = Some(cand.addr.clone())).await?;
                }
                SwitchoverStep::DemoteOldMaster => {
                    demoted = self.demote_old_master(&cfg, &mut oldc, &old_snap, &cand.addr).await;
                    match &demoted {
                        Ok(()) => self.log(Level::Info, &format!("Old master {} now replicates from {}", old.addr, cand.addr)),
                        Err(e) => self.log(Level::Error, &format!("Old master {} could not be demoted: {}", old.addr, e.message)),
                    }
                }
                SwitchoverStep::Repoint { server, wait_catch } => {
                    let s = &st.servers[*server];
                    if *wait_catch {
                        if let Ok(mut c) = self.admin(&cfg, &s.addr, s.flavor()).await {
                            let wait = sql::master_gtid_wait(&pos, cfg.switchover_wait_catch.as_secs());
                            if c.value(&wait, cfg.switchover_wait_catch + Duration::from_secs(5)).await.ok().flatten().as_deref() != Some("0") {
                                self.log(Level::Warn, &format!("Replica {} did not reach {pos} before repointing", s.addr));
                            }
                            c.close().await;
                        }
                    }
                    // Failures are logged by repoint_server; the next ticks show the replica's state.
                    let _ = self.repoint_server(&cfg, *server, &cand.addr).await;
                }
                SwitchoverStep::Finish => {
                    journal.status = OpStatus::Done;
                    journal.evidence = record.clone();
                    let done = record.clone();
                    self.journal_with(&journal, |st| {
                        st.crashes.push(done);
                        let excess = st.crashes.len().saturating_sub(CRASHES_KEPT);
                        st.crashes.drain(..excess);
                        st.master = Some(w);
                        st.servers[w].state = ServerState::Master;
                    })
                    .await?;
                    self.log(Level::Warn, &format!("Master switch on {} complete (switchover)", cand.addr));
                }
            }
        }
        oldc.close().await;
        drop(busy);
        let done = format!("Switchover done: new master {}", cand.addr);
        demoted.map(|()| plan::with_proxy_failures(done, &proxy_failures)).map_err(|e| {
            FailoverError::new(ErrorKind::Failed, format!("new master {} is writable but the old master was not demoted: {}", cand.addr, e.message))
        })
    }

    /// The old master replicates from `new`: its global read lock released (read_only stays
    /// on, so no application write gets in), semi-sync master off, position from its own
    /// binary log.
    async fn demote_old_master(&self, cfg: &ClusterConfig, oldc: &mut AdminConn, old_snap: &ServerSnapshot, new: &HostPort) -> Result<(), FailoverError> {
        let cm = Self::change_master_sql(cfg, new);
        // Replication statements cannot run while this session holds the lock.
        self.mutate(oldc, "release lock", sql::UNLOCK_TABLES).await?;
        if old_snap.semi_sync_master_enabled {
            self.mutate(oldc, "semi-sync master off", sql::SEMISYNC_MASTER_OFF).await?;
        }
        self.mutate(oldc, "stop replication", &sql::stop_slave(&cfg.replication_source_name)).await?;
        self.mutate(oldc, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await?;
        self.mutate(oldc, "change master", &sql::change_master(old_snap.flavor, &cm)).await?;
        self.mutate(oldc, "start replication", &sql::start_slave(&cfg.replication_source_name)).await
    }

    /// Refuses (409, the master untouched) while a write statement runs longer than
    /// `switchover-wait-write-query` or a transaction is open longer than
    /// `switchover-wait-trx`: the global read lock does not wait for an open transaction, so
    /// a switchover would cut it.
    async fn switchover_preconditions(&self, cfg: &ClusterConfig, oldc: &mut AdminConn, old: &HostPort) -> Result<(), FailoverError> {
        let long = oldc.value(&sql::long_writes(cfg.switchover_wait_write_query), Duration::from_secs(5)).await?;
        if long.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) > 0 {
            return Err(FailoverError::new(
                ErrorKind::Conflict,
                format!("Long updates running on master {old}: write statements older than {} s (switchover-wait-write-query); cannot switchover", cfg.switchover_wait_write_query),
            ));
        }
        let row = oldc.row(&sql::long_transactions(cfg.switchover_wait_trx)).await?.unwrap_or_default();
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        if field(0).parse::<u64>().unwrap_or(0) > 0 {
            return Err(FailoverError::new(
                ErrorKind::Conflict,
                format!(
                    "Switchover refused: {} transaction(s) open on master {old} for more than switchover-wait-trx ({} s), the oldest for {} s (connection {}); the master is unchanged",
                    field(0),
                    cfg.switchover_wait_trx,
                    field(2),
                    field(1)
                ),
            ));
        }
        Ok(())
    }

    /// After read_only: drain writes for `switchover-wait-kill`, kill client connections, take
    /// the global read lock with a short lock wait, and read the final GTID position.
    async fn fence_and_read_position(&self, cfg: &ClusterConfig, oldc: &mut AdminConn) -> OpResult {
        let drain_until = std::time::Instant::now() + cfg.switchover_wait_kill;
        loop {
            // Running writes and open transactions: both end (commit) by themselves while
            // read_only refuses new ones.
            let writes = oldc.value(&sql::long_writes(0), Duration::from_secs(5)).await?;
            let trx = oldc.row(&sql::long_transactions(0)).await?.unwrap_or_default();
            let count = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let busy = count(writes) + count(trx.first().cloned().flatten());
            if busy == 0 || std::time::Instant::now() >= drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.kill_clients(oldc).await?;
        self.mutate(oldc, "lock wait bound", &sql::lock_wait_timeout(cfg.switchover_wait_trx)).await?;
        let t = Duration::from_secs(cfg.switchover_wait_trx + 2);
        self.coord.check("flush tables with read lock").await?;
        oldc.exec_within(sql::FLUSH_TABLES_WITH_READ_LOCK, t).await.map_err(|e| {
            FailoverError::new(ErrorKind::Failed, format!("Long running transaction on master, no read lock within {} s: {e}", cfg.switchover_wait_trx))
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
        cause: FailoverError,
        journal: &mut JournalEntry,
    ) -> FailoverError {
        // Every undo statement but the unlock is leadership-checked: a node that lost the lead
        // leaves the old master read-only, and the next leader rolls the journal back.
        let src = self.shared.read().config.replication_source_name.clone();
        let mut undo_errors = Vec::new();
        if let Some(mut c) = candc {
            if let Err(e) = self.mutate(&mut c, "undo: candidate replicates again", &sql::start_slave(&src)).await {
                undo_errors.push(e.to_string());
            }
            c.close().await;
        }
        // Releasing this session's own global read lock lets nothing in: read_only is still on.
        // A node that lost the lead sends nothing: closing the session releases the lock.
        match self.coord.check("undo: release lock").await {
            Ok(()) => {
                if let Err(e) = oldc.exec(sql::UNLOCK_TABLES).await {
                    undo_errors.push(e.to_string());
                }
                if let Err(e) = self.mutate(&mut oldc, "undo: reopen old master", sql::READ_ONLY_OFF).await {
                    undo_errors.push(e.to_string());
                }
            }
            Err(why) => undo_errors.push(format!("not acting on databases (undo): {why}")),
        }
        oldc.close().await;
        let msg = if undo_errors.is_empty() {
            format!("Switchover cancelled and undone ({old} writable again): {}", cause.message)
        } else {
            format!("Switchover cancelled; undo incomplete on {old} ({}): {}", undo_errors.join("; "), cause.message)
        };
        self.log(Level::Error, &msg);
        journal.status = OpStatus::RolledBack;
        let _ = self.journal(journal).await;
        let kind = match cause.kind {
            ErrorKind::NotLeader | ErrorKind::Timeout => cause.kind,
            _ => ErrorKind::Failed,
        };
        FailoverError::new(kind, msg)
    }
}
