//! `FailoverPlanner`: the pure decisions of failover and switchover. From what the monitor
//! observed, the replicated counters and the configuration, it says whether an automatic
//! failover may run now and which replica to promote. No I/O, so every rule is table-tested.

use std::time::Duration;

use crate::cluster::records::OpStatus;
use crate::config::FailoverMode;

/// What the planner needs to know about one replica of the master.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index of the server in the cluster.
    pub index: usize,
    /// `host:port`, for messages.
    pub name: String,
    /// The last probe succeeded.
    pub reachable: bool,
    /// Its managed replication connection points at the master.
    pub replicates_from_master: bool,
    /// Binary log on (a replica without one cannot serve replicas).
    pub log_bin: bool,
    /// `Slave_IO_Running` is `Yes`.
    pub io_running: bool,
    /// `Slave_SQL_Running` is `Yes`.
    pub sql_running: bool,
    /// Transactions received from the master in its domain (`Gtid_IO_Pos`).
    pub received_seq: u64,
    /// Transactions applied in the master's domain (`gtid_slave_pos` / `gtid_current_pos`).
    pub applied_seq: u64,
    /// `Seconds_Behind_Master`, or its last known value when a thread is stopped.
    pub seconds_behind: Option<u64>,
    /// `MASTER_DELAY` configured on the replica (seconds).
    pub configured_delay: u64,
    /// `Rpl_semi_sync_slave_status` at the last probe.
    pub semi_sync_in_sync: bool,
    pub maintenance: bool,
    /// In `db-servers-ignored-hosts`.
    pub ignored: bool,
    /// Position in `db-servers-prefered-master` (or the requested `prefmaster`), lower first.
    pub prefered_rank: Option<usize>,
}

/// Election settings.
#[derive(Debug, Clone)]
pub struct ElectionRules {
    /// `check-replication-state`.
    pub check_replication_state: bool,
    /// `failover-max-slave-delay` (-1 = off).
    pub max_slave_delay: i64,
    /// `failover-at-sync` (failover) or `switchover-at-sync` (switchover).
    pub require_semi_sync: bool,
}

/// Failover promotes the most advanced replica by what it received from the dead master;
/// switchover promotes a healthy replica that will catch up with the live, locked master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    Failover,
    Switchover,
}

/// Why no candidate was elected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoCandidate {
    /// Alert code (ERR00032 no candidate, ERR00041 delay, ...).
    pub code: &'static str,
    pub reason: String,
}

/// The elected replica and the reasons others were passed over.
#[derive(Debug, Clone, PartialEq)]
pub struct Election {
    pub winner: usize,
    pub skipped: Vec<(String, String)>,
}

/// Why `c` may not be promoted, or None when it may.
pub fn not_electable(c: &Candidate, rules: &ElectionRules, kind: ElectionKind) -> Option<(&'static str, String)> {
    if c.maintenance {
        return Some(("ERR00047", format!("{} is in maintenance", c.name)));
    }
    if c.ignored {
        return Some(("ERR00037", format!("{} is in db-servers-ignored-hosts", c.name)));
    }
    if rules.check_replication_state {
        if !c.sql_running {
            return Some(("ERR00042", format!("{} has its SQL thread stopped", c.name)));
        }
        if kind == ElectionKind::Switchover && !c.io_running {
            return Some(("ERR00087", format!("{} has its IO thread stopped", c.name)));
        }
        if rules.max_slave_delay >= 0 {
            let limit = rules.max_slave_delay.unsigned_abs();
            if c.configured_delay > limit {
                return Some((
                    "ERR00041",
                    format!("{} is a delayed replica (MASTER_DELAY {} s > failover-max-slave-delay {limit} s)", c.name, c.configured_delay),
                ));
            }
            match c.seconds_behind {
                Some(d) if d > limit => {
                    return Some((
                        "ERR00041",
                        format!("{} is {d} s behind, more than failover-max-slave-delay {limit} s", c.name),
                    ));
                }
                None if kind == ElectionKind::Switchover => {
                    return Some(("ERR00042", format!("{} has replication stopped", c.name)));
                }
                _ => {}
            }
        }
    }
    if rules.require_semi_sync && !c.semi_sync_in_sync {
        return Some(("ERR00043", format!("{} is not semi-sync in sync", c.name)));
    }
    None
}

