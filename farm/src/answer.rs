//! What a simulated MariaDB 10.11 answers to each recognised statement, built from the
//! server's [`ServerView`]: column names and text values, no I/O.

use crate::model::{ServerView, HEARTBEAT_PERIOD_SECS};
use crate::statement::{Statement, Variable};

/// `@@version`.
pub const VERSION: &str = "10.11.6-MariaDB-sim";
/// The version in the handshake: MariaDB prefixes `5.5.5-` for old clients.
pub const HANDSHAKE_VERSION: &str = "5.5.5-10.11.6-MariaDB-sim";
/// The binary log file every server writes.
pub const BINLOG_FILE: &str = "mariadb-bin.000001";
/// The replication account replicas show in `Master_User`.
pub const REPLICATION_USER: &str = "repl";

/// One result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Col {
    pub name: String,
    /// Declared as an integer (the text protocol sends every value as text anyway).
    pub numeric: bool,
}

/// A server error the farm answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerError {
    /// 1064: the statement is not one the farm simulates.
    Parse,
    /// 1193: `@@name` the farm does not know.
    UnknownVariable,
}

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Rows { columns: Vec<Col>, rows: Vec<Vec<Option<String>>> },
    Ok,
    Error { error: ServerError, message: String },
}

/// Builds the answer of `server` to `statement`; `user` is the account the farm accepts.
pub fn answer(statement: &Statement, view: &ServerView, user: &str, text: &str) -> Reply {
    match statement {
        Statement::Variables(vars) => variables(vars, view),
        Statement::SelectNumber(n) => one_row(vec![(n.clone(), true, Some(n.clone()))]),
        Statement::Status(filter) => status(filter.as_deref(), view),
        Statement::SlavesStatus => match &view.replication {
            Some(_) => one_row(slave_status(view)),
            None => Reply::Rows { columns: slave_status_columns(), rows: Vec::new() },
        },
        Statement::MasterStatus => one_row(vec![
            ("File".into(), false, Some(BINLOG_FILE.into())),
            ("Position".into(), true, Some(binlog_offset(view.seq).to_string())),
            ("Binlog_Do_DB".into(), false, Some(String::new())),
            ("Binlog_Ignore_DB".into(), false, Some(String::new())),
        ]),
        Statement::BinlogDumpThreads => one_row(vec![("COUNT(*)".into(), true, Some(view.dump_threads.to_string()))]),
        // Only the farm's own account, which the manager leaves out of its warning.
        Statement::ReadOnlyBypassAccounts => one_row(vec![("GRANTEE".into(), false, Some(format!("'{user}'@'%'")))]),
        Statement::SetSession => Reply::Ok,
        Statement::Unknown => Reply::Error {
            error: ServerError::Parse,
            message: format!(
                "You have an error in your SQL syntax; the simulated server does not know this statement near '{}'",
                text.chars().take(80).collect::<String>()
            ),
        },
    }
}

/// A result of one row from `(column, numeric, value)` triples.
fn one_row(cells: Vec<(String, bool, Option<String>)>) -> Reply {
    let mut columns = Vec::with_capacity(cells.len());
    let mut row = Vec::with_capacity(cells.len());
    for (name, numeric, value) in cells {
        columns.push(Col { name, numeric });
        row.push(value);
    }
    Reply::Rows { columns, rows: vec![row] }
}

/// The binary log offset after `seq` events (each event group a fixed size).
pub fn binlog_offset(seq: u64) -> u64 {
    4 + seq.saturating_mul(320)
}

