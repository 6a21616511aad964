//! Idempotent mutations: a client names its request with an `Idempotency-Key`; the group
//! replicates, per cluster, which keys were claimed and how their operation ended, so the
//! operation runs at most once and a retry (to any node, after a leader change too) gets the
//! first outcome. The record of a cluster is one bounded map, updated by compare-and-set.

use std::collections::BTreeMap;

use replication_manager_raft::{Command, KvOp, WriteError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{GroupError, ManagerGroup};

/// Keys remembered per cluster (the oldest are forgotten beyond).
pub const KEYS_KEPT: usize = 1000;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 128;
/// Compare-and-set attempts when another claim changed the record meanwhile.
const CAS_ATTEMPTS: usize = 5;

/// How an operation ended, as returned to a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutcome {
    pub ok: bool,
    /// The error kind's name when not `ok`.
    pub kind: String,
    pub message: String,
}

/// One claimed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotentOp {
    /// What was asked (a retry with the same key must ask the same).
    pub request: String,
    /// The operation id derived from the key.
    pub op_id: String,
    /// Raft term and node that claimed it.
    pub term: u64,
    pub node: u64,
    /// Order of claims, to forget the oldest.
    pub seq: u64,
    /// `None` while it runs.
    pub outcome: Option<StoredOutcome>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: run the operation, then [`ManagerGroup::settle`] it.
    New { op_id: String },
    /// The key is known: it runs, or ran (outcome set).
    Known(IdempotentOp),
}

fn record_key(cluster: &str) -> String {
    format!("idempotency/{cluster}")
}

/// The operation id a key stands for: stable, readable, safe in logs and paths.
pub fn op_id_for(cluster: &str, key: &str) -> String {
    // FNV-1a over cluster and key: the same key always gives the same id.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cluster.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("idem-{h:016x}")
}

/// A key is 1 to [`MAX_KEY_LEN`] visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

type Record = BTreeMap<String, IdempotentOp>;

impl ManagerGroup {
    fn idempotency_record(&self, cluster: &str) -> (Option<Value>, Record) {
        let raw = self.raft.get(&record_key(cluster));
        let record = raw.clone().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        (raw, record)
    }

    async fn cas_record(&self, cluster: &str, expected: Option<Value>, record: &Record, op: String) -> Result<bool, GroupError> {
        let value = serde_json::to_value(record).map_err(|e| GroupError::Encoding(e.to_string()))?;
        let cmd = Command::new(op, vec![KvOp::CompareAndPut { key: record_key(cluster), expected, value }]);
        match self.raft.write(cmd).await {
            Ok(r) => Ok(r.applied),
            Err(WriteError::ForwardToLeader { leader }) => Err(GroupError::LeaderChanged { leader: leader.map(|l| l.0) }),
            Err(e) => Err(GroupError::NotReplicated(e.to_string())),
        }
    }

    /// Claims `key` for `request` on `cluster` (replicated before anything runs).
    pub async fn claim(&self, cluster: &str, key: &str, request: &str) -> Result<Claim, GroupError> {
        let op_id = op_id_for(cluster, key);
        let (term, node) = {
            let s = self.raft.status();
            (s.term, s.node_id)
        };
        for attempt in 0..CAS_ATTEMPTS {
            let (raw, mut record) = self.idempotency_record(cluster);
            if let Some(known) = record.get(key) {
                return Ok(Claim::Known(known.clone()));
            }
            let seq = record.values().map(|o| o.seq).max().unwrap_or(0) + 1;
            record.insert(key.to_string(), IdempotentOp { request: request.to_string(), op_id: op_id.clone(), term, node, seq, outcome: None });
            while record.len() > KEYS_KEPT {
                let Some(oldest) = record.iter().min_by_key(|(_, o)| o.seq).map(|(k, _)| k.clone()) else { break };
                record.remove(&oldest);
            }
            if self.cas_record(cluster, raw, &record, format!("{op_id}:claim:{attempt}:{:08x}", rand::random::<u32>())).await? {
                return Ok(Claim::New { op_id });
            }
        }
        Err(GroupError::Conflict)
    }

    /// Records how the operation of `key` ended.
    pub async fn settle(&self, cluster: &str, key: &str, outcome: StoredOutcome) -> Result<(), GroupError> {
        for attempt in 0..CAS_ATTEMPTS {
            let (raw, mut record) = self.idempotency_record(cluster);
            let Some(op) = record.get_mut(key) else { return Ok(()) };
            op.outcome = Some(outcome.clone());
            let id = format!("{}:settle:{attempt}:{:08x}", op.op_id, rand::random::<u32>());
            if self.cas_record(cluster, raw, &record, id).await? {
                return Ok(());
            }
        }
        Err(GroupError::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_op_ids() {
        assert_eq!(op_id_for("c1", "abc"), op_id_for("c1", "abc"));
        assert_ne!(op_id_for("c1", "abc"), op_id_for("c2", "abc"));
        assert_ne!(op_id_for("c1", "abc"), op_id_for("c1", "abd"));
        assert!(op_id_for("c1", "k").starts_with("idem-"));
        assert!(valid_key("retry-42_ok"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"x".repeat(MAX_KEY_LEN + 1)));
    }
}
