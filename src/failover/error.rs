//! `FailoverError`: why a master change or a cluster operation did not succeed, in the
//! manager's terms (a refusal, a conflict, lost leadership, a failed statement), with the
//! context an operator needs: cluster, operation id, step and raft term. The API edge (the
//! node) maps [`ErrorKind`] to an HTTP status; nothing below it speaks HTTP.

use crate::db::conn::DbError;
use crate::failover::plan::PlanError;
use crate::group::GroupError;

/// What kind of failure, for the caller to decide (and the API edge to map to a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (bad value, unknown method).
    BadRequest,
    /// A named cluster, server or setting does not exist.
    NotFound,
    /// Refused in the current state: another operation runs, no electable candidate, a
    /// precondition does not hold.
    Conflict,
    /// This node may not act (not the active leader, no quorum) or a decision was not
    /// replicated: nothing was done past that point.
    NotLeader,
    /// This manager cannot do it here (no orchestrator for it, a missing tool).
    NotAvailable,
    /// The operation did not finish within its deadline.
    Timeout,
    /// A statement, a command or a step failed.
    Failed,
}

impl ErrorKind {
    /// A stable name (stored with an idempotent operation's outcome).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotLeader => "not-leader",
            ErrorKind::NotAvailable => "not-available",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Failed => "failed",
        }
    }

    /// The kind named by [`ErrorKind::as_str`] (`Failed` for an unknown name).
    pub fn from_name(name: &str) -> ErrorKind {
        [
            ErrorKind::BadRequest,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::NotLeader,
            ErrorKind::NotAvailable,
            ErrorKind::Timeout,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
        .unwrap_or(ErrorKind::Failed)
    }
}

/// A failed operation with its context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FailoverError {
    pub kind: ErrorKind,
    pub message: String,
    /// The cluster, once known.
    pub cluster: Option<String>,
    /// The journaled operation it belongs to.
    pub op_id: Option<String>,
    /// The step that failed.
    pub step: Option<String>,
    /// The raft term of the leadership it ran under.
    pub term: Option<u64>,
}

/// The result of an operation: a short success message, or why not.
pub type OpResult = Result<String, FailoverError>;

impl FailoverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> FailoverError {
        FailoverError { kind, message: message.into(), cluster: None, op_id: None, step: None, term: None }
    }

    /// Names the step (and the term it ran in) unless already named.
    pub fn at_step(mut self, step: &str, term: u64) -> FailoverError {
        if self.step.is_none() {
            self.step = Some(step.to_string());
            self.term = Some(term);
        }
        self
    }

    /// Names the operation unless already named.
    pub fn in_op(mut self, op_id: &str) -> FailoverError {
        self.op_id.get_or_insert_with(|| op_id.to_string());
        self
    }

    /// Names the cluster unless already named.
    pub fn in_cluster(mut self, cluster: &str) -> FailoverError {
        self.cluster.get_or_insert_with(|| cluster.to_string());
        self
    }

    /// The message with its context, for logs: `[cluster c1 op failover-.. step promote term 3] ...`.
    pub fn with_context(&self) -> String {
        let mut ctx = Vec::new();
        if let Some(c) = &self.cluster {
            ctx.push(format!("cluster {c}"));
        }
        if let Some(o) = &self.op_id {
            ctx.push(format!("op {o}"));
        }
        if let Some(s) = &self.step {
            ctx.push(format!("step {s}"));
        }
        if let Some(t) = self.term {
            ctx.push(format!("term {t}"));
        }
        if ctx.is_empty() {
            self.message.clone()
        } else {
            format!("[{}] {}", ctx.join(" "), self.message)
        }
    }
}

impl From<DbError> for FailoverError {
    fn from(e: DbError) -> FailoverError {
        FailoverError::new(ErrorKind::Failed, e.to_string())
    }
}

impl From<GroupError> for FailoverError {
    fn from(e: GroupError) -> FailoverError {
        FailoverError::new(ErrorKind::NotLeader, format!("not acting on databases: {e}"))
    }
}

impl From<PlanError> for FailoverError {
    fn from(e: PlanError) -> FailoverError {
        FailoverError::new(ErrorKind::Conflict, format!("{}: {}", e.code, e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_kept_once_and_shown() {
        let e = FailoverError::new(ErrorKind::Failed, "boom").at_step("promote", 3).at_step("later", 9).in_op("failover-1").in_cluster("c1");
        assert_eq!(e.step.as_deref(), Some("promote"));
        assert_eq!(e.term, Some(3));
        assert_eq!(e.with_context(), "[cluster c1 op failover-1 step promote term 3] boom");
        assert_eq!(e.to_string(), "boom");
        for k in [ErrorKind::BadRequest, ErrorKind::Conflict, ErrorKind::NotLeader, ErrorKind::Timeout, ErrorKind::Failed] {
            assert_eq!(ErrorKind::from_name(k.as_str()), k);
        }
    }
}
