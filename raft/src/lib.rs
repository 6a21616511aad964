//! Manager group (placeholder until the raft issue): openraft + RocksDB.
