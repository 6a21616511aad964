//! Raft RPC over HTTP/JSON between the group members: the client side ([`client`], openraft's
//! `RaftNetworkV2` on reqwest), the server side ([`server`], axum routes under `/raft/`), and the
//! per-node state both sides share ([`NodeShared`]): the fault-injection switch, the time of the
//! last contact from a leader, and the vote gate of a node that rejoins with an empty log.

pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::typ::{SnapshotMeta, Vote};
use crate::types::NodeId;

/// Header carrying the group's shared secret on every raft RPC.
pub(crate) const SECRET_HEADER: &str = "x-raft-secret";

/// Body of `POST /raft/snapshot`: the leader's vote and the full snapshot.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotBody {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
    /// JSON text of the snapshot data.
    pub(crate) data: String,
}

/// Answer of `GET /raft/group-info`, used to decide whether a group already exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupInfo {
    /// The answering node's id (checked against the static peer list).
    pub(crate) node_id: NodeId,
    /// The node has a log, a snapshot or a term: it belongs to a formed group.
    pub(crate) initialized: bool,
    /// The node's committed log index, when known.
    pub(crate) committed_index: Option<u64>,
    /// The node's current term.
    pub(crate) term: u64,
    /// The leader the node knows of.
    pub(crate) leader: Option<NodeId>,
    /// The voter ids of the node's static configuration (must match on every node).
    pub(crate) voters: Vec<NodeId>,
}

/// Whether this node may grant votes. A node that starts with an empty log may have been wiped:
/// if it voted at once, it could help elect a candidate that lacks entries the group committed
/// with this node's (lost) acknowledgement. It therefore votes only once it knows the group's
/// state and has caught up to the commit index the other members reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteGate {
    /// Votes are handled normally.
    Open,
    /// Empty log and the group's state is not known yet: vote requests are refused.
    Closed,
    /// Rejoining an existing group: refuse votes until the local log reaches this index.
    UntilIndex(u64),
}

/// Time between two warnings about the same unreachable peer.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// State shared by this node's raft client and server.
pub(crate) struct NodeShared {
    isolated: AtomicBool,
    leader_contact: Mutex<Option<Instant>>,
    vote_gate: Mutex<VoteGate>,
    last_warn: Mutex<HashMap<NodeId, (Option<Instant>, u64)>>,
    started: Instant,
    /// The raft RPC runs over mutual TLS (`https` URLs).
    tls: bool,
    /// The application's answer to `/app/{topic}` questions from peers.
    app: std::sync::RwLock<Option<AppHandler>>,
}

/// Answers a peer's question on `topic` with `body` (from memory, no waiting); `None`: no
/// answer for that topic.
pub type AppHandler = Arc<dyn Fn(&str, &serde_json::Value) -> Option<serde_json::Value> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NodeShared {
    pub(crate) fn new(gate: VoteGate, tls: bool) -> Self {
        NodeShared {
            isolated: AtomicBool::new(false),
            leader_contact: Mutex::new(None),
            vote_gate: Mutex::new(gate),
            last_warn: Mutex::new(HashMap::new()),
            started: Instant::now(),
            tls,
            app: std::sync::RwLock::new(None),
        }
    }

    /// Installs the application's handler of peer questions.
    pub(crate) fn set_app_handler(&self, handler: AppHandler) {
        *self.app.write().unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// Answers a peer's question, if the application handles the topic.
    pub(crate) fn answer(&self, topic: &str, body: &serde_json::Value) -> Option<serde_json::Value> {
        let handler = self.app.read().unwrap_or_else(PoisonError::into_inner).clone()?;
        handler(topic, body)
    }

    /// The scheme of this node's raft URLs.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Fault injection: when set, every outgoing RPC fails as unreachable and every incoming
    /// one is refused with 503.
    pub(crate) fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }

    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Records an accepted append or snapshot from the current leader.
    pub(crate) fn touch_leader_contact(&self) {
        *lock(&self.leader_contact) = Some(Instant::now());
    }

    /// Time since the last accepted append/heartbeat/snapshot from a leader.
    pub(crate) fn since_leader_contact(&self) -> Option<Duration> {
        lock(&self.leader_contact).map(|t| t.elapsed())
    }

    /// Time since this node started.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn set_vote_gate(&self, gate: VoteGate) {
        let mut current = lock(&self.vote_gate);
        if *current != gate {
            tracing::info!(from = ?*current, to = ?gate, "raft: vote gate changed");
            *current = gate;
        }
    }

    /// Rejoining an existing group: if the gate is still closed (the node's log was empty and it
    /// had not seen a fresh group forming), allow votes only once the log reaches
    /// `committed_index`; with nothing committed (`None`) there is nothing to lose: open. A gate
    /// already open stays open: the node joined the group from its very start.
    pub(crate) fn gate_until(&self, committed_index: Option<u64>) {
        let mut gate = lock(&self.vote_gate);
        if *gate == VoteGate::Closed {
            let next = match committed_index {
                Some(n) => VoteGate::UntilIndex(n),
                None => VoteGate::Open,
            };
            tracing::info!(from = ?*gate, to = ?next, "raft: vote gate changed (rejoining an existing group)");
            *gate = next;
        }
    }

    /// Decides whether a vote request may be handled, given the local last log index; opens the
    /// gate for good once the required index is reached.
    pub(crate) fn may_vote(&self, last_log_index: Option<u64>) -> Result<(), String> {
        let mut gate = lock(&self.vote_gate);
        match *gate {
            VoteGate::Open => Ok(()),
            VoteGate::Closed => Err("empty log and the group's state is not known yet".to_string()),
            VoteGate::UntilIndex(n) => {
                if last_log_index.is_some_and(|i| i >= n) {
                    tracing::info!(index = n, "raft: caught up after rejoining; vote gate open");
                    *gate = VoteGate::Open;
                    Ok(())
                } else {
                    Err(format!("rejoining: local log at {last_log_index:?}, group committed {n}"))
                }
            }
        }
    }

    /// Logs an RPC failure to `target` at warn level at most every [`WARN_EVERY`], at debug
    /// level otherwise (an isolated leader would log many lines a second).
    pub(crate) fn warn_unreachable(&self, target: NodeId, what: &str, err: &dyn std::fmt::Display) {
        let mut map = lock(&self.last_warn);
        let entry = map.entry(target).or_insert((None, 0));
        if entry.0.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(target, suppressed = entry.1, "raft: {what} to node {target} failed: {err}");
            *entry = (Some(Instant::now()), 0);
        } else {
            entry.1 += 1;
            tracing::debug!(target, "raft: {what} to node {target} failed: {err}");
        }
    }

    /// Forgets the failure state of `target` after a successful RPC, logging the recovery once.
    pub(crate) fn reachable(&self, target: NodeId) {
        let mut map = lock(&self.last_warn);
        if map.remove(&target).is_some() {
            tracing::info!(target, "raft: node {target} reachable again");
        }
    }
}
