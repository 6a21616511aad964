//! `FailoverPlan`, `SwitchoverPlan`, `RejoinPlan`: the master-change decisions as pure functions
//! of a cluster snapshot (servers as last probed, the replicated state, the configuration and
//! the managers' votes). Each returns a typed plan of steps that the executor runs in order, or
//! a [`PlanError`] with the alert code; nothing here does I/O, so every rule is table-tested.
//! The election rules themselves are in [`crate::failover::planner`].

use std::time::{Duration, Instant};

use crate::cluster::records::CrashRecord;
use crate::cluster::server::ServerRuntime;
use crate::cluster::state::ClusterState;
use crate::cluster::topology::{same_server, ServerState};
use crate::config::ClusterConfig;
use crate::db::gtid::GtidPos;
use crate::db::probe::{ReplicationStatus, ServerSnapshot};
use crate::db::sql::Flavor;
use crate::failover::planner::{self, Candidate, ElectionKind, ElectionRules, Gate, GateInput, NoCandidate};

/// Why no plan: the alert code and a reason for the operator.
pub type PlanError = NoCandidate;

/// One step of a failover, in the order the executor runs them. Every step that changes a
/// database is preceded by a leadership check in the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverStep {
    /// Run `failover-pre-script` (old and new master, `failover`); a non-zero exit or its
    /// deadline vetoes the failover before anything changed.
    PreScript,
    /// Replicate the journal entry (`started`) before the first mutation.
    JournalStarted,
    /// The old master leaves the write backend of every proxy (maintenance, its sessions
    /// cut) before anything is promoted; a failure is reported and recorded in the outcome.
    ProxyWriteOut,
    /// The old master answers: `read_only`, client connections killed, its final GTID position
    /// read. The candidate must then reach that position.
    FenceOldMaster,
    /// Run `failover-fence-script` with the old master's host and port (STONITH); the
    /// promotion waits for it to exit 0, a failure or a timeout blocks it.
    FenceScript,
    /// The old master did not answer but these replicas' IO threads are still connected to it
    /// (a frozen or cut-off process): stop them side by side, so nothing more arrives from it
    /// and the candidate's received position is final. Their `STOP SLAVE` waits for the
    /// semi-sync kill connection to the silent master (`rpl_semi_sync_slave_kill_conn_timeout`,
    /// lowered to 1 s for that statement); done once here for all, the later stops are instant.
    StopReplicaIo { servers: Vec<usize> },
    /// Wait (bounded) until the candidate has applied what it received, and the fenced master's
    /// final position when there is one.
    WaitApplied,
    /// Stop and forget replication on the candidate.
    DetachCandidate,
    /// Open the candidate for writes (semi-sync master first when the cluster used it).
    Promote { semi_sync: bool },
    /// Replicate the journal entry (`promoted`): from here a new leader finishes the failover.
    JournalPromoted,
    /// The new master enters the write backend of every proxy.
    ProxyWriteIn,
    /// Point another replica at the new master.
    Repoint { server: usize },
    /// Record the crash, bump the counter, close the journal (`done`).
    Finish,
}

impl FailoverStep {
    /// The step's name in logs and in the crash record's timings.
    pub fn name(&self) -> &'static str {
        match self {
            FailoverStep::PreScript => "pre-script",
            FailoverStep::JournalStarted => "journal-started",
            FailoverStep::ProxyWriteOut => "proxy-write-out",
            FailoverStep::FenceOldMaster => "fence-old-master",
            FailoverStep::FenceScript => "fence-script",
            FailoverStep::StopReplicaIo { .. } => "stop-replica-io",
            FailoverStep::WaitApplied => "wait-applied",
            FailoverStep::DetachCandidate => "detach-candidate",
            FailoverStep::Promote { .. } => "promote",
            FailoverStep::JournalPromoted => "journal-promoted",
            FailoverStep::ProxyWriteIn => "proxy-write-in",
            FailoverStep::Repoint { .. } => "repoint",
            FailoverStep::Finish => "finish",
        }
    }
}

/// A failover decided on a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPlan {
    pub old_master: usize,
    pub candidate: usize,
    /// The replication domain compared (the old master's `gtid_domain_id`).
    pub domain: u32,
    /// Replicas passed over, with why.
    pub skipped: Vec<(String, String)>,
    /// GTID ranges the old master had at its last probe that the candidate had not received.
    pub at_risk: Vec<String>,
    pub steps: Vec<FailoverStep>,
}

/// One step of a switchover, in order. A failure before `Promote` is undone (old master
/// writable again, candidate replicating again); from `Promote` on it only goes forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchoverStep {
    /// Refuse (nothing changed) while a write runs longer than `switchover-wait-write-query`
    /// or a transaction is open longer than `switchover-wait-trx` on the master.
    CheckMaster,
    /// Run `failover-pre-script` (old and new master, `switchover`); a non-zero exit or its
    /// deadline vetoes the switchover before anything changed.
    PreScript,
    /// Replicate the journal entry (`started`).
    JournalStarted,
    /// The master leaves the write backend of every proxy before it is fenced.
    ProxyWriteOut,
    /// `read_only`, drain for `switchover-wait-kill`, kill the clients, take the global read
    /// lock, read the master's final GTID position.
    FenceAndLock,
    /// The candidate reaches that position within `switchover-wait-catch`.
    WaitCaughtUp,
    /// Stop (undoable) and forget (forward only) the candidate's replication.
    DetachCandidate,
    /// Open the candidate for writes.
    Promote { semi_sync: bool },
    /// Replicate the journal entry (`promoted`) with the new master.
    JournalPromoted,
    /// The new master enters the write backend of every proxy.
    ProxyWriteIn,
    /// The old master (lock released, still read-only) replicates from the new one.
    DemoteOldMaster,
    /// Point another replica at the new master, first waiting (bounded) for the old master's
    /// final position when `wait_catch` (`switchover-slave-wait-catch`).
    Repoint { server: usize, wait_catch: bool },
    /// Record the switchover and close the journal (`done`).
    Finish,
}

/// A switchover decided on a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchoverPlan {
    pub old_master: usize,
    pub candidate: usize,
    pub domain: u32,
    pub skipped: Vec<(String, String)>,
    pub steps: Vec<SwitchoverStep>,
}

/// What to do with a returning old master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinPlan {
    /// It holds nothing the new master lacks: make it a replica from its own position.
    AsReplica { position: u64, received: u64 },
    /// It is ahead by `extra`: roll those transactions back with flashback (then a dump if that
    /// fails and `autorejoin-mysqldump` is on).
    Flashback { extra: String, then_dump: bool },
    /// It is ahead by `extra`: reload it from a dump of the new master.
    Dump { extra: String },
    /// It is ahead by `extra`, and semi-sync proves no client was told they committed
    /// (`autorejoin-semisync`): roll them back with flashback (then a dump if that fails and
    /// `autorejoin-mysqldump` is on), and record them as discarded.
    DiscardUnacknowledged { extra: String, then_dump: bool },
    /// It is ahead by `extra` and nothing may discard them: leave it read-only, quarantined.
    Quarantine { extra: String },
}

