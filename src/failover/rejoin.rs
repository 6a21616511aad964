//! Rejoin of a returning old master: as a replica when it holds nothing the new master lacks,
//! otherwise rolled back (flashback) or reloaded (dump) when allowed, else left read-only and
//! quarantined with its extra GTIDs reported.

use std::time::Duration;

use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::cluster::records::CrashRecord;
use crate::config::{ClusterConfig, HostPort};
use crate::db::sql::{self, Flavor};
use crate::db::conn::AdminConn;
use crate::failover::executor::FailoverExecutor;
use crate::failover::plan::{self, RejoinPlan};

/// How long a reload by dump (or a flashback) may take.
pub const DUMP_DEADLINE: Duration = Duration::from_secs(1800);

impl FailoverExecutor<'_> {
    /// Rejoins a returning old master `i` as [`plan::plan_rejoin`] decides: as a replica when
    /// it holds nothing the new master lacks; otherwise rolled back or reloaded when allowed,
    /// else left read-only with its extra GTIDs reported (409).
    pub async fn rejoin(&self, i: usize, record: &CrashRecord) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let Some(m) = st.master else { return Err(FailoverError::new(ErrorKind::Conflict, "no master to rejoin")) };
        let srv = st.servers[i].clone();
        let Some(snap) = srv.snapshot.clone() else { return Err(FailoverError::new(ErrorKind::Conflict, "server is down")) };
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let Some(decision) = plan::plan_rejoin(&st, i, record, now_ms) else { return Err(FailoverError::new(ErrorKind::Conflict, "server is down")) };
        let new_master = st.servers[m].addr.clone();
        match decision {
            RejoinPlan::Flashback { extra, then_dump } => {
                self.log(
                    Level::Warn,
                    &format!("Old master {} is ahead ({extra}): rolling its extra transactions back (autorejoin-flashback)", srv.addr),
                );
                match self.rejoin_by_flashback(&cfg, &srv.addr, snap.flavor, &new_master, record).await {
                    Ok(msg) => Ok(msg),
                    Err(e) if then_dump => {
                        self.log(Level::Error, &format!("Flashback of {} failed, trying a dump: {}", srv.addr, e.message));
                        self.reseed_by_dump(&cfg, &srv.addr, snap.flavor, &new_master).await
                    }
                    Err(e) => Err(e),
                }
            }
            RejoinPlan::DiscardUnacknowledged { extra, then_dump } => {
                self.log(
                    Level::Warn,
                    &format!(
                        "Old master {} holds transactions no replica received ({extra}); semi-sync proves none was acknowledged \
                         (AFTER_SYNC, no commit waiting at {} ms, timeout {} ms): rolling them back (autorejoin-semisync)",
                        srv.addr, record.semi_sync_idle_at_ms, record.semi_sync_timeout_ms
                    ),
                );
                let done = match self.rejoin_by_flashback(&cfg, &srv.addr, snap.flavor, &new_master, record).await {
                    Ok(msg) => msg,
                    Err(e) if then_dump => {
                        self.log(Level::Error, &format!("Flashback of {} failed, trying a dump: {}", srv.addr, e.message));
                        self.reseed_by_dump(&cfg, &srv.addr, snap.flavor, &new_master).await?
                    }
                    Err(e) => return Err(e),
                };
                // The discarded transactions stay on record, replicated with the crash.
                let id = record.id.clone();
                let discarded = extra.clone();
                self.commit(&format!("{id}:discarded"), move |st| {
                    if let Some(c) = st.crashes.iter_mut().find(|c| c.id == id) {
                        c.discarded_gtids = vec![discarded];
                    }
                    Ok(())
                })
                .await?;
                self.log(Level::Warn, &format!("Discarded unacknowledged transactions {extra} of old master {} (autorejoin-semisync)", srv.addr));
                Ok(done)
            }
            RejoinPlan::Dump { extra } => {
                self.log(
                    Level::Warn,
                    &format!("Old master {} is ahead ({extra}): reloading it from {new_master} with a dump (autorejoin-mysqldump)", srv.addr),
                );
                self.reseed_by_dump(&cfg, &srv.addr, snap.flavor, &new_master).await
            }
            RejoinPlan::Quarantine { extra } => {
                // Never writable, never rejoined silently.
                let mut c = self.admin(&cfg, &srv.addr, snap.flavor).await?;
                self.mutate(&mut c, "keep ahead old master read-only", sql::READ_ONLY_ON).await?;
                c.close().await;
                Err(FailoverError::new(ErrorKind::Conflict,
                    format!(
                        "Old master {} holds transactions the new master {new_master} never received ({extra}); left read-only, not rejoined (enable autorejoin-flashback or autorejoin-mysqldump, or resolve by hand)",
                        srv.addr
                    ),
                ))
            }
            RejoinPlan::AsReplica { position, received } => {
                let mut c = self.admin(&cfg, &srv.addr, snap.flavor).await?;
                self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
                self.semi_sync_master_off(&mut c, &srv.addr).await?;
                // The plan read the position of a probe taken before read_only: a commit that
                // was in flight when it thawed (its client killed by the fence, never
                // acknowledged) may have landed since. `SET GLOBAL read_only = 1` waits for
                // running commits, so the position read now is final: more than what the new
                // master received means diverged (measured: rejoined at 2471, then asked the
                // new master for 0-2-2472 it never had). The next tick plans on it again.
                let now = c.row(sql::GTID_POSITIONS).await?.unwrap_or_default();
                let seq_of = |k: usize| now.get(k).cloned().flatten().map_or(0, |p| crate::db::gtid::GtidPos::parse_lenient(&p).seq_in(record.domain));
                let mine_now = seq_of(0).max(seq_of(1));
                if mine_now > received {
                    c.close().await;
                    // Failed, not Conflict: not quarantined, the next tick plans again.
                    return Err(FailoverError::new(
                        ErrorKind::Failed,
                        format!(
                            "Old master {} committed up to {mine_now} in domain {} after its last probe ({position}), more than {new_master} received ({received}): not rejoined as a replica, planned again at the next tick",
                            srv.addr, record.domain
                        ),
                    ));
                }
                c.close().await;
                {
                    // Runs beside the monitor: if a failover changed the master meanwhile, stop
                    // here and let the next tick decide again.
                    let now = self.shared.read();
                    if now.in_failover || now.master != Some(m) {
                        return Err(FailoverError::new(ErrorKind::NotLeader, format!("master changed while rejoining {}: retried next tick", srv.addr)));
                    }
                }
                let mut c = self.admin(&cfg, &srv.addr, snap.flavor).await?;
                self.mutate(&mut c, "replica position from own binlog", sql::SLAVE_POS_FROM_CURRENT).await?;
                c.close().await;
                self.repoint(&cfg, &srv.addr, snap.flavor, &new_master).await?;
                let msg = format!("Rejoined old master {} as a replica of {new_master} (position {position} <= {received})", srv.addr);
                self.log(Level::Info, &msg);
                Ok(msg)
            }
        }
    }

    /// Turns semi-sync master off on an old master becoming a replica. Left on, every commit
    /// its SQL thread applies (binlogged, `log_slave_updates`) waits for an acknowledgement no
    /// replica of it sends, `rpl_semi_sync_master_timeout` each time it falls back: measured, a
    /// reloaded old master stalled 60 s behind, and the next failover waited that long for it
    /// to apply its relay log. A server without the variable (no semi-sync) is left as it is.
    async fn semi_sync_master_off(&self, c: &mut AdminConn, addr: &HostPort) -> Result<(), FailoverError> {
        match c.value(sql::SEMISYNC_MASTER_ENABLED, Duration::from_secs(5)).await {
            Ok(Some(v)) if v == "1" || v.eq_ignore_ascii_case("ON") => self.mutate(c, "semi-sync master off", sql::SEMISYNC_MASTER_OFF).await,
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::info!(server = %addr, error = %e, "no semi-sync master setting to turn off");
                Ok(())
            }
        }
    }

    /// Reloads `addr` from a consistent dump of `master` and makes it a replica from the dump's
    /// GTID position. Its own extra transactions are discarded (binary log reset).
    pub async fn reseed_by_dump(&self, cfg: &ClusterConfig, addr: &HostPort, flavor: Flavor, master: &HostPort) -> OpResult {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.semi_sync_master_off(&mut c, addr).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "discard own binary log", sql::RESET_MASTER).await?;
        let mut mc = self.admin(cfg, master, flavor).await?;
        let dbs = mc.column(sql::USER_SCHEMAS).await?;
        let fallback_pos = mc.value(sql::GTID_BINLOG_POS, Duration::from_secs(5)).await?.unwrap_or_default();
        mc.close().await;
        let pos = if dbs.is_empty() {
            fallback_pos
        } else {
            self.while_leader(
                &format!("reload {addr} from a dump of {master}"),
                crate::db::tools::copy_databases(&cfg.db_credential, master, addr, &dbs, DUMP_DEADLINE),
            )
            .await?
        };
        self.mutate(&mut c, "replica position from dump", &sql::set_slave_pos(&pos)).await?;
        c.close().await;
        self.repoint(cfg, addr, flavor, master).await?;
        let msg = format!("Reloaded {addr} from {master} ({} databases) and replicating from GTID {pos}", dbs.len());
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
    ) -> OpResult {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.semi_sync_master_off(&mut c, addr).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.while_leader(
            &format!("flashback of {addr}"),
            crate::db::tools::flashback(&cfg.db_credential, addr, &record.old_master_log_file, &record.old_master_log_pos, DUMP_DEADLINE),
        )
        .await?;
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
}
