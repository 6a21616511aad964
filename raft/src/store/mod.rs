//! RocksDB storage of one node: the raft log, the raft metadata (vote, committed, purged) and the
//! applied key-value state machine, all in one database with one column family each.
//!
//! Everything is stored as JSON (pitfall 8: no positional encodings for openraft types). Writes
//! that openraft must find on disk after a crash (vote, appended entries, applied state) are
//! fsynced before they are acknowledged (pitfall 2).

mod log_store;
mod state_machine;

#[cfg(test)]
mod conformance_test;
#[cfg(test)]
pub(crate) mod test_dir;

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::typ::TypeConfig;

/// The raft instance of this crate: our type configuration over the RocksDB state machine.
pub(crate) type Raft = openraft::Raft<TypeConfig, KvStateMachine>;

pub(crate) use log_store::RocksLogStore;
pub use state_machine::MAX_REMEMBERED_OPS;
pub(crate) use state_machine::{KvStateMachine, SmShared};

/// Log entries: key = big-endian log index, value = JSON entry.
pub(crate) const CF_LOG: &str = "log";
/// Raft metadata: vote, committed log id, last purged log id, storage format.
pub(crate) const CF_META: &str = "meta";
/// State machine data: key = user key, value = JSON value.
pub(crate) const CF_SM_KV: &str = "sm_kv";
/// Remembered op ids: key = op id, value = JSON [`crate::CommandResult`].
pub(crate) const CF_SM_OPS: &str = "sm_ops";
/// State machine metadata: last applied log id and last membership.
pub(crate) const CF_SM_META: &str = "sm_meta";
/// The current snapshot (metadata and data), so it can be sent without being rebuilt.
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

const ALL_CFS: [&str; 6] = [CF_LOG, CF_META, CF_SM_KV, CF_SM_OPS, CF_SM_META, CF_SNAPSHOT];

/// Version of the on-disk layout, stored under `meta/format`. Bump on incompatible changes.
const FORMAT_VERSION: u64 = 1;
const KEY_FORMAT: &str = "format";

/// Directory of the RocksDB database inside the group's data directory.
pub(crate) fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft-db")
}

/// The database shared by the log store and the state machine. Dropping the last reference
/// closes RocksDB; the close flag is raised only after that close has finished (a `Weak`
/// count drops to zero before the close runs, which is too early to reopen the directory).
pub(crate) struct StoreDb {
    db: DB,
    // Dropped after `db` (fields drop in declaration order).
    closed: CloseFlag,
}

struct CloseFlag(Arc<AtomicBool>);

impl Drop for CloseFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl StoreDb {
    /// A flag that becomes `true` once the database is closed.
    pub(crate) fn closed_flag(&self) -> Arc<AtomicBool> {
        self.closed.0.clone()
    }
}

impl Deref for StoreDb {
    type Target = DB;

    fn deref(&self) -> &DB {
        &self.db
    }
}

/// Opens (or creates) the database under `data_dir` and checks its format version.
pub(crate) fn open_db(data_dir: &Path) -> io::Result<Arc<StoreDb>> {
    let path = db_dir(data_dir);
    std::fs::create_dir_all(&path)?;

    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_compression_type(DBCompressionType::Lz4);
    db_opts.set_keep_log_file_num(4);

    let cfs = ALL_CFS.iter().map(|name| {
        let mut cf_opts = Options::default();
        cf_opts.set_compression_type(DBCompressionType::Lz4);
        ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    let db = DB::open_cf_descriptors(&db_opts, &path, cfs)
        .map_err(|e| io::Error::other(format!("opening RocksDB at {}: {e}", path.display())))?;

    let meta = cf(&db, CF_META)?;
    match db.get_cf(meta, KEY_FORMAT).map_err(rocks_err)? {
        None => {
            db.put_cf_opt(meta, KEY_FORMAT, to_json(&FORMAT_VERSION)?, &sync_write()).map_err(rocks_err)?;
        }
        Some(bytes) => {
            let found: u64 = from_json(&bytes)?;
            if found != FORMAT_VERSION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "raft storage at {} has format {found}, this build reads format {FORMAT_VERSION}",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(Arc::new(StoreDb { db, closed: CloseFlag(Arc::new(AtomicBool::new(false))) }))
}

/// Opens the database and builds the log store and the state machine on it; the flag turns
/// `true` once both are dropped and the database is closed.
pub(crate) fn open_stores(data_dir: &Path) -> io::Result<(RocksLogStore, KvStateMachine, Arc<AtomicBool>)> {
    let db = open_db(data_dir)?;
    let closed = db.closed_flag();
    let log = RocksLogStore::new(db.clone())?;
    let sm = KvStateMachine::open(db)?;
    Ok((log, sm, closed))
}

/// Looks up a column family; its absence means the database was not opened by [`open_db`].
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a ColumnFamily> {
    db.cf_handle(name).ok_or_else(|| io::Error::other(format!("RocksDB column family `{name}` is missing")))
}

/// Write options that fsync the WAL before the write returns.
pub(crate) fn sync_write() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

pub(crate) fn rocks_err(e: rocksdb::Error) -> io::Error {
    io::Error::other(format!("RocksDB: {e}"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Runs blocking RocksDB work on the blocking pool, so fsyncs do not stall the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| io::Error::other(format!("blocking storage task failed: {e}")))?
}
