//! Errors of the group API. openraft's own error types stay inside the crate; these carry the
//! leader to forward to and a readable reason.

use std::fmt;

use crate::types::{NodeId, NodeInfo};

fn fmt_leader(leader: &Option<(NodeId, NodeInfo)>) -> String {
    match leader {
        Some((id, info)) => format!("node {id} (api {}, raft {})", info.api_addr, info.raft_addr),
        None => "unknown".to_string(),
    }
}

/// Why [`crate::RaftGroup::write`] did not return a result.
///
/// Except for `ForwardToLeader` before anything was proposed, the command may still be applied
/// later: retry with the same `op_id`, which the state machine deduplicates.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader. `leader` is the current leader when known; when `None`,
    /// no leader is known yet: back off and retry.
    #[error("not the leader; current leader: {}", fmt_leader(.leader))]
    ForwardToLeader {
        /// The leader to send the command to, when known.
        leader: Option<(NodeId, NodeInfo)>,
    },
    /// This node is (or was) the leader but could not get the command committed by a quorum in
    /// time. The outcome is unknown.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The raft node is stopped or its storage failed.
    #[error("raft node failed: {0}")]
    Fatal(String),
}

/// This node cannot prove it is the active leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the active leader ({reason}); current leader: {}", fmt_leader(.leader))]
pub struct NotLeader {
    /// The leader this node knows of, when known (may be this node when it lost its quorum).
    pub leader: Option<(NodeId, NodeInfo)>,
    /// Why leadership could not be confirmed.
    pub reason: String,
}

/// Failures starting, running or stopping the group.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The configuration is invalid; the text names the field.
    #[error("invalid raft group configuration: {0}")]
    Config(String),
    /// Opening or reading the RocksDB storage failed.
    #[error("raft storage at {path}: {source}")]
    Storage {
        /// The data directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The raft RPC listener could not be bound.
    #[error("binding the raft RPC listener on {addr}: {source}")]
    Bind {
        /// The address from `GroupConfig::raft_bind`.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The raft node refused or failed an operation.
    #[error("raft node {node_id}: {message}")]
    Raft {
        /// This node.
        node_id: NodeId,
        /// What failed.
        message: String,
    },
    /// The operation needs this node to be the leader.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The operation did not finish in time.
    #[error("raft node {node_id}: timed out after {millis} ms: {what}")]
    Timeout {
        /// This node.
        node_id: NodeId,
        /// The bound that expired.
        millis: u64,
        /// What was waited for.
        what: String,
    },
}

/// Wraps a displayable openraft error for [`GroupError::Raft`].
pub(crate) fn raft_err(node_id: NodeId, what: &str, e: impl fmt::Display) -> GroupError {
    GroupError::Raft { node_id, message: format!("{what}: {e}") }
}