/// How long before the end of the semi-sync proof window an old master is still rolled back
/// on its evidence: room for the clock of the probes and the rejoin's own duration.
pub const SEMISYNC_PROOF_MARGIN_MS: u64 = 60_000;

/// Whether the crash `record` proves, at unix ms `now_ms`, that none of the old master's
/// transactions beyond what the promoted replica received was acknowledged to a client: it
/// acknowledged no commit before a replica had received it (semi-sync on, `AFTER_SYNC`,
/// waiting also with no replica) and, from a probe at which no commit was waiting, no
/// commit can yet have waited out `rpl_semi_sync_master_timeout` and committed alone. A
/// transaction acknowledged with semi-sync reached a replica, and the promoted replica had
/// received the most of all (an unreachable replica that may have acknowledged more stops the
/// failover, ERR00090).
pub fn unacknowledged_proven(record: &CrashRecord, now_ms: u64) -> bool {
    record.semi_sync_idle_at_ms > 0
        && !record.switchover
        && now_ms.saturating_add(SEMISYNC_PROOF_MARGIN_MS) < record.semi_sync_idle_at_ms.saturating_add(record.semi_sync_timeout_ms)
}

/// What the leader does this tick so that exactly the intended master is writable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteGuard {
    /// Server `server` is writable but is not the intended master `master` (an old master that
    /// came back from a freeze or a partition, a server opened by hand): `read_only` and its
    /// client connections killed, before anything else is decided about it.
    Fence { server: usize, master: usize },
    /// The intended master answers but is read-only (it restarted with `read_only` from its
    /// configuration, or a fence of an aborted operation stayed): open it for writes.
    Reopen { master: usize },
    /// `failover-semisync-enforce`: make semi-sync safe on the master and have `replicas` (its
    /// replicas that do not acknowledge) acknowledge.
    EnforceSemiSync { master: usize, replicas: Vec<usize> },
    /// `force-slave-heartbeat`: `replicas` of master `master`, replicating and caught up in
    /// their threads, have another heartbeat period than `force-slave-heartbeat-time`: set it
    /// (their replication restarts).
    ForceHeartbeat { master: usize, replicas: Vec<usize> },
}

/// The write guards due on a snapshot: every reachable writable server that is not the
/// intended master is fenced (a replica of the master only when replicas are kept read-only,
/// `failover-readonly-state`); once no other server is writable, a read-only intended master
/// that replicates from no one is reopened. Nothing while a master change runs, before a master
/// is known, or in a multi-master topology.
pub fn write_guards(st: &ClusterState) -> Vec<WriteGuard> {
    if st.in_failover || st.topology_kind == "multi-master" || refuse_unmanaged_flavor(st).is_err() {
        return Vec::new();
    }
    let Some(m) = st.intent_index().or(st.master) else { return Vec::new() };
    let master = &st.servers[m];
    if !master.is_up() || master.maintenance || master.state != ServerState::Master {
        return Vec::new();
    }
    let source = &st.config.replication_source_name;
    let mut guards: Vec<WriteGuard> = st
        .servers
        .iter()
        .enumerate()
        .filter(|(i, s)| *i != m && s.is_up())
        .filter_map(|(i, s)| {
            let snap = s.snapshot.as_ref()?;
            let replica_of_master = snap.managed_replication(source).is_some_and(|r| same_server(&r.source(), &master.addr));
            let fence = !snap.read_only && (!replica_of_master || st.config.failover_readonly_state);
            fence.then_some(WriteGuard::Fence { server: i, master: m })
        })
        .collect();
    let master_snap = master.snapshot.as_ref();
    let reopen = master_snap.is_some_and(|sn| sn.read_only && sn.managed_replication(source).is_none());
    let other_writable = st.servers.iter().enumerate().any(|(i, s)| i != m && s.is_up() && s.snapshot.as_ref().is_some_and(|sn| !sn.read_only));
    if guards.is_empty() && reopen && !other_writable {
        guards.push(WriteGuard::Reopen { master: m });
    }
    if st.config.semisync_enforce {
        let replicas = master_replicas(st, m, |sn, _| !sn.semi_sync_slave_enabled);
        let unsafe_master = master_snap.is_some_and(|sn| {
            !sn.semi_sync_master_enabled
                || !sn.semi_sync_wait_point.eq_ignore_ascii_case("AFTER_SYNC")
                || sn.semi_sync_timeout_ms < crate::cluster::topology::SAFE_SEMI_SYNC_TIMEOUT_MS
        });
        if unsafe_master || !replicas.is_empty() {
            guards.push(WriteGuard::EnforceSemiSync { master: m, replicas });
        }
    }
    if st.config.force_slave_heartbeat {
        let want = st.config.slave_heartbeat_time.max(1) as f64;
        let replicas = master_replicas(st, m, |_, r| r.is_running() && (r.slave_heartbeat_period - want).abs() > 0.001);
        if !replicas.is_empty() {
            guards.push(WriteGuard::ForceHeartbeat { master: m, replicas });
        }
    }
    guards
}

/// The reachable replicas of master `m`, not in maintenance, whose snapshot and managed
/// replication link (pointing at `m`) satisfy `keep`.
fn master_replicas(st: &ClusterState, m: usize, keep: impl Fn(&ServerSnapshot, &ReplicationStatus) -> bool) -> Vec<usize> {
    let (source, master) = (&st.config.replication_source_name, &st.servers[m].addr);
    st.servers
        .iter()
        .enumerate()
        .filter(|(i, s)| *i != m && s.is_up() && !s.maintenance)
        .filter(|(_, s)| {
            s.snapshot.as_ref().is_some_and(|sn| sn.managed_replication(source).is_some_and(|r| same_server(&r.source(), master) && keep(sn, r)))
        })
        .map(|(i, _)| i)
        .collect()
}

/// `msg`, with the proxy updates that failed during the operation when there were any.
pub fn with_proxy_failures(msg: String, failures: &[String]) -> String {
    if failures.is_empty() {
        msg
    } else {
        format!("{msg}; proxy update failed: {}", failures.join("; "))
    }
}

/// MariaDB only acts on MariaDB: a cluster with a server seen as MySQL is monitored and shown,
/// never changed (its statements differ, and no MySQL server can be tested here).
pub fn refuse_unmanaged_flavor(st: &ClusterState) -> Result<(), PlanError> {
    let mysql: Vec<String> = st
        .servers
        .iter()
        .filter(|s| s.snapshot.as_ref().is_some_and(|sn| sn.flavor == Flavor::MySQL))
        .map(|s| s.addr.to_string())
        .collect();
    if mysql.is_empty() {
        return Ok(());
    }
    Err(NoCandidate {
        code: "ERR00091",
        reason: format!("{} run MySQL: this manager monitors MySQL servers but changes only MariaDB clusters", mysql.join(", ")),
    })
}

