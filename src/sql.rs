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
             @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled"
        }
        // MySQL has no MariaDB GTID positions; its executed set goes in the binlog slot.
        Flavor::MySQL => {
            "SELECT @@read_only, @@global.gtid_executed, @@global.gtid_executed, '', \
             0, 0, @@log_bin, @@log_slave_updates, @@binlog_format, 0, 0"
        }
    }
}

/// Status counters the monitor reads every tick (`Variable_name`, `Value` rows).
pub const MONITOR_STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
    ('Rpl_semi_sync_master_status','Rpl_semi_sync_slave_status','Rpl_semi_sync_master_clients',\
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
    fn flavor_detection() {
        assert_eq!(Flavor::detect("10.11.19-MariaDB-0+deb12u1", "Debian 12"), Flavor::MariaDB);
        assert_eq!(Flavor::detect("8.0.36", "MySQL Community Server - GPL"), Flavor::MySQL);
    }
}
