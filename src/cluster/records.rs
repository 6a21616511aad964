//! Crash records (one per failover or switchover), the operation journal, and the cluster
//! decisions the manager group replicates: master, failover counter and time, maintenance flags.

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
    /// The old master had semi-sync enabled (the new one gets it too).
    #[serde(default)]
    pub semi_sync_cluster: bool,
    /// Evidence that nothing the old master holds beyond `elected_io_gtid` was acknowledged
    /// to a client: at its last probe it acknowledged no commit before a replica had it, and
    /// it had no commit waiting at `semi_sync_idle_at_ms` (unix ms; 0: no such evidence), so
    /// none could fall back to asynchronous before that time plus `semi_sync_timeout_ms`.
    #[serde(default)]
    pub semi_sync_idle_at_ms: u64,
    #[serde(default)]
    pub semi_sync_timeout_ms: u64,
    /// Transactions of the old master rolled back when it rejoined (`autorejoin-semisync`).
    #[serde(default)]
    pub discarded_gtids: Vec<String>,
    /// Why the old master was taken for dead (`failover::plan::master_death`); empty for a
    /// requested failover of a master the manager did not see dead, and for a switchover.
    #[serde(default)]
    pub detection: String,
    /// Milliseconds from the old master's first failed probe to the start of the failover
    /// (detection and the managers' vote); 0 when it had not failed.
    #[serde(default)]
    pub detected_after_ms: u64,
    /// How long each step took, in order (`journal-started`, `wait-applied`, `promote`, ...).
    #[serde(default)]
    pub step_ms: Vec<StepTime>,
}

impl CrashRecord {
    /// Records that `step`, started at `started`, is over.
    pub fn push_step(&mut self, step: &str, started: std::time::Instant) {
        self.step_ms.push(StepTime { step: step.to_string(), ms: started.elapsed().as_millis() as u64 });
    }

    /// `detected 812 ms, journal-started 4 ms, wait-applied 3 ms, ...` (repoints summed).
    pub fn timing_line(&self) -> String {
        let mut parts: Vec<(String, u64)> = Vec::new();
        for t in &self.step_ms {
            match parts.last_mut() {
                Some((name, ms)) if *name == t.step => *ms += t.ms,
                _ => parts.push((t.step.clone(), t.ms)),
            }
        }
        let mut line = format!("detected {} ms", self.detected_after_ms);
        for (name, ms) in parts {
            line.push_str(&format!(", {name} {ms} ms"));
        }
        line
    }
}

/// One step of an operation and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub ms: u64,
}

/// One failover or switchover as it runs: replicated before the first database mutation and
/// after each milestone, so a new leader can finish or roll back an interrupted operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub op_id: String,
    pub kind: OpKind,
    pub trigger: String,
    pub old_master: String,
    pub candidate: String,
    pub status: OpStatus,
    /// Raft term and node of the leader that ran it (the failover epoch).
    pub term: u64,
    pub node: u64,
    /// Evidence gathered at election, completed into the crash record when done.
    pub evidence: CrashRecord,
    pub updated_at: u64,
}

/// Which master change a journal entry records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    #[default]
    Failover,
    Switchover,
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpKind::Failover => "failover",
            OpKind::Switchover => "switchover",
        })
    }
}

/// Where an operation stands. Serialized as the snake_case words replicated since the first
/// version (`started`, `rolled_back`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// Journaled before the first mutation; nothing promoted yet.
    #[default]
    Started,
    /// The candidate is writable: a new leader finishes the operation from here.
    Promoted,
    Done,
    /// Stopped before any irreversible step (failover).
    Aborted,
    /// Undone (switchover): the old master is writable again.
    RolledBack,
    /// Could not be finished (the candidate is gone); detection decides afresh.
    Failed,
}

impl std::fmt::Display for OpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpStatus::Started => "started",
            OpStatus::Promoted => "promoted",
            OpStatus::Done => "done",
            OpStatus::Aborted => "aborted",
            OpStatus::RolledBack => "rolled_back",
            OpStatus::Failed => "failed",
        })
    }
}

impl JournalEntry {
    /// Still needs a leader to finish it.
    pub fn is_open(&self) -> bool {
        matches!(self.status, OpStatus::Started | OpStatus::Promoted)
    }
}

/// Everything about a cluster that the manager group replicates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedCluster {
    pub version: u32,
    pub crashes: Vec<CrashRecord>,
    pub failover_counter: u64,
    pub failover_last_time: u64,
    /// `host:port` of servers in maintenance.
    pub maintenance: Vec<String>,
    /// The master the group decided (`host:port`), once a failover, switchover or bootstrap ran.
    #[serde(default)]
    pub master: Option<String>,
    /// The latest operations (bounded).
    #[serde(default)]
    pub journal: Vec<JournalEntry>,
    /// Settings changed through the API (key, value text), applied over the file.
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    /// Servers added through the API (`host:port`).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

/// How many crash records are kept.
pub const CRASHES_KEPT: usize = 50;
/// How many journal entries are kept.
pub const JOURNAL_KEPT: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_states_without_new_fields_still_load() {
        let v = serde_json::json!({"version": 1, "crashes": [], "failover_counter": 2, "failover_last_time": 5, "maintenance": []});
        let p: PersistedCluster = serde_json::from_value(v).unwrap();
        assert_eq!(p.failover_counter, 2);
        assert!(p.master.is_none() && p.journal.is_empty());
        let j = JournalEntry { status: OpStatus::Promoted, ..Default::default() };
        assert!(j.is_open());
        assert!(!JournalEntry { status: OpStatus::Done, ..Default::default() }.is_open());
        // The replicated words of the first version still load.
        let old = serde_json::json!({"op_id": "x", "kind": "switchover", "trigger": "", "old_master": "", "candidate": "",
            "status": "rolled_back", "term": 1, "node": 1, "evidence": CrashRecord::default(), "updated_at": 0});
        let j: JournalEntry = serde_json::from_value(old).unwrap();
        assert_eq!((j.kind, j.status), (OpKind::Switchover, OpStatus::RolledBack));
        assert_eq!(serde_json::to_value(OpStatus::RolledBack).unwrap(), "rolled_back");
    }
}
