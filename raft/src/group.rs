//! [`RaftGroup`]: one member of the manager group. Owns the raft node, its RocksDB storage, its
//! raft RPC server and the bootstrap task, and offers writes, leadership proofs, local reads and
//! status to the rest of the manager.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::ForwardReason;
use openraft::impls::ProgressResponder;
use openraft::storage::RaftLogStorage as _;
use openraft::{Instant as _, RaftLogReader as _, ReadPolicy};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::bootstrap::Bootstrap;
use crate::config::GroupConfig;
use crate::error::{raft_err, GroupError, NotLeader, WriteError};
use crate::network::client::{http_client, HttpNetworkFactory};
use crate::network::server::{router, RpcState};
use crate::network::{NodeShared, VoteGate};
use crate::status::{compute, GroupStatus, StatusInputs};
use crate::store::{open_stores, SmShared};
use crate::store::Raft;
use crate::typ::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError, RaftMetrics};
use crate::types::{Command, CommandResult, NodeId, NodeInfo};

/// How long `shutdown` waits for each part (raft core, RPC server, storage) to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll period while waiting on metrics or storage release.
const POLL: Duration = Duration::from_millis(20);

/// Handle on this node's membership in the manager group; cheap to clone.
///
/// Only the leader acts on databases: before each action call [`RaftGroup::ensure_leader`]
/// (a fresh quorum round), and record intents with [`RaftGroup::write`].
#[derive(Clone)]
pub struct RaftGroup {
    inner: Arc<GroupInner>,
}

struct GroupInner {
    cfg: GroupConfig,
    raft: Raft,
    sm: Arc<SmShared>,
    node: Arc<NodeShared>,
    did_initialize: Arc<AtomicBool>,
    /// Raised once RocksDB is closed.
    db_closed: Arc<AtomicBool>,
    server: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    bootstrap: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    /// The raft HTTP client (authenticated like every raft RPC), for application questions.
    client: reqwest::Client,
    /// The last leadership round: when it started and what it proved. Held during a round, so
    /// callers queue behind it (see [`RaftGroup::ensure_leader`]).
    read_round: tokio::sync::Mutex<Option<(Instant, Result<(u64, NodeId), NotLeader>)>>,
    /// Leadership rounds run (ReadIndex), for tests and figures.
    read_rounds: AtomicU64,
}

