//! Server side of the raft RPC: axum routes under `/raft/` on the node's raft listener.
//!
//! Besides handing requests to openraft, the server records when a leader last reached this
//! node (for `GroupStatus::millis_since_leader_contact`), applies the vote gate of a rejoining
//! node, answers `/raft/group-info` for the initialization check, and refuses everything with
//! 503 while the node is isolated by fault injection.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::async_runtime::WatchReceiver;

use super::{GroupInfo, NodeShared, SnapshotBody};
use crate::store::Raft;
use crate::typ::{
    AppendEntriesRequest, AppendEntriesResponse, RaftError, Snapshot, SnapshotResponse,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use crate::types::NodeId;

/// Largest accepted request body: a snapshot is the whole map in one POST.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// What the handlers need.
#[derive(Clone)]
pub(crate) struct RpcState {
    pub(crate) node_id: NodeId,
    /// Voter ids of the static configuration, reported by `/raft/group-info`.
    pub(crate) voters: Vec<NodeId>,
    pub(crate) raft: Raft,
    pub(crate) node: Arc<NodeShared>,
    /// The group's shared secret: RPCs without it are refused (401).
    pub(crate) secret: Option<Arc<str>>,
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

async fn require_secret(
    State(state): State<RpcState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(secret) = &state.secret {
        let given = req.headers().get(super::SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or(b"");
        if !same_secret(given, secret.as_bytes()) {
            tracing::warn!(node_id = state.node_id, "raft RPC refused: missing or wrong group secret");
            return (StatusCode::UNAUTHORIZED, "raft RPC refused: missing or wrong group secret").into_response();
        }
    }
    next.run(req).await
}

type Refusal = (StatusCode, String);

/// The raft RPC routes.
pub(crate) fn router(state: RpcState) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/pre-vote", post(pre_vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/transfer-leader", post(transfer_leader))
        .route("/raft/group-info", get(group_info))
        .route("/app/{topic}", post(app_message))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_secret))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn refuse_if_isolated(state: &RpcState) -> Result<(), Refusal> {
    if state.node.is_isolated() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, format!("node {} is isolated (fault injection)", state.node_id)));
    }
    Ok(())
}

fn check_vote_gate(state: &RpcState) -> Result<(), Refusal> {
    let last_log_index = state.raft.metrics().borrow_watched().last_log_index;
    state
        .node
        .may_vote(last_log_index)
        .map_err(|why| (StatusCode::SERVICE_UNAVAILABLE, format!("node {} does not vote yet: {why}", state.node_id)))
}

async fn append(
    State(state): State<RpcState>,
    Json(req): Json<AppendEntriesRequest>,
) -> Result<Json<Result<AppendEntriesResponse, RaftError>>, Refusal> {
    refuse_if_isolated(&state)?;
    let res = state.raft.append_entries(req).await;
    if let Ok(resp) = &res {
        if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
            state.node.touch_leader_contact();
        }
    }
    Ok(Json(res))
}

async fn vote(
    State(state): State<RpcState>,
    Json(req): Json<VoteRequest>,
) -> Result<Json<Result<VoteResponse, RaftError>>, Refusal> {
    refuse_if_isolated(&state)?;
    check_vote_gate(&state)?;
    Ok(Json(state.raft.vote(req).await))
}

async fn pre_vote(
    State(state): State<RpcState>,
    Json(req): Json<VoteRequest>,
) -> Result<Json<Result<VoteResponse, RaftError>>, Refusal> {
    refuse_if_isolated(&state)?;
    check_vote_gate(&state)?;
    Ok(Json(state.raft.pre_vote(req).await))
}

async fn snapshot(
    State(state): State<RpcState>,
    Json(body): Json<SnapshotBody>,
) -> Result<Json<Result<SnapshotResponse, RaftError>>, Refusal> {
    refuse_if_isolated(&state)?;
    let snapshot = Snapshot { meta: body.meta, snapshot: Cursor::new(body.data.into_bytes()) };
    let res = state.raft.install_full_snapshot(body.vote, snapshot).await.map_err(RaftError::Fatal);
    if res.is_ok() {
        state.node.touch_leader_contact();
    }
    Ok(Json(res))
}

async fn transfer_leader(
    State(state): State<RpcState>,
    Json(req): Json<TransferLeaderRequest>,
) -> Result<Json<Result<TransferLeaderResponse, RaftError>>, Refusal> {
    refuse_if_isolated(&state)?;
    Ok(Json(state.raft.handle_transfer_leader(req).await.map_err(RaftError::Fatal)))
}

/// A peer's question to the application (e.g. how this node sees a cluster's master): it
/// travels on the raft channel, so it is authenticated like the raft RPC (TLS, secret).
async fn app_message(
    State(state): State<RpcState>,
    axum::extract::Path(topic): axum::extract::Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<serde_json::Value>, Refusal> {
    refuse_if_isolated(&state)?;
    state.node.answer(&topic, &body).map(Json).ok_or((StatusCode::NOT_FOUND, format!("no answer for topic {topic}")))
}

async fn group_info(State(state): State<RpcState>) -> Result<Json<GroupInfo>, Refusal> {
    refuse_if_isolated(&state)?;
    let m = state.raft.metrics().borrow_watched().clone();
    Ok(Json(GroupInfo {
        node_id: state.node_id,
        initialized: m.last_log_index.is_some() || m.current_term > 0 || m.snapshot.is_some(),
        committed_index: m.local_committed.map(|id| id.index()),
        term: m.current_term,
        leader: m.current_leader,
        voters: state.voters.clone(),
    }))
}
