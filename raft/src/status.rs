//! [`GroupStatus`]: one node's view of the group, computed from openraft's metrics and the RPC
//! server's record of leader contact, without waiting on the raft core.

use std::time::Duration;

use openraft::{Instant as _, ServerState};
use serde::Serialize;

use crate::typ::RaftMetrics;
use crate::types::{NodeId, NodeInfo};

/// A snapshot of this node's view of the group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStatus {
    /// This node.
    pub node_id: NodeId,
    /// `Leader`, `Follower`, `Candidate`, `Learner` (not yet part of a formed group) or `Shutdown`.
    pub state: String,
    /// Current raft term (the failover epoch).
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The leader's addresses and role.
    pub leader_info: Option<NodeInfo>,
    /// Leader whose last quorum ack is younger than the lease (`GroupConfig::lease`, shorter than
    /// the election timeout). An isolated leader keeps state `Leader` in openraft (pitfall 1);
    /// this is false for it once the lease has run out.
    pub active: bool,
    /// This node cannot reach a quorum: a leader without a quorum ack within the lease, or a
    /// non-leader that has not heard from a leader for more than `2 x election_max_ms`.
    pub lost_quorum: bool,
    /// Split brain seen from this node: it holds the leader role but cannot confirm it with a
    /// quorum (an isolated old leader that still believes it leads while another may be
    /// elected), or it knows another active leader while it believes it leads. Distinct from
    /// `lost_quorum`, which a follower cut off from the leader also reports.
    pub split_brain: bool,
    /// Leader only: milliseconds since the sending time of the last heartbeat/append a quorum
    /// acknowledged.
    pub millis_since_quorum_ack: Option<u64>,
    /// Non-leaders: milliseconds since the last append, heartbeat or snapshot accepted from a
    /// leader (`None`: never, since this process started).
    pub millis_since_leader_contact: Option<u64>,
    /// Leader only: milliseconds since each follower last acknowledged a heartbeat (a
    /// follower that never did is absent). A peer acknowledging now is alive for raft.
    pub peer_ack_ms: std::collections::BTreeMap<NodeId, u64>,
    /// Index of the last entry applied to this node's state machine.
    pub last_applied: Option<u64>,
    /// The voters, with their addresses and roles.
    pub members: Vec<(NodeId, NodeInfo)>,
}

/// Inputs of [`compute`] that do not come from openraft.
pub(crate) struct StatusInputs {
    pub(crate) lease: Duration,
    pub(crate) leader_contact_timeout: Duration,
    pub(crate) since_leader_contact: Option<Duration>,
    pub(crate) uptime: Duration,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Derives the status from openraft metrics.
pub(crate) fn compute(node_id: NodeId, m: &RaftMetrics, inputs: &StatusInputs) -> GroupStatus {
    let membership = m.membership_config.membership();
    let members: Vec<(NodeId, NodeInfo)> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let voters = membership.voter_ids().count();
    let is_leader = m.state == ServerState::Leader && m.current_leader == Some(node_id);
    let quorum_ack_age = m.last_quorum_acked.as_ref().map(|t| t.into_inner().elapsed());

    let active = is_leader && (voters == 1 || quorum_ack_age.is_some_and(|age| age < inputs.lease));
    let lost_quorum = match m.state {
        ServerState::Shutdown => true,
        _ if is_leader => !active,
        _ => inputs.since_leader_contact.unwrap_or(inputs.uptime) > inputs.leader_contact_timeout,
    };
    // Believes it leads without a fresh quorum, or sees another leader while in leader state.
    let split_brain = m.state == ServerState::Leader && (!active || m.current_leader.is_some_and(|l| l != node_id));
    GroupStatus {
        node_id,
        split_brain,
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader,
        leader_info: m.current_leader.and_then(|id| membership.get_node(&id).cloned()),
        active,
        lost_quorum,
        millis_since_quorum_ack: if is_leader { quorum_ack_age.map(millis) } else { None },
        millis_since_leader_contact: if is_leader { None } else { inputs.since_leader_contact.map(millis) },
        peer_ack_ms: if is_leader {
            m.heartbeat
                .iter()
                .flatten()
                .filter_map(|(id, t)| t.as_ref().map(|t| (*id, millis(t.into_inner().elapsed()))))
                .collect()
        } else {
            Default::default()
        },
        last_applied: m.last_applied.map(|id| id.index()),
        members,
    }
}