fn take<T>(m: &Mutex<Option<T>>) -> Option<T> {
    m.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl RaftGroup {
    /// Opens RocksDB under `data_dir` (log and state machine; vote, appended entries and applied
    /// state are fsynced before being acknowledged), builds the raft node, serves raft RPC on
    /// `raft_bind` (its own HTTP server, separate from the API), and forms the group from the
    /// static membership.
    ///
    /// A node initializes the group only if its log is empty, it has the lowest id, and every
    /// peer answered that it is empty too (see `bootstrap`); this runs in the background, so
    /// `start` returns before the group has a leader. A restarted node simply rejoins. A node
    /// whose data was wiped never initializes again: it waits for the leader to replicate to it,
    /// and grants votes only once it has caught up with the commit index its peers reported.
    pub async fn start(cfg: GroupConfig) -> Result<RaftGroup, GroupError> {
        cfg.validate()?;
        let node_id = cfg.node_id;
        let raft_config = Arc::new(cfg.raft_config()?);

        let storage_err =
            |source: std::io::Error| GroupError::Storage { path: cfg.data_dir.display().to_string(), source };
        let data_dir = cfg.data_dir.clone();
        let (mut log, sm, db_closed) = tokio::task::spawn_blocking(move || open_stores(&data_dir))
            .await
            .map_err(|e| storage_err(std::io::Error::other(format!("opening task failed: {e}"))))?
            .map_err(storage_err)?;
        let log_state = log.get_log_state().await.map_err(storage_err)?;
        let vote = log.read_vote().await.map_err(storage_err)?;
        let sm_shared = sm.shared();
        let empty = log_state.last_log_id.is_none() && sm_shared.last_applied_index() == 0;
        tracing::info!(
            node_id,
            data_dir = %cfg.data_dir.display(),
            last_log = ?log_state.last_log_id,
            ?vote,
            empty,
            "raft: storage opened"
        );

        let listener = tokio::net::TcpListener::bind(cfg.raft_bind)
            .await
            .map_err(|source| GroupError::Bind { addr: cfg.raft_bind, source })?;

        let node = Arc::new(NodeShared::new(if empty { VoteGate::Closed } else { VoteGate::Open }, cfg.tls.is_some()));
        let client = http_client(cfg.secret.as_deref(), cfg.tls.as_ref()).map_err(|e| raft_err(node_id, "building the raft HTTP client", e))?;
        let tls_server = match &cfg.tls {
            Some(t) => Some(crate::network::tls::server_config(t).map_err(|e| raft_err(node_id, "raft TLS", e))?),
            None => None,
        };
        let network = HttpNetworkFactory::new(client.clone(), node.clone());
        let raft = openraft::Raft::new(node_id, raft_config, network, log, sm)
            .await
            .map_err(|e| raft_err(node_id, "starting the raft node", e))?;

        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let voters = cfg.peers.keys().copied().collect();
        let app = router(RpcState {
            node_id,
            voters,
            raft: raft.clone(),
            node: node.clone(),
            secret: cfg.secret.as_deref().map(Arc::from),
        });
        let server = tokio::spawn(async move {
            match tls_server {
                None => {
                    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::error!(node_id, "raft RPC server failed: {e}");
                    }
                }
                Some(tls) => {
                    let handle = axum_server::Handle::new();
                    let stopper = handle.clone();
                    tokio::spawn(async move {
                        let _ = stop_rx.await;
                        stopper.graceful_shutdown(Some(Duration::from_secs(1)));
                    });
                    let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
                    let served = match listener.into_std() {
                        Ok(std_listener) => match axum_server::from_tcp_rustls(std_listener, rustls) {
                            Ok(server) => server.handle(handle).serve(app.into_make_service()).await,
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    };
                    if let Err(e) = served {
                        tracing::error!(node_id, "raft RPC server (TLS) failed: {e}");
                    }
                }
            }
        });
        tracing::info!(node_id, bind = %cfg.raft_bind, tls = cfg.tls.is_some(), "raft: RPC server listening");

        let did_initialize = Arc::new(AtomicBool::new(false));
        let bootstrap = if empty {
            let task = Bootstrap {
                node_id,
                peers: cfg.peers.clone(),
                raft: raft.clone(),
                node: node.clone(),
                client: client.clone(),
                did_initialize: did_initialize.clone(),
            };
            Some(tokio::spawn(task.run()))
        } else {
            None
        };

        Ok(RaftGroup {
            inner: Arc::new(GroupInner {
                db_closed,
                cfg,
                raft,
                sm: sm_shared,
                node,
                did_initialize,
                server: Mutex::new(Some((stop_tx, server))),
                bootstrap: Mutex::new(bootstrap),
                stopped: AtomicBool::new(false),
                client,
                read_round: tokio::sync::Mutex::new(None),
                read_rounds: AtomicU64::new(0),
            }),
        })
    }

    /// Installs the application's answers to its peers' questions ([`RaftGroup::ask`]).
    pub fn set_app_handler(&self, handler: crate::network::AppHandler) {
        self.inner.node.set_app_handler(handler);
    }

    /// Asks peer `peer` the application question `topic` over the raft channel (TLS and the
    /// group secret apply), within `timeout`.
    pub async fn ask(&self, peer: NodeId, topic: &str, body: &serde_json::Value, timeout: std::time::Duration) -> Result<serde_json::Value, String> {
        let info = self.inner.cfg.peers.get(&peer).ok_or_else(|| format!("node {peer} is not a member"))?;
        crate::network::client::ask(&self.inner.client, &self.inner.node, &info.raft_addr, topic, body, timeout).await
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.cfg.node_id
    }

    /// The configuration this node was started with.
    pub fn config(&self) -> &GroupConfig {
        &self.inner.cfg
    }

    fn metrics(&self) -> RaftMetrics {
        self.inner.raft.metrics().borrow_watched().clone()
    }

    fn node_info(&self, id: NodeId) -> Option<NodeInfo> {
        let m = self.inner.raft.metrics().borrow_watched().membership_config.clone();
        m.membership().get_node(&id).cloned().or_else(|| self.inner.cfg.peers.get(&id).cloned())
    }

    fn leader_of(&self, forward: &ForwardToLeader) -> Option<(NodeId, NodeInfo)> {
        let id = forward.leader_id?;
        let info = forward.leader_node.clone().or_else(|| self.node_info(id))?;
        Some((id, info))
    }

    fn map_forward(&self, forward: &ForwardToLeader) -> WriteError {
        match forward.reason {
            ForwardReason::LeaseExpired => {
                WriteError::NoQuorum(format!("node {}: leader lease expired, no quorum ack", self.node_id()))
            }
            _ => WriteError::ForwardToLeader { leader: self.leader_of(forward) },
        }
    }

    /// Proposes `cmd` on this node and waits until it is applied here. Only the active leader
    /// accepts: the proposal is bound to the current leader term (openraft
    /// `write().with_leader()`), so it is rejected if leadership changed since it was checked.
    ///
    /// Errors: `ForwardToLeader` when this node is not the leader (nothing proposed);
    /// `NoQuorum` when this leader has no recent quorum ack (nothing proposed) or the command
    /// was not applied within `GroupConfig::write_timeout` (outcome unknown: retry with the same
    /// op id, possibly on the new leader).
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        let raft = &self.inner.raft;
        let leader = raft.as_leader().map_err(|f| self.map_forward(&f))?;
        // Fail fast on a leader that had a quorum and lost it (pitfall 1: it stays Leader). A
        // leader elected a moment ago has no ack yet and is let through.
        let lease = self.inner.cfg.lease();
        let stale_ack = leader.last_quorum_acked().is_some_and(|t| t.elapsed() >= lease);
        if stale_ack && raft.voter_ids().count() > 1 {
            return Err(WriteError::NoQuorum(format!(
                "node {} is leader but has no quorum ack within the lease ({} ms)",
                self.node_id(),
                lease.as_millis()
            )));
        }
        let op_id = cmd.op_id.clone();
        let (responder, rx) = ProgressResponder::complete_only();
        raft.write(cmd)
            .with_leader(leader.to_committed_leader_id())
            .responder(responder)
            .await
            .map_err(|e| WriteError::Fatal(format!("node {}: {e}", self.node_id())))?;
        let timeout = self.inner.cfg.write_timeout();
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(WriteError::NoQuorum(format!(
                "op {op_id} not applied within {} ms; outcome unknown, retry with the same op id",
                timeout.as_millis()
            ))),
            Ok(Err(_closed)) => Err(WriteError::NoQuorum(format!(
                "op {op_id}: raft dropped the request (leader change or shutdown); outcome unknown"
            ))),
            Ok(Ok(Ok(resp))) => Ok(resp.data),
            Ok(Ok(Err(ClientWriteError::ForwardToLeader(f)))) => Err(self.map_forward(&f)),
            Ok(Ok(Err(ClientWriteError::LogEntryDiscarded(f)))) => match self.leader_of(&f) {
                Some(leader) => Err(WriteError::ForwardToLeader { leader: Some(leader) }),
                None => Err(WriteError::NoQuorum(format!(
                    "op {op_id}: entry discarded on leader change; outcome unknown, retry with the same op id"
                ))),
            },
            Ok(Ok(Err(other))) => Err(WriteError::Fatal(format!("op {op_id}: {other}"))),
        }
    }

    /// A fresh proof of leadership, to take right before acting on databases: this node is the
    /// leader and a quorum acknowledged it just now (openraft ReadIndex round, bounded by the
    /// lease), and the state machine has applied everything committed before. Returns
    /// `(term, node_id)`, the failover epoch.
    ///
    /// Callers share rounds: one that arrives while a round runs waits for it, and then either
    /// takes the answer of a round that started after it arrived (another waiter ran it) or runs
    /// one. An answer is never older than the call, and 400 cluster monitors ticking together
    /// cost a few rounds instead of 400 (each round is a heartbeat to every follower).
    pub async fn ensure_leader(&self) -> Result<(u64, NodeId), NotLeader> {
        let arrived = Instant::now();
        let mut last = self.inner.read_round.lock().await;
        if let Some((started, answer)) = last.as_ref() {
            if *started >= arrived {
                return answer.clone();
            }
        }
        let started = Instant::now();
        self.inner.read_rounds.fetch_add(1, Ordering::Relaxed);
        let answer = self.leadership_round().await;
        *last = Some((started, answer.clone()));
        answer
    }

    /// Leadership rounds run so far by [`RaftGroup::ensure_leader`].
    pub fn leadership_rounds(&self) -> u64 {
        self.inner.read_rounds.load(Ordering::Relaxed)
    }

    /// One ReadIndex round of [`RaftGroup::ensure_leader`].
    async fn leadership_round(&self) -> Result<(u64, NodeId), NotLeader> {
        let raft = &self.inner.raft;
        let not_leader = |leader: Option<(NodeId, NodeInfo)>, reason: String| NotLeader { leader, reason };
        let me = || self.node_info(self.node_id()).map(|i| (self.node_id(), i));
        let leader = raft.as_leader().map_err(|f| not_leader(self.leader_of(&f), "not the leader".into()))?;
        let term = leader.term();
        let lease = self.inner.cfg.lease();
        match tokio::time::timeout(lease, raft.ensure_linearizable(ReadPolicy::ReadIndex)).await {
            Err(_) => {
                return Err(not_leader(me(), format!("no quorum confirmation within {} ms", lease.as_millis())));
            }
            Ok(Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f)))) => {
                return Err(not_leader(self.leader_of(&f), "leadership lost".into()));
            }
            Ok(Err(e)) => return Err(not_leader(me(), format!("quorum not confirmed: {e}"))),
            Ok(Ok(read)) => {
                if *read.committed_leader_id() != leader.to_committed_leader_id() {
                    return Err(not_leader(None, "term changed during the check".into()));
                }
            }
        }
        match raft.as_leader() {
            Ok(now) if now.term() == term => Ok((term, self.node_id())),
            Ok(_) => Err(not_leader(me(), "term changed during the check".into())),
            Err(f) => Err(not_leader(self.leader_of(&f), "leadership lost during the check".into())),
        }
    }

    /// This node's view of the group; does not wait on the raft core.
    pub fn status(&self) -> GroupStatus {
        let inputs = StatusInputs {
            lease: self.inner.cfg.lease(),
            leader_contact_timeout: self.inner.cfg.leader_contact_timeout(),
            since_leader_contact: self.inner.node.since_leader_contact(),
            uptime: self.inner.node.uptime(),
        };
        // Computed on the watched metrics in place: every monitor asks at every tick, and a
        // clone of the metrics (membership and replication maps) per call added up.
        let rx = self.inner.raft.metrics();
        let m = rx.borrow_watched();
        compute(self.node_id(), &m, &inputs)
    }

    /// The value of `key` in this node's applied state (may lag the leader).
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.inner.sm.get(key)
    }

    /// Applied keys starting with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &str) -> Vec<(String, serde_json::Value)> {
        self.inner.sm.scan_prefix(prefix)
    }

    /// Resolves at the next change of this node's raft metrics (its state, term, leader, log or
    /// replication progress), so a caller re-reads [`RaftGroup::status`] at once instead of at
    /// its next poll; never resolves once the raft core stopped.
    pub fn metrics_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.raft.metrics();
        async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A receiver that changes whenever this node applies entries or installs a snapshot; its
    /// value is the last applied log index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.inner.sm.subscribe()
    }

    /// Asks this node, which must be the leader, to hand leadership to `to`, and waits (at most
    /// `2 x election_max_ms`) until `to` is the leader. Used by arbitrator nodes that win an
    /// election.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), GroupError> {
        let node_id = self.node_id();
        if !self.inner.cfg.peers.contains_key(&to) {
            return Err(GroupError::Config(format!("transfer_leader: node {to} is not a member")));
        }
        let raft = &self.inner.raft;
        if let Err(f) = raft.as_leader() {
            return Err(
                NotLeader { leader: self.leader_of(&f), reason: "transfer_leader needs the leader".into() }.into()
            );
        }
        if to == node_id {
            return Ok(());
        }
        tracing::info!(node_id, to, "raft: transferring leadership");
        raft.trigger().transfer_leader(to).await.map_err(|e| raft_err(node_id, "transfer_leader", e))?;
        let bound = Duration::from_millis(self.inner.cfg.election_max_ms.saturating_mul(2));
        let moved = self.wait_metrics(bound, |m| m.current_leader == Some(to) && m.current_term > 0).await;
        if moved {
            tracing::info!(node_id, to, "raft: leadership transferred");
            Ok(())
        } else {
            Err(GroupError::Timeout {
                node_id,
                millis: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                what: format!("leadership to move to node {to}"),
            })
        }
    }

    /// Builds a snapshot of the applied state and purges the log up to it, waiting at most
    /// 10 s for each step. Returns the index the log was purged to. Followers that lag behind the
    /// purge point (or were wiped) then catch up from the snapshot. openraft also does this on
    /// its own every 5000 entries; this is for maintenance and tests.
    pub async fn compact_log(&self) -> Result<u64, GroupError> {
        let node_id = self.node_id();
        let bound = Duration::from_secs(10);
        let applied = self.metrics().last_applied.map(|id| id.index()).unwrap_or(0);
        let raft = &self.inner.raft;
        raft.trigger().snapshot().await.map_err(|e| raft_err(node_id, "trigger snapshot", e))?;
        let timeout = |what: &str| GroupError::Timeout { node_id, millis: 10_000, what: what.to_string() };
        if !self.wait_metrics(bound, |m| m.snapshot.is_some_and(|s| s.index() >= applied)).await {
            return Err(timeout("snapshot to be built"));
        }
        let upto = self.metrics().snapshot.map(|s| s.index()).unwrap_or(applied);
        raft.trigger().purge_log(upto).await.map_err(|e| raft_err(node_id, "trigger purge", e))?;
        if !self.wait_metrics(bound, |m| m.purged.is_some_and(|p| p.index() >= upto)).await {
            return Err(timeout("log purge"));
        }
        tracing::info!(node_id, upto, "raft: log compacted");
        Ok(upto)
    }

    /// Waits until `cond` holds for the metrics, at most `bound`. Bounded loop.
    async fn wait_metrics(&self, bound: Duration, cond: impl Fn(&RaftMetrics) -> bool) -> bool {
        let deadline = Instant::now() + bound;
        let mut rx = self.inner.raft.metrics();
        loop {
            if cond(&rx.borrow_watched()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if tokio::time::timeout(left, rx.changed()).await.is_err() {
                return cond(&rx.borrow_watched());
            }
        }
    }

    /// Fault-injection hook for tests and chaos scripts: while `true`, this node's raft RPCs fail
    /// in both directions (outgoing calls fail as unreachable, incoming ones get 503), as if the
    /// node were cut off from the network. The API and local reads are unaffected.
    pub fn set_isolated(&self, isolated: bool) {
        tracing::warn!(node_id = self.node_id(), isolated, "raft: fault injection: isolation switched");
        self.inner.node.set_isolated(isolated);
    }

    /// Whether this process initialized the group (at most once per group, ever). For tests and
    /// logs: a restarted or wiped node reports `false`.
    pub fn did_initialize(&self) -> bool {
        self.inner.did_initialize.load(Ordering::SeqCst)
    }

    /// Stops the bootstrap task, the raft node and the RPC server, and waits (bounded) until the
    /// RocksDB database is closed, so the same data directory can be opened again. Idempotent.
    /// Reads of the applied state keep working on this handle.
    pub async fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let node_id = self.node_id();
        if let Some(task) = take(&self.inner.bootstrap) {
            task.abort();
            let _ = task.await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.inner.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(node_id, "raft: core task ended with an error: {e}"),
            Err(_) => tracing::warn!(node_id, "raft: core did not stop within {STOP_TIMEOUT:?}"),
        }
        if let Some((stop, mut task)) = take(&self.inner.server) {
            let _ = stop.send(());
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                tracing::warn!(node_id, "raft: RPC server did not stop within {STOP_TIMEOUT:?}; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
        // Storage tasks spawned by openraft (snapshot building, WAL flushes) may hold the
        // database a little longer than the core.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !self.inner.db_closed.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if !self.inner.db_closed.load(Ordering::SeqCst) {
            tracing::warn!(node_id, "raft: storage still referenced {STOP_TIMEOUT:?} after shutdown");
        }
        tracing::info!(node_id, "raft: node stopped");
    }
}
