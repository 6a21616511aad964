//! Wire types: the JSON objects of the API document, with its field names.
//!
//! Field names follow `spec/api-client-usage.md` and, where it is silent, the Go project's JSON
//! (nullable strings as `{"String","Valid"}` in replication status, as its dashboards read them).
//!
//! Field order is the order of the JSON the API has always sent: declaration order for the big
//! objects, alphabetical order (noted on the type) for objects that used to be built as
//! `serde_json` maps, which sort their keys.

use std::collections::BTreeMap;

use serde::Serialize;

/// The element type of a list this manager never fills (no agents, service plans, SLA history,
/// ...): the list serializes as `null` or `[]`, and nothing can be put in it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum NotReported {}

/// A nullable string as the Go project serializes `sql.NullString`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NullString {
    #[serde(rename = "String")]
    pub string: String,
    #[serde(rename = "Valid")]
    pub valid: bool,
}

impl NullString {
    pub fn of(s: impl Into<String>) -> NullString {
        NullString { string: s.into(), valid: true }
    }
}

/// A nullable integer as the Go project serializes `sql.NullInt64`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NullInt64 {
    #[serde(rename = "Int64")]
    pub int64: i64,
    #[serde(rename = "Valid")]
    pub valid: bool,
}

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GtidView {
    pub domain_id: u32,
    pub server_id: u32,
    pub seq_no: u64,
}

/// One replication connection of a server (`SHOW ALL SLAVES STATUS` row).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationView {
    pub connection_name: NullString,
    pub master_host: NullString,
    pub master_user: NullString,
    pub master_port: NullString,
    pub master_log_file: NullString,
    pub read_master_log_pos: NullString,
    pub relay_master_log_file: NullString,
    pub slave_io_running: NullString,
    pub slave_sql_running: NullString,
    pub exec_master_log_pos: NullString,
    pub seconds_behind_master: NullInt64,
    pub last_io_errno: NullString,
    pub last_io_error: NullString,
    pub last_sql_errno: NullString,
    pub last_sql_error: NullString,
    pub master_server_id: u32,
    pub using_gtid: NullString,
    pub gtid_io_pos: NullString,
    pub gtid_slave_pos: NullString,
    pub slave_heartbeat_period: f64,
    #[serde(rename = "slaveSQLRunningState")]
    pub slave_sql_running_state: NullString,
    /// Heartbeats received on this connection (MariaDB `Slave_received_heartbeats`).
    pub slave_received_heartbeats: u64,
}

/// `SHOW MASTER STATUS`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MasterStatusView {
    pub file: String,
    pub position: String,
    #[serde(rename = "binlogDoDB")]
    pub binlog_do_db: String,
    #[serde(rename = "binlogIgnoreDB")]
    pub binlog_ignore_db: String,
}

/// Database version.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DbVersionView {
    pub flavor: String,
    pub major: u32,
    pub minor: u32,
    pub release: u32,
    pub suffix: String,
}

