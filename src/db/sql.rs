//! Every SQL statement the manager sends, with the MariaDB and MySQL variants side by side.
//!
//! Admin SQL uses the text protocol. Values that must be embedded (CHANGE MASTER TO takes no
//! placeholders) are quoted by the driver's escaping through [`quote`], never pasted raw.

use mysql_async::Value;

/// Database flavor, detected from `@@version` / `@@version_comment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Flavor {
    MariaDB,
    MySQL,
}

impl Flavor {
    /// Detects the flavor from the version strings.
    pub fn detect(version: &str, comment: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") || comment.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDB
        } else {
            Flavor::MySQL
        }
    }
}

/// First statement of every probe: identity and flavor.
pub const VERSION: &str = "SELECT @@version, @@version_comment, @@hostname, @@server_id";

/// Server variables the monitor reads every tick (one row).
pub fn monitor_variables(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDB => {
            "SELECT @@read_only, @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_slave_pos, \
             @@gtid_domain_id, @@gtid_strict_mode, @@log_bin, @@log_slave_updates, @@binlog_format, \
             @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, \
             @@rpl_semi_sync_master_timeout, @@rpl_semi_sync_master_wait_point, @@rpl_semi_sync_master_wait_no_slave"
        }
        // MySQL has no MariaDB GTID positions; its executed set goes in the binlog slot.
        Flavor::MySQL => {
            "SELECT @@read_only, @@global.gtid_executed, @@global.gtid_executed, '', \
             0, 0, @@log_bin, @@log_slave_updates, @@binlog_format, 0, 0, 0, '', 0"
        }
    }
}

/// Status counters the monitor reads every tick (`Variable_name`, `Value` rows).
pub const MONITOR_STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
    ('Rpl_semi_sync_master_status','Rpl_semi_sync_slave_status','Rpl_semi_sync_master_clients',\
     'Rpl_semi_sync_master_wait_sessions',\
     'Rpl_semi_sync_source_status','Rpl_semi_sync_replica_status',\
     'Slave_received_heartbeats','Threads_connected','Queries','Uptime')";

/// Replication connections (one row per connection / channel).
pub fn replication_status(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDB => "SHOW ALL SLAVES STATUS",
        Flavor::MySQL => "SHOW SLAVE STATUS",
    }
}

/// Binary log coordinates (no row when the binary log is off).
pub fn master_status(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDB => "SHOW MASTER STATUS",
        Flavor::MySQL => "SHOW MASTER STATUS",
    }
}

/// Number of replicas connected to this server (binlog dump threads).
pub const BINLOG_DUMP_THREADS: &str =
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'";

/// Session bounds set on every manager connection, so the server itself aborts a statement that
/// outlives the client-side deadline (a client timeout does not stop the server).
pub fn session_bounds(flavor: Flavor, statement_secs: f64, lock_wait_secs: u64) -> Vec<String> {
    match flavor {
        Flavor::MariaDB => vec![
            format!("SET SESSION max_statement_time = {statement_secs:.3}"),
            format!("SET SESSION lock_wait_timeout = {lock_wait_secs}"),
        ],
        Flavor::MySQL => vec![
            format!("SET SESSION max_execution_time = {}", (statement_secs * 1000.0) as u64),
            format!("SET SESSION lock_wait_timeout = {lock_wait_secs}"),
        ],
    }
}

/// Replication source settings for [`change_master`].
pub struct ChangeMaster<'a> {
    pub connection_name: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub connect_retry: u64,
    pub heartbeat_period: u64,
}