/// The replication domain of master `m`: its `gtid_domain_id`.
pub fn master_domain(st: &ClusterState, m: usize) -> u32 {
    st.servers[m].snapshot.as_ref().map_or(0, |s| s.gtid_domain_id)
}

/// The election view of every replica of master `m`, compared in replication `domain`.
/// `requested` (a switchover target) ranks first among preferred servers.
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
                replicates_from_master: repl.is_some_and(|r| same_server(&r.source(), maddr)),
                log_bin: snap.is_some_and(|sn| sn.log_bin),
                io_running: repl.is_some_and(|r| r.io_running.eq_ignore_ascii_case("yes")),
                sql_running: repl.is_some_and(|r| r.sql_running.eq_ignore_ascii_case("yes")),
                received_seq: repl.map_or(0, |r| GtidPos::parse_lenient(&r.gtid_io_pos).seq_in(domain)),
                applied_seq: snap.map_or(0, |sn| sn.gtid_current_pos.seq_in(domain).max(sn.gtid_slave_pos.seq_in(domain))),
                // Seconds_Behind_Master turns NULL when the master is gone: the last known value
                // then stands, until the replica applied everything it received (not behind).
                seconds_behind: match repl.and_then(|r| r.seconds_behind_master) {
                    Some(d) => Some(d),
                    None if applied_all(snap, repl, domain) => Some(0),
                    None => s.last_delay,
                },
                configured_delay: repl.map_or(0, |r| r.sql_delay),
                semi_sync_in_sync: snap.is_some_and(|sn| sn.semi_sync_slave_status),
                maintenance: s.maintenance,
                ignored: s.ignored,
                prefered_rank: if requested == Some(i) { Some(0) } else { cfg.prefered_master.iter().position(|p| *p == s.addr) },
            }
        })
        .collect()
}

/// True when a replica has applied, in `domain`, everything it received from its source.
fn applied_all(snap: Option<&ServerSnapshot>, repl: Option<&ReplicationStatus>, domain: u32) -> bool {
    let (Some(sn), Some(r)) = (snap, repl) else { return false };
    let received = GtidPos::parse_lenient(&r.gtid_io_pos).seq_in(domain);
    let applied = sn.gtid_current_pos.seq_in(domain).max(sn.gtid_slave_pos.seq_in(domain));
    received > 0 && applied >= received
}

/// True while replica `s` still receives from its source: IO thread running, and heartbeats or
/// positions changed within a window longer than the heartbeat period (at least
/// `failover-falsepositive-heartbeat-timeout`, and two ticks).
pub fn hears_source(s: &ServerRuntime, cfg: &ClusterConfig, now: Instant) -> bool {
    let Some(changed) = s.hear_changed_at else { return false };
    let min_window = cfg.falsepositive_heartbeat_timeout.max(cfg.monitoring_ticker * 2);
    let window = min_window.max(s.hear_period.mul_f64(1.5) + cfg.monitoring_ticker);
    s.hear_io_running && now.saturating_duration_since(changed) <= window
}

/// Why the manager takes the master for dead, or `None` while it does not. Either its probes
/// failed `failover-falsepositive-ping-counter` times (state `Failed`; a master refusing the
/// manager's credentials counts once the counter ran out), or it is dead for certain: its
/// connection was refused `failover-falsepositive-refused-counter` times in a row (the host
/// answers, no server listens) and every reachable replica of it lost its IO thread to it
/// (`Connecting`, or stopped with an IO error). A timeout is never certain: a frozen or
/// cut-off master gives one too, and waits for the whole counter.
pub fn master_death(st: &ClusterState) -> Option<String> {
    let m = st.master?;
    let cfg = &st.config;
    let master = &st.servers[m];
    if master.state == ServerState::Failed {
        return Some(format!("{} consecutive failed probes (failover-falsepositive-ping-counter {})", master.fail_count, cfg.falsepositive_ping_counter));
    }
    if master.state == ServerState::ErrorAuth && master.fail_count >= cfg.falsepositive_ping_counter {
        return Some(format!("access denied {} times (failover-falsepositive-ping-counter {})", master.fail_count, cfg.falsepositive_ping_counter));
    }
    let counter = cfg.falsepositive_refused_counter;
    if counter == 0 || master.refused_count < counter {
        return None;
    }
    let mut lost = Vec::new();
    for s in st.servers.iter().filter(|s| s.is_up() && !same_server(&s.addr, &master.addr)) {
        let Some(r) = s.snapshot.as_ref().and_then(|sn| sn.managed_replication(&cfg.replication_source_name)) else { continue };
        if !same_server(&r.source(), &master.addr) {
            continue;
        }
        let io_lost = r.io_running.eq_ignore_ascii_case("Connecting") || (!r.io_running.eq_ignore_ascii_case("Yes") && r.last_io_errno != 0);
        if !io_lost {
            // A replica still connected to it: not certain (the full counter decides).
            return None;
        }
        lost.push(format!("{} (IO thread {}, errno {})", s.addr, r.io_running, r.last_io_errno));
    }
    if lost.is_empty() {
        return None;
    }
    Some(format!(
        "connection refused {} time(s) in a row (failover-falsepositive-refused-counter {counter}) and every reachable replica lost its IO thread to it: {}",
        master.refused_count,
        lost.join(", ")
    ))
}

