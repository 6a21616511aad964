//! Turns the monitor's [`ClusterState`] into the API's wire objects.

use std::collections::BTreeMap;

use replication_manager_api::acl;
use replication_manager_api::wire::{
    AlertView, AlertsView, ApiUserView, ClusterView, ConfiguratorView, CrashDetailsView, CrashView, StepTimeView, DbVersionView,
    GrantSwitchView, GtidView, HttpLog, JobResultView, JobView, LogEntryView, MasterStatusView, NullInt64, NullString,
    OldestMasterFileView, OrchestratorView, ReplicationView, ServerView, SettingValue, SettingsView, StateMachineView,
    WorkLoadView,
};
use serde_json::Value;

use crate::cluster::log::{format_timestamp, ClusterLog};
use crate::config::ClusterConfig;
use crate::db::gtid::GtidPos;
use crate::actions::jobs::{Job, JobKind};
use crate::cluster::state::{ClusterState, ServerRuntime};
use crate::db::probe::ReplicationStatus;
use crate::db::sql::Flavor;
use crate::cluster::topology::{Problem, ServerState};

fn gtids(p: &GtidPos) -> Option<Vec<GtidView>> {
    if p.is_empty() {
        return None;
    }
    Some(
        p.gtids()
            .into_iter()
            .map(|g| GtidView { domain_id: g.domain_id, server_id: g.server_id, seq_no: g.seq_no })
            .collect(),
    )
}

fn null_str(s: &str) -> NullString {
    NullString::of(s)
}

fn replication_view(r: &ReplicationStatus) -> ReplicationView {
    ReplicationView {
        connection_name: null_str(&r.connection_name),
        master_host: null_str(&r.master_host),
        master_user: null_str(&r.master_user),
        master_port: null_str(&r.master_port.to_string()),
        master_log_file: null_str(&r.master_log_file),
        read_master_log_pos: null_str(&r.read_master_log_pos),
        relay_master_log_file: null_str(&r.relay_master_log_file),
        slave_io_running: null_str(&r.io_running),
        slave_sql_running: null_str(&r.sql_running),
        exec_master_log_pos: null_str(&r.exec_master_log_pos),
        seconds_behind_master: match r.seconds_behind_master {
            Some(d) => NullInt64 { int64: i64::try_from(d).unwrap_or(i64::MAX), valid: true },
            None => NullInt64::default(),
        },
        last_io_errno: null_str(&r.last_io_errno.to_string()),
        last_io_error: null_str(&r.last_io_error),
        last_sql_errno: null_str(&r.last_sql_errno.to_string()),
        last_sql_error: null_str(&r.last_sql_error),
        master_server_id: r.master_server_id,
        using_gtid: null_str(&r.using_gtid),
        gtid_io_pos: null_str(&r.gtid_io_pos),
        gtid_slave_pos: null_str(&r.gtid_slave_pos),
        slave_heartbeat_period: r.slave_heartbeat_period,
        slave_sql_running_state: null_str(&r.slave_sql_running_state),
        slave_received_heartbeats: r.slave_received_heartbeats,
    }
}

fn db_version(version: &str, flavor: Flavor) -> DbVersionView {
    let (numbers, suffix) = version.split_once('-').unwrap_or((version, ""));
    let mut it = numbers.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    DbVersionView {
        flavor: match flavor {
            Flavor::MariaDB => "MariaDB",
            Flavor::MySQL => "MySQL",
        }
        .to_string(),
        major: it.next().unwrap_or(0),
        minor: it.next().unwrap_or(0),
        release: it.next().unwrap_or(0),
        suffix: suffix.to_string(),
    }
}

