//! Crash records (one per failover or switchover) and the cluster's persisted decisions:
//! failover counter, last failover time, maintenance flags. Written atomically to
//! `<monitoring-datadir>/<cluster>/state.json` so they survive a restart.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What was known when a master was replaced: the evidence a later rejoin relies on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrashRecord {
    /// Operation id.
    pub id: String,
    /// The replaced master (`host:port`).
    pub old_master: String,
    /// The old master's `gtid_binlog_pos` at its last successful probe.
    pub old_master_gtid: String,
    /// The old master's binlog coordinates as the elected replica had received them.
    pub old_master_log_file: String,
    pub old_master_log_pos: String,
    /// The promoted server.
    pub elected_master: String,
    /// What the elected replica had received from the old master (`Gtid_IO_Pos`).
    pub elected_io_gtid: String,
    /// The new master's `gtid_binlog_pos` right after promotion.
    pub new_master_gtid: String,
    pub new_master_log_file: String,
    pub new_master_log_pos: String,
    /// The old master waited for semi-sync acks at its last probe.
    pub old_master_semi_sync: bool,
    /// The elected replica acknowledged semi-sync at its last probe.
    pub elected_semi_sync: bool,
    /// GTIDs the old master had (last probe) that the new master did not receive: at risk.
    pub gtids_at_risk: Vec<String>,
    /// The replication domain compared.
    pub domain: u32,
    pub unix_timestamp: u64,
    pub switchover: bool,
    /// Why it ran (automatic failover, API request, ...).
    pub trigger: String,
}

/// Everything about a cluster that must survive a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedCluster {
    pub version: u32,
    pub crashes: Vec<CrashRecord>,
    pub failover_counter: u64,
    pub failover_last_time: u64,
    /// `host:port` of servers in maintenance.
    pub maintenance: Vec<String>,
}

/// How many crash records are kept (the Go project keeps 5 failover files; we keep more).
pub const CRASHES_KEPT: usize = 50;

/// The state file of `cluster` under `datadir`.
pub fn state_path(datadir: &Path, cluster: &str) -> PathBuf {
    datadir.join(cluster).join("state.json")
}

/// Loads the persisted state (default when the file does not exist).
pub fn load(datadir: &Path, cluster: &str) -> anyhow::Result<PersistedCluster> {
    let path = state_path(datadir, cluster);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PersistedCluster { version: 1, ..Default::default() }),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Saves the persisted state atomically (write, fsync, rename).
pub fn save(datadir: &Path, cluster: &str, state: &PersistedCluster) -> anyhow::Result<()> {
    let path = state_path(datadir, cluster);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(state).context("encoding cluster state")?;
    crate::node::write_private(&path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let dir = std::env::temp_dir().join(format!("rm-crash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir, "c1").unwrap().failover_counter, 0);
        let s = PersistedCluster {
            version: 1,
            crashes: vec![CrashRecord { old_master: "a:1".into(), ..Default::default() }],
            failover_counter: 2,
            failover_last_time: 10,
            maintenance: vec!["b:2".into()],
        };
        save(&dir, "c1", &s).unwrap();
        assert_eq!(load(&dir, "c1").unwrap(), s);
        std::fs::write(state_path(&dir, "c1"), b"{not json").unwrap();
        assert!(load(&dir, "c1").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