fn hard_skip(c: &Candidate) -> Option<String> {
    if !c.reachable {
        Some(format!("{} is unreachable", c.name))
    } else if !c.replicates_from_master {
        Some(format!("{} does not replicate from the master", c.name))
    } else if !c.log_bin {
        Some(format!("{} has no binary log", c.name))
    } else {
        None
    }
}

/// Elects the replica to promote.
///
/// Failover: only a replica holding the most transactions received from the dead master may
/// win (it has every semi-sync acknowledged commit); if every such replica is unelectable the
/// failover is refused rather than losing data. Preferred servers win ties, then config order.
/// Switchover: the `requested` replica (refused if it cannot be promoted), else the preferred
/// electable replica, else the most advanced electable one.
pub fn elect(
    cands: &[Candidate],
    rules: &ElectionRules,
    kind: ElectionKind,
    requested: Option<usize>,
) -> Result<Election, NoCandidate> {
    let mut skipped = Vec::new();
    let eligible: Vec<&Candidate> = cands
        .iter()
        .filter(|c| match hard_skip(c) {
            Some(why) => {
                skipped.push((c.name.clone(), why));
                false
            }
            None => true,
        })
        .collect();
    if eligible.is_empty() {
        return Err(NoCandidate { code: "ERR00032", reason: "No candidates found in slaves list".to_string() });
    }
    let rank = |c: &Candidate| (c.prefered_rank.unwrap_or(usize::MAX), c.index);
    match kind {
        ElectionKind::Failover => {
            let best = eligible.iter().map(|c| c.received_seq.max(c.applied_seq)).max().unwrap_or(0);
            let mut top: Vec<&&Candidate> =
                eligible.iter().filter(|c| c.received_seq.max(c.applied_seq) == best).collect();
            top.sort_by_key(|c| rank(c));
            let mut refusals = Vec::new();
            for c in &top {
                match not_electable(c, rules, kind) {
                    None => {
                        for other in eligible.iter().filter(|o| o.received_seq.max(o.applied_seq) < best) {
                            skipped.push((other.name.clone(), format!("{} is behind ({} < {best})", other.name, other.received_seq.max(other.applied_seq))));
                        }
                        return Ok(Election { winner: c.index, skipped });
                    }
                    Some((code, why)) => refusals.push((code, why)),
                }
            }
            let (code, why) = refusals.first().cloned().unwrap_or(("ERR00032", String::new()));
            Err(NoCandidate {
                code,
                reason: format!(
                    "No electable candidate among the most up-to-date replicas (seq {best}): {}",
                    if why.is_empty() { "none".to_string() } else { refusals.iter().map(|r| r.1.clone()).collect::<Vec<_>>().join("; ") }
                ),
            })
        }
        ElectionKind::Switchover => {
            let mut ok: Vec<&&Candidate> = Vec::new();
            for c in &eligible {
                match not_electable(c, rules, kind) {
                    None => ok.push(c),
                    Some((code, why)) if requested == Some(c.index) => {
                        return Err(NoCandidate { code, reason: format!("Requested candidate refused: {why}") });
                    }
                    Some((_, why)) => skipped.push((c.name.clone(), why)),
                }
            }
            if let Some(r) = requested {
                return match ok.iter().find(|c| c.index == r) {
                    Some(c) => Ok(Election { winner: c.index, skipped }),
                    None => Err(NoCandidate {
                        code: "ERR00032",
                        reason: format!(
                            "Requested candidate is not a healthy replica of the master: {}",
                            skipped.iter().map(|s| s.1.clone()).collect::<Vec<_>>().join("; ")
                        ),
                    }),
                };
            }
            if let Some(p) = ok.iter().filter(|c| c.prefered_rank.is_some()).min_by_key(|c| rank(c)) {
                return Ok(Election { winner: p.index, skipped });
            }
            ok.sort_by_key(|c| (std::cmp::Reverse(c.applied_seq), rank(c)));
            match ok.first() {
                Some(c) => Ok(Election { winner: c.index, skipped }),
                None => Err(NoCandidate {
                    code: "ERR00032",
                    reason: format!(
                        "No candidates found in slaves list: {}",
                        skipped.iter().map(|s| s.1.clone()).collect::<Vec<_>>().join("; ")
                    ),
                }),
            }
        }
    }
}