/// The Go project's replication health text for a server.
fn replication_health(st: &ClusterState, i: usize) -> String {
    let srv = &st.servers[i];
    if srv.maintenance {
        return "Maintenance".to_string();
    }
    if st.in_failover {
        return "In Failover".to_string();
    }
    if st.master == Some(i) {
        return "Master OK".to_string();
    }
    if let Some(q) = st.quarantined.get(&i) {
        return format!("Quarantined: {}", q.desc);
    }
    let Some(snap) = &srv.snapshot else { return "Not connected".to_string() };
    match snap.managed_replication(&st.config.replication_source_name) {
        None => "Not a slave".to_string(),
        Some(r) if r.is_running() => "Running OK".to_string(),
        Some(r) if !r.sql_running.eq_ignore_ascii_case("yes") => {
            format!("NOT OK, SQL Stopped ({})", r.last_sql_errno)
        }
        Some(r) => format!("NOT OK, IO {} ({})", r.io_running, r.last_io_errno),
    }
}

/// One server as the API shows it.
pub fn server_view(st: &ClusterState, i: usize) -> ServerView {
    let srv: &ServerRuntime = &st.servers[i];
    let mut v = ServerView {
        id: srv.id.clone(),
        name: srv.addr.host.clone(),
        service_name: format!("{}/svc/{}", st.config.name, srv.addr.host),
        url: srv.addr.to_string(),
        host: srv.addr.host.clone(),
        port: srv.addr.port.to_string(),
        state: srv.state.to_string(),
        prev_state: srv.prev_state.to_string(),
        fail_count: srv.fail_count,
        read_only: "OFF".to_string(),
        is_maintenance: srv.maintenance,
        ignored: srv.ignored,
        prefered: srv.prefered,
        replication_health: replication_health(st, i),
        last_error: srv.last_error.clone().unwrap_or_default(),
        ..ServerView::default()
    };
    if let Some(s) = &srv.snapshot {
        v.server_id = s.server_id;
        v.domain_id = s.gtid_domain_id;
        v.read_only = if s.read_only { "ON" } else { "OFF" }.to_string();
        v.is_read_only = s.read_only;
        v.have_read_only = s.read_only;
        v.gtid_binlog_pos = gtids(&s.gtid_binlog_pos);
        v.gtid_current_pos = gtids(&s.gtid_current_pos);
        v.gtid_slave_pos = gtids(&s.gtid_slave_pos);
        v.current_gtid = v.gtid_current_pos.clone();
        v.slave_gtid = v.gtid_slave_pos.clone();
        v.gtid_executed = s.gtid_executed.clone();
        v.semi_sync_master_status = s.semi_sync_master_status;
        v.semi_sync_slave_status = s.semi_sync_slave_status;
        v.have_semi_sync = s.semi_sync_master_enabled || s.semi_sync_slave_enabled;
        v.have_binlog = s.log_bin;
        v.have_gtid_strict_mode = s.gtid_strict_mode;
        v.have_mariadb_gtid = s.flavor == Flavor::MariaDB;
        v.have_mysql_gtid = s.flavor == Flavor::MySQL && !s.gtid_executed.is_empty();
        v.have_binlog_slave_updates = s.log_slave_updates;
        v.is_slave = s.managed_replication(&st.config.replication_source_name).is_some();
        v.replications = s.replications.iter().map(replication_view).collect();
        if let Some(ms) = &s.master_status {
            v.binary_log_file = ms.file.clone();
            v.binary_log_pos = ms.position.clone();
            v.master_status = MasterStatusView {
                file: ms.file.clone(),
                position: ms.position.clone(),
                binlog_do_db: ms.binlog_do_db.clone(),
                binlog_ignore_db: ms.binlog_ignore_db.clone(),
            };
        }
        v.db_version = db_version(&s.version, s.flavor);
        v.last_seen = format_timestamp(s.taken_at);
        v.probe_latency_ms = u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX);
        v.threads_connected = s.threads_connected;
        v.uptime = s.uptime;
        v.hostname = s.hostname.clone();
        v.binlog_format = s.binlog_format.clone();
        v.semi_sync_master_clients = s.semi_sync_master_clients;
        v.slave_received_heartbeats = s.slave_received_heartbeats;
        v.queries = s.queries;
    }
    v
}

