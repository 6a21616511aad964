//! The replicated key-value state machine (openraft `RaftStateMachine`) and its snapshots.
//!
//! The applied state lives in memory for cheap reads ([`SmShared`]) and in RocksDB for
//! durability: each `apply` call writes its whole effect (values, remembered op ids, last applied
//! log id, membership) in one fsynced batch before the in-memory state changes and before any
//! client is answered. A restart therefore resumes from the persisted applied state.
//!
//! Idempotency: the result of every command is remembered by op id, for the last
//! [`MAX_REMEMBERED_OPS`] commands (by log index). Snapshots carry the remembered op ids, so a
//! node that catches up from a snapshot still recognises retries.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::{IteratorMode, WriteBatch, DB};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::{
    blocking, cf, from_json, rocks_err, sync_write, to_json, StoreDb, CF_SM_KV, CF_SM_META, CF_SM_OPS, CF_SNAPSHOT,
};
use crate::typ::{EntryResponder, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::types::{Command, CommandResult, KvOp};

/// How many op ids (the most recent by log index) the state machine remembers for idempotency.
/// A retry of an older op id is applied again, so callers must not retry for longer than it
/// takes the group to apply this many commands.
pub const MAX_REMEMBERED_OPS: usize = 10_000;

const KEY_LAST_APPLIED: &str = "last_applied";
const KEY_MEMBERSHIP: &str = "membership";
const KEY_CURRENT_SNAPSHOT: &str = "current";
const SNAPSHOT_FORMAT: u64 = 1;

/// The applied state, as seen by readers.
#[derive(Default)]
struct SmState {
    kv: BTreeMap<String, Value>,
    ops: HashMap<String, CommandResult>,
    /// log index -> op id, to forget the oldest op ids first.
    op_order: BTreeMap<u64, String>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

/// Applied state shared between the state machine (writer) and the group handle (readers).
pub(crate) struct SmShared {
    state: RwLock<SmState>,
    applied_tx: watch::Sender<u64>,
    /// Serialises writes of the current snapshot, so an older snapshot never replaces a newer one.
    snapshot_write: Mutex<()>,
}

impl SmShared {
    fn read(&self) -> RwLockReadGuard<'_, SmState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SmState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The applied value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        self.read().kv.get(key).cloned()
    }

    /// Applied keys starting with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: &str) -> Vec<(String, Value)> {
        self.read()
            .kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Index of the last applied log entry (0 before anything was applied).
    pub(crate) fn last_applied_index(&self) -> u64 {
        self.read().last_applied.map(|id| id.index()).unwrap_or(0)
    }

    /// A receiver notified with the last applied index after every apply or snapshot install.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }
}

/// The state machine handed to openraft; cheap to clone (it is also its snapshot builder).
#[derive(Clone)]
pub(crate) struct KvStateMachine {
    db: Arc<StoreDb>,
    shared: Arc<SmShared>,
}

/// Snapshot data: the whole applied map plus the remembered op ids.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    format: u64,
    kv: BTreeMap<String, Value>,
    ops: Vec<RememberedOp>,
}

#[derive(Serialize, Deserialize)]
struct RememberedOp {
    op_id: String,
    result: CommandResult,
}

/// The current snapshot as stored in the `snapshot` column family.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    /// JSON text of a [`SnapshotPayload`].
    data: String,
}

/// Changes computed by one `apply` call, written to disk before they become visible.
#[derive(Default)]
struct PendingApply {
    kv: BTreeMap<String, Option<Value>>,
    ops: Vec<(String, CommandResult)>,
    op_index: HashMap<String, usize>,
}