/// The automatic-failover gate on a snapshot at `now` (unix seconds `now_unix`): master
/// dead ([`master_death`]), replicas that still hear it, mode, limits.
pub fn automatic_gate(st: &ClusterState, now: Instant, now_unix: u64) -> Gate {
    let Some(m) = st.master else { return Gate::Idle };
    let cfg = &st.config;
    let master = &st.servers[m];
    let hearing: Vec<String> = if cfg.falsepositive_heartbeat {
        st.servers
            .iter()
            .filter(|s| {
                hears_source(s, cfg, now)
                    && s.snapshot
                        .as_ref()
                        .and_then(|sn| sn.managed_replication(&cfg.replication_source_name))
                        .is_some_and(|r| same_server(&r.source(), &master.addr))
            })
            .map(|s| s.addr.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let since = (st.failover_last_time > 0).then(|| Duration::from_secs(now_unix.saturating_sub(st.failover_last_time)));
    planner::automatic_gate(&GateInput {
        mode: cfg.failover_mode,
        master_failed: master_death(st).is_some(),
        failover_limit: cfg.failover_limit,
        failover_counter: st.failover_counter,
        time_limit: Duration::from_secs(cfg.failover_time_limit),
        since_last_failover: since,
        replicas_hearing_master: hearing,
    })
}

/// The managers' vote on a failed master: `answered` other managers answered, `failed` of them
/// see it failed; this node sees it failed. Failover needs a strict majority of the voters.
pub fn tally(master: &str, answered: usize, failed: usize) -> Gate {
    let (voters, votes) = (answered + 1, failed + 1);
    if votes * 2 > voters {
        Gate::Go
    } else {
        Gate::Blocked {
            code: "ERR00089",
            reason: format!("Only {votes} of {voters} answering managers see master {master} failed: no failover without a majority"),
        }
    }
}

/// Plans a failover of the current master (dead or alive).
///
/// Refused when no replica may be promoted without losing data: the most advanced replica is
/// unelectable, or a semi-sync replica that acknowledged the master's commits is unreachable
/// while no reachable candidate was in sync (it may hold acknowledged writes no one else has).
pub fn plan_failover(st: &ClusterState) -> Result<FailoverPlan, PlanError> {
    let Some(m) = st.master else {
        return Err(NoCandidate { code: "ERR00032", reason: "No master known in this cluster: nothing to fail over".to_string() });
    };
    refuse_unmanaged_flavor(st)?;
    let cfg = &st.config;
    let old = &st.servers[m];
    let domain = master_domain(st, m);
    let cands = candidates(st, m, domain, None);
    let rules = ElectionRules {
        check_replication_state: cfg.check_replication_state,
        max_slave_delay: cfg.failover_max_slave_delay,
        require_semi_sync: cfg.failover_at_sync,
    };
    let election = planner::elect(&cands, &rules, ElectionKind::Failover, None)?;
    let w = election.winner;

    let master_waited_for_acks = old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_status);
    let winner_in_sync = cands.iter().any(|c| c.index == w && c.semi_sync_in_sync);
    if master_waited_for_acks && !winner_in_sync {
        let down_ackers: Vec<String> = st
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != m && !s.is_up() && s.snapshot.as_ref().is_some_and(|sn| sn.semi_sync_slave_status))
            .map(|(_, s)| s.addr.to_string())
            .collect();
        if !down_ackers.is_empty() {
            return Err(NoCandidate {
                code: "ERR00090",
                reason: format!(
                    "Semi-sync replica(s) {} acknowledged the master's commits and are unreachable; {} was not in sync and may lack acknowledged transactions: no failover until one of them answers",
                    down_ackers.join(", "),
                    st.servers[w].addr
                ),
            });
        }
    }

    let received = st.servers[w]
        .snapshot
        .as_ref()
        .and_then(|s| s.managed_replication(&cfg.replication_source_name))
        .map(|r| GtidPos::parse_lenient(&r.gtid_io_pos))
        .unwrap_or_default();
    let at_risk = old
        .snapshot
        .as_ref()
        .map(|s| {
            s.gtid_binlog_pos
                .ahead_of(&received)
                .into_iter()
                .map(|(g, base)| format!("{}-{}-{}..{}", g.domain_id, g.server_id, base + 1, g.seq_no))
                .collect()
        })
        .unwrap_or_default();

    let semi_sync = old.snapshot.as_ref().is_some_and(|s| s.semi_sync_master_enabled);
    let mut steps = Vec::new();
    if !cfg.hooks.pre_script.is_empty() {
        steps.push(FailoverStep::PreScript);
    }
    steps.push(FailoverStep::JournalStarted);
    let proxies = cfg.proxy.enabled();
    if proxies {
        steps.push(FailoverStep::ProxyWriteOut);
    }
    if old.is_up() {
        steps.push(FailoverStep::FenceOldMaster);
    }
    if !cfg.fence_script.trim().is_empty() {
        steps.push(FailoverStep::FenceScript);
    }
    let targets = repoint_targets(st, m, w);
    if !old.is_up() {
        let connected: Vec<usize> = std::iter::once(w).chain(targets.iter().copied()).filter(|i| io_connected_to(st, *i, m)).collect();
        if !connected.is_empty() {
            steps.push(FailoverStep::StopReplicaIo { servers: connected });
        }
    }
    steps.extend([FailoverStep::WaitApplied, FailoverStep::DetachCandidate, FailoverStep::Promote { semi_sync }, FailoverStep::JournalPromoted]);
    if proxies {
        steps.push(FailoverStep::ProxyWriteIn);
    }
    steps.extend(targets.into_iter().map(|server| FailoverStep::Repoint { server }));
    steps.push(FailoverStep::Finish);
    Ok(FailoverPlan { old_master: m, candidate: w, domain, skipped: election.skipped, at_risk, steps })
}

/// True when server `i` of the last snapshot replicates from server `m` with its IO thread
/// connected (`Yes`): a crashed master's replicas are `Connecting` instead.
fn io_connected_to(st: &ClusterState, i: usize, m: usize) -> bool {
    let cfg = &st.config;
    st.servers[i]
        .snapshot
        .as_ref()
        .and_then(|sn| sn.managed_replication(&cfg.replication_source_name))
        .is_some_and(|r| r.io_running.eq_ignore_ascii_case("Yes") && same_server(&r.source(), &st.servers[m].addr))
}

/// The servers to repoint at a new master `w` replacing `m`: reachable, not in maintenance.
pub fn repoint_targets(st: &ClusterState, m: usize, w: usize) -> Vec<usize> {
    st.servers.iter().enumerate().filter(|(i, s)| *i != m && *i != w && s.is_up() && !s.maintenance).map(|(i, _)| i).collect()
}

/// Plans a switchover of a healthy master to `requested` (a server of the cluster) or to the
/// best electable replica.
pub fn plan_switchover(st: &ClusterState, requested: Option<usize>) -> Result<SwitchoverPlan, PlanError> {
    let m = match st.master {
        Some(m) if st.servers[m].is_up() && st.servers[m].state == ServerState::Master => m,
        _ => return Err(NoCandidate { code: "ERR00032", reason: "Master failed".to_string() }),
    };
    if requested == Some(m) {
        return Err(NoCandidate { code: "ERR00032", reason: format!("{} is already the master", st.servers[m].addr) });
    }
    refuse_unmanaged_flavor(st)?;
    let cfg = &st.config;
    let domain = master_domain(st, m);
    let rules = ElectionRules {
        check_replication_state: cfg.check_replication_state,
        max_slave_delay: cfg.failover_max_slave_delay,
        require_semi_sync: cfg.switchover_at_sync,
    };
    let election = planner::elect(&candidates(st, m, domain, requested), &rules, ElectionKind::Switchover, requested)?;
    let w = election.winner;
    let semi_sync = st.servers[m].snapshot.as_ref().is_some_and(|s| s.semi_sync_master_enabled);
    let mut steps = vec![SwitchoverStep::CheckMaster];
    if !cfg.hooks.pre_script.is_empty() {
        steps.push(SwitchoverStep::PreScript);
    }
    steps.push(SwitchoverStep::JournalStarted);
    let proxies = cfg.proxy.enabled();
    if proxies {
        steps.push(SwitchoverStep::ProxyWriteOut);
    }
    steps.extend([
        SwitchoverStep::FenceAndLock,
        SwitchoverStep::WaitCaughtUp,
        SwitchoverStep::DetachCandidate,
        SwitchoverStep::Promote { semi_sync },
        SwitchoverStep::JournalPromoted,
    ]);
    if proxies {
        steps.push(SwitchoverStep::ProxyWriteIn);
    }
    steps.push(SwitchoverStep::DemoteOldMaster);
    let wait_catch = cfg.switchover_slave_wait_catch;
    steps.extend(repoint_targets(st, m, w).into_iter().map(|server| SwitchoverStep::Repoint { server, wait_catch }));
    steps.push(SwitchoverStep::Finish);
    Ok(SwitchoverPlan { old_master: m, candidate: w, domain, skipped: election.skipped, steps })
}