/// The full evidence of a crash record, under its own names.
fn crash_details(c: &crate::cluster::records::CrashRecord) -> CrashDetailsView {
    CrashDetailsView {
        detected_after_ms: c.detected_after_ms,
        detection: c.detection.clone(),
        discarded_gtids: c.discarded_gtids.clone(),
        domain: c.domain,
        elected_io_gtid: c.elected_io_gtid.clone(),
        elected_master: c.elected_master.clone(),
        elected_semi_sync: c.elected_semi_sync,
        gtids_at_risk: c.gtids_at_risk.clone(),
        id: c.id.clone(),
        new_master_gtid: c.new_master_gtid.clone(),
        new_master_log_file: c.new_master_log_file.clone(),
        new_master_log_pos: c.new_master_log_pos.clone(),
        old_master: c.old_master.clone(),
        old_master_gtid: c.old_master_gtid.clone(),
        old_master_log_file: c.old_master_log_file.clone(),
        old_master_log_pos: c.old_master_log_pos.clone(),
        old_master_semi_sync: c.old_master_semi_sync,
        semi_sync_cluster: c.semi_sync_cluster,
        semi_sync_idle_at_ms: c.semi_sync_idle_at_ms,
        semi_sync_timeout_ms: c.semi_sync_timeout_ms,
        step_ms: c.step_ms.iter().map(|t| StepTimeView { ms: t.ms, step: t.step.clone() }).collect(),
        switchover: c.switchover,
        trigger: c.trigger.clone(),
        unix_timestamp: c.unix_timestamp,
    }
}

/// A crash record with the Go project's field names, plus the full evidence under `Details`.
pub fn crash_view(c: &crate::cluster::records::CrashRecord) -> CrashView {
    CrashView {
        url: c.old_master.clone(),
        failover_master_log_file: c.old_master_log_file.clone(),
        failover_master_log_pos: c.old_master_log_pos.clone(),
        new_master_log_file: c.new_master_log_file.clone(),
        new_master_log_pos: c.new_master_log_pos.clone(),
        failover_semi_sync_slave_status: c.elected_semi_sync,
        failover_io_gtid: gtids(&GtidPos::parse_lenient(&c.elected_io_gtid)),
        elected_master_url: c.elected_master.clone(),
        unix_timestamp: c.unix_timestamp,
        switchover: c.switchover,
        details: crash_details(c),
    }
}

/// The log as `{"buffer","len","line"}`.
pub fn http_log(log: &ClusterLog) -> HttpLog {
    HttpLog {
        buffer: log
            .entries()
            .map(|e| LogEntryView {
                group: e.group.clone(),
                level: e.level.as_str().to_string(),
                timestamp: e.timestamp.clone(),
                text: e.text.clone(),
            })
            .collect(),
        len: log.len(),
        line: log.written(),
    }
}

/// Open problems split into errors and warnings (`null` when empty, as the Go project).
pub fn alerts_view(problems: &[Problem]) -> AlertsView {
    let pick = |errors: bool| {
        let v: Vec<AlertView> = problems
            .iter()
            .filter(|p| p.is_error() == errors)
            .map(|p| AlertView { number: p.code.to_string(), desc: p.desc.clone(), from: "TOPO".to_string() })
            .collect();
        if v.is_empty() { None } else { Some(v) }
    };
    AlertsView { errors: pick(true), warnings: pick(false) }
}

/// The API users of a cluster with their grants.
pub fn api_users(st: &ClusterState) -> BTreeMap<String, ApiUserView> {
    st.config
        .api_users
        .iter()
        .map(|u| {
            (u.user.clone(), ApiUserView { user: u.user.clone(), grants: acl::grants_for(&st.config.api_acl_allow, &u.user) })
        })
        .collect()
}

