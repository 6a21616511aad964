//! openraft's storage conformance suite run against the RocksDB log store and state machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;

use super::test_dir::TestDir;
use super::{open_stores, KvStateMachine, RocksLogStore};
use crate::typ::TypeConfig;

struct RocksStoreBuilder;

impl StoreBuilder<TypeConfig, RocksLogStore, KvStateMachine, TestDir> for RocksStoreBuilder {
    async fn build(&self) -> Result<(TestDir, RocksLogStore, KvStateMachine), StorageError<TypeConfig>> {
        let mut dir = TestDir::new("suite");
        let (log, sm, closed) =
            open_stores(dir.path()).map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        dir.wait_for_close(closed);
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(RocksStoreBuilder).await.unwrap();
}
