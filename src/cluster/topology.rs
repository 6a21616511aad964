//! Topology discovery: a pure function from one round of probe results to server states, the
//! master, and the named topology problems. No I/O here, so every rule is unit-tested.

use crate::config::HostPort;
use crate::db::probe::{ProbeError, ServerSnapshot};

/// A server's state, with the Go project's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Master,
    Slave,
    SlaveErr,
    SlaveLate,
    Suspect,
    Failed,
    Maintenance,
    StandAlone,
    /// Not probed yet.
    Unconnected,
    ErrorAuth,
}

impl ServerState {
    /// Every state (one `server_state` gauge per state on `/metrics`).
    pub const ALL: [ServerState; 10] = [
        ServerState::Master,
        ServerState::Slave,
        ServerState::SlaveErr,
        ServerState::SlaveLate,
        ServerState::Suspect,
        ServerState::Failed,
        ServerState::Maintenance,
        ServerState::StandAlone,
        ServerState::Unconnected,
        ServerState::ErrorAuth,
    ];

    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Master => "Master",
            ServerState::Slave => "Slave",
            ServerState::SlaveErr => "SlaveErr",
            ServerState::SlaveLate => "SlaveLate",
            ServerState::Suspect => "Suspect",
            ServerState::Failed => "Failed",
            ServerState::Maintenance => "Maintenance",
            ServerState::StandAlone => "StandAlone",
            ServerState::Unconnected => "Unconnected",
            ServerState::ErrorAuth => "ErrorAuth",
        }
    }

    /// Down for the purpose of health checks: Failed, Suspect or ErrorAuth.
    pub fn is_down(self) -> bool {
        matches!(self, ServerState::Failed | ServerState::Suspect | ServerState::ErrorAuth)
    }
}

impl std::fmt::Display for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named topology problem, shown in alerts (`ERR*` are errors, `WARN*` warnings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub code: &'static str,
    pub desc: String,
    /// The server the problem is about, when there is one.
    pub server: Option<String>,
}

impl Problem {
    fn new(code: &'static str, desc: String, server: Option<&HostPort>) -> Problem {
        Problem { code, desc, server: server.map(HostPort::to_string) }
    }

    /// True for an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.code.starts_with("ERR")
    }
}

/// Why a master cut off from its replicas (but still reached by clients) could acknowledge
/// writes that no replica holds, which a failover then loses; `None` when it cannot.
pub fn acknowledged_write_risk(s: &ServerSnapshot) -> Option<String> {
    if !s.semi_sync_master_enabled {
        return Some("semi-sync is off: every commit is acknowledged by the master alone".to_string());
    }
    if s.semi_sync_wait_point.eq_ignore_ascii_case("AFTER_COMMIT") {
        return Some("rpl_semi_sync_master_wait_point is AFTER_COMMIT: other sessions see a commit before any replica has it".to_string());
    }
    if !s.semi_sync_master_status {
        return Some("semi-sync fell back to asynchronous: commits are acknowledged without a replica".to_string());
    }
    Some(format!(
        "after rpl_semi_sync_master_timeout ({} ms) without a replica ack, a cut-off master commits alone (a fence script or a larger timeout closes the gap)",
        s.semi_sync_timeout_ms
    ))
    .filter(|_| s.semi_sync_timeout_ms < SAFE_SEMI_SYNC_TIMEOUT_MS)
}

/// A semi-sync timeout this long (one hour) is taken as "never falls back" in practice: the
/// managers fence the master well before it.
pub const SAFE_SEMI_SYNC_TIMEOUT_MS: u64 = 3_600_000;

/// What the monitor knows about one server this round.
pub struct Observation<'a> {
    pub addr: &'a HostPort,
    /// This round's probe.
    pub probe: Result<&'a ServerSnapshot, &'a ProbeError>,
    /// Consecutive failed probes, this round included.
    pub fail_count: u32,
    pub maintenance: bool,
}

/// Rules that shape discovery (from the cluster's config).
#[derive(Debug, Clone)]
pub struct DiscoveryRules {
    /// `failover-falsepositive-ping-counter`.
    pub ping_counter: u32,
    /// `failover-max-slave-delay` (-1 = off).
    pub max_slave_delay: i64,
    /// `check-replication-state`.
    pub check_replication_state: bool,
    /// `replication-source-name`.
    pub source_name: String,
}

/// The result of one discovery round.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// One state per observed server, same order as the input.
    pub states: Vec<ServerState>,
    /// Index of the master (possibly unreachable: known from its replicas or the last round).
    pub master: Option<usize>,
    /// `master-slave`, `multi-master`, `active-passive` or `unknown`.
    pub kind: &'static str,
    pub problems: Vec<Problem>,
}

