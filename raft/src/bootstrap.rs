//! Forming the group from the static membership, exactly once (pitfall 3).
//!
//! Only a node that starts with an empty log runs this. It asks every peer for its
//! [`GroupInfo`] until it can decide ([`decide`], a pure function):
//! - some peer already belongs to a group and enough peers answered to be sure one of them holds
//!   every committed entry (`voters - quorum + 1` of the others): never initialize; wait to be
//!   replicated to, and vote only after catching up to the commit index they reported (wiped
//!   node rejoining: its lost vote and acknowledgements must not count twice);
//! - every peer answered and all are empty: the node with the lowest id initializes the group
//!   with the full membership; the others open their vote gate and wait;
//! - otherwise keep asking: every 300 ms for [`BOOTSTRAP_WINDOW`], then every 5 s, and never
//!   vote meanwhile.
//!
//! Requiring an answer from every peer means a fresh group forms only once all voters are up,
//! and a wiped node never starts a second group while the old one is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::network::client::fetch_group_info;
use crate::network::{GroupInfo, NodeShared, VoteGate};
use crate::store::Raft;
use crate::typ::{InitializeError, RaftError};
use crate::types::{NodeId, NodeInfo};

/// How long an empty node keeps polling its peers before giving up on deciding (it then opens
/// its vote gate and simply waits for a leader).
pub(crate) const BOOTSTRAP_WINDOW: Duration = Duration::from_secs(600);
/// Pause between two polling rounds after the window.
const SLOW_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Pause between two polling rounds.
const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// Timeout of one `/raft/group-info` request.
const INFO_TIMEOUT: Duration = Duration::from_millis(1000);

/// What an empty node should do, given the peers' answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A group exists: never initialize; vote once the log reaches `committed_index` (the
    /// highest the peers reported; `None`: nothing committed yet, nothing to lose).
    ExistingGroup { committed_index: Option<u64> },
    /// Every peer is reachable and empty, and this node has the lowest id: initialize.
    Initialize,
    /// Every peer is reachable and empty; another node initializes.
    FreshGroupForming,
    /// Not every peer answered yet.
    Wait { missing: Vec<NodeId> },
}

/// Decides from the peers' answers (`None`: no valid answer). `peers` includes this node.
pub(crate) fn decide(
    self_id: NodeId,
    peers: &BTreeMap<NodeId, NodeInfo>,
    answers: &BTreeMap<NodeId, Option<GroupInfo>>,
) -> Decision {
    let valid: Vec<&GroupInfo> = answers
        .iter()
        .filter(|(id, _)| **id != self_id && peers.contains_key(id))
        .filter_map(|(id, a)| a.as_ref().filter(|info| info.node_id == *id))
        .collect();
    let missing: Vec<NodeId> = peers
        .keys()
        .filter(|id| **id != self_id)
        .filter(|id| !valid.iter().any(|info| info.node_id == **id))
        .copied()
        .collect();
    if valid.iter().any(|info| info.initialized) {
        // The group exists. This node lost its log (and the votes and acknowledgements in
        // it): it may vote again only once it holds every committed entry. A committed entry
        // is on a quorum, possibly with this node among it, so only answers from
        // `voters - quorum + 1` other peers are sure to include one that has it.
        let voters = peers.len();
        let needed = voters - (voters / 2 + 1) + 1;
        if valid.len() < needed {
            return Decision::Wait { missing };
        }
        let committed_index = valid.iter().filter_map(|info| info.committed_index).max();
        return Decision::ExistingGroup { committed_index };
    }
    if !missing.is_empty() {
        return Decision::Wait { missing };
    }
    if peers.keys().next() == Some(&self_id) {
        Decision::Initialize
    } else {
        Decision::FreshGroupForming
    }
}