/// A database server (`/topology/servers`, `/topology/master`, `/topology/slaves`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    /// `"db"` + CRC64-ECMA of `host:port` (the Go project's id).
    pub id: String,
    pub name: String,
    pub service_name: String,
    pub url: String,
    pub host: String,
    /// The port, as a string (Go shape).
    pub port: String,
    pub server_id: u32,
    pub domain_id: u32,
    pub state: String,
    pub prev_state: String,
    pub fail_count: u32,
    /// `"ON"` / `"OFF"` (Go shape).
    pub read_only: String,
    pub is_read_only: bool,
    pub gtid_binlog_pos: Option<Vec<GtidView>>,
    pub gtid_current_pos: Option<Vec<GtidView>>,
    pub gtid_slave_pos: Option<Vec<GtidView>>,
    /// Go's names for the current and replica positions.
    pub current_gtid: Option<Vec<GtidView>>,
    pub slave_gtid: Option<Vec<GtidView>>,
    pub gtid_executed: String,
    pub semi_sync_master_status: bool,
    pub semi_sync_slave_status: bool,
    pub have_semi_sync: bool,
    pub have_binlog: bool,
    pub have_gtid_strict_mode: bool,
    pub have_mariadb_gtid: bool,
    pub have_mysql_gtid: bool,
    #[serde(rename = "HaveBinlogSlaveUpdates")]
    pub have_binlog_slave_updates: bool,
    pub have_read_only: bool,
    pub binary_log_file: String,
    pub binary_log_pos: String,
    pub is_slave: bool,
    pub is_maintenance: bool,
    pub is_virtual_master: bool,
    pub ignored: bool,
    pub prefered: bool,
    pub replications: Vec<ReplicationView>,
    pub master_status: MasterStatusView,
    pub db_version: DbVersionView,
    pub replication_health: String,
    /// The last probe error, empty when the last probe succeeded.
    pub last_error: String,
    /// Time of the last successful probe (`yyyy/mm/dd hh:mm:ss`), empty if never.
    pub last_seen: String,
    /// Duration of the last successful probe in milliseconds.
    pub probe_latency_ms: u64,
    pub threads_connected: u64,
    pub uptime: u64,
    /// `@@hostname` of the server.
    pub hostname: String,
    pub binlog_format: String,
    pub semi_sync_master_clients: u64,
    /// `Slave_received_heartbeats` (global status).
    pub slave_received_heartbeats: u64,
    /// `Queries` (global status).
    pub queries: u64,
}

/// One log entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogEntryView {
    pub group: String,
    pub level: String,
    pub timestamp: String,
    pub text: String,
}

/// A bounded log (`{"buffer","len","line"}`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HttpLog {
    pub buffer: Vec<LogEntryView>,
    pub len: usize,
    pub line: u64,
}

/// One open alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertView {
    pub number: String,
    pub desc: String,
    pub from: String,
}

/// `/topology/alerts`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertsView {
    pub errors: Option<Vec<AlertView>>,
    pub warnings: Option<Vec<AlertView>>,
}

/// A crash (failover) record, with the Go project's capitalized names.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CrashView {
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(rename = "FailoverMasterLogFile")]
    pub failover_master_log_file: String,
    #[serde(rename = "FailoverMasterLogPos")]
    pub failover_master_log_pos: String,
    #[serde(rename = "NewMasterLogFile")]
    pub new_master_log_file: String,
    #[serde(rename = "NewMasterLogPos")]
    pub new_master_log_pos: String,
    #[serde(rename = "FailoverSemiSyncSlaveStatus")]
    pub failover_semi_sync_slave_status: bool,
    #[serde(rename = "FailoverIOGtid")]
    pub failover_io_gtid: Option<Vec<GtidView>>,
    #[serde(rename = "ElectedMasterURL")]
    pub elected_master_url: String,
    #[serde(rename = "UnixTimestamp")]
    pub unix_timestamp: u64,
    #[serde(rename = "Switchover")]
    pub switchover: bool,
    /// Extra evidence: every position known at the time, and transactions at risk.
    #[serde(rename = "Details")]
    pub details: CrashDetailsView,
}

/// One step of a failover and how long it took.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StepTimeView {
    pub ms: u64,
    pub step: String,
}