/// True when two addresses name the same server (localhost and 127.0.0.1 are one).
pub fn same_server(a: &HostPort, b: &HostPort) -> bool {
    fn norm(h: &str) -> &str {
        match h {
            "localhost" | "::1" => "127.0.0.1",
            other => other,
        }
    }
    a.port == b.port && norm(&a.host).eq_ignore_ascii_case(norm(&b.host))
}

/// Discovers states, master and problems. `previous_master` is last round's master, kept when
/// nothing contradicts it (for instance while it is unreachable and nobody replicates).
pub fn discover(obs: &[Observation<'_>], previous_master: Option<usize>, rules: &DiscoveryRules) -> Topology {
    let mut problems = Vec::new();
    let n = obs.len();
    let find = |hp: &HostPort| obs.iter().position(|o| same_server(o.addr, hp));

    // Which reachable servers replicate, and from whom.
    let sources: Vec<Option<Option<usize>>> = obs
        .iter()
        .map(|o| match o.probe {
            Ok(s) => s.managed_replication(&rules.source_name).map(|r| find(&r.source())),
            Err(_) => None,
        })
        .collect();
    let is_replica = |i: usize| sources[i].is_some();
    let mut pointed = vec![0usize; n];
    for src in sources.iter().flatten().flatten() {
        pointed[*src] += 1;
    }

    // Master: the previous master while it is a reachable, writable non-replica (the intent a
    // failover or switchover set; a replica left pointing at a dead old master must not bring it
    // back); else the non-replica server most replicas point at; else the previous master if it
    // is not replicating now; else the only writable non-replica; a single server is its own master.
    let writable_non_replica = |i: usize| !is_replica(i) && matches!(obs[i].probe, Ok(s) if !s.read_only);
    let mut master = previous_master.filter(|&p| p < n && writable_non_replica(p));
    if master.is_none() {
        master = (0..n).filter(|&i| !is_replica(i) && pointed[i] > 0).max_by_key(|&i| pointed[i]);
    }
    let mut kind = "master-slave";
    if master.is_none() {
        if let Some(p) = previous_master.filter(|&p| p < n && !is_replica(p)) {
            master = Some(p);
        }
    }
    if master.is_none() {
        let writable: Vec<usize> = (0..n)
            .filter(|&i| !is_replica(i) && matches!(obs[i].probe, Ok(s) if !s.read_only))
            .collect();
        if writable.len() == 1 {
            master = Some(writable[0]);
        }
    }
    if master.is_none() {
        // Multi-master: replicas of each other; the writable one pointed at is the master.
        let writable_replica = (0..n)
            .filter(|&i| is_replica(i) && pointed[i] > 0 && matches!(obs[i].probe, Ok(s) if !s.read_only))
            .max_by_key(|&i| pointed[i]);
        if let Some(m) = writable_replica {
            master = Some(m);
            kind = "multi-master";
        }
    }
    if master.is_none() && n == 1 {
        master = Some(0);
    }
    if n == 1 {
        kind = "active-passive";
    }

    let master_reachable = master.is_some_and(|m| obs[m].probe.is_ok());
    let mut states = Vec::with_capacity(n);
    for (i, o) in obs.iter().enumerate() {
        let state = match o.probe {
            Err(e) if e.is_auth() => {
                problems.push(Problem::new("ERR00004", format!("Database {} access denied: {e}", o.addr), Some(o.addr)));
                ServerState::ErrorAuth
            }
            Err(_) if o.fail_count >= rules.ping_counter => ServerState::Failed,
            Err(_) => ServerState::Suspect,
            Ok(_) if o.maintenance => ServerState::Maintenance,
            Ok(_) if Some(i) == master && kind != "multi-master" => ServerState::Master,
            Ok(s) => match s.managed_replication(&rules.source_name) {
                None if Some(i) == master => ServerState::Master,
                None => ServerState::StandAlone,
                Some(r) => {
                    let io = r.io_running.to_ascii_lowercase();
                    let sql_ok = r.sql_running.eq_ignore_ascii_case("yes");
                    let broken = !sql_ok || io == "no" || (io == "connecting" && master_reachable);
                    if Some(i) == master {
                        ServerState::Master
                    } else if broken {
                        let err = [r.last_io_error.as_str(), r.last_sql_error.as_str()]
                            .iter()
                            .filter(|e| !e.is_empty())
                            .copied()
                            .collect::<Vec<_>>()
                            .join("; ");
                        problems.push(Problem::new(
                            "ERR00042",
                            format!(
                                "Replication broken on {}: IO {} SQL {}{}",
                                o.addr,
                                r.io_running,
                                r.sql_running,
                                if err.is_empty() { String::new() } else { format!(": {err}") }
                            ),
                            Some(o.addr),
                        ));
                        ServerState::SlaveErr
                    } else if rules.check_replication_state
                        && rules.max_slave_delay >= 0
                        && r.seconds_behind_master.is_some_and(|d| d > rules.max_slave_delay.unsigned_abs())
                    {
                        problems.push(Problem::new(
                            "WARN0071",
                            format!(
                                "Replica {} is {} s behind its master (failover-max-slave-delay {})",
                                o.addr,
                                r.seconds_behind_master.unwrap_or(0),
                                rules.max_slave_delay
                            ),
                            Some(o.addr),
                        ));
                        ServerState::SlaveLate
                    } else {
                        ServerState::Slave
                    }
                }
            },
        };
        states.push(state);
    }

    // Problems about the shape of the topology.
    match master {
        None => problems.push(Problem::new("ERR00012", "Could not find a master in topology".to_string(), None)),
        Some(m) => {
            let maddr = obs[m].addr;
            for (i, o) in obs.iter().enumerate() {
                if i == m {
                    continue;
                }
                if let Some(src) = &sources[i] {
                    if *src != Some(m) && kind == "master-slave" {
                        let from = match o.probe {
                            Ok(s) => s
                                .managed_replication(&rules.source_name)
                                .map(|r| r.source().to_string())
                                .unwrap_or_default(),
                            Err(_) => String::new(),
                        };
                        problems.push(Problem::new(
                            "ERR00064",
                            format!("Server {} is not replicating from the master {maddr} but from {from}", o.addr),
                            Some(o.addr),
                        ));
                    }
                }
                let writable_other = !is_replica(i) && matches!(o.probe, Ok(s) if !s.read_only && !o.maintenance);
                if writable_other && (matches!(obs[m].probe, Ok(ms) if !ms.read_only) || !master_reachable) {
                    problems.push(Problem::new(
                        "ERR00063",
                        format!("Two writable masters: {maddr} and {} (split brain risk)", o.addr),
                        Some(o.addr),
                    ));
                }
            }
            match states[m] {
                ServerState::Failed | ServerState::Suspect => {
                    let hearing = (0..n)
                        .filter(|&i| sources[i] == Some(Some(m)))
                        .filter(|&i| matches!(obs[i].probe, Ok(s) if s.managed_replication(&rules.source_name).is_some_and(|r| r.io_running.eq_ignore_ascii_case("yes"))))
                        .count();
                    if hearing > 0 {
                        problems.push(Problem::new(
                            "ERR00016",
                            format!("Master {maddr} is unreachable but {hearing} replica(s) still replicate from it"),
                            Some(maddr),
                        ));
                    }
                    if states[m] == ServerState::Failed {
                        problems.push(Problem::new(
                            "WARN0023",
                            format!("Number of failed master ping has been reached on {maddr}"),
                            Some(maddr),
                        ));
                    }
                }
                _ => {}
            }
            if let (Ok(ms), true) = (obs[m].probe, n > 1) {
                if let Some(risk) = acknowledged_write_risk(ms) {
                    problems.push(Problem::new("WARN0110", format!("Transactions at risk on master {maddr}: {risk}"), Some(maddr)));
                }
                if ms.binlog_stalled {
                    problems.push(Problem::new(
                        "WARN0111",
                        format!("The binary log of master {maddr} does not answer: commits wait (for semi-sync acks?)"),
                        Some(maddr),
                    ));
                }
            }
            if n > 1 && !sources.contains(&Some(Some(m))) && kind == "master-slave" {
                problems.push(Problem::new("ERR00010", format!("No replica replicates from master {maddr}"), Some(maddr)));
            }
        }
    }
    if n > 0 && states.iter().all(|s| matches!(s, ServerState::Failed | ServerState::ErrorAuth)) {
        problems.push(Problem::new("ERR00021", "Cluster state down: every server failed".to_string(), None));
    }
    problems.sort();
    problems.dedup();
    Topology { states, master, kind, problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::probe::ReplicationStatus;

    fn hp(port: u16) -> HostPort {
        HostPort { host: "127.0.0.1".into(), port }
    }

    fn snap(read_only: bool, source: Option<(u16, &str, &str)>) -> ServerSnapshot {
        ServerSnapshot {
            read_only,
            // A careful master: semi-sync on, in sync, a timeout that never falls back.
            semi_sync_master_enabled: !read_only,
            semi_sync_slave_enabled: true,
            semi_sync_master_status: !read_only,
            semi_sync_timeout_ms: SAFE_SEMI_SYNC_TIMEOUT_MS,
            semi_sync_wait_point: "AFTER_SYNC".into(),
            replications: source
                .map(|(port, io, sql)| {
                    vec![ReplicationStatus {
                        master_host: "127.0.0.1".into(),
                        master_port: port,
                        io_running: io.into(),
                        sql_running: sql.into(),
                        seconds_behind_master: Some(0),
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            ..ServerSnapshot::for_tests()
        }
    }

    fn rules() -> DiscoveryRules {
        DiscoveryRules { ping_counter: 3, max_slave_delay: 30, check_replication_state: true, source_name: String::new() }
    }

    struct Case {
        addrs: Vec<HostPort>,
        probes: Vec<Result<ServerSnapshot, ProbeError>>,
        fails: Vec<u32>,
    }

    impl Case {
        fn new(probes: Vec<Result<ServerSnapshot, ProbeError>>, fails: Vec<u32>) -> Case {
            let addrs = (0..probes.len()).map(|i| hp(3310 + i as u16)).collect();
            Case { addrs, probes, fails }
        }
        fn run(&self, prev: Option<usize>) -> Topology {
            let obs: Vec<Observation<'_>> = self
                .addrs
                .iter()
                .zip(&self.probes)
                .zip(&self.fails)
                .map(|((a, p), f)| Observation { addr: a, probe: p.as_ref(), fail_count: *f, maintenance: false })
                .collect();
            discover(&obs, prev, &rules())
        }
    }

    fn down() -> Result<ServerSnapshot, ProbeError> {
        Err(ProbeError::Connect("refused".into()))
    }

    #[test]
    fn transactions_at_risk_are_named() {
        let safe = snap(false, None);
        assert_eq!(acknowledged_write_risk(&safe), None);
        let mut s = safe.clone();
        s.semi_sync_timeout_ms = 1000;
        assert!(acknowledged_write_risk(&s).is_some_and(|r| r.contains("1000 ms")));
        let mut s = safe.clone();
        s.semi_sync_wait_point = "AFTER_COMMIT".into();
        assert!(acknowledged_write_risk(&s).is_some_and(|r| r.contains("AFTER_COMMIT")));
        let mut s = safe.clone();
        s.semi_sync_master_status = false;
        assert!(acknowledged_write_risk(&s).is_some_and(|r| r.contains("fell back")));
        let mut s = safe;
        s.semi_sync_master_enabled = false;
        assert!(acknowledged_write_risk(&s).is_some_and(|r| r.contains("semi-sync is off")));
        // Reported for the master of a cluster.
        let mut m = snap(false, None);
        m.semi_sync_timeout_ms = 1000;
        let c = Case::new(vec![Ok(m), Ok(snap(true, Some((3310, "Yes", "Yes"))))], vec![0, 0]);
        assert!(c.run(None).problems.iter().any(|p| p.code == "WARN0110"), "{:?}", c.run(None).problems);
    }

    #[test]
    fn healthy_master_slave() {
        let c = Case::new(
            vec![Ok(snap(false, None)), Ok(snap(true, Some((3310, "Yes", "Yes")))), Ok(snap(true, Some((3310, "Yes", "Yes"))))],
            vec![0, 0, 0],
        );
        let t = c.run(None);
        assert_eq!(t.master, Some(0));
        assert_eq!(t.states, vec![ServerState::Master, ServerState::Slave, ServerState::Slave]);
        assert!(t.problems.is_empty(), "{:?}", t.problems);
    }

    #[test]
    fn dead_master_is_suspect_then_failed_and_still_known() {
        let mk = |f| {
            Case::new(
                vec![down(), Ok(snap(true, Some((3310, "Connecting", "Yes")))), Ok(snap(true, Some((3310, "Connecting", "Yes"))))],
                vec![f, 0, 0],
            )
        };
        let t = mk(1).run(Some(0));
        assert_eq!(t.master, Some(0));
        assert_eq!(t.states[0], ServerState::Suspect);
        assert_eq!(t.states[1], ServerState::Slave, "a replica waiting for a dead master is not broken");
        let t = mk(3).run(Some(0));
        assert_eq!(t.states[0], ServerState::Failed);
        assert!(t.problems.iter().any(|p| p.code == "WARN0023"));
    }

    #[test]
    fn unreachable_master_heard_by_replicas_is_flagged() {
        let c = Case::new(vec![down(), Ok(snap(true, Some((3310, "Yes", "Yes"))))], vec![1, 0]);
        let t = c.run(Some(0));
        assert!(t.problems.iter().any(|p| p.code == "ERR00016"), "{:?}", t.problems);
    }

    #[test]
    fn broken_replication_is_slave_err_with_its_error() {
        let mut s = snap(true, Some((3310, "Yes", "No")));
        s.replications[0].last_sql_error = "Duplicate entry".into();
        let c = Case::new(vec![Ok(snap(false, None)), Ok(s)], vec![0, 0]);
        let t = c.run(None);
        assert_eq!(t.states[1], ServerState::SlaveErr);
        let p = t.problems.iter().find(|p| p.code == "ERR00042").unwrap();
        assert!(p.desc.contains("Duplicate entry"));
    }

    #[test]
    fn connecting_to_a_healthy_master_is_broken() {
        let c = Case::new(vec![Ok(snap(false, None)), Ok(snap(true, Some((3310, "Connecting", "Yes"))))], vec![0, 0]);
        assert_eq!(c.run(None).states[1], ServerState::SlaveErr);
    }

    #[test]
    fn late_replica() {
        let mut s = snap(true, Some((3310, "Yes", "Yes")));
        s.replications[0].seconds_behind_master = Some(31);
        let c = Case::new(vec![Ok(snap(false, None)), Ok(s)], vec![0, 0]);
        assert_eq!(c.run(None).states[1], ServerState::SlaveLate);
    }

    #[test]
    fn two_writable_masters() {
        let c = Case::new(vec![Ok(snap(false, None)), Ok(snap(true, Some((3310, "Yes", "Yes")))), Ok(snap(false, None))], vec![0, 0, 0]);
        let t = c.run(None);
        assert_eq!(t.master, Some(0));
        assert_eq!(t.states[2], ServerState::StandAlone);
        assert!(t.problems.iter().any(|p| p.code == "ERR00063"), "{:?}", t.problems);
    }

    #[test]
    fn replica_of_the_wrong_source() {
        let c = Case::new(
            vec![Ok(snap(false, None)), Ok(snap(true, Some((3310, "Yes", "Yes")))), Ok(snap(true, Some((3311, "Yes", "Yes"))))],
            vec![0, 0, 0],
        );
        let t = c.run(None);
        assert!(t.problems.iter().any(|p| p.code == "ERR00064" && p.server.as_deref() == Some("127.0.0.1:3312")));
    }

    #[test]
    fn previous_master_is_kept_over_a_dead_server_a_stale_replica_points_at() {
        // After a failover to 3312, a replica still points at the dead old master 3310.
        let c = Case::new(vec![down(), Ok(snap(true, Some((3310, "Connecting", "Yes")))), Ok(snap(false, None))], vec![5, 0, 0]);
        let t = c.run(Some(2));
        assert_eq!(t.master, Some(2));
        assert!(!t.problems.iter().any(|p| p.code == "ERR00063"), "{:?}", t.problems);
        assert!(t.problems.iter().any(|p| p.code == "ERR00064"), "the stale replica is reported: {:?}", t.problems);
        // Without that intent, the server the replica points at is the master.
        assert_eq!(c.run(None).master, Some(0));
    }

    #[test]
    fn no_master() {
        let c = Case::new(vec![Ok(snap(true, None)), Ok(snap(true, None))], vec![0, 0]);
        let t = c.run(None);
        assert_eq!(t.master, None);
        assert!(t.problems.iter().any(|p| p.code == "ERR00012"));
        assert_eq!(t.states, vec![ServerState::StandAlone, ServerState::StandAlone]);
    }

    #[test]
    fn auth_error_and_cluster_down() {
        let c = Case::new(vec![Err(ProbeError::Auth("denied".into())), down()], vec![1, 5]);
        let t = c.run(None);
        assert_eq!(t.states, vec![ServerState::ErrorAuth, ServerState::Failed]);
        assert!(t.problems.iter().any(|p| p.code == "ERR00021"));
    }

    #[test]
    fn multi_master_pair() {
        let c = Case::new(vec![Ok(snap(false, Some((3311, "Yes", "Yes")))), Ok(snap(true, Some((3310, "Yes", "Yes"))))], vec![0, 0]);
        let t = c.run(None);
        assert_eq!(t.kind, "multi-master");
        assert_eq!(t.master, Some(0));
    }
}