/// What the automatic-failover gate knows this tick.
#[derive(Debug, Clone)]
pub struct GateInput {
    pub mode: FailoverMode,
    /// The master is `Failed` (its probes failed `failover-falsepositive-ping-counter` times).
    pub master_failed: bool,
    /// `failover-limit` (0 = unlimited) and the failovers done since the last reset.
    pub failover_limit: u64,
    pub failover_counter: u64,
    /// `failover-time-limit` and the time since the last failover (None = never).
    pub time_limit: Duration,
    pub since_last_failover: Option<Duration>,
    /// Replicas that still receive from the master (heartbeats or events advancing).
    pub replicas_hearing_master: Vec<String>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Nothing to do (the master is not failed).
    Idle,
    /// Failover must not run now; the code and reason go to alerts.
    Blocked { code: &'static str, reason: String },
    /// Failover may run: elect and promote.
    Go,
}

/// Decides whether an automatic failover may start. Checked in this order: master failed,
/// replicas still hearing the master (false positive), manual mode, failover-limit (>=),
/// failover-time-limit.
pub fn automatic_gate(g: &GateInput) -> Gate {
    if !g.master_failed {
        return Gate::Idle;
    }
    if !g.replicas_hearing_master.is_empty() {
        return Gate::Blocked {
            code: "ERR00028",
            reason: format!(
                "Master unreachable by the manager but replica(s) {} can still communicate with it: no failover",
                g.replicas_hearing_master.join(", ")
            ),
        };
    }
    if g.mode == FailoverMode::Manual {
        return Gate::Blocked { code: "ERR00002", reason: "Waiting for a user manual failover (failover-mode = manual)".to_string() };
    }
    if g.failover_limit > 0 && g.failover_counter >= g.failover_limit {
        return Gate::Blocked {
            code: "ERR00027",
            reason: format!(
                "Number of cluster failovers exceeded: {} of failover-limit {} (reset with actions/reset-failover-control)",
                g.failover_counter, g.failover_limit
            ),
        };
    }
    if !g.time_limit.is_zero() {
        if let Some(since) = g.since_last_failover {
            if since < g.time_limit {
                return Gate::Blocked {
                    code: "ERR00029",
                    reason: format!(
                        "Time between failovers too short: {} s since the last one, failover-time-limit {} s",
                        since.as_secs(),
                        g.time_limit.as_secs()
                    ),
                };
            }
        }
    }
    Gate::Go
}

/// What a new leader does with an operation a previous leader left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeStep {
    /// The candidate was promoted (or its replication already reset): finish the operation.
    Complete,
    /// Nothing irreversible happened: abort (a switchover also reopens the old master).
    Abort,
    /// The candidate is unreachable: mark the operation failed; detection decides afresh.
    CandidateDown,
}