/// `CHANGE MASTER TO` with GTID (MariaDB `MASTER_USE_GTID=slave_pos`, MySQL auto-position).
/// Values are quoted by the driver; the statement takes no placeholders.
pub fn change_master(flavor: Flavor, c: &ChangeMaster<'_>) -> String {
    let conn = if c.connection_name.is_empty() { String::new() } else { format!("{} ", quote(c.connection_name)) };
    let common = format!(
        "MASTER_HOST={}, MASTER_PORT={}, MASTER_USER={}, MASTER_PASSWORD={}, MASTER_CONNECT_RETRY={}, MASTER_HEARTBEAT_PERIOD={}",
        quote(c.host),
        c.port,
        quote(c.user),
        quote(c.password),
        c.connect_retry.max(1),
        c.heartbeat_period.max(1)
    );
    match flavor {
        Flavor::MariaDB => format!("CHANGE MASTER {conn}TO {common}, MASTER_USE_GTID=slave_pos"),
        Flavor::MySQL => format!("CHANGE MASTER TO {common}, MASTER_AUTO_POSITION=1"),
    }
}

/// Same as [`change_master`] with the password masked, for logs.
pub fn change_master_for_log(flavor: Flavor, c: &ChangeMaster<'_>) -> String {
    change_master(flavor, &ChangeMaster { password: "********", ..*c })
}

/// Stops the managed replication connection.
pub fn stop_slave(connection_name: &str) -> String {
    if connection_name.is_empty() { "STOP SLAVE".to_string() } else { format!("STOP SLAVE {}", quote(connection_name)) }
}

/// Starts the managed replication connection.
pub fn start_slave(connection_name: &str) -> String {
    if connection_name.is_empty() { "START SLAVE".to_string() } else { format!("START SLAVE {}", quote(connection_name)) }
}

/// Sets the heartbeat period of the (stopped) managed replication connection, keeping the rest
/// of its configuration.
pub fn set_heartbeat_period(connection_name: &str, secs: u64) -> String {
    let conn = if connection_name.is_empty() { String::new() } else { format!(" {}", quote(connection_name)) };
    format!("CHANGE MASTER{conn} TO MASTER_HEARTBEAT_PERIOD = {}", secs.max(1))
}

/// Stops only the IO thread of the managed replication connection (the SQL thread goes on
/// applying what was received).
pub fn stop_io_thread(connection_name: &str) -> String {
    format!("{} IO_THREAD", stop_slave(connection_name))
}

/// The status of the managed replication connection alone (MariaDB).
pub fn show_slave_status(connection_name: &str) -> String {
    if connection_name.is_empty() { "SHOW SLAVE STATUS".to_string() } else { format!("SHOW SLAVE {} STATUS", quote(connection_name)) }
}

/// How long a semi-sync replica's `STOP SLAVE` waits on its connection to the master to kill
/// its dump thread (MariaDB; seconds): against a frozen master, the whole of it.
pub const SEMISYNC_KILL_CONN_TIMEOUT: &str = "SELECT @@GLOBAL.rpl_semi_sync_slave_kill_conn_timeout";

/// Sets [`SEMISYNC_KILL_CONN_TIMEOUT`] (seconds; 1 is the smallest bounded wait, 0 waits for
/// the network).
pub fn set_semisync_kill_conn_timeout(secs: u64) -> String {
    format!("SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = {secs}")
}

/// Forgets the managed replication connection entirely.
pub fn reset_slave_all(connection_name: &str) -> String {
    if connection_name.is_empty() {
        "RESET SLAVE ALL".to_string()
    } else {
        format!("RESET SLAVE {} ALL", quote(connection_name))
    }
}