/// Everything recorded about a failover or switchover (`Details` of a crash), with the
/// record's snake_case names, fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CrashDetailsView {
    /// Milliseconds from the old master's first failed probe to the failover's start.
    pub detected_after_ms: u64,
    /// Why the old master was taken for dead (empty for a switchover or a requested failover).
    pub detection: String,
    /// Transactions of the old master rolled back when it rejoined (`autorejoin-semisync`).
    pub discarded_gtids: Vec<String>,
    /// The replication domain compared.
    pub domain: u32,
    /// What the elected replica had received from the old master (`Gtid_IO_Pos`).
    pub elected_io_gtid: String,
    /// The promoted server (`host:port`).
    pub elected_master: String,
    /// The elected replica acknowledged semi-sync at its last probe.
    pub elected_semi_sync: bool,
    /// GTIDs the old master had that the new master did not receive: at risk.
    pub gtids_at_risk: Vec<String>,
    /// Operation id.
    pub id: String,
    /// The new master's `gtid_binlog_pos` right after promotion.
    pub new_master_gtid: String,
    pub new_master_log_file: String,
    pub new_master_log_pos: String,
    /// The replaced master (`host:port`).
    pub old_master: String,
    /// The old master's `gtid_binlog_pos` at its last successful probe.
    pub old_master_gtid: String,
    /// The old master's binlog coordinates as the elected replica had received them.
    pub old_master_log_file: String,
    pub old_master_log_pos: String,
    /// The old master waited for semi-sync acks at its last probe.
    pub old_master_semi_sync: bool,
    /// The old master had semi-sync enabled (the new one gets it too).
    pub semi_sync_cluster: bool,
    /// Unix ms of the old master's last probe with no commit waiting for a semi-sync
    /// acknowledgement, while it acknowledged none before a replica had it (0: no evidence).
    pub semi_sync_idle_at_ms: u64,
    /// The old master's `rpl_semi_sync_master_timeout` (ms) at its last probe.
    pub semi_sync_timeout_ms: u64,
    /// How long each step took, in order: `[{"step": "promote", "ms": 3}, ...]`.
    pub step_ms: Vec<StepTimeView>,
    pub switchover: bool,
    /// Why it ran (automatic failover, API request, ...).
    pub trigger: String,
    pub unix_timestamp: u64,
}

/// A setting value as the configuration file (or a flag, or an API setting) gave it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum SettingValue {
    /// A float that JSON cannot carry (NaN, infinite).
    Null,
    Bool(bool),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
    List(Vec<SettingValue>),
    Table(BTreeMap<String, SettingValue>),
}

/// Settings of a cluster (`/settings`, `config` of the cluster object, `Confs` of the monitor):
/// lowerCamel key to value, secrets shown as `"*:*"`, keys in alphabetical order.
pub type SettingsView = BTreeMap<String, SettingValue>;

/// One job (backup, log copy, optimize, reseed), fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub cluster: String,
    /// Unix seconds; `null` while running.
    pub ended_at: Option<u64>,
    pub error: Option<String>,
    /// For logical backups: the GTID position of the snapshot.
    pub gtid: Option<String>,
    /// `<yyyymmdd-hhmmss>-<kind>-<4 hex>`.
    pub id: String,
    /// `backup-logical`, `backup-physical`, `backup-error-log`, `backup-slow-query-log`,
    /// `optimize` or `reseed`.
    pub kind: String,
    /// Path of the artifact on the manager host; empty for optimize.
    pub location: String,
    /// `host:port`.
    pub server: String,
    pub size_bytes: u64,
    /// Unix seconds.
    pub started_at: u64,
    /// `running`, `done` or `failed`.
    pub state: String,
}

/// The latest job of a kind (`jobResults` of the cluster object), fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobResultView {
    pub id: String,
    pub server: String,
    /// `running`, `done` or `failed`.
    pub state: String,
}

/// `workLoad` of the cluster object, fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkLoadView {
    #[serde(rename = "BusyTime")]
    pub busy_time: String,
    /// Sessions connected to the servers, summed.
    pub connections: u64,
    pub cpu_thread_pool: u64,
    pub cpu_user_stats: u64,
    pub db_index_size: u64,
    pub db_table_size: u64,
    /// Queries per second on the cluster, rounded.
    pub qps: u64,
}

/// `stateMachine` of the cluster object, fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StateMachineView {
    pub discovered: bool,
    pub in_failover: bool,
    pub in_schema_monitor: bool,
}

/// `configurator` of the cluster object (no configuration tags are managed), fields in
/// alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfiguratorView {
    pub config_prx_tags: Vec<String>,
    pub config_tags: Vec<String>,
    pub db_servers_tags: Vec<String>,
    pub proxy_servers_tags: Vec<String>,
}

/// `SlavesOldestMasterFile` of the cluster object, fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OldestMasterFileView {
    #[serde(rename = "OldestTimestamp")]
    pub oldest_timestamp: String,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Suffix")]
    pub suffix: u64,
}

/// An API user and its grants (`apiUsers`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiUserView {
    pub user: String,
    pub grants: BTreeMap<String, bool>,
}