/// The latest job of each kind: its state (`running`, `done`, `failed`), id and server.
fn job_results(jobs: &[Job]) -> BTreeMap<String, JobResultView> {
    let mut out = BTreeMap::new();
    for j in jobs {
        // Newest first: the first of a kind is its latest.
        out.entry(j.kind.as_str().to_string()).or_insert_with(|| JobResultView {
            id: j.id.clone(),
            server: j.server.clone(),
            state: j.state.clone(),
        });
    }
    out
}

/// A job as the API lists it.
pub fn job_view(j: &Job) -> JobView {
    JobView {
        cluster: j.cluster.clone(),
        ended_at: j.ended_at,
        error: j.error.clone(),
        gtid: j.gtid.clone(),
        id: j.id.clone(),
        kind: j.kind.as_str().to_string(),
        location: j.location.clone(),
        server: j.server.clone(),
        size_bytes: j.size_bytes,
        started_at: j.started_at,
        state: j.state.clone(),
    }
}

/// A configuration value (TOML turned JSON) as a setting value.
fn setting_value(v: &Value) -> SettingValue {
    match v {
        Value::Null => SettingValue::Null,
        Value::Bool(b) => SettingValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => SettingValue::Integer(i),
            (None, Some(u), _) => SettingValue::Unsigned(u),
            (None, None, Some(f)) => SettingValue::Float(f),
            (None, None, None) => SettingValue::Null,
        },
        Value::String(s) => SettingValue::Text(s.clone()),
        Value::Array(a) => SettingValue::List(a.iter().map(setting_value).collect()),
        Value::Object(o) => SettingValue::Table(o.iter().map(|(k, v)| (k.clone(), setting_value(v))).collect()),
    }
}

/// The settings of a cluster as the API shows them: lowerCamel keys, secrets masked.
pub fn settings_view(config: &ClusterConfig) -> SettingsView {
    match config.masked_json() {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), setting_value(v))).collect(),
        _ => SettingsView::new(),
    }
}

/// `{name: false}` for each name: the Go project's tables of supported service kinds, none
/// of which this manager uses.
pub fn none_of(names: &[&str]) -> BTreeMap<String, bool> {
    names.iter().map(|k| (k.to_string(), false)).collect()
}

/// File systems of the Go project's services (none used here).
pub const FS_KINDS: &[&str] = &["aufs", "ext4", "nfs", "xfs", "zfs"];
/// Virtualizations of the Go project's services (none used here).
pub const VM_KINDS: &[&str] = &["docker", "kvm", "lxc", "oci", "package", "podman", "zone"];
/// Storage pools of the Go project's services (none used here).
pub const POOL_KINDS: &[&str] = &["lvm", "none", "zpool"];

/// Disk kinds of the Go project, each named by itself.
pub fn disk_kinds() -> BTreeMap<String, String> {
    ["directory", "loopback", "physical", "pool", "volume"].iter().map(|k| (k.to_string(), k.to_string())).collect()
}

/// The only orchestrator: commands run on the manager host.
pub fn local_orchestrator(available: bool) -> OrchestratorView {
    OrchestratorView { available, id: 1, label: "Local".to_string(), name: "local".to_string() }
}

/// Every grant, switched off (`serviceAcl`).
pub fn service_acl() -> Vec<GrantSwitchView> {
    acl::GRANTS.iter().map(|g| GrantSwitchView { enable: false, grant: g.to_string() }).collect()
}

/// Status shared by the manager group ("A"/"S" and split-brain flags).
#[derive(Debug, Clone, Copy)]
pub struct GroupStatus {
    pub active: bool,
    pub failed_arbitrator: bool,
    pub split_brain: bool,
    pub lost_majority: bool,
}