impl KvStateMachine {
    /// Loads the applied state persisted in `db`.
    pub(crate) fn open(db: Arc<StoreDb>) -> io::Result<Self> {
        let mut state = SmState::default();
        for item in db.iterator_cf(cf(&db, CF_SM_KV)?, IteratorMode::Start) {
            let (key, value) = item.map_err(rocks_err)?;
            let key = String::from_utf8(key.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            state.kv.insert(key, from_json(&value)?);
        }
        for item in db.iterator_cf(cf(&db, CF_SM_OPS)?, IteratorMode::Start) {
            let (key, value) = item.map_err(rocks_err)?;
            let op_id = String::from_utf8(key.to_vec()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let result: CommandResult = from_json(&value)?;
            state.op_order.insert(result.log_index, op_id.clone());
            state.ops.insert(op_id, result);
        }
        let meta = cf(&db, CF_SM_META)?;
        if let Some(bytes) = db.get_cf(meta, KEY_LAST_APPLIED).map_err(rocks_err)? {
            state.last_applied = Some(from_json(&bytes)?);
        }
        if let Some(bytes) = db.get_cf(meta, KEY_MEMBERSHIP).map_err(rocks_err)? {
            state.last_membership = from_json(&bytes)?;
        }
        let last_index = state.last_applied.map(|id| id.index()).unwrap_or(0);
        let (applied_tx, _) = watch::channel(last_index);
        let shared = Arc::new(SmShared { state: RwLock::new(state), applied_tx, snapshot_write: Mutex::new(()) });
        Ok(KvStateMachine { db, shared })
    }

    /// The shared applied state, for readers.
    pub(crate) fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    /// Current value of `key` as seen by the command being applied: earlier commands of this
    /// apply call first, then the applied state.
    fn current_value(
        &self,
        pending: &PendingApply,
        overlay: &BTreeMap<String, Option<Value>>,
        key: &str,
    ) -> Option<Value> {
        if let Some(v) = overlay.get(key) {
            return v.clone();
        }
        if let Some(v) = pending.kv.get(key) {
            return v.clone();
        }
        self.shared.read().kv.get(key).cloned()
    }

    fn remembered(&self, pending: &PendingApply, op_id: &str) -> Option<CommandResult> {
        if let Some(i) = pending.op_index.get(op_id) {
            return pending.ops.get(*i).map(|(_, r)| r.clone());
        }
        self.shared.read().ops.get(op_id).cloned()
    }

    /// Evaluates one command against the pending state; all-or-nothing.
    fn apply_command(&self, pending: &mut PendingApply, cmd: &Command, log_index: u64) -> CommandResult {
        if let Some(first) = self.remembered(pending, &cmd.op_id) {
            return CommandResult { duplicate: true, ..first };
        }
        let mut overlay: BTreeMap<String, Option<Value>> = BTreeMap::new();
        let mut failed_key = None;
        for op in &cmd.ops {
            match op {
                KvOp::Put { key, value } => {
                    overlay.insert(key.clone(), Some(value.clone()));
                }
                KvOp::Delete { key } => {
                    overlay.insert(key.clone(), None);
                }
                KvOp::CompareAndPut { key, expected, value } => {
                    let current = self.current_value(pending, &overlay, key);
                    if current != *expected {
                        failed_key = Some(key.clone());
                        break;
                    }
                    overlay.insert(key.clone(), Some(value.clone()));
                }
            }
        }
        let result = CommandResult { applied: failed_key.is_none(), duplicate: false, log_index, failed_key };
        if result.applied {
            pending.kv.extend(overlay);
        }
        pending.op_index.insert(cmd.op_id.clone(), pending.ops.len());
        pending.ops.push((cmd.op_id.clone(), result.clone()));
        result
    }

    /// Writes `snapshot` as the current snapshot unless a newer one is already stored.
    fn store_snapshot(db: &DB, shared: &SmShared, stored: &StoredSnapshot) -> io::Result<()> {
        let _guard = shared.snapshot_write.lock().unwrap_or_else(PoisonError::into_inner);
        let snap_cf = cf(db, CF_SNAPSHOT)?;
        if let Some(bytes) = db.get_cf(snap_cf, KEY_CURRENT_SNAPSHOT).map_err(rocks_err)? {
            let existing: StoredSnapshot = from_json(&bytes)?;
            if existing.meta.last_log_id > stored.meta.last_log_id {
                return Ok(());
            }
        }
        db.put_cf_opt(snap_cf, KEY_CURRENT_SNAPSHOT, to_json(stored)?, &sync_write()).map_err(rocks_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for KvStateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // One read lock: the data, the op ids and the log id describe the same point.
        let (meta, payload) = {
            let state = self.shared.read();
            let meta = SnapshotMeta { last_log_id: state.last_applied, last_membership: state.last_membership.clone() };
            let ops = state
                .op_order
                .values()
                .filter_map(|op_id| {
                    state.ops.get(op_id).map(|r| RememberedOp { op_id: op_id.clone(), result: r.clone() })
                })
                .collect();
            (meta, SnapshotPayload { format: SNAPSHOT_FORMAT, kv: state.kv.clone(), ops })
        };
        let data = serde_json::to_string(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let db = self.db.clone();
        let shared = self.shared.clone();
        let stored = blocking(move || {
            Self::store_snapshot(&db, &shared, &stored)?;
            Ok(stored)
        })
        .await?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = stored.data.len(), "raft: snapshot built");
        Ok(Snapshot { meta, snapshot: Cursor::new(stored.data.into_bytes()) })
    }
}

impl RaftStateMachine<TypeConfig> for KvStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.shared.read();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder, io::Error>> + Unpin + OptionalSend,
    {
        let mut pending = PendingApply::default();
        let mut last_applied: Option<LogId> = None;
        let mut membership: Option<StoredMembership> = None;
        let mut responses = Vec::new();

        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            last_applied = Some(log_id);
            let result = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(log_id), m));
                    None
                }
                EntryPayload::Normal(cmd) => Some(self.apply_command(&mut pending, &cmd, log_id.index())),
            };
            if let Some(responder) = responder {
                let result = result.unwrap_or(CommandResult {
                    applied: true,
                    duplicate: false,
                    log_index: log_id.index(),
                    failed_key: None,
                });
                responses.push((responder, result));
            }
        }
        let Some(last_applied) = last_applied else {
            return Ok(());
        };

        // Forget the oldest op ids beyond the bound: first already-applied ones, then new ones.
        let (evicted_old, evicted_new) = {
            let state = self.shared.read();
            let excess = (state.ops.len() + pending.ops.len()).saturating_sub(MAX_REMEMBERED_OPS);
            let old: Vec<(u64, String)> = state.op_order.iter().take(excess).map(|(i, id)| (*i, id.clone())).collect();
            (old.clone(), excess - old.len())
        };

        let mut batch = WriteBatch::default();
        let kv_cf = cf(&self.db, CF_SM_KV)?;
        let ops_cf = cf(&self.db, CF_SM_OPS)?;
        let meta_cf = cf(&self.db, CF_SM_META)?;
        for (key, value) in &pending.kv {
            match value {
                Some(v) => batch.put_cf(kv_cf, key.as_bytes(), to_json(v)?),
                None => batch.delete_cf(kv_cf, key.as_bytes()),
            }
        }
        for (_, op_id) in &evicted_old {
            batch.delete_cf(ops_cf, op_id.as_bytes());
        }
        for (op_id, result) in pending.ops.iter().skip(evicted_new) {
            batch.put_cf(ops_cf, op_id.as_bytes(), to_json(result)?);
        }
        batch.put_cf(meta_cf, KEY_LAST_APPLIED, to_json(&last_applied)?);
        if let Some(m) = &membership {
            batch.put_cf(meta_cf, KEY_MEMBERSHIP, to_json(m)?);
        }
        let db = self.db.clone();
        blocking(move || db.write_opt(batch, &sync_write()).map_err(rocks_err)).await?;

        {
            let mut state = self.shared.write();
            for (key, value) in pending.kv {
                match value {
                    Some(v) => state.kv.insert(key, v),
                    None => state.kv.remove(&key),
                };
            }
            for (index, op_id) in evicted_old {
                state.op_order.remove(&index);
                state.ops.remove(&op_id);
            }
            for (op_id, result) in pending.ops.into_iter().skip(evicted_new) {
                state.op_order.insert(result.log_index, op_id.clone());
                state.ops.insert(op_id, result);
            }
            state.last_applied = Some(last_applied);
            if let Some(m) = membership {
                state.last_membership = m;
            }
        }

        for (responder, result) in responses {
            responder.send(result);
        }
        self.shared.applied_tx.send_replace(last_applied.index());
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        let data = String::from_utf8(snapshot.into_inner())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot is not UTF-8: {e}")))?;
        let payload: SnapshotPayload = from_json(data.as_bytes())?;
        if payload.format != SNAPSHOT_FORMAT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot format {} is not {SNAPSHOT_FORMAT}", payload.format),
            ));
        }
        tracing::info!(last_log_id = ?meta.last_log_id, keys = payload.kv.len(), "raft: installing snapshot");

        let mut new_state = SmState {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            ..SmState::default()
        };
        new_state.kv = payload.kv;
        for op in payload.ops {
            new_state.op_order.insert(op.result.log_index, op.op_id.clone());
            new_state.ops.insert(op.op_id, op.result);
        }
        while new_state.ops.len() > MAX_REMEMBERED_OPS {
            match new_state.op_order.pop_first() {
                Some((_, op_id)) => {
                    new_state.ops.remove(&op_id);
                }
                None => break,
            }
        }

        // Build the replacement batch: clear the old state, write the new one.
        let mut batch = WriteBatch::default();
        {
            let kv_cf = cf(&self.db, CF_SM_KV)?;
            let ops_cf = cf(&self.db, CF_SM_OPS)?;
            let meta_cf = cf(&self.db, CF_SM_META)?;
            for item in self.db.iterator_cf(kv_cf, IteratorMode::Start) {
                let (key, _) = item.map_err(rocks_err)?;
                batch.delete_cf(kv_cf, key);
            }
            for item in self.db.iterator_cf(ops_cf, IteratorMode::Start) {
                let (key, _) = item.map_err(rocks_err)?;
                batch.delete_cf(ops_cf, key);
            }
            for (key, value) in &new_state.kv {
                batch.put_cf(kv_cf, key.as_bytes(), to_json(value)?);
            }
            for (op_id, result) in &new_state.ops {
                batch.put_cf(ops_cf, op_id.as_bytes(), to_json(result)?);
            }
            match &new_state.last_applied {
                Some(id) => batch.put_cf(meta_cf, KEY_LAST_APPLIED, to_json(id)?),
                None => batch.delete_cf(meta_cf, KEY_LAST_APPLIED),
            }
            batch.put_cf(meta_cf, KEY_MEMBERSHIP, to_json(&new_state.last_membership)?);
        }
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let db = self.db.clone();
        let shared = self.shared.clone();
        blocking(move || {
            db.write_opt(batch, &sync_write()).map_err(rocks_err)?;
            Self::store_snapshot(&db, &shared, &stored)
        })
        .await?;

        let index = new_state.last_applied.map(|id| id.index()).unwrap_or(0);
        *self.shared.write() = new_state;
        self.shared.applied_tx.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let bytes = self.db.get_cf(cf(&self.db, CF_SNAPSHOT)?, KEY_CURRENT_SNAPSHOT).map_err(rocks_err)?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let stored: StoredSnapshot = from_json(&bytes)?;
        Ok(Some(Snapshot { meta: stored.meta, snapshot: Cursor::new(stored.data.into_bytes()) }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures::stream;
    use openraft::entry::RaftEntry;
    use serde_json::json;

    use super::*;
    use crate::store::test_dir::TestDir;
    use crate::typ::Entry;

    fn log_id(index: u64) -> LogId {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    async fn apply_cmds(sm: &mut KvStateMachine, first_index: u64, cmds: Vec<Command>) {
        let items: Vec<Result<EntryResponder, io::Error>> = cmds
            .into_iter()
            .enumerate()
            .map(|(i, c)| Ok((Entry::new_normal(log_id(first_index + i as u64), c), None)))
            .collect();
        sm.apply(stream::iter(items)).await.unwrap();
    }

    #[tokio::test]
    async fn failed_cas_applies_nothing_and_duplicates_are_recognised() {
        let dir = TestDir::new("sm-cas");
        let db = crate::store::open_db(dir.path()).unwrap();
        let mut sm = KvStateMachine::open(db.clone()).unwrap();
        apply_cmds(
            &mut sm,
            1,
            vec![
                Command::new("a", vec![KvOp::put("k", json!(1))]),
                // CAS on a key written by an earlier command of the same apply call.
                Command::new(
                    "b",
                    vec![KvOp::put("x", json!("x")), KvOp::compare_and_put("k", Some(json!(2)), json!(3))],
                ),
                Command::new("c", vec![KvOp::compare_and_put("k", Some(json!(1)), json!(4)), KvOp::delete("gone")]),
            ],
        )
        .await;
        let shared = sm.shared();
        assert_eq!(shared.get("k"), Some(json!(4)));
        assert_eq!(shared.get("x"), None, "failed CAS must not apply the earlier put");
        let failed = shared.read().ops.get("b").cloned().unwrap();
        assert!(!failed.applied);
        assert_eq!(failed.failed_key.as_deref(), Some("k"));

        let mut pending = PendingApply::default();
        let dup = sm.apply_command(&mut pending, &Command::new("a", vec![KvOp::put("k", json!(9))]), 10);
        assert!(dup.duplicate && dup.applied);
        assert_eq!(dup.log_index, 1);

        // State survives a reopen.
        drop(sm);
        drop(shared);
        drop(db);
        let db = crate::store::open_db(dir.path()).unwrap();
        let sm = KvStateMachine::open(db).unwrap();
        assert_eq!(sm.shared().get("k"), Some(json!(4)));
        assert_eq!(sm.shared().last_applied_index(), 3);
        assert_eq!(sm.shared().read().ops.len(), 3);
    }

    #[tokio::test]
    async fn op_ids_are_bounded() {
        let dir = TestDir::new("sm-bound");
        let db = crate::store::open_db(dir.path()).unwrap();
        let mut sm = KvStateMachine::open(db).unwrap();
        let total = MAX_REMEMBERED_OPS + 25;
        let mut index = 1;
        for chunk in (0..total).collect::<Vec<_>>().chunks(4000) {
            let cmds = chunk.iter().map(|i| Command::new(format!("op-{i}"), vec![])).collect::<Vec<_>>();
            let n = cmds.len() as u64;
            apply_cmds(&mut sm, index, cmds).await;
            index += n;
        }
        let shared = sm.shared();
        let state = shared.read();
        assert_eq!(state.ops.len(), MAX_REMEMBERED_OPS);
        assert!(!state.ops.contains_key("op-0"));
        assert!(state.ops.contains_key(&format!("op-{}", total - 1)));
        assert_eq!(state.op_order.len(), MAX_REMEMBERED_OPS);
    }

    #[tokio::test]
    async fn snapshot_round_trip_keeps_data_and_op_ids() {
        let dir_a = TestDir::new("sm-snap-a");
        let dir_b = TestDir::new("sm-snap-b");
        let mut a = KvStateMachine::open(crate::store::open_db(dir_a.path()).unwrap()).unwrap();
        let mut b = KvStateMachine::open(crate::store::open_db(dir_b.path()).unwrap()).unwrap();
        apply_cmds(&mut b, 1, vec![Command::new("stale", vec![KvOp::put("old", json!(true))])]).await;
        apply_cmds(&mut a, 1, vec![Command::new("one", vec![KvOp::put("cfg/a", json!({"x": 1}))])]).await;
        let snap = a.build_snapshot().await.unwrap();
        b.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        assert_eq!(b.shared().get("old"), None);
        assert_eq!(b.shared().scan_prefix("cfg/"), vec![("cfg/a".to_string(), json!({"x": 1}))]);
        assert!(b.shared().read().ops.contains_key("one"));
        let current = b.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
    }
}
