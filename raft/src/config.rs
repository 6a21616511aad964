//! Configuration of one group member and the openraft `Config` derived from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::GroupError;
use crate::types::{NodeId, NodeInfo};

/// Default heartbeat interval, milliseconds.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Default minimum election timeout, milliseconds.
pub const DEFAULT_ELECTION_MIN_MS: u64 = 500;
/// Default maximum election timeout, milliseconds.
pub const DEFAULT_ELECTION_MAX_MS: u64 = 1000;

/// How one node joins the group. The membership is static: `peers` lists every voter, including
/// this node, and must be identical on all nodes.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// This node's id; must be a key of `peers`.
    pub node_id: NodeId,
    /// Address the raft RPC server listens on (its own HTTP server, separate from the API).
    pub raft_bind: SocketAddr,
    /// Every voter of the group, this node included; identical on all nodes.
    pub peers: BTreeMap<NodeId, NodeInfo>,
    /// Directory holding this node's RocksDB (`<data_dir>/raft-db`). Wiping it makes the node
    /// rejoin as an empty follower; it never initializes a second group.
    pub data_dir: PathBuf,
    /// Leader heartbeat interval in milliseconds. Default 100.
    pub heartbeat_ms: u64,
    /// Minimum election timeout in milliseconds. Default 500. Must be at least 3 heartbeats.
    pub election_min_ms: u64,
    /// Maximum election timeout in milliseconds. Default 1000. Also openraft's own leader lease.
    pub election_max_ms: u64,
    /// Shared secret of the group: sent with every raft RPC and required from every caller
    /// (401 otherwise). `None`: no check (keep the raft port on a trusted network).
    pub secret: Option<String>,
    /// Mutual TLS for the raft RPC: every node serves with its certificate and connects with
    /// it, and accepts only peers whose certificate the group CA signed. `None`: plain HTTP.
    pub tls: Option<GroupTls>,
}

/// The PEM texts of a node's raft TLS identity and of the group's CA.
#[derive(Clone)]
pub struct GroupTls {
    /// This node's certificate chain.
    pub cert_pem: String,
    /// This node's private key.
    pub key_pem: String,
    /// The CA that signs every node's certificate (peers are verified against it).
    pub ca_pem: String,
}

impl std::fmt::Debug for GroupTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupTls { .. }")
    }
}

impl GroupConfig {
    /// A configuration with the default timings.
    pub fn new(
        node_id: NodeId,
        raft_bind: SocketAddr,
        peers: BTreeMap<NodeId, NodeInfo>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        GroupConfig {
            node_id,
            raft_bind,
            peers,
            data_dir: data_dir.into(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_min_ms: DEFAULT_ELECTION_MIN_MS,
            election_max_ms: DEFAULT_ELECTION_MAX_MS,
            secret: None,
            tls: None,
        }
    }

    /// Checks the configuration; the error names the bad field.
    pub fn validate(&self) -> Result<(), GroupError> {
        let bad = |field: &str, why: String| Err(GroupError::Config(format!("{field}: {why}")));
        if !self.peers.contains_key(&self.node_id) {
            return bad("peers", format!("does not contain this node's id {}", self.node_id));
        }
        for (id, info) in &self.peers {
            if info.raft_addr.is_empty() {
                return bad("peers", format!("node {id} has an empty raft_addr"));
            }
        }
        if self.heartbeat_ms == 0 {
            return bad("heartbeat_ms", "must be > 0".into());
        }
        if self.election_min_ms < 3 * self.heartbeat_ms {
            return bad(
                "election_min_ms",
                format!("{} must be at least 3 x heartbeat_ms ({})", self.election_min_ms, self.heartbeat_ms),
            );
        }
        if self.election_max_ms <= self.election_min_ms {
            return bad(
                "election_max_ms",
                format!("{} must be greater than election_min_ms ({})", self.election_max_ms, self.election_min_ms),
            );
        }
        Ok(())
    }

    /// How long a leader counts as active after its last quorum acknowledgement:
    /// `election_min - heartbeat`. Shorter than the election timeout, so a leader cut off from
    /// the quorum stops being active before the others can elect a new leader (the ack time is
    /// the send time of the acknowledged heartbeat).
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.election_min_ms.saturating_sub(self.heartbeat_ms))
    }

    /// How long a follower may go without hearing from a leader before it reports a lost quorum.
    pub fn leader_contact_timeout(&self) -> Duration {
        Duration::from_millis(self.election_max_ms.saturating_mul(2))
    }

    /// How long [`crate::RaftGroup::write`] waits for its command to be applied.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.election_max_ms.saturating_mul(2))
    }

    /// The openraft configuration derived from this one.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config, GroupError> {
        let config = openraft::Config {
            cluster_name: "replication-manager".to_string(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            // A snapshot is one HTTP POST of the whole map: allow it time.
            install_snapshot_timeout: self.election_max_ms.max(10_000),
            // A restarted leader must win a fresh election (pitfall 1).
            enable_leader_restore: Some(false),
            // A node that was cut off does not disturb a healthy leader when it returns.
            enable_pre_vote: Some(true),
            // The membership is static and a node whose data was wiped rejoins under the same
            // id. Without this, the leader that had replicated to it panics (debug builds) or
            // never resynchronises it (release builds) when it finds the follower's log empty.
            // The vote gate in the RPC server keeps such a node from voting before it has
            // caught up, see `network::server`.
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        config.validate().map_err(|e| GroupError::Config(format!("openraft config: {e}")))
    }
}