pub const STOP_ALL_SLAVES: &str = "STOP ALL SLAVES";
pub const RESET_MASTER: &str = "RESET MASTER";
pub const READ_ONLY_ON: &str = "SET GLOBAL read_only = 1";
pub const READ_ONLY_OFF: &str = "SET GLOBAL read_only = 0";
pub const SEMISYNC_MASTER_ON: &str = "SET GLOBAL rpl_semi_sync_master_enabled = 1";
pub const SEMISYNC_MASTER_OFF: &str = "SET GLOBAL rpl_semi_sync_master_enabled = 0";
pub const SEMISYNC_MASTER_ENABLED: &str = "SELECT @@GLOBAL.rpl_semi_sync_master_enabled";
pub const FLUSH_TABLES_WITH_READ_LOCK: &str = "FLUSH TABLES WITH READ LOCK";
pub const UNLOCK_TABLES: &str = "UNLOCK TABLES";
pub const GTID_BINLOG_POS: &str = "SELECT @@gtid_binlog_pos";
/// `gtid_binlog_pos` and `gtid_current_pos`, in that order (MariaDB).
pub const GTID_POSITIONS: &str = "SELECT @@gtid_binlog_pos, @@gtid_current_pos";
/// Makes a demoted master resume from what it already holds (its own binlog position).
pub const SLAVE_POS_FROM_CURRENT: &str = "SET GLOBAL gtid_slave_pos = @@gtid_current_pos";

/// Server toggles (the API's `toogle-*` actions).
pub const TOGGLE_READ_ONLY: &str = "SET GLOBAL read_only = IF(@@read_only, 0, 1)";
pub const TOGGLE_INNODB_MONITOR: &str = "SET GLOBAL innodb_status_output = IF(@@innodb_status_output, 0, 1)";
pub const TOGGLE_SLOW_QUERY_LOG: &str = "SET GLOBAL slow_query_log = IF(@@slow_query_log, 0, 1)";
pub const SLOW_QUERY_LOG_ON: &str = "SET GLOBAL slow_query_log = 1";
/// Capture every query in the slow log (long_query_time 0), or back to 10 s.
pub const TOGGLE_SLOW_QUERY_CAPTURE: &str = "SET GLOBAL long_query_time = IF(@@long_query_time = 0, 10, 0)";
/// Skips one event of the stopped replication SQL thread.
pub const SKIP_ONE_EVENT: &str = "SET GLOBAL sql_slave_skip_counter = 1";

/// Schemas copied by a reseed (system schemas excluded).
pub const USER_SCHEMAS: &str = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
    WHERE SCHEMA_NAME NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

/// The master side of safe semi-sync (`failover-semisync-enforce`): on, acknowledged after the
/// replica synced the event, falling back to asynchronous only after an hour.
pub const SEMISYNC_SAFE_MASTER: [&str; 3] = [
    "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
    "SET GLOBAL rpl_semi_sync_master_timeout = 3600000",
    "SET GLOBAL rpl_semi_sync_master_enabled = 1",
];
/// The replica side: acknowledge semi-sync (takes effect when the IO thread reconnects).
pub const SEMISYNC_REPLICA_ON: &str = "SET GLOBAL rpl_semi_sync_slave_enabled = 1";

/// Restarts the replication IO thread of a connection (a semi-sync setting then applies).
pub fn restart_io_thread(connection_name: &str) -> [String; 2] {
    let conn = if connection_name.is_empty() { String::new() } else { format!(" {}", quote(connection_name)) };
    [format!("STOP SLAVE{conn} IO_THREAD"), format!("START SLAVE{conn} IO_THREAD")]
}

/// Sets the replica GTID position.
pub fn set_slave_pos(pos: &str) -> String {
    format!("SET GLOBAL gtid_slave_pos = {}", quote(pos))
}

/// Clears the replica position (bootstrap of a fresh topology).
pub const CLEAR_SLAVE_POS: &str = "SET GLOBAL gtid_slave_pos = ''";

/// Waits until this server has applied `pos`; returns 0 when reached, -1 on timeout. The
/// session's `max_statement_time` is lifted for this statement: the wait has its own bound.
pub fn master_gtid_wait(pos: &str, timeout_secs: u64) -> String {
    format!("SET STATEMENT max_statement_time = 0 FOR SELECT MASTER_GTID_WAIT({}, {})", quote(pos), timeout_secs.max(1))
}

/// Sets the session's wait for metadata locks (FTWRL) in seconds.
pub fn lock_wait_timeout(secs: u64) -> String {
    format!("SET SESSION lock_wait_timeout = {}", secs.max(1))
}