/// The cluster object (`/api/clusters/{c}` and elements of `/api/clusters`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub name: String,
    pub tenant: String,
    pub working_dir: String,
    pub db_servers: Vec<String>,
    pub db_servers_crashes: Option<Vec<CrashView>>,
    pub failover_history: Option<Vec<CrashView>>,
    pub proxy_servers: Vec<String>,
    pub failover_counter: u64,
    pub failover_last_time: u64,
    pub active_passive_status: String,
    pub is_split_brain: bool,
    pub is_failed_arbitrator: bool,
    pub is_lost_majority: bool,
    pub is_down: bool,
    pub is_cluster_down: bool,
    pub is_all_db_up: bool,
    pub is_failable: bool,
    pub is_postgres: bool,
    pub is_provision: bool,
    pub is_need_proxy_restart: bool,
    pub is_need_proxies_restart: bool,
    pub is_need_databases_restart: bool,
    pub is_need_databases_rolling_restart: bool,
    pub is_need_databases_rolling_reprov: bool,
    pub is_need_databases_reprov: bool,
    pub is_valid_backup: bool,
    pub is_not_monitoring: bool,
    pub is_capturing: bool,
    pub is_git_pull: bool,
    pub is_alert_disable: bool,
    pub config: SettingsView,
    pub clean_replication: bool,
    pub topology: String,
    pub uptime: f64,
    pub uptime_failable: f64,
    pub uptime_semisync: f64,
    pub monitor_spin: u64,
    pub work_load: WorkLoadView,
    pub log: HttpLog,
    /// The latest job of each kind, by kind.
    pub job_results: BTreeMap<String, JobResultView>,
    pub sql_general_log: HttpLog,
    pub sql_error_log: HttpLog,
    pub monitor_type: BTreeMap<String, String>,
    pub topology_type: BTreeMap<String, String>,
    pub fs_type: BTreeMap<String, bool>,
    pub disk_type: BTreeMap<String, String>,
    pub vm_type: BTreeMap<String, bool>,
    pub agents: Option<Vec<NotReported>>,
    pub state_machine: StateMachineView,
    #[serde(rename = "haveDBTLSCert")]
    pub have_db_tls_cert: bool,
    #[serde(rename = "haveDBTLSOldCert")]
    pub have_db_tls_old_cert: bool,
    pub sla_history: Option<Vec<NotReported>>,
    pub api_users: BTreeMap<String, ApiUserView>,
    pub waiting_rejoin: u32,
    pub waiting_switchover: u32,
    pub waiting_failover: u32,
    pub configurator: ConfiguratorView,
    pub diff_variables: Option<Vec<NotReported>>,
    pub can_init_nodes: bool,
    pub can_connect_vault: bool,
    pub sst_available_ports: BTreeMap<String, String>,
    #[serde(rename = "LastDelayStatPrint")]
    pub last_delay_stat_print: String,
    #[serde(rename = "SlavesOldestMasterFile")]
    pub slaves_oldest_master_file: OldestMasterFileView,
    #[serde(rename = "SlavesConnected")]
    pub slaves_connected: u64,
    /// The master's id, empty when none is known (not in the Go object; a convenience).
    pub master: String,
    /// Open problems, as in `/topology/alerts`.
    pub alerts: AlertsView,
}

/// One node of the manager group.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupNodeView {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    /// `manager` or `arbitrator`.
    pub role: String,
    pub is_leader: bool,
    pub is_self: bool,
}

/// `/api/group`: the manager group as one node sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub node_id: u64,
    /// `"A"` on the leader with a recent quorum ack, `"S"` elsewhere.
    pub status: String,
    /// Raft state of this node: Leader, Follower, Candidate, Learner, Shutdown.
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    /// This node cannot reach a quorum.
    pub split_brain: bool,
    /// Leader only: milliseconds since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Followers: milliseconds since the leader was last heard.
    pub millis_since_leader_contact: Option<u64>,
    pub last_applied: Option<u64>,
    pub nodes: Vec<GroupNodeView>,
}

