//! Client side of the raft RPC: openraft's `RaftNetworkV2` over reqwest, JSON bodies.
//!
//! Every request carries the timeout openraft gives (`RPCOption::soft_ttl`). Connection
//! failures, timeouts and 503 answers (a peer that is shutting down or isolated) are reported as
//! `Unreachable`, which makes openraft back off instead of retrying at once; failures are logged
//! at warn level at most every few seconds per peer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{NetworkError, ReplicationClosed, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::OptionalSend;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{GroupInfo, NodeShared, SnapshotBody, SECRET_HEADER};
use crate::typ::{
    AppendEntriesRequest, AppendEntriesResponse, RPCError, RaftError, Snapshot, SnapshotData, SnapshotResponse,
    StreamingError, TransferLeaderRequest, TransferLeaderResponse, TypeConfig, Vote, VoteRequest, VoteResponse,
};
use crate::types::{NodeId, NodeInfo};

/// Connect timeout of the raft HTTP client; a peer on loopback or a LAN answers far sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Builds the HTTP client used for raft traffic only (pitfall 9: separate from API forwarding);
/// with a group secret, every request carries it; with TLS, it speaks HTTPS with this node's
/// certificate and trusts only the group CA.
pub(crate) fn http_client(secret: Option<&str>, tls: Option<&crate::config::GroupTls>) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(s) = secret {
        if let Ok(mut v) = reqwest::header::HeaderValue::from_str(s) {
            v.set_sensitive(true);
            headers.insert(SECRET_HEADER, v);
        }
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(super::tls::client_config(tls)?);
    }
    builder.build().map_err(|e| e.to_string())
}


/// Creates one [`PeerClient`] per replication stream, heartbeat or vote round.
pub(crate) struct HttpNetworkFactory {
    client: reqwest::Client,
    node: Arc<NodeShared>,
}

impl HttpNetworkFactory {
    pub(crate) fn new(client: reqwest::Client, node: Arc<NodeShared>) -> Self {
        HttpNetworkFactory { client, node }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient { target, addr: node.raft_addr.clone(), client: self.client.clone(), node: self.node.clone() }
    }
}

/// Connection to one peer's raft RPC server.
pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    client: reqwest::Client,
    node: Arc<NodeShared>,
}

/// Why an HTTP exchange failed, before it is turned into an openraft error.
enum HttpFailure {
    /// Retry after a backoff: connect error, timeout, 503.
    Unreachable(String),
    /// Retry at once: anything else.
    Network(String),
}

/// Asks peer `addr` the application question `topic` (see `NodeShared::answer`).
pub(crate) async fn ask(
    client: &reqwest::Client,
    node: &NodeShared,
    addr: &str,
    topic: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    exchange::<serde_json::Value, serde_json::Value>(client, node, addr, &format!("/app/{topic}"), Some(body), timeout)
        .await
        .map_err(|e| match e {
            HttpFailure::Unreachable(m) | HttpFailure::Network(m) => m,
        })
}

/// POSTs (or GETs, without body) `path` on `addr` and decodes a JSON answer, within `timeout`.
async fn exchange<Req: Serialize, Resp: DeserializeOwned>(
    client: &reqwest::Client,
    node: &NodeShared,
    addr: &str,
    path: &str,
    body: Option<&Req>,
    timeout: Duration,
) -> Result<Resp, HttpFailure> {
    if node.is_isolated() {
        return Err(HttpFailure::Unreachable("this node is isolated (fault injection)".into()));
    }
    let url = format!("{}://{addr}{path}", node.scheme());
    let request = match body {
        Some(b) => client.post(&url).json(b),
        None => client.get(&url),
    };
    let classify = |e: reqwest::Error| {
        if e.is_connect() || e.is_timeout() {
            HttpFailure::Unreachable(format!("{url}: {e}"))
        } else {
            HttpFailure::Network(format!("{url}: {e}"))
        }
    };
    let resp = request.timeout(timeout).send().await.map_err(classify)?;
    let status = resp.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let text = resp.text().await.unwrap_or_default();
        return Err(HttpFailure::Unreachable(format!("{url}: 503 {text}")));
    }
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(HttpFailure::Network(format!("{url}: HTTP {status}: {text}")));
    }
    resp.json::<Resp>().await.map_err(classify)
}

/// Asks the peer at `addr` for its [`GroupInfo`].
pub(crate) async fn fetch_group_info(
    client: &reqwest::Client,
    node: &NodeShared,
    addr: &str,
    timeout: Duration,
) -> Result<GroupInfo, String> {
    exchange::<(), GroupInfo>(client, node, addr, "/raft/group-info", None, timeout).await.map_err(|e| match e {
        HttpFailure::Unreachable(s) | HttpFailure::Network(s) => s,
    })
}

impl PeerClient {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError> {
        let answer = exchange::<Req, Result<Resp, RaftError>>(
            &self.client,
            &self.node,
            &self.addr,
            path,
            Some(req),
            option.soft_ttl(),
        )
        .await;
        match answer {
            Ok(Ok(resp)) => {
                self.node.reachable(self.target);
                Ok(resp)
            }
            // The peer's raft core stopped (shutdown or storage failure): back off.
            Ok(Err(remote)) => {
                self.node.warn_unreachable(self.target, path, &remote);
                Err(RPCError::Unreachable(Unreachable::new(&remote)))
            }
            Err(HttpFailure::Unreachable(msg)) => {
                self.node.warn_unreachable(self.target, path, &msg);
                Err(RPCError::Unreachable(Unreachable::from_string(msg)))
            }
            Err(HttpFailure::Network(msg)) => {
                self.node.warn_unreachable(self.target, path, &msg);
                Err(RPCError::Network(NetworkError::from_string(msg)))
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError> {
        self.call("/raft/append", &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest, option: RPCOption) -> Result<VoteResponse, RPCError> {
        self.call("/raft/vote", &rpc, &option).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest, option: RPCOption) -> Result<VoteResponse, RPCError> {
        self.call("/raft/pre-vote", &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError> {
        let data = String::from_utf8(snapshot.snapshot.into_inner())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let body = SnapshotBody { vote, meta: snapshot.meta, data };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.call::<SnapshotBody, SnapshotResponse>("/raft/snapshot", &body, &option) => Ok(res?),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse, RPCError> {
        self.call("/raft/transfer-leader", &req, &option).await
    }
}
