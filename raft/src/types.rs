//! Public data types of the manager group: node identity, the replicated command and its result.
//!
//! These types are stored in the raft log and sent between nodes as JSON (field names, never
//! positions), so adding an optional field later stays readable by older data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifier of a manager node; unique in the group for the whole life of its data.
pub type NodeId = u64;

/// What the group knows about one voter. Carried in the raft membership, so every node sees the
/// same addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` of the node's raft RPC listener (the group's own HTTP server).
    pub raft_addr: String,
    /// `host:port` of the node's HTTP API, used by clients to reach the leader.
    pub api_addr: String,
    /// `"manager"` (may act on databases) or `"arbitrator"` (votes only; hands leadership away).
    pub role: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(raft={}, api={})", self.role, self.raft_addr, self.api_addr)
    }
}

/// One replicated command: its operations are applied atomically, in order.
///
/// Idempotent by `op_id`: when a command whose `op_id` was already applied is applied again
/// (a client retry after a timeout or a leader change), nothing changes and the first result is
/// returned with `duplicate = true`. The state machine remembers the last
/// [`crate::MAX_REMEMBERED_OPS`] op ids; an op id older than that would be applied again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Command {
    /// Caller-chosen unique id of this command (e.g. a UUID or `"<node>-<counter>"`).
    pub op_id: String,
    /// Operations, applied in order, all or nothing.
    pub ops: Vec<KvOp>,
}

impl Command {
    /// Builds a command from its id and operations.
    pub fn new(op_id: impl Into<String>, ops: Vec<KvOp>) -> Self {
        Command { op_id: op_id.into(), ops }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command(op_id={}, ops=[", self.op_id)?;
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match op {
                KvOp::Put { key, .. } => write!(f, "put {key}")?,
                KvOp::Delete { key } => write!(f, "delete {key}")?,
                KvOp::CompareAndPut { key, .. } => write!(f, "cas {key}")?,
            }
        }
        write!(f, "])")
    }
}

/// One operation on the replicated key-value map.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum KvOp {
    /// Sets `key` to `value`.
    Put {
        /// Key to set.
        key: String,
        /// New value.
        value: serde_json::Value,
    },
    /// Removes `key` (no error when absent).
    Delete {
        /// Key to remove.
        key: String,
    },
    /// Sets `key` to `value` only if its current value equals `expected` (`None`: the key must be
    /// absent). The current value includes the effect of earlier operations of the same command.
    /// When the comparison fails, no operation of the command is applied.
    CompareAndPut {
        /// Key to compare and set.
        key: String,
        /// Required current value; `None` requires the key to be absent.
        expected: Option<serde_json::Value>,
        /// New value when the comparison holds.
        value: serde_json::Value,
    },
}

impl KvOp {
    /// Shorthand for [`KvOp::Put`].
    pub fn put(key: impl Into<String>, value: serde_json::Value) -> Self {
        KvOp::Put { key: key.into(), value }
    }

    /// Shorthand for [`KvOp::Delete`].
    pub fn delete(key: impl Into<String>) -> Self {
        KvOp::Delete { key: key.into() }
    }

    /// Shorthand for [`KvOp::CompareAndPut`].
    pub fn compare_and_put(
        key: impl Into<String>,
        expected: Option<serde_json::Value>,
        value: serde_json::Value,
    ) -> Self {
        KvOp::CompareAndPut { key: key.into(), expected, value }
    }
}

/// Outcome of applying one [`Command`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommandResult {
    /// `true` when every operation was applied; `false` when a `CompareAndPut` failed, in which
    /// case no operation of the command was applied.
    pub applied: bool,
    /// `true` when the op id had already been applied: this is the first result, repeated, and
    /// the command was not applied again.
    pub duplicate: bool,
    /// Raft log index at which the command was (first) applied.
    pub log_index: u64,
    /// The key whose `CompareAndPut` failed, when `applied` is `false`.
    pub failed_key: Option<String>,
}