/// What the bootstrap task needs.
pub(crate) struct Bootstrap {
    pub(crate) node_id: NodeId,
    pub(crate) peers: BTreeMap<NodeId, NodeInfo>,
    pub(crate) raft: Raft,
    pub(crate) node: Arc<NodeShared>,
    pub(crate) client: reqwest::Client,
    /// Set once this process has initialized the group.
    pub(crate) did_initialize: Arc<AtomicBool>,
}

impl Bootstrap {
    /// Asks every peer for its [`GroupInfo`]. An answer from the wrong node id or with another
    /// voter list is a configuration error: it is logged (once per peer) and not counted.
    async fn poll_peers(&self, reported: &mut BTreeSet<NodeId>) -> BTreeMap<NodeId, Option<GroupInfo>> {
        let voters: Vec<NodeId> = self.peers.keys().copied().collect();
        let requests = self.peers.iter().filter(|(id, _)| **id != self.node_id).map(|(id, info)| async move {
            let answer = fetch_group_info(&self.client, &self.node, &info.raft_addr, INFO_TIMEOUT).await;
            (*id, info.raft_addr.clone(), answer)
        });
        let mut answers = BTreeMap::new();
        for (id, addr, answer) in futures::future::join_all(requests).await {
            let valid = match answer {
                Ok(a) if a.node_id != id => {
                    if reported.insert(id) {
                        tracing::error!(
                            expected = id,
                            answered = a.node_id,
                            %addr,
                            "raft bootstrap: peer answered with another node id; check the peer list"
                        );
                    }
                    None
                }
                Ok(a) if a.voters != voters => {
                    if reported.insert(id) {
                        tracing::error!(
                            peer = id,
                            ours = ?voters,
                            theirs = ?a.voters,
                            "raft bootstrap: peer has another voter list; every node needs the same peers"
                        );
                    }
                    None
                }
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::debug!(peer = id, "raft bootstrap: group-info failed: {e}");
                    None
                }
            };
            answers.insert(id, valid);
        }
        answers
    }

    /// Initializes the group with the full membership (every peer answered, all empty, this
    /// node has the lowest id).
    async fn initialize(&self) {
        self.node.set_vote_gate(VoteGate::Open);
        match self.raft.initialize(self.peers.clone()).await {
            Ok(()) => {
                self.did_initialize.store(true, Ordering::SeqCst);
                tracing::info!(node_id = self.node_id, members = ?self.peers.keys().collect::<Vec<_>>(), "raft bootstrap: initialized the group");
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                tracing::info!(node_id = self.node_id, "raft bootstrap: already initialized: {e}");
            }
            Err(e) => {
                tracing::error!(node_id = self.node_id, "raft bootstrap: initialize failed: {e}");
            }
        }
    }

    /// Polls until a decision is reached: every [`POLL_INTERVAL`] for [`BOOTSTRAP_WINDOW`],
    /// then every [`SLOW_POLL_INTERVAL`]. It ends with a decision or with the process (the task
    /// is aborted at shutdown): an undecided empty node never votes, since it may have lost
    /// committed entries and could help elect a leader that lacks them.
    pub(crate) async fn run(self) {
        let started = Instant::now();
        let (mut announced_wait, mut fresh_logged, mut slow_logged) = (false, false, false);
        let mut reported = BTreeSet::new();
        loop {
            let answers = self.poll_peers(&mut reported).await;
            match decide(self.node_id, &self.peers, &answers) {
                Decision::ExistingGroup { committed_index } => {
                    tracing::info!(
                        node_id = self.node_id,
                        ?committed_index,
                        "raft bootstrap: empty log but the group exists; not initializing, voting once caught up"
                    );
                    self.node.gate_until(committed_index);
                    return;
                }
                Decision::Initialize => {
                    self.initialize().await;
                    return;
                }
                Decision::FreshGroupForming => {
                    if !fresh_logged {
                        tracing::info!(node_id = self.node_id, "raft bootstrap: all peers empty; waiting for the lowest node id to initialize");
                        fresh_logged = true;
                    }
                    self.node.set_vote_gate(VoteGate::Open);
                }
                Decision::Wait { missing } => {
                    if !announced_wait {
                        tracing::info!(node_id = self.node_id, ?missing, "raft bootstrap: waiting for enough peers to answer before deciding");
                        announced_wait = true;
                    }
                }
            }
            let slow = started.elapsed() >= BOOTSTRAP_WINDOW;
            if slow && !slow_logged {
                tracing::warn!(
                    node_id = self.node_id,
                    "raft bootstrap: no decision within {BOOTSTRAP_WINDOW:?}; still not voting, asking the peers every {SLOW_POLL_INTERVAL:?}"
                );
                slow_logged = true;
            }
            tokio::time::sleep(if slow { SLOW_POLL_INTERVAL } else { POLL_INTERVAL }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(ids: &[NodeId]) -> BTreeMap<NodeId, NodeInfo> {
        ids.iter()
            .map(|id| (*id, NodeInfo { raft_addr: format!("127.0.0.1:{}", 7000 + id), ..Default::default() }))
            .collect()
    }

    fn info(id: NodeId, initialized: bool, committed: Option<u64>) -> Option<GroupInfo> {
        Some(GroupInfo {
            node_id: id,
            initialized,
            committed_index: committed,
            term: 0,
            leader: None,
            voters: vec![1, 2, 3],
        })
    }

    #[test]
    fn decisions() {
        let p = peers(&[1, 2, 3]);
        type Case = (NodeId, Vec<(NodeId, Option<GroupInfo>)>, Decision);
        let cases: Vec<Case> = vec![
            // Fresh group: the lowest id initializes, the others wait for it.
            (1, vec![(2, info(2, false, None)), (3, info(3, false, None))], Decision::Initialize),
            (2, vec![(1, info(1, false, None)), (3, info(3, false, None))], Decision::FreshGroupForming),
            // A peer is missing: wait, even the lowest id.
            (1, vec![(2, info(2, false, None)), (3, None)], Decision::Wait { missing: vec![3] }),
            // A wiped node of three hears one initialized peer: not enough to know every
            // committed entry (the other peer may hold the only other copy): wait.
            (1, vec![(2, None), (3, info(3, true, Some(7)))], Decision::Wait { missing: vec![2] }),
            (
                1,
                vec![(2, info(2, true, Some(9))), (3, info(3, true, Some(4)))],
                Decision::ExistingGroup { committed_index: Some(9) },
            ),
            (
                3,
                vec![(1, info(1, true, None)), (2, info(2, false, None))],
                Decision::ExistingGroup { committed_index: None },
            ),
            // An answer from the wrong node id does not count.
            (1, vec![(2, info(3, false, None)), (3, info(3, false, None))], Decision::Wait { missing: vec![2] }),
        ];
        for (self_id, answers, want) in cases {
            let answers: BTreeMap<_, _> = answers.into_iter().collect();
            assert_eq!(decide(self_id, &p, &answers), want, "self {self_id}, answers {answers:?}");
        }
        // Five voters: three answers of the four others are enough, two are not.
        let p5 = peers(&[1, 2, 3, 4, 5]);
        let five = |answers: Vec<(NodeId, Option<GroupInfo>)>| decide(1, &p5, &answers.into_iter().collect());
        let i5 = |id: NodeId, c: u64| {
            let mut i = info(id, true, Some(c));
            if let Some(x) = i.as_mut() {
                x.voters = vec![1, 2, 3, 4, 5];
            }
            i
        };
        assert_eq!(five(vec![(2, i5(2, 3)), (3, i5(3, 5)), (4, None), (5, None)]), Decision::Wait { missing: vec![4, 5] });
        assert_eq!(five(vec![(2, i5(2, 3)), (3, i5(3, 5)), (4, i5(4, 4)), (5, None)]), Decision::ExistingGroup { committed_index: Some(5) });
        // A single-node group initializes at once.
        assert_eq!(decide(5, &peers(&[5]), &BTreeMap::new()), Decision::Initialize);
    }
}