/// `@@name`: `None` for a variable the farm does not know; `Some(None)` for NULL.
pub fn variable(name: &str, view: &ServerView) -> Option<(bool, Option<String>)> {
    let text = |s: &str| Some((false, Some(s.to_string())));
    let num = |n: u64| Some((true, Some(n.to_string())));
    match name {
        "version" => text(VERSION),
        "version_comment" => text("mariadb.org binary distribution (rm-farm simulation)"),
        "hostname" => text(&view.hostname),
        "server_id" => num(u64::from(view.server_id)),
        "port" => num(u64::from(view.port)),
        "read_only" => num(u64::from(view.read_only)),
        "gtid_binlog_pos" => text(&view.gtid_binlog_pos),
        "gtid_current_pos" => text(&view.gtid_current_pos),
        "gtid_slave_pos" => text(&view.gtid_slave_pos),
        "gtid_domain_id" => num(0),
        "gtid_strict_mode" | "log_bin" | "log_slave_updates" => num(1),
        "binlog_format" => text("ROW"),
        "rpl_semi_sync_master_enabled" | "rpl_semi_sync_slave_enabled" => num(0),
        "rpl_semi_sync_master_timeout" => num(10_000),
        "rpl_semi_sync_master_wait_point" => text("AFTER_COMMIT"),
        "rpl_semi_sync_master_wait_no_slave" => num(1),
        "max_allowed_packet" => num(16_777_216),
        "wait_timeout" => num(28_800),
        "max_statement_time" => Some((false, Some("0.000000".into()))),
        "lock_wait_timeout" => num(86_400),
        // No local socket: a client preferring one stays on TCP.
        "socket" => Some((false, None)),
        _ => None,
    }
}

fn variables(vars: &[Variable], view: &ServerView) -> Reply {
    let mut cells = Vec::with_capacity(vars.len());
    for v in vars {
        let Some((numeric, value)) = variable(&v.name, view) else {
            return Reply::Error { error: ServerError::UnknownVariable, message: format!("Unknown system variable '{}'", v.name) };
        };
        cells.push((v.column.clone(), numeric, value));
    }
    one_row(cells)
}

fn status(filter: Option<&[String]>, view: &ServerView) -> Reply {
    let heartbeats = view.replication.as_ref().map_or(0, |r| r.heartbeats);
    let all: [(&str, String); 8] = [
        ("Queries", view.queries.to_string()),
        ("Rpl_semi_sync_master_clients", "0".into()),
        ("Rpl_semi_sync_master_status", "OFF".into()),
        ("Rpl_semi_sync_master_wait_sessions", "0".into()),
        ("Rpl_semi_sync_slave_status", "OFF".into()),
        ("Slave_received_heartbeats", heartbeats.to_string()),
        ("Threads_connected", view.threads_connected.to_string()),
        ("Uptime", view.uptime_secs.to_string()),
    ];
    let rows = all
        .into_iter()
        .filter(|(name, _)| filter.is_none_or(|f| f.iter().any(|n| n.eq_ignore_ascii_case(name))))
        .map(|(name, value)| vec![Some(name.to_string()), Some(value)])
        .collect();
    let columns = vec![Col { name: "Variable_name".into(), numeric: false }, Col { name: "Value".into(), numeric: false }];
    Reply::Rows { columns, rows }
}