/// Decides how returning old master `i` rejoins, from its position and the crash record of the
/// failover that replaced it.
pub fn plan_rejoin(st: &ClusterState, i: usize, record: &CrashRecord, now_ms: u64) -> Option<RejoinPlan> {
    let snap = st.servers[i].snapshot.as_ref()?;
    if snap.flavor != Flavor::MariaDB {
        return None;
    }
    let mine = snap.gtid_binlog_pos.seq_in(record.domain).max(snap.gtid_current_pos.seq_in(record.domain));
    let received = GtidPos::parse_lenient(&record.elected_io_gtid).seq_in(record.domain);
    if mine <= received {
        return Some(RejoinPlan::AsReplica { position: mine, received });
    }
    let server_id = snap.gtid_binlog_pos.get(record.domain).map_or(snap.server_id, |g| g.server_id);
    let extra = format!("{}-{server_id}-{}..{mine}", record.domain, received + 1);
    let cfg = &st.config;
    Some(if cfg.autorejoin_semisync && unacknowledged_proven(record, now_ms) {
        RejoinPlan::DiscardUnacknowledged { extra, then_dump: cfg.autorejoin_mysqldump }
    } else if cfg.autorejoin_flashback {
        RejoinPlan::Flashback { extra, then_dump: cfg.autorejoin_mysqldump }
    } else if cfg.autorejoin_mysqldump {
        RejoinPlan::Dump { extra }
    } else {
        RejoinPlan::Quarantine { extra }
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::{Config, HostPort};

    fn addr(i: usize) -> HostPort {
        HostPort { host: "127.0.0.1".into(), port: 3310 + i as u16 }
    }

    fn snap(binlog: &str, slave_pos: &str) -> ServerSnapshot {
        ServerSnapshot {
            gtid_binlog_pos: GtidPos::parse_lenient(binlog),
            gtid_current_pos: GtidPos::parse_lenient(binlog),
            gtid_slave_pos: GtidPos::parse_lenient(slave_pos),
            ..ServerSnapshot::for_tests()
        }
    }

    /// A replica of server 0 that received `io` and applied `applied`.
    fn replica(io: &str, applied: &str) -> ServerSnapshot {
        let mut s = snap(applied, applied);
        s.replications.push(ReplicationStatus {
            master_host: "127.0.0.1".into(),
            master_port: 3310,
            io_running: "Yes".into(),
            sql_running: "Yes".into(),
            seconds_behind_master: Some(0),
            gtid_io_pos: io.into(),
            gtid_slave_pos: applied.into(),
            ..Default::default()
        });
        s
    }

    /// A cluster of `snaps.len()` servers; server 0 is the master; `None` = unreachable.
    fn cluster(extra_keys: &str, snaps: Vec<Option<ServerSnapshot>>) -> ClusterState {
        let hosts: Vec<String> = (0..snaps.len()).map(|i| addr(i).to_string()).collect();
        let toml = format!("[c1]\ndb-servers-hosts = \"{}\"\n{extra_keys}\n", hosts.join(","));
        let cfg = Config::from_toml_str(&toml, std::path::Path::new("test.toml"), &[]).expect("config").clusters.remove(0);
        let mut st = ClusterState::new(cfg);
        for (s, sn) in st.servers.iter_mut().zip(snaps) {
            match sn {
                Some(sn) => s.snapshot = Some(sn),
                None => {
                    s.last_error = Some("connection refused".into());
                    s.state = ServerState::Failed;
                }
            }
        }
        st.master = Some(0);
        st
    }

    fn master(binlog: &str) -> Option<ServerSnapshot> {
        let mut s = snap(binlog, "");
        s.read_only = false;
        Some(s)
    }

    fn winner(st: &ClusterState) -> Result<usize, &'static str> {
        plan_failover(st).map(|p| p.candidate).map_err(|e| e.code)
    }

    #[test]
    fn failover_plan_table() {
        let behind_more = {
            let mut r = replica("0-1-12", "0-1-12");
            r.replications[0].seconds_behind_master = Some(600);
            r
        };
        let sql_stopped = {
            let mut r = replica("0-1-20", "0-1-15");
            r.replications[0].sql_running = "No".into();
            r.replications[0].seconds_behind_master = None;
            r
        };
        /// (name, extra config keys, servers with server 0 the master, expected winner).
        type Row<'a> = (&'a str, &'a str, Vec<Option<ServerSnapshot>>, Result<usize, &'a str>);
        let table: Vec<Row<'_>> = vec![
            ("most advanced by received GTID", "", vec![master("0-1-20"), Some(replica("0-1-18", "0-1-18")), Some(replica("0-1-20", "0-1-17"))], Ok(2)),
            (
                "multi-domain: the master's domain decides, not another domain's counter",
                "",
                vec![master("0-1-20,1-5-3"), Some(replica("0-1-19,1-5-900", "0-1-19,1-5-900")), Some(replica("0-1-20,1-5-3", "0-1-20,1-5-3"))],
                Ok(2),
            ),
            (
                "multi-domain: a tie in the master's domain goes to config order",
                "",
                vec![master("0-1-20,1-5-3"), Some(replica("0-1-20,1-5-1", "0-1-20,1-5-1")), Some(replica("0-1-20,1-5-3", "0-1-20,1-5-3"))],
                Ok(1),
            ),
            (
                "preferred wins a tie",
                "db-servers-prefered-master = \"127.0.0.1:3312\"",
                vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20")), Some(replica("0-1-20", "0-1-20"))],
                Ok(2),
            ),
            (
                "preferred but behind loses",
                "db-servers-prefered-master = \"127.0.0.1:3312\"",
                vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20")), Some(replica("0-1-19", "0-1-19"))],
                Ok(1),
            ),
            (
                "ignored most advanced: refused, never a less advanced one",
                "db-servers-ignored-hosts = \"127.0.0.1:3312\"",
                vec![master("0-1-20"), Some(replica("0-1-19", "0-1-19")), Some(replica("0-1-20", "0-1-20"))],
                Err("ERR00037"),
            ),
            (
                "ignored tie partner: the other wins",
                "db-servers-ignored-hosts = \"127.0.0.1:3311\"",
                vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20")), Some(replica("0-1-20", "0-1-20"))],
                Ok(2),
            ),
            (
                "lag above failover-max-slave-delay at the top: refused",
                "failover-max-slave-delay = 30",
                vec![master("0-1-20"), Some(replica("0-1-10", "0-1-10")), Some(behind_more.clone())],
                Err("ERR00041"),
            ),
            (
                "lag allowed when the delay check is off",
                "failover-max-slave-delay = -1",
                vec![master("0-1-20"), Some(replica("0-1-10", "0-1-10")), Some(behind_more)],
                Ok(2),
            ),
            (
                "SQL thread stopped at the top: refused",
                "",
                vec![master("0-1-20"), Some(replica("0-1-10", "0-1-10")), Some(sql_stopped)],
                Err("ERR00042"),
            ),
            ("unreachable replica is not a candidate", "", vec![master("0-1-20"), None, Some(replica("0-1-19", "0-1-19"))], Ok(2)),
            ("no reachable replica", "", vec![master("0-1-20"), None, None], Err("ERR00032")),
        ];
        for (name, keys, snaps, want) in table {
            assert_eq!(winner(&cluster(keys, snaps)), want, "{name}");
        }
    }

    #[test]
    fn mysql_clusters_are_monitored_not_changed() {
        let mut r = replica("0-1-20", "0-1-20");
        r.flavor = Flavor::MySQL;
        let mut st = cluster("", vec![master("0-1-20"), Some(r)]);
        assert_eq!(winner(&st), Err("ERR00091"));
        st.servers[0].state = ServerState::Master;
        assert_eq!(plan_switchover(&st, None).map_err(|e| e.code), Err("ERR00091"));
        st.servers[1].snapshot.as_mut().unwrap().read_only = false;
        assert_eq!(write_guards(&st), vec![]);
    }

    #[test]
    fn a_down_semi_sync_acker_blocks_a_less_safe_promotion() {
        let mut m = master("0-1-30").unwrap();
        m.semi_sync_master_enabled = true;
        m.semi_sync_master_status = true;
        let mut acker = replica("0-1-30", "0-1-30");
        acker.semi_sync_slave_status = true;
        let async_replica = replica("0-1-28", "0-1-28");
        // The acker answers: it wins.
        let st = cluster("", vec![Some(m.clone()), Some(async_replica.clone()), Some(acker.clone())]);
        assert_eq!(winner(&st), Ok(2));
        // The acker is down (last seen in sync): promoting the async replica could lose
        // acknowledged commits, so the plan is refused.
        let mut st = cluster("", vec![Some(m.clone()), Some(async_replica.clone()), Some(acker.clone())]);
        st.servers[2].last_error = Some("connection refused".into());
        let e = plan_failover(&st).unwrap_err();
        assert_eq!(e.code, "ERR00090", "{}", e.reason);
        assert!(e.reason.contains("127.0.0.1:3312"), "{}", e.reason);
        // Another in-sync replica answers: it holds what was acknowledged, it may win.
        let mut synced = async_replica.clone();
        synced.semi_sync_slave_status = true;
        synced.replications[0].gtid_io_pos = "0-1-30".into();
        let mut st = cluster("", vec![Some(m), Some(synced), Some(acker)]);
        st.servers[2].last_error = Some("connection refused".into());
        assert_eq!(winner(&st), Ok(1));
    }

    #[test]
    fn proxies_fence_the_write_backend_around_the_promotion() {
        let st = cluster("haproxy = true", vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20"))]);
        use FailoverStep::*;
        assert_eq!(
            plan_failover(&st).unwrap().steps,
            vec![JournalStarted, ProxyWriteOut, FenceOldMaster, WaitApplied, DetachCandidate, Promote { semi_sync: false }, JournalPromoted, ProxyWriteIn, Finish]
        );
        let mut st = st;
        st.servers[0].state = ServerState::Master;
        let s = plan_switchover(&st, None).unwrap().steps;
        let at = |x: &SwitchoverStep| s.iter().position(|y| y == x).unwrap();
        assert!(at(&SwitchoverStep::ProxyWriteOut) < at(&SwitchoverStep::FenceAndLock));
        assert!(at(&SwitchoverStep::Promote { semi_sync: false }) < at(&SwitchoverStep::ProxyWriteIn));
        assert!(at(&SwitchoverStep::JournalPromoted) < at(&SwitchoverStep::ProxyWriteIn));
        // Without proxies, no proxy step.
        let st = cluster("", vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20"))]);
        assert!(!plan_failover(&st).unwrap().steps.contains(&ProxyWriteOut));
    }

    #[test]
    fn failover_steps_fence_a_live_master_and_wait_before_promoting() {
        let st = cluster("", vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20")), Some(replica("0-1-19", "0-1-19"))]);
        let p = plan_failover(&st).unwrap();
        use FailoverStep::*;
        assert_eq!(
            p.steps,
            vec![JournalStarted, FenceOldMaster, WaitApplied, DetachCandidate, Promote { semi_sync: false }, JournalPromoted, Repoint { server: 2 }, Finish]
        );
        // A fence script, when configured, runs before the wait and the promotion.
        let mut scripted = st.clone();
        scripted.config.fence_script = "/usr/local/bin/stonith".into();
        let p = plan_failover(&scripted).unwrap();
        assert_eq!(&p.steps[1..4], &[FenceOldMaster, FenceScript, WaitApplied]);
        // A dead master cannot be fenced on the server: the plan goes straight to the wait.
        let mut st = st;
        st.servers[0].last_error = Some("refused".into());
        let p = plan_failover(&st).unwrap();
        assert!(!p.steps.contains(&FenceOldMaster));
        // Its replicas still connected to it (a frozen process): their IO threads are
        // stopped first, side by side, then the wait.
        assert_eq!(&p.steps[1..3], &[StopReplicaIo { servers: vec![1, 2] }, WaitApplied]);
        // Replicas that lost it (a crash: IO thread `Connecting`) have nothing to stop.
        let mut crashed = st.clone();
        for i in [1, 2] {
            if let Some(sn) = crashed.servers[i].snapshot.as_mut() {
                sn.replications[0].io_running = "Connecting".into();
            }
        }
        let p = plan_failover(&crashed).unwrap();
        assert_eq!(p.steps.iter().position(|s| *s == WaitApplied), Some(1), "{:?}", p.steps);
        assert!(!p.steps.iter().any(|s| matches!(s, StopReplicaIo { .. })));
        // A pre-script, when configured, runs first: before the journal and any change.
        let mut hooked = st.clone();
        hooked.config.hooks.pre_script = "/usr/local/bin/pre".into();
        let p = plan_failover(&hooked).unwrap();
        assert_eq!(&p.steps[..2], &[PreScript, JournalStarted]);
        // What the old master had that the candidate never received is reported.
        let st = cluster("", vec![master("0-1-25"), Some(replica("0-1-20", "0-1-20"))]);
        assert_eq!(plan_failover(&st).unwrap().at_risk, vec!["0-1-21..25".to_string()]);
    }

    #[test]
    fn switchover_plan_and_rejoin_plan() {
        let st = cluster("", vec![master("0-1-20"), Some(replica("0-1-20", "0-1-20")), Some(replica("0-1-20", "0-1-20"))]);
        let mut st = st;
        st.servers[0].state = ServerState::Master;
        let p = plan_switchover(&st, Some(2)).unwrap();
        assert_eq!(p.candidate, 2);
        use SwitchoverStep::*;
        assert_eq!(
            p.steps,
            vec![
                CheckMaster,
                JournalStarted,
                FenceAndLock,
                WaitCaughtUp,
                DetachCandidate,
                Promote { semi_sync: false },
                JournalPromoted,
                DemoteOldMaster,
                Repoint { server: 1, wait_catch: true },
                Finish
            ]
        );
        let mut hooked = st.clone();
        hooked.config.hooks.pre_script = "/usr/local/bin/pre".into();
        assert_eq!(&plan_switchover(&hooked, Some(2)).unwrap().steps[..3], &[CheckMaster, PreScript, JournalStarted]);
        assert_eq!(plan_switchover(&st, Some(0)).map_err(|e| e.code), Err("ERR00032"));
        st.servers[0].last_error = Some("down".into());
        assert_eq!(plan_switchover(&st, None).map_err(|e| e.reason), Err("Master failed".to_string()));

        let record = CrashRecord { domain: 0, elected_io_gtid: "0-1-20".into(), ..Default::default() };
        let mut st = cluster("", vec![Some(snap("0-1-20", "")), Some(replica("0-1-20", "0-1-20"))]);
        assert_eq!(plan_rejoin(&st, 0, &record, 0), Some(RejoinPlan::AsReplica { position: 20, received: 20 }));
        st.servers[0].snapshot = Some(snap("0-1-22", ""));
        assert_eq!(plan_rejoin(&st, 0, &record, 0), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        let st = cluster("autorejoin-flashback = true\nautorejoin-mysqldump = true", vec![Some(snap("0-1-22", "")), None]);
        assert_eq!(plan_rejoin(&st, 0, &record, 0), Some(RejoinPlan::Flashback { extra: "0-1-21..22".into(), then_dump: true }));
        let st = cluster("autorejoin-mysqldump = true", vec![Some(snap("0-1-22", "")), None]);
        assert_eq!(plan_rejoin(&st, 0, &record, 0), Some(RejoinPlan::Dump { extra: "0-1-21..22".into() }));
    }

    #[test]
    fn semisync_evidence_discards_extra_transactions_only_inside_its_window() {
        let hour = 3_600_000;
        let proven = CrashRecord { domain: 0, elected_io_gtid: "0-1-20".into(), semi_sync_idle_at_ms: 1_000_000, semi_sync_timeout_ms: hour, ..Default::default() };
        let st = cluster("", vec![Some(snap("0-1-22", "")), None]);
        let discard = Some(RejoinPlan::DiscardUnacknowledged { extra: "0-1-21..22".into(), then_dump: false });
        assert_eq!(plan_rejoin(&st, 0, &proven, 1_000_000 + 10_000), discard);
        // Past the window (less the margin) a waiting commit may have run out its timeout.
        assert_eq!(plan_rejoin(&st, 0, &proven, 1_000_000 + hour - SEMISYNC_PROOF_MARGIN_MS), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        // No evidence, a switchover, or the key off: quarantined.
        let none = CrashRecord { semi_sync_idle_at_ms: 0, ..proven.clone() };
        assert_eq!(plan_rejoin(&st, 0, &none, 1_010_000), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        let switchover = CrashRecord { switchover: true, ..proven.clone() };
        assert_eq!(plan_rejoin(&st, 0, &switchover, 1_010_000), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        let off = cluster("autorejoin-semisync = false", vec![Some(snap("0-1-22", "")), None]);
        assert_eq!(plan_rejoin(&off, 0, &proven, 1_010_000), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        // A short timeout gives no window at all.
        let short = CrashRecord { semi_sync_timeout_ms: 1000, ..proven.clone() };
        assert_eq!(plan_rejoin(&st, 0, &short, 1_000_100), Some(RejoinPlan::Quarantine { extra: "0-1-21..22".into() }));
        // Behind or level: a replica, whatever the evidence.
        let st = cluster("", vec![Some(snap("0-1-20", "")), None]);
        assert_eq!(plan_rejoin(&st, 0, &proven, 1_010_000), Some(RejoinPlan::AsReplica { position: 20, received: 20 }));
    }

    #[test]
    fn only_the_intended_master_stays_writable() {
        let mut st = cluster("", vec![master("0-1-5"), Some(replica("0-1-5", "0-1-5")), Some(snap("0-1-6", ""))]);
        st.servers[0].state = ServerState::Master;
        st.intent = Some(addr(0));
        // Server 2 is a writable non-replica (an old master back from a freeze): fenced.
        let mut old = snap("0-1-6", "");
        old.read_only = false;
        st.servers[2].snapshot = Some(old);
        assert_eq!(write_guards(&st), vec![WriteGuard::Fence { server: 2, master: 0 }]);
        // A writable replica of the master is fenced when replicas are kept read-only only.
        let mut st2 = st.clone();
        st2.servers[2].snapshot = Some(snap("0-1-6", ""));
        st2.servers[1].snapshot.as_mut().unwrap().read_only = false;
        assert_eq!(write_guards(&st2), vec![WriteGuard::Fence { server: 1, master: 0 }]);
        st2.config.failover_readonly_state = false;
        assert_eq!(write_guards(&st2), vec![]);
        // Nothing while a master change runs, or in multi-master.
        st.in_failover = true;
        assert_eq!(write_guards(&st), vec![]);
        st.in_failover = false;
        st.topology_kind = "multi-master";
        assert_eq!(write_guards(&st), vec![]);
        st.topology_kind = "master-slave";
        // The intended master restarted read-only: reopened once no other server is writable.
        st.servers[0].snapshot.as_mut().unwrap().read_only = true;
        assert_eq!(write_guards(&st), vec![WriteGuard::Fence { server: 2, master: 0 }], "fence first");
        st.servers[2].snapshot.as_mut().unwrap().read_only = true;
        assert_eq!(write_guards(&st), vec![WriteGuard::Reopen { master: 0 }]);
        // Not when it is down or in maintenance.
        st.servers[0].maintenance = true;
        assert_eq!(write_guards(&st), vec![]);
    }

    #[test]
    fn safe_semi_sync_is_enforced_only_when_asked() {
        let mut st = cluster("", vec![master("0-1-5"), Some(replica("0-1-5", "0-1-5"))]);
        st.servers[0].state = ServerState::Master;
        assert_eq!(write_guards(&st), vec![], "not enforced by default");
        st.config.semisync_enforce = true;
        assert_eq!(write_guards(&st), vec![WriteGuard::EnforceSemiSync { master: 0, replicas: vec![1] }]);
        let m = st.servers[0].snapshot.as_mut().unwrap();
        m.semi_sync_master_enabled = true;
        m.semi_sync_wait_point = "AFTER_SYNC".into();
        m.semi_sync_timeout_ms = crate::cluster::topology::SAFE_SEMI_SYNC_TIMEOUT_MS;
        st.servers[1].snapshot.as_mut().unwrap().semi_sync_slave_enabled = true;
        assert_eq!(write_guards(&st), vec![], "already safe");
    }

    #[test]
    fn forced_heartbeat_is_set_on_running_replicas_with_another_period() {
        let mut r = replica("0-1-5", "0-1-5");
        r.replications[0].slave_heartbeat_period = 5.0;
        let mut st = cluster("force-slave-heartbeat-time = 1", vec![master("0-1-5"), Some(r)]);
        st.servers[0].state = ServerState::Master;
        assert_eq!(write_guards(&st), vec![], "not forced by default");
        st.config.force_slave_heartbeat = true;
        assert_eq!(write_guards(&st), vec![WriteGuard::ForceHeartbeat { master: 0, replicas: vec![1] }]);
        // A stopped replica is left alone (its restart is someone else's decision).
        st.servers[1].snapshot.as_mut().unwrap().replications[0].sql_running = "No".into();
        assert_eq!(write_guards(&st), vec![]);
        st.servers[1].snapshot.as_mut().unwrap().replications[0].sql_running = "Yes".into();
        st.servers[1].snapshot.as_mut().unwrap().replications[0].slave_heartbeat_period = 1.0;
        assert_eq!(write_guards(&st), vec![], "already at the period");
    }

    #[test]
    fn lag_is_recomputed_once_the_relay_log_is_applied() {
        // The master died while this replica lagged: Seconds_Behind_Master is NULL now and
        // its last known value (600 s) is kept.
        let mut lagging = replica("0-1-20", "0-1-12");
        lagging.replications[0].seconds_behind_master = None;
        let mut st = cluster("failover-max-slave-delay = 30", vec![master("0-1-20"), Some(lagging)]);
        st.servers[1].last_delay = Some(600);
        assert_eq!(winner(&st), Err("ERR00041"), "still behind: refused");
        // It applied its relay log: not behind any more, elected.
        st.servers[1].snapshot.as_mut().unwrap().gtid_slave_pos = GtidPos::parse_lenient("0-1-20");
        assert_eq!(winner(&st), Ok(1));
    }

    #[test]
    fn an_error_auth_master_fails_over_after_the_counter() {
        let mut st = cluster("failover-mode = \"automatic\"\nfailover-falsepositive-ping-counter = 3", vec![master("0-1-1"), Some(replica("0-1-1", "0-1-1"))]);
        st.servers[0].state = ServerState::ErrorAuth;
        st.servers[0].fail_count = 2;
        let now = Instant::now();
        assert_eq!(automatic_gate(&st, now, 0), Gate::Idle);
        st.servers[0].fail_count = 3;
        assert_eq!(automatic_gate(&st, now, 0), Gate::Go);
    }

    #[test]
    fn a_refused_master_is_dead_for_certain_only_when_every_replica_lost_it() {
        let lost = |errno: u32, io: &str| {
            let mut r = replica("0-1-5", "0-1-5");
            r.replications[0].io_running = io.into();
            r.replications[0].last_io_errno = errno;
            Some(r)
        };
        let keys = "failover-mode = \"automatic\"\nfailover-falsepositive-ping-counter = 5";
        let mut st = cluster(keys, vec![master("0-1-5"), lost(2003, "Connecting"), lost(0, "Connecting")]);
        let now = Instant::now();
        st.servers[0].snapshot = None;
        st.servers[0].state = ServerState::Suspect;
        st.servers[0].fail_count = 1;
        st.servers[0].last_error = Some("connection refused".into());
        assert_eq!(master_death(&st), None, "a failed probe that was not a refusal is never certain");
        assert_eq!(automatic_gate(&st, now, 0), Gate::Idle);

        st.servers[0].refused_count = 1;
        let why = master_death(&st).expect("refused and lost by every replica");
        assert!(why.contains("connection refused 1 time(s)") && why.contains("127.0.0.1:3311") && why.contains("127.0.0.1:3312"), "{why}");
        assert_eq!(automatic_gate(&st, now, 0), Gate::Go);

        // One replica still connected to it: the counter decides, not the refusal.
        st.servers[2].snapshot = lost(0, "Yes");
        assert_eq!(master_death(&st), None);
        // A replica whose IO thread was stopped without an error proves nothing either.
        st.servers[2].snapshot = lost(0, "No");
        assert_eq!(master_death(&st), None);
        st.servers[2].snapshot = lost(2013, "No");
        assert!(master_death(&st).is_some());

        // No reachable replica: no confirmation.
        let mut alone = st.clone();
        for i in 1..3 {
            alone.servers[i].last_error = Some("timeout".into());
        }
        assert_eq!(master_death(&alone), None);

        // A larger refused counter, or the fast path off.
        let mut st2 = cluster(&format!("{keys}\nfailover-falsepositive-refused-counter = 2"), vec![master("0-1-5"), lost(2003, "Connecting")]);
        st2.servers[0].snapshot = None;
        st2.servers[0].last_error = Some("connection refused".into());
        st2.servers[0].state = ServerState::Suspect;
        st2.servers[0].refused_count = 1;
        assert_eq!(master_death(&st2), None);
        st2.servers[0].refused_count = 2;
        assert!(master_death(&st2).is_some());
        let mut off = cluster(&format!("{keys}\nfailover-falsepositive-refused-counter = 0"), vec![master("0-1-5"), lost(2003, "Connecting")]);
        off.servers[0].snapshot = None;
        off.servers[0].last_error = Some("connection refused".into());
        off.servers[0].state = ServerState::Suspect;
        off.servers[0].refused_count = 4;
        assert_eq!(master_death(&off), None, "off: only the ping counter");
        off.servers[0].state = ServerState::Failed;
        assert!(master_death(&off).is_some_and(|w| w.contains("failed probes")));
    }

    #[test]
    fn hearing_window_and_votes() {
        let st = cluster("", vec![master("0-1-1"), Some(replica("0-1-1", "0-1-1"))]);
        let mut s = st.servers[1].clone();
        let now = Instant::now();
        assert!(!hears_source(&s, &st.config, now), "no evidence yet");
        s.hear_changed_at = Some(now);
        s.hear_io_running = true;
        assert!(hears_source(&s, &st.config, now));
        assert!(!hears_source(&s, &st.config, now + Duration::from_secs(3600)), "evidence too old");
        s.hear_io_running = false;
        assert!(!hears_source(&s, &st.config, now), "IO thread stopped");

        assert_eq!(tally("m", 0, 0), Gate::Go, "alone");
        assert_eq!(tally("m", 2, 1), Gate::Go, "2 of 3");
        assert!(matches!(tally("m", 2, 0), Gate::Blocked { code: "ERR00089", .. }), "1 of 3");
        assert!(matches!(tally("m", 1, 0), Gate::Blocked { .. }), "1 of 2 is no majority");
    }
}