/// Write statements running for `secs` or more (switchover refuses when non-zero).
pub fn long_writes(secs: u64) -> String {
    format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' \
           AND TIME >= {secs} AND ID <> CONNECTION_ID() AND INFO IS NOT NULL \
           AND UPPER(LEFT(LTRIM(INFO), 6)) NOT IN ('SELECT', 'SHOW P', 'SHOW F')"
    )
}

/// Transactions open for more than `secs` seconds: count, and the connection id and age of
/// the oldest (a global read lock does not wait for them: a switchover would cut them).
pub fn long_transactions(secs: u64) -> String {
    format!(
        "SELECT COUNT(*), MIN(trx_mysql_thread_id), MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())) \
         FROM information_schema.INNODB_TRX WHERE trx_started < NOW() - INTERVAL {secs} SECOND"
    )
}

/// Accounts that can still write on a `read_only` server: holders of `READ ONLY ADMIN`
/// (MariaDB 10.11 and later), or of `SUPER` before 10.11, which included it.
pub fn read_only_bypass_accounts(version: &str) -> &'static str {
    let mut nums = version.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    if (major, minor) >= (10, 11) {
        "SELECT DISTINCT GRANTEE FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'READ_ONLY ADMIN' ORDER BY GRANTEE"
    } else {
        "SELECT DISTINCT GRANTEE FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN ('SUPER', 'READ_ONLY ADMIN') ORDER BY GRANTEE"
    }
}

/// Client connections to kill before locking a demoted master (replication, system threads and
/// our own session excluded).
pub const CLIENT_THREADS: &str = "SELECT ID FROM information_schema.PROCESSLIST \
    WHERE COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker') \
    AND USER NOT IN ('system user', 'event_scheduler') AND ID <> CONNECTION_ID()";

/// Kills one connection.
pub fn kill_connection(id: u64) -> String {
    format!("KILL CONNECTION {id}")
}

// ---- server information routes (MariaDB: the info routes connect as MariaDB) -----------------

/// Sessions of the server, longest running first; `LIMIT <n>` is appended. The query text is
/// cut server-side so a huge statement never travels whole.
pub const PROCESSLIST: &str = "SELECT ID, USER, HOST, DB, COMMAND, TIME, TIME_MS, STATE, LEFT(INFO, 4096), PROGRESS, \
     EXAMINED_ROWS FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() ORDER BY TIME DESC, ID LIMIT ";
pub const GLOBAL_VARIABLES: &str = "SHOW GLOBAL VARIABLES";
pub const GLOBAL_STATUS: &str = "SHOW GLOBAL STATUS";
pub const GLOBAL_STATUS_INNODB: &str = "SHOW GLOBAL STATUS LIKE 'Innodb%'";
/// Where the server writes its logs, and on which host it runs.
pub const SERVER_FILES: &str = "SELECT @@log_error, @@slow_query_log_file, @@log_output, @@datadir, @@hostname";
/// Slow-log table timestamps in UTC, like the ones read from a slow-log file.
pub const UTC_SESSION: &str = "SET SESSION time_zone = '+00:00'";
/// The slow-log table, newest first; `LIMIT <n>` is appended.
pub const SLOW_LOG_TABLE: &str = "SELECT start_time, user_host, query_time, lock_time, rows_sent, rows_examined, db, \
     LEFT(sql_text, 65536) FROM mysql.slow_log ORDER BY start_time DESC LIMIT ";
/// Tables of the user schemas; `LIMIT <n>` is appended.
pub const USER_TABLES: &str = "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH \
     FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
     AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT ";
pub const SCHEMAS: &str = "SHOW DATABASES";

/// The read_only flag.
pub const READ_ONLY: &str = "SELECT @@read_only";

// ---- jobs ----------------------------------------------------------------------------------