/// The columns of MariaDB 10.11's `SHOW ALL SLAVES STATUS`, in order, with their numeric flag.
const SLAVE_STATUS_COLUMNS: [(&str, bool); 62] = [
    ("Connection_name", false),
    ("Slave_SQL_State", false),
    ("Slave_IO_State", false),
    ("Master_Host", false),
    ("Master_User", false),
    ("Master_Port", true),
    ("Connect_Retry", true),
    ("Master_Log_File", false),
    ("Read_Master_Log_Pos", true),
    ("Relay_Log_File", false),
    ("Relay_Log_Pos", true),
    ("Relay_Master_Log_File", false),
    ("Slave_IO_Running", false),
    ("Slave_SQL_Running", false),
    ("Replicate_Rewrite_DB", false),
    ("Replicate_Do_DB", false),
    ("Replicate_Ignore_DB", false),
    ("Replicate_Do_Table", false),
    ("Replicate_Ignore_Table", false),
    ("Replicate_Wild_Do_Table", false),
    ("Replicate_Wild_Ignore_Table", false),
    ("Last_Errno", true),
    ("Last_Error", false),
    ("Skip_Counter", true),
    ("Exec_Master_Log_Pos", true),
    ("Relay_Log_Space", true),
    ("Until_Condition", false),
    ("Until_Log_File", false),
    ("Until_Log_Pos", true),
    ("Master_SSL_Allowed", false),
    ("Master_SSL_CA_File", false),
    ("Master_SSL_CA_Path", false),
    ("Master_SSL_Cert", false),
    ("Master_SSL_Cipher", false),
    ("Master_SSL_Key", false),
    ("Seconds_Behind_Master", true),
    ("Master_SSL_Verify_Server_Cert", false),
    ("Last_IO_Errno", true),
    ("Last_IO_Error", false),
    ("Last_SQL_Errno", true),
    ("Last_SQL_Error", false),
    ("Replicate_Ignore_Server_Ids", false),
    ("Master_Server_Id", true),
    ("Master_SSL_Crl", false),
    ("Master_SSL_Crlpath", false),
    ("Using_Gtid", false),
    ("Gtid_IO_Pos", false),
    ("Replicate_Do_Domain_Ids", false),
    ("Replicate_Ignore_Domain_Ids", false),
    ("Parallel_Mode", false),
    ("SQL_Delay", true),
    ("SQL_Remaining_Delay", true),
    ("Slave_SQL_Running_State", false),
    ("Slave_DDL_Groups", true),
    ("Slave_Non_Transactional_Groups", true),
    ("Slave_Transactional_Groups", true),
    ("Retried_transactions", true),
    ("Max_relay_log_size", true),
    ("Executed_log_entries", true),
    ("Slave_received_heartbeats", true),
    ("Slave_heartbeat_period", false),
    ("Gtid_Slave_Pos", false),
];

fn slave_status_columns() -> Vec<Col> {
    SLAVE_STATUS_COLUMNS.iter().map(|(n, numeric)| Col { name: (*n).to_string(), numeric: *numeric }).collect()
}

