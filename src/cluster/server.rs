//! `ServerRuntime`: what the monitor knows about one database server (its state, last probe,
//! failure count, whether its replication still hears its source), and the Go project's
//! server ids.

use std::time::Instant;

use crate::cluster::topology::ServerState;
use crate::config::{crc64_ecma, ClusterConfig, HostPort};
use crate::db::probe::ServerSnapshot;
use crate::db::sql::Flavor;

/// The Go project's server id: `"db"` + decimal CRC-64/ECMA (as Go's `crc64.ECMA` table) of
/// `host:port`, so ids match the ones existing dashboards and scripts know.
pub fn server_id(addr: &HostPort) -> String {
    format!("db{}", crc64_ecma(addr.to_string().as_bytes()))
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
    /// Consecutive probes whose connection was refused (the last ones of `fail_count`): the
    /// server's host is up and nothing listens, so the server process is gone.
    pub refused_count: u32,
    /// When the first of the current run of failed probes was taken (`None` while it answers).
    pub failing_since: Option<Instant>,
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
    /// The IO thread ran at the last probe, and the connection's heartbeat period: with the
    /// evidence's age they tell whether the replica still hears its source
    /// (`failover::plan::hears_source`).
    pub hear_io_running: bool,
    pub hear_period: std::time::Duration,
    /// Accounts that can write although `read_only` is set (`None`: not read yet); the manager's
    /// own account is left out.
    pub read_only_bypass: Option<Vec<String>>,
    /// The last known `Seconds_Behind_Master` (kept when it turns NULL, e.g. after the master
    /// died, so a lagging replica stays known as lagging).
    pub last_delay: Option<u64>,
    /// Unix ms of the last probe at which this server, as a semi-sync master that acknowledges
    /// no commit before a replica has it ([`ServerSnapshot::semi_sync_acks_before_commit`]),
    /// had no commit waiting for an acknowledgement. Every commit waiting later began after
    /// it, so none can have run out its timeout (and been acknowledged without a replica)
    /// before this time plus `rpl_semi_sync_master_timeout`. `None` when not so.
    pub semi_sync_idle_at_ms: Option<u64>,
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
            refused_count: 0,
            failing_since: None,
            last_error: None,
            snapshot: None,
            maintenance: false,
            ignored: config.ignored_hosts.contains(addr),
            prefered: config.prefered_master.contains(addr),
            hear_evidence: None,
            hear_changed_at: None,
            hear_io_running: false,
            hear_period: std::time::Duration::ZERO,
            last_delay: None,
            read_only_bypass: None,
            semi_sync_idle_at_ms: None,
        }
    }

    /// The flavor the server was last seen with (MariaDB before its first probe).
    pub fn flavor(&self) -> Flavor {
        self.snapshot.as_ref().map_or(Flavor::MariaDB, |s| s.flavor)
    }

    /// True when the last probe succeeded.
    pub fn is_up(&self) -> bool {
        self.last_error.is_none() && self.snapshot.is_some()
    }
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