/// Tables of the user schemas (name and size), for `OPTIMIZE`.
pub const OPTIMIZE_TABLES: &str = "SELECT TABLE_SCHEMA, TABLE_NAME, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') AND TABLE_TYPE = 'BASE TABLE' \
     ORDER BY TABLE_SCHEMA, TABLE_NAME LIMIT 100000";
/// `OPTIMIZE` of one table. Not replicated: each server is optimized on its own.
pub fn optimize_table(schema: &str, table: &str) -> String {
    format!("OPTIMIZE NO_WRITE_TO_BINLOG TABLE {}.{}", quote_ident(schema), quote_ident(table))
}

/// Quotes an identifier with backticks (a backtick inside is doubled).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Creates the manager's and the replication accounts on a freshly installed local instance
/// (not written to its binary log).
pub fn provision_accounts(db_user: &str, db_password: &str, repl_user: &str, repl_password: &str) -> String {
    format!(
        "SET sql_log_bin = 0; \
         CREATE USER IF NOT EXISTS {mu}@'%' IDENTIFIED BY {mp}; GRANT ALL PRIVILEGES ON *.* TO {mu}@'%' WITH GRANT OPTION; \
         CREATE USER IF NOT EXISTS {ru}@'%' IDENTIFIED BY {rp}; GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO {ru}@'%';",
        mu = quote(db_user),
        mp = quote(db_password),
        ru = quote(repl_user),
        rp = quote(repl_password),
    )
}
/// First line fed to a restore or dump-reload session: the reload is not written to the
/// target's binary log (it would be replicated again or break GTID order).
pub const RESTORE_PREAMBLE: &[u8] = b"SET SESSION sql_log_bin = 0;\n";

/// Quotes a string value as an SQL literal using the driver's escaping.
pub fn quote(s: &str) -> String {
    Value::from(s).as_sql(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes() {
        assert_eq!(quote("a'b"), "'a\\'b'");
        assert_eq!(quote("plain"), "'plain'");
    }

    #[test]
    fn change_master_quotes_values() {
        let c = ChangeMaster {
            connection_name: "",
            host: "127.0.0.1",
            port: 3311,
            user: "repl",
            password: "p'w",
            connect_retry: 1,
            heartbeat_period: 3,
        };
        let s = change_master(Flavor::MariaDB, &c);
        assert!(s.contains("MASTER_PASSWORD='p\\'w'"), "{s}");
        assert!(s.ends_with("MASTER_USE_GTID=slave_pos"));
        assert!(!change_master_for_log(Flavor::MariaDB, &c).contains("p\\'w"));
        assert_eq!(stop_slave("a'b"), "STOP SLAVE 'a\\'b'");
        assert_eq!(stop_io_thread(""), "STOP SLAVE IO_THREAD");
        assert_eq!(set_heartbeat_period("", 1), "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = 1");
        assert_eq!(set_heartbeat_period("s1", 0), "CHANGE MASTER 's1' TO MASTER_HEARTBEAT_PERIOD = 1");
        assert_eq!(stop_io_thread("s1"), "STOP SLAVE 's1' IO_THREAD");
        assert_eq!(show_slave_status("s1"), "SHOW SLAVE 's1' STATUS");
        assert_eq!(set_semisync_kill_conn_timeout(1), "SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1");
    }

    #[test]
    fn read_only_bypass_depends_on_the_version() {
        assert!(read_only_bypass_accounts("10.11.19-MariaDB-0+deb12u1-log").contains("= 'READ_ONLY ADMIN'"));
        assert!(read_only_bypass_accounts("10.6.18-MariaDB").contains("'SUPER'"));
        assert!(read_only_bypass_accounts("11.4.2-MariaDB").contains("= 'READ_ONLY ADMIN'"));
    }

    #[test]
    fn flavor_detection() {
        assert_eq!(Flavor::detect("10.11.19-MariaDB-0+deb12u1", "Debian 12"), Flavor::MariaDB);
        assert_eq!(Flavor::detect("8.0.36", "MySQL Community Server - GPL"), Flavor::MySQL);
    }
}