/// The one replication connection of a replica (the default, unnamed one).
fn slave_status(view: &ServerView) -> Vec<(String, bool, Option<String>)> {
    let Some(r) = &view.replication else { return Vec::new() };
    let received = binlog_offset(r.received_seq);
    let applied = binlog_offset(view.seq);
    let waiting = "Slave has read all relay log; waiting for more updates";
    let (io_state, io_running, behind, io_errno, io_error) = if r.io_connected {
        ("Waiting for master to send event", "Yes", Some(r.lag_secs.to_string()), "0", String::new())
    } else {
        (
            "Reconnecting after a failed master event read",
            "Connecting",
            None,
            "2003",
            format!(
                "error reconnecting to master '{REPLICATION_USER}@127.0.0.1:{}' - retry-time: 10  maximum-retries: 100000  \
                 message: Can't connect to server on '127.0.0.1' (111 \"Connection refused\")",
                r.master_port
            ),
        )
    };
    let groups = view.seq.saturating_sub(crate::model::FIRST_SEQ);
    let s = |v: &str| Some(v.to_string());
    let n = |v: u64| Some(v.to_string());
    let values: [Option<String>; 62] = [
        s(""),
        s(waiting),
        s(io_state),
        s("127.0.0.1"),
        s(REPLICATION_USER),
        n(u64::from(r.master_port)),
        n(10),
        s(BINLOG_FILE),
        n(received),
        s("farm-relay-bin.000002"),
        n(received.saturating_sub(applied) + 4),
        s(BINLOG_FILE),
        s(io_running),
        s("Yes"),
        s(""),
        s(""),
        s(""),
        s(""),
        s(""),
        s(""),
        s(""),
        n(0),
        s(""),
        n(0),
        n(applied),
        n(received.saturating_sub(applied) + 4),
        s("None"),
        s(""),
        n(0),
        s("No"),
        s(""),
        s(""),
        s(""),
        s(""),
        s(""),
        behind,
        s("No"),
        s(io_errno),
        Some(io_error),
        n(0),
        s(""),
        s(""),
        n(u64::from(r.master_server_id)),
        s(""),
        s(""),
        s("Slave_Pos"),
        Some(format!("0-{}-{}", r.master_server_id, r.received_seq)),
        s(""),
        s(""),
        s("optimistic"),
        n(0),
        None,
        s(waiting),
        n(0),
        n(0),
        n(groups),
        n(0),
        n(1_073_741_824),
        n(groups.saturating_mul(3)),
        n(r.heartbeats),
        s(&format!("{HEARTBEAT_PERIOD_SECS}.000")),
        Some(view.gtid_slave_pos.clone()),
    ];
    SLAVE_STATUS_COLUMNS.iter().zip(values).map(|((name, numeric), v)| ((*name).to_string(), *numeric, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Farm, Layout, PortMode};
    use std::time::{Duration, Instant};

    fn cell<'a>(reply: &'a Reply, column: &str) -> Option<&'a str> {
        let Reply::Rows { columns, rows } = reply else { return None };
        let i = columns.iter().position(|c| c.name == column)?;
        rows.first()?.get(i)?.as_deref()
    }

    #[test]
    fn replica_status_follows_its_master() {
        let t0 = Instant::now();
        let Ok(layout) = Layout::new(1, 3, 7000) else { panic!("layout") };
        let farm = Farm::new(layout, t0);
        let (master, replica) = (&farm.servers[0], &farm.servers[2]);
        let now = t0 + Duration::from_secs(2);
        let r = answer(&Statement::SlavesStatus, &farm.view(replica, now), "u", "");
        assert_eq!(cell(&r, "Master_Port"), Some("7000"));
        assert_eq!(cell(&r, "Slave_IO_Running"), Some("Yes"));
        assert_eq!(cell(&r, "Seconds_Behind_Master"), Some("0"));
        assert_eq!(cell(&r, "Gtid_Slave_Pos"), Some(format!("0-7000-{}", crate::model::FIRST_SEQ + 20).as_str()));
        assert_eq!(cell(&r, "Slave_heartbeat_period"), Some("5.000"));
        farm.set_mode(master, PortMode::Down, now);
        let r = answer(&Statement::SlavesStatus, &farm.view(replica, now), "u", "");
        assert_eq!((cell(&r, "Slave_IO_Running"), cell(&r, "Last_IO_Errno")), (Some("Connecting"), Some("2003")));
        assert_eq!(cell(&r, "Seconds_Behind_Master"), None);
        let m = answer(&Statement::SlavesStatus, &farm.view(master, now), "u", "");
        assert!(matches!(m, Reply::Rows { ref rows, ref columns } if rows.is_empty() && columns.len() == 62));
    }

    #[test]
    fn variables_and_errors() {
        let t0 = Instant::now();
        let Ok(layout) = Layout::new(1, 2, 7000) else { panic!("layout") };
        let farm = Farm::new(layout, t0);
        let view = farm.view(&farm.servers[1], t0);
        let q = "SELECT @@version, @@read_only, @@gtid_slave_pos";
        let r = answer(&Statement::parse(q), &view, "u", q);
        assert_eq!(cell(&r, "@@version"), Some(VERSION));
        assert_eq!(cell(&r, "@@read_only"), Some("1"));
        assert_eq!(cell(&r, "@@gtid_slave_pos"), Some(format!("0-7000-{}", crate::model::FIRST_SEQ).as_str()));
        let r = answer(&Statement::parse("SELECT @@nope"), &view, "u", "");
        assert!(matches!(r, Reply::Error { error: ServerError::UnknownVariable, .. }));
        let r = answer(&Statement::parse("SHOW GLOBAL STATUS WHERE Variable_name IN ('uptime','Threads_connected')"), &view, "u", "");
        assert!(matches!(r, Reply::Rows { ref rows, .. } if rows.len() == 2));
    }
}