/// Decides how to resume an open journal entry from the candidate's observed state.
pub fn resume_step(status: OpStatus, candidate_up: bool, candidate_replicating: bool) -> ResumeStep {
    if !candidate_up {
        ResumeStep::CandidateDown
    } else if status == OpStatus::Promoted || !candidate_replicating {
        ResumeStep::Complete
    } else {
        ResumeStep::Abort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(index: usize, received: u64) -> Candidate {
        Candidate {
            index,
            name: format!("db{index}"),
            reachable: true,
            replicates_from_master: true,
            log_bin: true,
            io_running: false,
            sql_running: true,
            received_seq: received,
            applied_seq: received,
            seconds_behind: Some(0),
            configured_delay: 0,
            semi_sync_in_sync: true,
            maintenance: false,
            ignored: false,
            prefered_rank: None,
        }
    }

    fn rules() -> ElectionRules {
        ElectionRules { check_replication_state: true, max_slave_delay: 30, require_semi_sync: false }
    }

    fn failover(cands: &[Candidate]) -> Result<usize, NoCandidate> {
        elect(cands, &rules(), ElectionKind::Failover, None).map(|e| e.winner)
    }

    #[test]
    fn failover_election_table() {
        let mut lagging = cand(2, 10);
        lagging.seconds_behind = Some(31);
        let mut ignored = cand(1, 10);
        ignored.ignored = true;
        let mut pref = cand(2, 10);
        pref.prefered_rank = Some(0);
        let mut unreachable = cand(1, 50);
        unreachable.reachable = false;
        let mut maint = cand(1, 10);
        maint.maintenance = true;
        let mut sql_stopped = cand(1, 10);
        sql_stopped.sql_running = false;
        let mut unsynced = cand(1, 10);
        unsynced.semi_sync_in_sync = false;
        let mut no_binlog = cand(1, 20);
        no_binlog.log_bin = false;
        let mut other_source = cand(1, 20);
        other_source.replicates_from_master = false;
        let mut delayed = cand(1, 10);
        delayed.configured_delay = 3600;
        let mut received_more = cand(2, 8);
        received_more.received_seq = 12;

        let table: Vec<(&str, Vec<Candidate>, Result<usize, &str>)> = vec![
            ("most advanced wins", vec![cand(1, 5), cand(2, 9)], Ok(2)),
            ("received counts, not only applied", vec![cand(1, 10), received_more.clone()], Ok(2)),
            ("tie: config order", vec![cand(1, 9), cand(2, 9)], Ok(1)),
            ("tie: preferred first", vec![cand(1, 10), pref.clone()], Ok(2)),
            ("preferred but behind loses", vec![cand(1, 11), pref.clone()], Ok(1)),
            ("lagging tie partner is passed over", vec![cand(1, 10), lagging.clone()], Ok(1)),
            ("delayed replica (MASTER_DELAY) is passed over", vec![delayed.clone(), cand(2, 10)], Ok(2)),
            ("most advanced lagging: refuse", vec![cand(1, 9), lagging.clone()], Err("ERR00041")),
            ("ignored at the top: refuse", vec![ignored.clone(), cand(2, 9)], Err("ERR00037")),
            ("ignored tie partner: other wins", vec![ignored.clone(), cand(2, 10)], Ok(2)),
            ("unreachable is not counted", vec![unreachable, cand(2, 10)], Ok(2)),
            ("maintenance at the top: refuse", vec![maint, cand(2, 9)], Err("ERR00047")),
            ("sql stopped at the top: refuse", vec![sql_stopped, cand(2, 9)], Err("ERR00042")),
            ("no binlog is not a candidate", vec![no_binlog, cand(2, 10)], Ok(2)),
            ("other source is not a candidate", vec![other_source, cand(2, 10)], Ok(2)),
            ("nobody", vec![], Err("ERR00032")),
            ("unsynced is fine without failover-at-sync", vec![unsynced.clone()], Ok(1)),
        ];
        for (name, cands, want) in table {
            let got = failover(&cands).map_err(|e| e.code);
            assert_eq!(got, want, "{name}");
        }

        let at_sync = ElectionRules { require_semi_sync: true, ..rules() };
        assert_eq!(elect(&[unsynced], &at_sync, ElectionKind::Failover, None).unwrap_err().code, "ERR00043");

        let no_checks = ElectionRules { check_replication_state: false, ..rules() };
        assert_eq!(elect(&[cand(1, 9), lagging], &no_checks, ElectionKind::Failover, None).unwrap().winner, 2);
    }

    #[test]
    fn switchover_election() {
        let mut a = cand(1, 10);
        a.io_running = true;
        let mut b = cand(2, 10);
        b.io_running = true;
        let sw = |c: &[Candidate]| elect(c, &rules(), ElectionKind::Switchover, None).map(|e| e.winner).map_err(|e| e.code);
        assert_eq!(sw(&[a.clone(), b.clone()]), Ok(1));
        let mut bp = b.clone();
        bp.prefered_rank = Some(0);
        assert_eq!(sw(&[a.clone(), bp.clone()]), Ok(2), "preferred wins even when not ahead");
        let mut bstopped = b.clone();
        bstopped.io_running = false;
        assert_eq!(
            elect(&[a.clone(), bstopped.clone()], &rules(), ElectionKind::Switchover, Some(2)).map_err(|e| e.code),
            Err("ERR00087"),
            "a requested target that cannot be promoted is refused"
        );
        assert_eq!(sw(&[a.clone(), bstopped]), Ok(1), "without a request, an unhealthy replica is skipped");
        let mut ahead = b.clone();
        ahead.applied_seq = 11;
        assert_eq!(sw(&[a.clone(), ahead]), Ok(2));
        let mut stopped = a.clone();
        stopped.seconds_behind = None;
        assert_eq!(sw(&[stopped]), Err("ERR00032"));
    }

    #[test]
    fn resume_table() {
        use ResumeStep::*;
        for (status, up, replicating, want) in [
            (OpStatus::Promoted, true, false, Complete),
            (OpStatus::Promoted, true, true, Complete),
            (OpStatus::Started, true, false, Complete),
            (OpStatus::Started, true, true, Abort),
            (OpStatus::Started, false, true, CandidateDown),
            (OpStatus::Promoted, false, false, CandidateDown),
        ] {
            assert_eq!(resume_step(status, up, replicating), want, "{status} up={up} replicating={replicating}");
        }
    }

    fn gate() -> GateInput {
        GateInput {
            mode: FailoverMode::Automatic,
            master_failed: true,
            failover_limit: 5,
            failover_counter: 0,
            time_limit: Duration::ZERO,
            since_last_failover: None,
            replicas_hearing_master: vec![],
        }
    }

    #[test]
    fn gate_table() {
        let cases: Vec<(&str, GateInput, Option<&str>)> = vec![
            ("go", gate(), None),
            ("limit reached uses >=", GateInput { failover_counter: 5, ..gate() }, Some("ERR00027")),
            ("limit above", GateInput { failover_counter: 7, ..gate() }, Some("ERR00027")),
            ("limit 0 is unlimited", GateInput { failover_limit: 0, failover_counter: 99, ..gate() }, None),
            ("manual", GateInput { mode: FailoverMode::Manual, ..gate() }, Some("ERR00002")),
            (
                "time limit",
                GateInput { time_limit: Duration::from_secs(60), since_last_failover: Some(Duration::from_secs(10)), ..gate() },
                Some("ERR00029"),
            ),
            (
                "time limit passed",
                GateInput { time_limit: Duration::from_secs(60), since_last_failover: Some(Duration::from_secs(61)), ..gate() },
                None,
            ),
            ("replicas still hear", GateInput { replicas_hearing_master: vec!["db2".into()], ..gate() }, Some("ERR00028")),
        ];
        for (name, g, want) in cases {
            let got = match automatic_gate(&g) {
                Gate::Go => None,
                Gate::Blocked { code, .. } => Some(code),
                Gate::Idle => Some("idle"),
            };
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(automatic_gate(&GateInput { master_failed: false, ..gate() }), Gate::Idle);
    }
}