/// `config` of `/api/monitor`: the manager's own listeners and files, fields in alphabetical
/// order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitorConfigView {
    pub api_bind: String,
    /// Always `"*:*"` (masked).
    pub api_credentials: String,
    pub api_port: u16,
    pub http_bind_address: String,
    pub http_port: u16,
    pub log_level: String,
    pub monitoring_datadir: String,
}

/// A service orchestrator (`serviceOrchestrators`), fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrchestratorView {
    /// Its tools are installed on the manager host.
    pub available: bool,
    pub id: u32,
    pub label: String,
    pub name: String,
}

/// A grant and whether it is switched on (`serviceAcl`), fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GrantSwitchView {
    pub enable: bool,
    pub grant: String,
}

/// `/api/monitor`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitorView {
    pub version: String,
    pub full_version: String,
    pub os: String,
    pub arch: String,
    pub memprofile: String,
    pub cpuprofile: String,
    pub agents: Option<Vec<NotReported>>,
    pub uuid: String,
    pub hostname: String,
    /// `"A"` (active) or `"S"` (standby).
    pub status: String,
    /// (sic) the document's spelling.
    pub spit_brain: bool,
    pub clusters: Vec<String>,
    pub tests: Vec<String>,
    pub config: MonitorConfigView,
    pub logs: HttpLog,
    pub service_plans: Option<Vec<NotReported>>,
    pub service_orchestrators: Vec<OrchestratorView>,
    pub service_acl: Vec<GrantSwitchView>,
    pub service_repos: Vec<NotReported>,
    pub service_tarballs: Vec<NotReported>,
    #[serde(rename = "serviceFS")]
    pub service_fs: BTreeMap<String, bool>,
    #[serde(rename = "serviceVM")]
    pub service_vm: BTreeMap<String, bool>,
    pub service_disk: BTreeMap<String, String>,
    pub service_pool: BTreeMap<String, bool>,
    pub backup_logical_list: BTreeMap<String, bool>,
    pub backup_physical_list: BTreeMap<String, bool>,
    /// Settings of every cluster, by cluster name.
    #[serde(rename = "Confs")]
    pub confs: BTreeMap<String, SettingsView>,
}

/// The answer of `/api/login`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenView {
    pub token: String,
}

/// A JSON message (`/actions/addserver` answers in this shape, as the Go project).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageView {
    pub msg: String,
}

/// `/api/internal/clusters/{cluster}/master-view`: how one node sees the cluster's master,
/// fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MasterView {
    /// This node takes the master for dead (failed, or dead for certain: connection refused
    /// and its replicas lost it too), with why; empty otherwise.
    pub death: String,
    /// The master's failed-probe counter (0 when no master is known).
    pub fail_count: u32,
    /// The master's `host:port`, empty when none is known.
    pub master: String,
    /// This node's role in the manager group: `manager` or `arbitrator`.
    pub role: String,
    /// The master's state (`Master`, `Suspect`, `Failed`, ...), empty when none is known.
    pub state: String,
}

// ---- server information (`/servers/{server}/...` read routes) ---------------------------------

/// A nullable float as the Go project serializes `sql.NullFloat64`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NullFloat64 {
    #[serde(rename = "Float64")]
    pub float64: f64,
    #[serde(rename = "Valid")]
    pub valid: bool,
}

/// One session of the processlist, fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessView {
    pub command: String,
    pub db: NullString,
    pub host: String,
    pub id: u64,
    /// The statement (first 4096 characters), `null` when idle.
    pub info: Option<String>,
    pub progress: f64,
    pub rows_examined: u64,
    /// Not reported by MariaDB's processlist: always 0.
    pub rows_sent: u64,
    pub state: String,
    /// Seconds in the current state.
    pub time: NullFloat64,
    pub time_ms: f64,
    pub user: String,
}

/// One variable or status counter (`value` is text, as the Go project), fields in
/// alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VariableView {
    pub value: String,
    pub variable_name: String,
}

/// One error-log entry, fields in alphabetical order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLineView {
    pub group: String,
    /// `INFO` (MariaDB `[Note]`), `WARN` (`[Warning]`), `ERROR`, or the bracketed word upper-cased.
    pub level: String,
    pub text: String,
    /// `yyyy/mm/dd hh:mm:ss` as written by the server (its local time); empty when the line has none.
    pub timestamp: String,
}

