//! `ManagerGroup`: this node's membership in the manager group (openraft, in the `raft`
//! crate). It decides whether this node may act (`Coordinator::check`), replicates each
//! cluster's decisions (`Coordinator::save`), routes mutating API requests to the leader, and
//! collects the other managers' view of a failed master before a failover.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replication_manager_api::wire::{GroupNodeView, GroupView};
use replication_manager_api::LeaderRoute;
use replication_manager_raft::{Command, GroupConfig, GroupStatus, GroupTls, KvOp, NodeInfo, RaftGroup, WriteError};
use serde_json::Value;

use crate::config::{NodeRole, ServerConfig};

pub mod idempotency;
use crate::cluster::records::PersistedCluster;

/// The topic of the failure vote's question on the raft channel.
const MASTER_VIEW: &str = "master-view";

/// Key of the replicated API token signing key.
const TOKEN_KEY: &str = "api/token-key";

fn cluster_key(cluster: &str) -> String {
    format!("cluster/{cluster}/state")
}

/// Why the group refused: this node may not act, or a decision was not replicated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// An arbitrator never touches databases.
    #[error("this node is an arbitrator and never touches databases")]
    Arbitrator,
    /// No fresh quorum confirmation of this node's leadership (term, node in the reason).
    #[error("not the active leader: {0}")]
    NotLeader(String),
    /// Another node leads now; the decision was not replicated.
    #[error("not the leader any more (leader: {leader:?}); decision not replicated")]
    LeaderChanged { leader: Option<u64> },
    /// The write did not commit.
    #[error("decision not replicated: {0}")]
    NotReplicated(String),
    /// The replicated copy changed since it was read (another leader wrote): not overwritten.
    #[error("the replicated cluster state changed meanwhile (another leader wrote); decision not replicated")]
    Conflict,
    /// The state could not be encoded.
    #[error("encoding cluster state: {0}")]
    Encoding(String),
}

/// What the failover machinery needs from the group: permission to act, and replication of
/// its decisions. Boxed futures keep it object-safe.
pub trait Coordinator: Send + Sync {
    /// Ok when this node may mutate databases right now (fresh quorum confirmation). The error
    /// says why not; the caller must not act.
    fn check<'a>(&'a self, action: &'a str) -> Pin<Box<dyn Future<Output = Result<(), GroupError>> + Send + 'a>>;
    /// Replicates a cluster's state if the replicated copy is still `expected` (as read with
    /// [`Coordinator::load_raw`]; `None`: none yet); Ok only once committed by a quorum. A
    /// copy changed meanwhile (another leader wrote) is refused: nothing is overwritten blindly.
    fn save_if<'a>(
        &'a self,
        cluster: &'a str,
        expected: Option<Value>,
        state: PersistedCluster,
        op_id: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupError>> + Send + 'a>>;
    /// The replicated state of a cluster as applied on this node.
    fn load(&self, cluster: &str) -> Option<PersistedCluster> {
        decode_cluster(cluster, self.load_raw(cluster)?)
    }
    /// The replicated state of a cluster as stored (for [`Coordinator::save_if`]).
    fn load_raw(&self, cluster: &str) -> Option<Value>;
    /// `(term, node)` of this node's current leadership, for logs.
    fn epoch(&self) -> (u64, u64);
}

/// Status-check rounds in a row an arbitrator must miss before `isFailedArbitrator`.
const ARBITRATOR_MISSES: u32 = 2;

/// This node in the manager group.
pub struct ManagerGroup {
    raft: RaftGroup,
    role: NodeRole,
    /// Other voters' HTTP API addresses and roles (for observations).
    peers_http: BTreeMap<u64, (String, NodeRole)>,
    http: reqwest::Client,
    /// An arbitrator of the group missed this node's last ARBITRATOR_MISSES checks.
    arbitrator_down: AtomicBool,
    /// Status-check rounds in a row where some arbitrator did not answer.
    arbitrator_misses: AtomicU32,
    /// Whether this node is the active leader, updated by one watcher at each raft state
    /// change: every cluster monitor waits on it (not on the raft metrics themselves, which
    /// change at every quorum round and would wake every monitor each time).
    active: tokio::sync::watch::Receiver<bool>,
}

