//! `ClusterEvent`: what happened in a cluster that operators may want to hear about (a server
//! changed state, a problem opened or resolved, a master change ended), kept in a bounded
//! outbox of the cluster state until the monitor hands it to the alert dispatcher.

use std::collections::VecDeque;

use crate::cluster::topology::ServerState;
use crate::config::HostPort;

/// Events an outbox keeps at most; older ones are dropped (and counted) beyond it.
pub const OUTBOX_CAPACITY: usize = 256;

/// How a failover or switchover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A new master was promoted.
    Done,
    /// Refused before any change (no candidate, long transactions, ...).
    Refused,
    /// `failover-pre-script` exited non-zero or passed its deadline: nothing was changed.
    Vetoed,
    /// Started and failed (or cancelled) on the way.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Vetoed => "vetoed",
            Outcome::Failed => "failed",
        }
    }
}

/// Failover or switchover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Failover,
    Switchover,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Failover => "failover",
            ChangeKind::Switchover => "switchover",
        }
    }
}

/// One event of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A server's state changed (seen by this node's probes).
    ServerState { server: HostPort, from: ServerState, to: ServerState },
    /// A problem of `/topology/alerts` opened or resolved.
    Problem { code: &'static str, desc: String, server: Option<String>, resolved: bool },
    /// A failover or switchover ended. `new_master` is the promoted server (`Done`) or the
    /// elected candidate when one was chosen.
    MasterChange { kind: ChangeKind, outcome: Outcome, old_master: Option<HostPort>, new_master: Option<HostPort>, message: String },
}

impl ClusterEvent {
    /// A short name for metrics labels: `server_state`, `problem`, `failover`, `switchover`.
    pub fn label(&self) -> &'static str {
        match self {
            ClusterEvent::ServerState { .. } => "server_state",
            ClusterEvent::Problem { .. } => "problem",
            ClusterEvent::MasterChange { kind, .. } => kind.as_str(),
        }
    }

    /// One line for operators.
    pub fn summary(&self) -> String {
        match self {
            ClusterEvent::ServerState { server, from, to } => format!("Server {server} state changed from {from} to {to}"),
            ClusterEvent::Problem { code, desc, resolved: false, .. } => format!("{code}: {desc}"),
            ClusterEvent::Problem { code, desc, resolved: true, .. } => format!("Resolved {code}: {desc}"),
            ClusterEvent::MasterChange { kind, outcome, message, .. } => format!("{} {}: {message}", kind.as_str(), outcome.as_str()),
        }
    }
}

/// A bounded queue of events, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventOutbox {
    events: VecDeque<ClusterEvent>,
    /// Events dropped because the outbox was full (never drained: a stopped monitor).
    pub dropped: u64,
}

impl EventOutbox {
    pub fn push(&mut self, e: ClusterEvent) {
        if self.events.len() >= OUTBOX_CAPACITY {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(e);
    }

    /// Takes every event, oldest first.
    pub fn drain(&mut self) -> Vec<ClusterEvent> {
        self.events.drain(..).collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_is_bounded_and_keeps_the_newest() {
        let mut o = EventOutbox::default();
        let hp = HostPort { host: "h".into(), port: 1 };
        for i in 0..(OUTBOX_CAPACITY + 3) {
            o.push(ClusterEvent::Problem { code: "ERR00012", desc: i.to_string(), server: None, resolved: false });
        }
        assert_eq!(o.len(), OUTBOX_CAPACITY);
        assert_eq!(o.dropped, 3);
        let all = o.drain();
        assert!(matches!(&all[0], ClusterEvent::Problem { desc, .. } if desc == "3"));
        assert!(o.is_empty());
        let e = ClusterEvent::ServerState { server: hp, from: ServerState::Slave, to: ServerState::Failed };
        assert_eq!(e.summary(), "Server h:1 state changed from Slave to Failed");
        assert_eq!(e.label(), "server_state");
    }
}