/// The error log of a server: `{"buffer","len","line"}`, newest first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorLogView {
    pub buffer: Vec<LogLineView>,
    /// Entries in `buffer`.
    pub len: usize,
    /// Entries found in the part of the file read.
    pub line: usize,
}

/// One slow query, fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SlowQueryView {
    pub db: String,
    /// Seconds.
    pub lock_time: f64,
    pub query: String,
    /// Seconds.
    pub query_time: f64,
    pub rows_examined: u64,
    pub rows_sent: u64,
    /// `yyyy-mm-dd hh:mm:ss[.ffffff]`, UTC when known (`SET timestamp` line, or the slow-log
    /// table read in UTC); else the file's `# Time:` value in the server's local time.
    pub start_time: String,
    pub user_host: String,
}

/// One table of a user schema (snake_case names), fields in alphabetical order.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TableView {
    pub data_length: u64,
    pub engine: String,
    pub index_length: u64,
    pub table_name: String,
    /// Estimated by the engine.
    pub table_rows: u64,
    pub table_schema: String,
}

/// The answer of a server-information route: one shape per kind.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ServerInfoView {
    /// `processlist`.
    Processlist(Vec<ProcessView>),
    /// `variables`, `status`, `status-delta` (per-second rates) and `status-innodb`.
    Variables(Vec<VariableView>),
    /// `errorlog`.
    ErrorLog(ErrorLogView),
    /// `slowlog`, `slow-queries`.
    SlowLog(Vec<SlowQueryView>),
    /// `tables`.
    Tables(Vec<TableView>),
    /// `vtables`: the tables keyed by `schema.table`.
    VTables(BTreeMap<String, TableView>),
    /// `schemas`: schema names.
    Schemas(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    /// The objects that used to be `json!` maps keep their bytes (keys in alphabetical order).
    #[test]
    fn small_objects_serialize_as_before() {
        let mv = MasterView { death: String::new(), fail_count: 2, master: "h:1".into(), role: "manager".into(), state: "Suspect".into() };
        assert_eq!(json(&mv), r#"{"death":"","failCount":2,"master":"h:1","role":"manager","state":"Suspect"}"#);
        let wl = WorkLoadView { connections: 3, qps: 12, ..WorkLoadView::default() };
        assert_eq!(
            json(&wl),
            r#"{"BusyTime":"","connections":3,"cpuThreadPool":0,"cpuUserStats":0,"dbIndexSize":0,"dbTableSize":0,"qps":12}"#
        );
        let sm = StateMachineView { discovered: true, in_failover: false, in_schema_monitor: false };
        assert_eq!(json(&sm), r#"{"discovered":true,"inFailover":false,"inSchemaMonitor":false}"#);
        assert_eq!(
            json(&ConfiguratorView::default()),
            r#"{"configPrxTags":[],"configTags":[],"dbServersTags":[],"proxyServersTags":[]}"#
        );
        assert_eq!(json(&OldestMasterFileView::default()), r#"{"OldestTimestamp":"","Prefix":"","Suffix":0}"#);
        let jr = JobResultView { id: "j1".into(), server: "h:1".into(), state: "done".into() };
        assert_eq!(json(&jr), r#"{"id":"j1","server":"h:1","state":"done"}"#);
        let o = OrchestratorView { available: true, id: 1, label: "Local".into(), name: "local".into() };
        assert_eq!(json(&o), r#"{"available":true,"id":1,"label":"Local","name":"local"}"#);
        assert_eq!(json(&GrantSwitchView { enable: false, grant: "db-start".into() }), r#"{"enable":false,"grant":"db-start"}"#);
        let mc = MonitorConfigView {
            api_bind: "0.0.0.0".into(),
            api_credentials: "*:*".into(),
            api_port: 0,
            http_bind_address: "127.0.0.1".into(),
            http_port: 10001,
            log_level: "info".into(),
            monitoring_datadir: "/d".into(),
        };
        assert_eq!(
            json(&mc),
            r#"{"apiBind":"0.0.0.0","apiCredentials":"*:*","apiPort":0,"httpBindAddress":"127.0.0.1","httpPort":10001,"logLevel":"info","monitoringDatadir":"/d"}"#
        );
        assert_eq!(json(&TokenView { token: "t".into() }), r#"{"token":"t"}"#);
        assert_eq!(json(&MessageView { msg: "Monitor added".into() }), r#"{"msg":"Monitor added"}"#);
        let none: Option<Vec<NotReported>> = None;
        assert_eq!(json(&none), "null");
        assert_eq!(json(&Vec::<NotReported>::new()), "[]");
    }

    #[test]
    fn setting_values_are_plain_json() {
        let mut table = BTreeMap::new();
        table.insert("x".to_string(), SettingValue::Integer(1));
        let mut s = SettingsView::new();
        s.insert("b".into(), SettingValue::Bool(true));
        s.insert("a".into(), SettingValue::Text("*:*".into()));
        s.insert("f".into(), SettingValue::Float(0.5));
        s.insert("l".into(), SettingValue::List(vec![SettingValue::Integer(-1), SettingValue::Unsigned(u64::MAX)]));
        s.insert("n".into(), SettingValue::Null);
        s.insert("t".into(), SettingValue::Table(table));
        assert_eq!(json(&s), r#"{"a":"*:*","b":true,"f":0.5,"l":[-1,18446744073709551615],"n":null,"t":{"x":1}}"#);
    }

    #[test]
    fn server_info_shapes() {
        let p = ProcessView {
            command: "Query".into(),
            db: NullString::default(),
            host: "h:1".into(),
            id: 7,
            info: None,
            progress: 0.0,
            rows_examined: 0,
            rows_sent: 0,
            state: "".into(),
            time: NullFloat64 { float64: 3.0, valid: true },
            time_ms: 3001.5,
            user: "app".into(),
        };
        assert_eq!(
            json(&ServerInfoView::Processlist(vec![p])),
            r#"[{"command":"Query","db":{"String":"","Valid":false},"host":"h:1","id":7,"info":null,"progress":0.0,"rowsExamined":0,"rowsSent":0,"state":"","time":{"Float64":3.0,"Valid":true},"timeMs":3001.5,"user":"app"}]"#
        );
        let v = VariableView { value: "ON".into(), variable_name: "READ_ONLY".into() };
        assert_eq!(json(&ServerInfoView::Variables(vec![v])), r#"[{"value":"ON","variableName":"READ_ONLY"}]"#);
        let line = LogLineView { group: "h:1".into(), level: "INFO".into(), text: "ready".into(), timestamp: "2026/11/28 19:29:22".into() };
        assert_eq!(
            json(&ServerInfoView::ErrorLog(ErrorLogView { buffer: vec![line], len: 1, line: 5 })),
            r#"{"buffer":[{"group":"h:1","level":"INFO","text":"ready","timestamp":"2026/11/28 19:29:22"}],"len":1,"line":5}"#
        );
        let q = SlowQueryView { query: "select 1".into(), query_time: 0.5, rows_sent: 1, ..SlowQueryView::default() };
        assert_eq!(
            json(&ServerInfoView::SlowLog(vec![q])),
            r#"[{"db":"","lockTime":0.0,"query":"select 1","queryTime":0.5,"rowsExamined":0,"rowsSent":1,"startTime":"","userHost":""}]"#
        );
        let t = TableView { table_schema: "app".into(), table_name: "t".into(), engine: "InnoDB".into(), table_rows: 3, ..TableView::default() };
        let table = r#"{"data_length":0,"engine":"InnoDB","index_length":0,"table_name":"t","table_rows":3,"table_schema":"app"}"#;
        assert_eq!(json(&ServerInfoView::Tables(vec![t.clone()])), format!("[{table}]"));
        let vt: BTreeMap<String, TableView> = [("app.t".to_string(), t)].into_iter().collect();
        assert_eq!(json(&ServerInfoView::VTables(vt)), format!(r#"{{"app.t":{table}}}"#));
        assert_eq!(json(&ServerInfoView::Schemas(vec!["app".into(), "mysql".into()])), r#"["app","mysql"]"#);
    }
}