impl ManagerGroup {
    /// Starts (or rejoins) the group described by the `raft-*` keys; without `raft-peers`, a
    /// single-node group of its own on an ephemeral loopback port.
    pub async fn start(server: &ServerConfig) -> anyhow::Result<Arc<ManagerGroup>> {
        let g = &server.group;
        let self_http = format!("{}:{}", server.http_bind_address, server.http_port);
        let mut peers = BTreeMap::new();
        let mut peers_http = BTreeMap::new();
        let bind: SocketAddr = if g.peers.is_empty() {
            peers.insert(g.node_id, NodeInfo { raft_addr: "127.0.0.1:0".to_string(), api_addr: self_http, role: g.role.as_str().to_string() });
            "127.0.0.1:0".parse().context("loopback address")?
        } else {
            for p in &g.peers {
                peers.insert(p.id, NodeInfo { raft_addr: p.raft_addr.clone(), api_addr: p.http_addr.clone(), role: p.role.as_str().to_string() });
                if p.id != g.node_id {
                    peers_http.insert(p.id, (p.http_addr.clone(), p.role));
                }
            }
            g.bind.parse().with_context(|| format!("raft-bind-address {}", g.bind))?
        };
        let mut cfg = GroupConfig::new(g.node_id, bind, peers, server.datadir.join("raft"));
        cfg.heartbeat_ms = g.heartbeat_ms;
        cfg.election_min_ms = g.election_min_ms;
        cfg.election_max_ms = g.election_max_ms;
        cfg.secret = g.secret.clone();
        if let Some(t) = &g.tls {
            let read = |p: &std::path::Path, key: &str| std::fs::read_to_string(p).with_context(|| format!("{key} {}", p.display()));
            cfg.tls = Some(GroupTls { cert_pem: read(&t.cert, "raft-tls-cert")?, key_pem: read(&t.key, "raft-tls-key")?, ca_pem: read(&t.ca, "raft-tls-ca")? });
        }
        if cfg.secret.is_none() && cfg.tls.is_none() && !g.peers.is_empty() {
            tracing::warn!("neither raft TLS nor raft-secret is set: anyone who reaches the raft port can take part in the group");
        }
        let raft = RaftGroup::start(cfg).await.context("starting the manager group")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(1))
            .build()
            .context("building the observation client")?;
        tracing::info!(node = g.node_id, role = g.role.as_str(), voters = g.peers.len().max(1), "manager group started");
        let (active_tx, active) = tokio::sync::watch::channel(raft.status().active);
        let watched = raft.clone();
        // Ends with the process: once the raft core stopped, `metrics_changed` never resolves.
        tokio::spawn(async move {
            loop {
                let next = watched.metrics_changed();
                let now = watched.status().active;
                active_tx.send_if_modified(|a| std::mem::replace(a, now) != now);
                next.await;
                // The metrics change at every quorum round (one per monitor tick): look at
                // most every 20 ms, a delay no takeover notices.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Arc::new(ManagerGroup { raft, role: g.role, peers_http, http, arbitrator_down: AtomicBool::new(false), arbitrator_misses: AtomicU32::new(0), active }))
    }

    pub fn node_id(&self) -> u64 {
        self.raft.node_id()
    }

    pub fn role(&self) -> NodeRole {
        self.role
    }

    pub fn status(&self) -> GroupStatus {
        self.raft.status()
    }

    /// A receiver of "this node is the active leader", changed when that changes (as seen at
    /// raft state changes; a lease running out is seen at the next one).
    pub fn active_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.active.clone()
    }

    /// Leader with a recent quorum ack ("A").
    pub fn is_active(&self) -> bool {
        self.raft.status().active
    }

    /// Where mutating requests run now.
    pub fn leader_route(&self) -> LeaderRoute {
        let s = self.raft.status();
        match s.leader {
            Some(l) if l == s.node_id && s.active => LeaderRoute::Local,
            Some(l) if l != s.node_id && !s.lost_quorum => match s.leader_info {
                Some(info) if !info.api_addr.is_empty() => LeaderRoute::Remote { node_id: l, http_addr: info.api_addr },
                _ => LeaderRoute::Unknown,
            },
            _ => LeaderRoute::Unknown,
        }
    }

    /// `/api/group`.
    pub fn view(&self) -> GroupView {
        let s = self.raft.status();
        GroupView {
            node_id: s.node_id,
            status: if s.active { "A" } else { "S" }.to_string(),
            state: s.state.clone(),
            term: s.term,
            leader: s.leader,
            split_brain: s.split_brain,
            millis_since_quorum_ack: s.millis_since_quorum_ack,
            millis_since_leader_contact: s.millis_since_leader_contact,
            last_applied: s.last_applied,
            nodes: s
                .members
                .iter()
                .map(|(id, info)| GroupNodeView {
                    id: *id,
                    raft_addr: info.raft_addr.clone(),
                    http_addr: info.api_addr.clone(),
                    role: info.role.clone(),
                    is_leader: s.leader == Some(*id),
                    is_self: *id == s.node_id,
                })
                .collect(),
        }
    }

    /// The replicated token signing key; the first leader creates it. Waits (bounded) for a
    /// leader when none is known yet.
    pub async fn token_key(&self, wait: Duration) -> anyhow::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(hex) = self.raft.get(TOKEN_KEY).and_then(|v| v.as_str().map(str::to_string)) {
                if let Some(k) = decode_hex(&hex).filter(|k| k.len() >= 32) {
                    return Ok(k);
                }
            }
            if self.is_active() {
                use rand::RngCore;
                let mut key = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                let cmd = Command::new(
                    format!("token-key-{}", self.node_id()),
                    vec![KvOp::CompareAndPut { key: TOKEN_KEY.to_string(), expected: None, value: Value::String(hex) }],
                );
                // A failed compare means another leader set it first: read it next turn.
                if let Err(e) = self.raft.write(cmd).await {
                    tracing::debug!(error = %e, "token key proposal");
                }
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("no token signing key replicated within {wait:?} (no leader in the manager group?)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Hands leadership to a live manager when this node is an arbitrator and was elected:
    /// the first manager (by id) whose API answers within a second; a dead one is never
    /// chosen, and without a live manager the arbitrator keeps the lead (it never touches a
    /// database).
    pub async fn hand_over_if_arbitrator(&self) {
        if self.role != NodeRole::Arbitrator {
            return;
        }
        let s = self.raft.status();
        if s.state != "Leader" {
            return;
        }
        for (id, _) in s.members.iter().filter(|(id, info)| *id != s.node_id && info.role == "manager") {
            let Some((addr, _)) = self.peers_http.get(id) else { continue };
            let alive = self
                .http
                .get(format!("http://{addr}/api/status"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !alive {
                tracing::info!(to = id, "arbitrator: manager does not answer, not handing leadership to it");
                continue;
            }
            tracing::info!(to = id, "arbitrator elected leader: handing leadership to a live manager");
            match self.raft.transfer_leader(*id).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(to = id, error = %e, "leadership transfer failed"),
            }
        }
    }

    /// Answers the other managers' failure votes: `view(cluster)` is how this node sees the
    /// cluster's master (`{"role","master","state"}`), asked over the raft channel.
    pub fn serve_master_views(&self, view: impl Fn(&str) -> Option<Value> + Send + Sync + 'static) {
        self.raft.set_app_handler(Arc::new(move |topic: &str, body: &Value| match topic {
            MASTER_VIEW => view(body["cluster"].as_str()?),
            _ => None,
        }));
    }

    /// Asks the other managers how they see `master` of `cluster`; returns (managers that
    /// vote, managers that see it failed). The question travels on the raft channel, so it is
    /// authenticated like the raft RPC (TLS, secret). A manager that does not answer abstains
    /// only when raft also sees it down (no heartbeat acknowledged within the leader contact
    /// timeout); one alive for raft that stays silent counts as "not failed", so a leader never
    /// decides alone because its peers cannot answer.
    pub async fn failed_votes(&self, cluster: &str, master: &str) -> (usize, usize) {
        let status = self.raft.status();
        let live_window = self.raft.config().leader_contact_timeout();
        let body = serde_json::json!({ "cluster": cluster });
        let asks = self.peers_http.iter().filter(|(_, (_, role))| *role == NodeRole::Manager).map(|(id, _)| {
            let raft_alive = status.peer_ack_ms.get(id).is_some_and(|ms| u128::from(*ms) < live_window.as_millis());
            let (id, body) = (*id, &body);
            async move {
                match self.raft.ask(id, MASTER_VIEW, body, Duration::from_secs(1)).await {
                    Ok(v) if v["role"] == "arbitrator" => None,
                    // Failed there, or dead for certain there (`death` says why).
                    Ok(v) => Some(v["master"] == master && (v["state"] == "Failed" || v["death"].as_str().is_some_and(|d| !d.is_empty()))),
                    Err(e) if raft_alive => {
                        tracing::warn!(node = id, error = %e, "manager alive for raft did not answer the failure vote: counted as not failed");
                        Some(false)
                    }
                    Err(e) => {
                        tracing::info!(node = id, error = %e, "manager down for raft: abstains from the failure vote");
                        None
                    }
                }
            }
        });
        let answers: Vec<Option<bool>> = futures::future::join_all(asks).await;
        let answered = answers.iter().flatten().count();
        let failed = answers.iter().flatten().filter(|f| **f).count();
        (answered, failed)
    }

    /// Checks that every arbitrator of the group answers its API (`isFailedArbitrator`).
    pub async fn check_arbitrators(&self) {
        let arbitrators: Vec<&String> = self.peers_http.values().filter(|(_, r)| *r == NodeRole::Arbitrator).map(|(a, _)| a).collect();
        let mut missed = false;
        for addr in arbitrators {
            let ok = self.http.get(format!("http://{addr}/api/status")).send().await.is_ok_and(|r| r.status().is_success());
            if !ok {
                tracing::debug!(arbitrator = %addr, "arbitrator did not answer its status check");
                missed = true;
            }
        }
        // One slow answer on a loaded machine is not a failure: the flag is raised after
        // ARBITRATOR_MISSES rounds in a row and cleared by the first round where all answer.
        let rounds = if missed {
            self.arbitrator_misses.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.arbitrator_misses.store(0, Ordering::Relaxed);
            0
        };
        let down = rounds >= ARBITRATOR_MISSES;
        if self.arbitrator_down.swap(down, Ordering::Relaxed) != down {
            if down {
                tracing::warn!("an arbitrator of the manager group does not answer");
            } else {
                tracing::info!("every arbitrator of the manager group answers");
            }
        }
    }

    /// True when an arbitrator did not answer the last check.
    pub fn arbitrator_down(&self) -> bool {
        self.arbitrator_down.load(Ordering::Relaxed)
    }

    pub async fn shutdown(&self) {
        self.raft.shutdown().await;
    }
}

impl Coordinator for ManagerGroup {
    fn check<'a>(&'a self, action: &'a str) -> Pin<Box<dyn Future<Output = Result<(), GroupError>> + Send + 'a>> {
        Box::pin(async move {
            if self.role == NodeRole::Arbitrator {
                return Err(GroupError::Arbitrator);
            }
            match self.raft.ensure_leader().await {
                Ok((term, node)) => {
                    tracing::debug!(term, node, action, "leadership confirmed");
                    Ok(())
                }
                Err(e) => Err(GroupError::NotLeader(e.to_string())),
            }
        })
    }

    fn save_if<'a>(
        &'a self,
        cluster: &'a str,
        expected: Option<Value>,
        state: PersistedCluster,
        op_id: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), GroupError>> + Send + 'a>> {
        Box::pin(async move {
            let value = serde_json::to_value(&state).map_err(|e| GroupError::Encoding(e.to_string()))?;
            let cmd = Command::new(op_id, vec![KvOp::CompareAndPut { key: cluster_key(cluster), expected, value }]);
            match self.raft.write(cmd).await {
                Ok(r) if r.applied => Ok(()),
                Ok(_) => Err(GroupError::Conflict),
                Err(WriteError::ForwardToLeader { leader }) => Err(GroupError::LeaderChanged { leader: leader.map(|l| l.0) }),
                Err(e) => Err(GroupError::NotReplicated(e.to_string())),
            }
        })
    }

    fn load_raw(&self, cluster: &str) -> Option<Value> {
        self.raft.get(&cluster_key(cluster))
    }

    fn epoch(&self) -> (u64, u64) {
        let s = self.raft.status();
        (s.term, s.node_id)
    }
}

/// Decodes a replicated cluster state; an unreadable one is logged and treated as absent.
pub fn decode_cluster(cluster: &str, v: Value) -> Option<PersistedCluster> {
    match serde_json::from_value(v) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(cluster, error = %e, "replicated cluster state is unreadable");
            None
        }
    }
}

/// Decodes a hex string.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
