//! The raft log and raft metadata in RocksDB (openraft `RaftLogStorage`).
//!
//! Durability contract (pitfall 2): `save_vote` returns only after the vote is fsynced, and
//! `append` signals `IOFlushed` only after the WAL holding the entries is fsynced. Truncation and
//! purge need not be durable: openraft tolerates logs that come back after a crash there.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{blocking, cf, from_json, rocks_err, sync_write, to_json, StoreDb, CF_LOG, CF_META};
use crate::typ::{Entry, IOFlushed, LogId, LogState, TypeConfig, Vote};

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "purged";

/// RocksDB-backed raft log; cheap to clone (shares the database).
#[derive(Clone)]
pub(crate) struct RocksLogStore {
    db: Arc<StoreDb>,
}

impl RocksLogStore {
    /// Wraps an open database; fails when the log column families are missing.
    pub(crate) fn new(db: Arc<StoreDb>) -> io::Result<Self> {
        cf(&db, CF_LOG)?;
        cf(&db, CF_META)?;
        Ok(RocksLogStore { db })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> io::Result<Option<T>> {
        let bytes = self.db.get_cf(cf(&self.db, CF_META)?, key).map_err(rocks_err)?;
        bytes.map(|b| from_json(&b)).transpose()
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let mut it = self.db.iterator_cf(cf(&self.db, CF_LOG)?, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(rocks_err)?;
                let entry: Entry = from_json(&value)?;
                Ok(Some(entry.log_id()))
            }
        }
    }
}

/// Log keys are big-endian so that RocksDB's byte order is index order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let start_key = index_key(start);
        let mut entries = Vec::new();
        let it = self.db.iterator_cf(cf(&self.db, CF_LOG)?, IteratorMode::From(&start_key, Direction::Forward));
        for item in it {
            let (key, value) = item.map_err(rocks_err)?;
            let index = key_index(&key)?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = from_json(&value)?;
            if entry.index() != index {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("log key {index} holds entry {}", entry.log_id()),
                ));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState, io::Error> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let last_log_id = match self.last_entry_log_id()? {
            Some(id) => Some(id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = to_json(vote)?;
        let db = self.db.clone();
        blocking(move || db.put_cf_opt(cf(&db, CF_META)?, KEY_VOTE, bytes, &sync_write()).map_err(rocks_err)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let meta = cf(&self.db, CF_META)?;
        match committed {
            Some(id) => self.db.put_cf(meta, KEY_COMMITTED, to_json(&id)?).map_err(rocks_err),
            None => self.db.delete_cf(meta, KEY_COMMITTED).map_err(rocks_err),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.get_meta(KEY_COMMITTED)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(log, index_key(entry.index()), to_json(&entry)?);
        }
        // The entries must be readable when append() returns; durability is signalled later.
        self.db.write(batch).map_err(rocks_err)?;

        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let res = db.flush_wal(true).map_err(rocks_err);
            callback.io_completed(res);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match last_log_id {
            Some(id) => id.index().saturating_add(1),
            None => 0,
        };
        tracing::debug!(from, "raft log: truncating entries from index");
        self.db.delete_range_cf(cf(&self.db, CF_LOG)?, index_key(from), index_key(u64::MAX)).map_err(rocks_err)?;
        // delete_range excludes the end key.
        self.db.delete_cf(cf(&self.db, CF_LOG)?, index_key(u64::MAX)).map_err(rocks_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        tracing::debug!(upto = %log_id, "raft log: purging entries");
        // Record the purge point first: entries at or below it are ignored even if the range
        // delete below is lost in a crash.
        self.db.put_cf(cf(&self.db, CF_META)?, KEY_PURGED, to_json(&log_id)?).map_err(rocks_err)?;
        self.db
            .delete_range_cf(cf(&self.db, CF_LOG)?, index_key(0), index_key(log_id.index().saturating_add(1)))
            .map_err(rocks_err)
    }
}
