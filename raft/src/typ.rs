//! The openraft type configuration and short aliases for the openraft types this crate uses.
//!
//! This is the only place that names openraft's generic parameters; the rest of the crate uses
//! these aliases, so an openraft upgrade touches one file first.

use crate::types::{Command, CommandResult, NodeId, NodeInfo};

openraft::declare_raft_types!(
    /// Type configuration of the manager group.
    ///
    /// `LeaderId` is the standard Raft one (one leader per term), so the term alone is the
    /// failover epoch.
    pub(crate) TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = NodeInfo,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

pub(crate) type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type SnapshotData = std::io::Cursor<Vec<u8>>;
pub(crate) type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
pub(crate) type IOFlushed = openraft::storage::IOFlushed<TypeConfig>;
pub(crate) type EntryResponder = openraft::storage::EntryResponder<TypeConfig>;
pub(crate) type LogState = openraft::storage::LogState<TypeConfig>;

pub(crate) type RaftError<E = openraft::errors::Infallible> = openraft::errors::RaftError<TypeConfig, E>;
pub(crate) type RPCError = openraft::errors::RPCError<TypeConfig>;
pub(crate) type StreamingError = openraft::errors::StreamingError<TypeConfig>;
pub(crate) type ClientWriteError = openraft::errors::ClientWriteError<TypeConfig>;
pub(crate) type ForwardToLeader = openraft::errors::ForwardToLeader<TypeConfig>;
pub(crate) type InitializeError = openraft::errors::InitializeError<TypeConfig>;
pub(crate) type LinearizableReadError = openraft::errors::LinearizableReadError<TypeConfig>;

pub(crate) type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
pub(crate) type VoteResponse = openraft::raft::VoteResponse<TypeConfig>;
pub(crate) type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub(crate) type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<TypeConfig>;
pub(crate) type SnapshotResponse = openraft::raft::SnapshotResponse<TypeConfig>;
pub(crate) type TransferLeaderRequest = openraft::raft::TransferLeaderRequest<TypeConfig>;
pub(crate) type TransferLeaderResponse = openraft::raft::TransferLeaderResponse<TypeConfig>;
pub(crate) type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
