//! Manager group: three or more manager nodes replicate a small key-value state machine with
//! openraft; only the leader acts on databases. This crate knows nothing about MariaDB.
//!
//! - [`RaftGroup`] is one member: [`RaftGroup::start`] opens the RocksDB storage, serves the raft
//!   RPC on its own HTTP listener and forms the group from a static membership.
//! - Writes are [`Command`]s of [`KvOp`]s, applied atomically (a failed `CompareAndPut` applies
//!   nothing) and idempotent by op id.
//! - "Active leader" means a quorum acknowledged this leader within the lease
//!   ([`GroupStatus::active`]); [`RaftGroup::ensure_leader`] proves it with a fresh quorum round
//!   right before acting.
//!
//! openraft types stay inside the crate (`typ`), so callers depend only on the types below.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod bootstrap;
mod config;
mod error;
mod group;
mod network;
mod status;
mod store;
mod typ;
mod types;

pub use config::{GroupConfig, GroupTls, DEFAULT_ELECTION_MAX_MS, DEFAULT_ELECTION_MIN_MS, DEFAULT_HEARTBEAT_MS};
pub use error::{GroupError, NotLeader, WriteError};
pub use group::RaftGroup;
pub use network::AppHandler;
pub use status::GroupStatus;
pub use store::MAX_REMEMBERED_OPS;
pub use types::{Command, CommandResult, KvOp, NodeId, NodeInfo};