/// The cluster object. `jobs` are the cluster's jobs, newest first (they tell whether a valid
/// backup exists, and the latest result of each kind).
pub fn cluster_view(st: &ClusterState, working_dir: &str, group: GroupStatus, jobs: &[Job]) -> ClusterView {
    let all_down = !st.servers.is_empty() && st.servers.iter().all(|s| s.state.is_down());
    ClusterView {
        name: st.config.name.clone(),
        tenant: "interne".to_string(),
        working_dir: working_dir.to_string(),
        db_servers: st.servers.iter().map(|s| s.id.clone()).collect(),
        db_servers_crashes: if st.crashes.is_empty() { None } else { Some(st.crashes.iter().map(crash_view).collect()) },
        failover_history: if st.crashes.is_empty() { None } else { Some(st.crashes.iter().map(crash_view).collect()) },
        proxy_servers: st.proxies.reports().into_iter().map(|r| r.id).collect(),
        failover_counter: st.failover_counter,
        failover_last_time: st.failover_last_time,
        active_passive_status: if group.active { "A" } else { "S" }.to_string(),
        is_split_brain: group.split_brain,
        is_failed_arbitrator: group.failed_arbitrator,
        is_lost_majority: group.lost_majority,
        is_down: all_down,
        is_cluster_down: all_down || st.master.is_none_or(|m| st.servers[m].state == ServerState::Failed),
        is_all_db_up: st.servers.iter().all(|s| !s.state.is_down() && s.state != ServerState::Unconnected),
        is_failable: st.is_failable(),
        is_postgres: false,
        is_provision: st.config.orchestrator == "local",
        is_need_proxy_restart: false,
        is_need_proxies_restart: false,
        is_need_databases_restart: false,
        is_need_databases_rolling_restart: false,
        is_need_databases_rolling_reprov: false,
        is_need_databases_reprov: false,
        is_valid_backup: jobs
            .iter()
            .any(|j| matches!(j.kind, JobKind::BackupLogical | JobKind::BackupPhysical) && j.state == crate::actions::jobs::DONE),
        is_not_monitoring: st.in_failover || st.config.monitoring_pause,
        is_capturing: false,
        is_git_pull: false,
        is_alert_disable: false,
        config: settings_view(&st.config),
        clean_replication: st.problems.is_empty(),
        topology: st.topology_kind.to_string(),
        uptime: st.sla.percents().0,
        uptime_failable: st.sla.percents().1,
        uptime_semisync: st.sla.percents().2,
        monitor_spin: st.tick,
        work_load: WorkLoadView {
            connections: st.servers.iter().filter_map(|s| s.snapshot.as_ref()).map(|s| s.threads_connected).sum::<u64>(),
            qps: st.qps.round() as u64,
            ..WorkLoadView::default()
        },
        log: http_log(&st.log),
        job_results: job_results(jobs),
        sql_general_log: HttpLog::default(),
        sql_error_log: HttpLog::default(),
        monitor_type: st
            .servers
            .iter()
            .map(|s| (s.id.clone(), "database".to_string()))
            .chain(st.proxies.reports().into_iter().map(|r| (r.id, "proxy".to_string())))
            .collect(),
        topology_type: BTreeMap::new(),
        fs_type: none_of(FS_KINDS),
        disk_type: disk_kinds(),
        vm_type: none_of(VM_KINDS),
        agents: None,
        state_machine: StateMachineView {
            discovered: st.discovered_at_tick.is_some(),
            in_failover: st.in_failover,
            in_schema_monitor: false,
        },
        have_db_tls_cert: false,
        have_db_tls_old_cert: false,
        sla_history: None,
        api_users: api_users(st),
        waiting_rejoin: 0,
        waiting_switchover: 0,
        waiting_failover: 0,
        configurator: ConfiguratorView::default(),
        diff_variables: None,
        can_init_nodes: false,
        can_connect_vault: false,
        sst_available_ports: BTreeMap::new(),
        last_delay_stat_print: String::new(),
        slaves_oldest_master_file: OldestMasterFileView::default(),
        slaves_connected: st
            .master
            .and_then(|m| st.servers[m].snapshot.as_ref())
            .map_or(0, |s| s.binlog_dump_threads),
        master: st.master.map(|m| st.servers[m].id.clone()).unwrap_or_default(),
        alerts: alerts_view(&st.problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        let v = db_version("10.11.19-MariaDB-0+deb12u1", Flavor::MariaDB);
        assert_eq!((v.major, v.minor, v.release), (10, 11, 19));
        assert_eq!(v.suffix, "MariaDB-0+deb12u1");
        assert_eq!(v.flavor, "MariaDB");
    }

    #[test]
    fn crash_details_carry_every_field_of_the_record() {
        let c = crate::cluster::records::CrashRecord {
            id: "switchover-1-ab".into(),
            old_master: "h1:3306".into(),
            old_master_gtid: "0-1-10".into(),
            old_master_log_file: "bin.000002".into(),
            old_master_log_pos: "1234".into(),
            elected_master: "h2:3306".into(),
            elected_io_gtid: "0-1-9".into(),
            new_master_gtid: "0-2-11".into(),
            new_master_log_file: "bin.000007".into(),
            new_master_log_pos: "456".into(),
            old_master_semi_sync: true,
            elected_semi_sync: true,
            gtids_at_risk: vec!["0-1-10".into()],
            domain: 3,
            unix_timestamp: 1_796_000_000,
            switchover: true,
            trigger: "API switchover by admin".into(),
            semi_sync_cluster: true,
            semi_sync_idle_at_ms: 1_796_000_000_123,
            semi_sync_timeout_ms: 3_600_000,
            discarded_gtids: vec!["0-1-11..12".into()],
            detection: "connection refused 1 time(s) in a row".into(),
            detected_after_ms: 312,
            step_ms: vec![crate::cluster::records::StepTime { step: "promote".into(), ms: 4 }],
        };
        // `Details` is the record itself, byte for byte (a field added to the record fails here).
        let record = serde_json::to_string(&c).unwrap();
        let details = serde_json::to_string(&crash_view(&c).details).unwrap();
        assert_eq!(details, serde_json::to_string(&serde_json::to_value(&c).unwrap()).unwrap());
        assert_eq!(serde_json::from_str::<Value>(&details).unwrap(), serde_json::from_str::<Value>(&record).unwrap());
    }

    #[test]
    fn job_view_is_the_job_as_listed_before() {
        let mut j = Job {
            id: "20261205-023730-backup-logical-d775".into(),
            cluster: "c1".into(),
            server: "h1:3306".into(),
            kind: JobKind::BackupLogical,
            state: "done".into(),
            started_at: 1,
            ended_at: Some(2),
            size_bytes: 3,
            location: "/d/dump.sql".into(),
            error: None,
            gtid: Some("0-1-4".into()),
        };
        let same = |j: &Job| {
            let old = serde_json::to_string(&serde_json::to_value(j).unwrap()).unwrap();
            assert_eq!(serde_json::to_string(&job_view(j)).unwrap(), old);
        };
        same(&j);
        j.kind = JobKind::BackupSlowQueryLog;
        j.ended_at = None;
        j.error = Some("interrupted".into());
        j.gtid = None;
        same(&j);
    }

    #[test]
    fn settings_view_is_the_masked_configuration() {
        let text = "[Default]\ndb-servers-hosts = \"h1:3306\"\ndb-servers-credential = \"u:p\"\nmonitoring-ticker = 0.5\n\
                    failover-limit = 3\nautorejoin = false\nsome-list = [1, \"a\", 2.5]\nsome-table = { x = 1 }\n";
        let cfg = crate::config::Config::from_toml_str(text, std::path::Path::new("t.toml"), &[]).unwrap();
        let c = &cfg.clusters[0];
        let view = settings_view(c);
        assert_eq!(serde_json::to_string(&view).unwrap(), serde_json::to_string(&c.masked_json()).unwrap());
        assert_eq!(view["dbServersCredential"], SettingValue::Text("*:*".into()));
        assert_eq!(view["monitoringTicker"], SettingValue::Float(0.5));
        assert_eq!(view["failoverLimit"], SettingValue::Integer(3));
        assert_eq!(view["autorejoin"], SettingValue::Bool(false));
    }
}
