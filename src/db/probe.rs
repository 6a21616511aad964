//! `ServerProbe`: one monitored server's connection and the snapshot read from it every tick.
//!
//! The probe keeps one dedicated connection (opened again after any error) and bounds the
//! connect and every statement with a deadline: mysql_async has no timeouts of its own. A
//! connection that timed out is dropped, never reused, since the server may still be running
//! its statement; the session's `max_statement_time` makes the server abort it too.

use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

use crate::config::{Credential, HostPort};
use crate::db::gtid::GtidPos;
use crate::db::sql::{self, Flavor};

/// Why a probe failed. Each variant carries the statement or phase it failed in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("access denied: {0}")]
    Auth(String),
    #[error("connect failed: {0}")]
    Connect(String),
    /// The server's host answered and refused the connection (nothing listens on the port):
    /// the process is gone, unlike a timeout, which a frozen or cut-off server also gives.
    #[error("connection refused: {0}")]
    Refused(String),
    #[error("`{statement}` timed out after {after:?}")]
    StatementTimeout { statement: String, after: Duration },
    #[error("`{statement}` failed: {error}")]
    Statement { statement: String, error: String },
}

impl ProbeError {
    /// True for an authentication failure (MariaDB error 1045): state `ErrorAuth`.
    pub fn is_auth(&self) -> bool {
        matches!(self, ProbeError::Auth(_))
    }

    /// True when the server's host refused the connection: a crashed server on a live host.
    pub fn is_refused(&self) -> bool {
        matches!(self, ProbeError::Refused(_))
    }
}

/// One replication connection as reported by `SHOW ALL SLAVES STATUS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationStatus {
    pub connection_name: String,
    pub master_host: String,
    pub master_port: u16,
    pub master_user: String,
    pub master_server_id: u32,
    /// `Yes`, `No` or `Connecting`.
    pub io_running: String,
    /// `Yes` or `No`.
    pub sql_running: String,
    pub seconds_behind_master: Option<u64>,
    /// `SQL_Delay`: the configured `MASTER_DELAY` in seconds.
    pub sql_delay: u64,
    pub master_log_file: String,
    pub read_master_log_pos: String,
    pub relay_master_log_file: String,
    pub exec_master_log_pos: String,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    pub using_gtid: String,
    pub gtid_io_pos: String,
    pub gtid_slave_pos: String,
    pub slave_heartbeat_period: f64,
    pub slave_received_heartbeats: u64,
    pub slave_sql_running_state: String,
}

impl ReplicationStatus {
    /// Both threads running.
    pub fn is_running(&self) -> bool {
        self.io_running.eq_ignore_ascii_case("yes") && self.sql_running.eq_ignore_ascii_case("yes")
    }

    /// The source this connection points at.
    pub fn source(&self) -> HostPort {
        HostPort { host: self.master_host.clone(), port: self.master_port }
    }
}

/// `SHOW MASTER STATUS`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MasterStatus {
    pub file: String,
    pub position: String,
    #[serde(rename = "binlogDoDB")]
    pub binlog_do_db: String,
    #[serde(rename = "binlogIgnoreDB")]
    pub binlog_ignore_db: String,
}

/// What one successful probe saw.
#[derive(Debug, Clone)]
pub struct ServerSnapshot {
    pub flavor: Flavor,
    pub version: String,
    pub hostname: String,
    pub server_id: u32,
    pub read_only: bool,
    pub gtid_binlog_pos: GtidPos,
    pub gtid_current_pos: GtidPos,
    pub gtid_slave_pos: GtidPos,
    /// MySQL's executed GTID set (empty on MariaDB).
    pub gtid_executed: String,
    pub gtid_domain_id: u32,
    pub gtid_strict_mode: bool,
    pub log_bin: bool,
    pub log_slave_updates: bool,
    pub binlog_format: String,
    pub semi_sync_master_enabled: bool,
    pub semi_sync_slave_enabled: bool,
    /// `rpl_semi_sync_master_timeout` (ms): after it a master without acks commits alone.
    pub semi_sync_timeout_ms: u64,
    /// `rpl_semi_sync_master_wait_point`: `AFTER_SYNC` or `AFTER_COMMIT`.
    pub semi_sync_wait_point: String,
    /// `rpl_semi_sync_master_wait_no_slave`: with no replica connected the master still waits
    /// for the timeout (ON) instead of turning asynchronous at once (OFF).
    pub semi_sync_wait_no_slave: bool,
    /// `Rpl_semi_sync_master_wait_sessions`: commits waiting for an acknowledgement now.
    pub semi_sync_wait_sessions: u64,
    /// `Rpl_semi_sync_master_status`: the master is waiting for replica acks.
    pub semi_sync_master_status: bool,
    pub semi_sync_master_clients: u64,
    /// `Rpl_semi_sync_slave_status`: this replica acks semi-sync.
    pub semi_sync_slave_status: bool,
    pub slave_received_heartbeats: u64,
    pub threads_connected: u64,
    pub queries: u64,
    pub uptime: u64,
    pub replications: Vec<ReplicationStatus>,
    pub master_status: Option<MasterStatus>,
    pub binlog_dump_threads: u64,
    /// `SHOW MASTER STATUS` did not answer within the deadline: commits hold the binary log
    /// (e.g. waiting for semi-sync acks). The probe's connection is then not reused.
    pub binlog_stalled: bool,
    pub taken_at: SystemTime,
    pub latency: Duration,
}

#[cfg(test)]
impl ServerSnapshot {
    /// A read-only MariaDB server with empty positions, no replication and semi-sync off, for
    /// unit tests to adjust.
    pub fn for_tests() -> ServerSnapshot {
        ServerSnapshot {
            flavor: Flavor::MariaDB,
            version: "10.11.19-MariaDB".into(),
            hostname: "h".into(),
            server_id: 1,
            read_only: true,
            gtid_binlog_pos: GtidPos::default(),
            gtid_current_pos: GtidPos::default(),
            gtid_slave_pos: GtidPos::default(),
            gtid_executed: String::new(),
            gtid_domain_id: 0,
            gtid_strict_mode: true,
            log_bin: true,
            log_slave_updates: true,
            binlog_format: "ROW".into(),
            semi_sync_master_enabled: false,
            semi_sync_slave_enabled: false,
            semi_sync_master_status: false,
            semi_sync_master_clients: 0,
            semi_sync_slave_status: false,
            slave_received_heartbeats: 0,
            threads_connected: 1,
            queries: 0,
            uptime: 100,
            replications: Vec::new(),
            master_status: None,
            binlog_dump_threads: 0,
            binlog_stalled: false,
            semi_sync_timeout_ms: 0,
            semi_sync_wait_point: String::new(),
            semi_sync_wait_no_slave: true,
            semi_sync_wait_sessions: 0,
            taken_at: SystemTime::now(),
            latency: Duration::ZERO,
        }
    }
}

impl ServerSnapshot {
    /// Semi-sync as a master that acknowledges no commit before a replica has received it,
    /// for as long as its timeout has not run out: waiting for acknowledgements now
    /// (`Rpl_semi_sync_master_status`), at `AFTER_SYNC` (with `AFTER_COMMIT` other sessions
    /// see a commit before any replica has it), and waiting also with no replica connected.
    pub fn semi_sync_acks_before_commit(&self) -> bool {
        self.semi_sync_master_status && self.semi_sync_wait_point.eq_ignore_ascii_case("AFTER_SYNC") && self.semi_sync_wait_no_slave
    }

    /// The replication connection the manager manages (`replication-source-name`).
    pub fn managed_replication(&self, source_name: &str) -> Option<&ReplicationStatus> {
        self.replications.iter().find(|r| r.connection_name == source_name)
    }
}

/// Builds driver options for one server: bounded pool, session limits set on every connect.
pub fn conn_opts(addr: &HostPort, cred: &Credential, flavor: Flavor, statement_timeout: Duration) -> Opts {
    let setup = sql::session_bounds(flavor, statement_timeout.as_secs_f64().max(0.1), 5);
    OptsBuilder::default()
        .ip_or_hostname(addr.host.clone())
        .tcp_port(addr.port)
        .user(Some(cred.user.clone()))
        .pass(Some(cred.password.clone()))
        .prefer_socket(false)
        .setup(setup)
        .into()
}

/// Runs `fut` with a deadline, naming the statement in the error.
pub async fn bounded<T, F>(statement: &str, after: Duration, fut: F) -> Result<T, ProbeError>
where
    F: std::future::Future<Output = Result<T, mysql_async::Error>>,
{
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ProbeError::Statement { statement: statement.to_string(), error: e.to_string() }),
        Err(_) => Err(ProbeError::StatementTimeout { statement: statement.to_string(), after }),
    }
}

/// Opens a connection within `timeout`, classifying authentication failures.
pub async fn connect(opts: Opts, timeout: Duration) -> Result<Conn, ProbeError> {
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Err(_) => Err(ProbeError::ConnectTimeout(timeout)),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1045 => Err(ProbeError::Auth(e.message)),
        Ok(Err(mysql_async::Error::Io(mysql_async::IoError::Io(e)))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(ProbeError::Refused(e.to_string()))
        }
        Ok(Err(e)) => Err(ProbeError::Connect(e.to_string())),
        Ok(Ok(c)) => Ok(c),
    }
}

/// The monitor's connection to one server.
pub struct ServerProbe {
    addr: HostPort,
    cred: Credential,
    timeout: Duration,
    flavor: Flavor,
    conn: Option<Conn>,
    /// The flavor of the last snapshot, once one was read: the next probes batch their first
    /// statements ([`read_snapshot`]). `None` again for good once the server refused a batch.
    batch: Option<Flavor>,
    batch_refused: bool,
}

impl ServerProbe {
    /// A probe for `addr`, with `timeout` as the connect and per-statement deadline.
    pub fn new(addr: HostPort, cred: Credential, timeout: Duration) -> ServerProbe {
        ServerProbe { addr, cred, timeout, flavor: Flavor::MariaDB, conn: None, batch: None, batch_refused: false }
    }

    /// Reads one snapshot. On any error the connection is dropped, to be opened afresh next time.
    /// A kept connection that fails (not by a timeout) is replaced at once, within the same
    /// probe: a server that closed it and now refuses connections is reported `Refused` this
    /// round, and a connection lost on a live server costs no failed probe.
    pub async fn probe(&mut self) -> Result<ServerSnapshot, ProbeError> {
        let started = Instant::now();
        let (mut conn, reused) = match self.conn.take() {
            Some(c) => (c, true),
            None => (connect(conn_opts(&self.addr, &self.cred, self.flavor, self.timeout), self.timeout).await?, false),
        };
        let mut batch = self.batch;
        let mut result = read_snapshot(&mut conn, self.timeout, &mut batch).await;
        if reused && matches!(result, Err(ProbeError::Statement { .. })) {
            drop(conn);
            conn = connect(conn_opts(&self.addr, &self.cred, self.flavor, self.timeout), self.timeout).await?;
            result = read_snapshot(&mut conn, self.timeout, &mut batch).await;
        }
        if self.batch.is_some() && batch.is_none() {
            self.batch_refused = true;
        }
        match result {
            Ok(mut snap) => {
                snap.latency = started.elapsed();
                self.batch = (!self.batch_refused).then_some(snap.flavor);
                if snap.flavor != self.flavor {
                    // Session bounds differ per flavor: reconnect with the right ones next time.
                    self.flavor = snap.flavor;
                } else if snap.binlog_stalled {
                    // A statement timed out on it: the server may still run it; never reuse.
                } else {
                    self.conn = Some(conn);
                }
                Ok(snap)
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the connection (on shutdown).
    pub async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::time::timeout(self.timeout, conn.disconnect()).await;
        }
    }
}

/// The rows of the first four probe statements: version, variables, status, replication.
struct FirstRows {
    version: Row,
    vars: Row,
    status: Vec<Row>,
    repl: Vec<Row>,
}

/// The version row's flavor.
fn flavor_of(version: &Row) -> Flavor {
    Flavor::detect(&col_at(version, 0).unwrap_or_default(), &col_at(version, 1).unwrap_or_default())
}

/// The four first statements in one round trip (one multi-statement query), for a server of
/// the `expected` flavor. `Ok(None)` when the server refused the batch with an error (no
/// multi-statements, another flavor's variables): the caller asks them one by one.
async fn first_rows_batched(conn: &mut Conn, t: Duration, expected: Flavor) -> Result<Option<FirstRows>, ProbeError> {
    let batch = format!("{}; {}; {}; {}", sql::VERSION, sql::monitor_variables(expected), sql::MONITOR_STATUS, sql::replication_status(expected));
    let fut = async {
        let mut r = conn.query_iter(batch.as_str()).await?;
        let version: Vec<Row> = r.collect().await?;
        let vars: Vec<Row> = r.collect().await?;
        let status: Vec<Row> = r.collect().await?;
        let repl: Vec<Row> = r.collect().await?;
        r.drop_result().await?;
        Ok::<_, mysql_async::Error>((version, vars, status, repl))
    };
    match tokio::time::timeout(t, fut).await {
        Err(_) => Err(ProbeError::StatementTimeout { statement: batch, after: t }),
        Ok(Err(mysql_async::Error::Server(e))) => {
            tracing::debug!(code = e.code, error = %e.message, "the batched probe was refused: one statement at a time");
            Ok(None)
        }
        Ok(Err(e)) => Err(ProbeError::Statement { statement: batch, error: e.to_string() }),
        Ok(Ok((version, vars, status, repl))) => {
            let (Some(version), Some(vars)) = (version.into_iter().next(), vars.into_iter().next()) else {
                return Err(ProbeError::Statement { statement: batch, error: "no row returned".to_string() });
            };
            // Another flavor than expected: its variables statement was not the right one.
            Ok((flavor_of(&version) == expected).then_some(FirstRows { version, vars, status, repl }))
        }
    }
}

/// The four first statements one round trip each (the first probe of a server, and servers
/// that refuse multi-statements).
async fn first_rows_one_by_one(conn: &mut Conn, t: Duration) -> Result<FirstRows, ProbeError> {
    let row: Option<Row> = bounded(sql::VERSION, t, conn.query_first(sql::VERSION)).await?;
    let version = row.ok_or_else(|| ProbeError::Statement {
        statement: sql::VERSION.to_string(),
        error: "no row returned".to_string(),
    })?;
    let flavor = flavor_of(&version);
    let vars_sql = sql::monitor_variables(flavor);
    let vars: Option<Row> = bounded(vars_sql, t, conn.query_first(vars_sql)).await?;
    let vars = vars.ok_or_else(|| ProbeError::Statement {
        statement: vars_sql.to_string(),
        error: "no row returned".to_string(),
    })?;
    let status: Vec<Row> = bounded(sql::MONITOR_STATUS, t, conn.query(sql::MONITOR_STATUS)).await?;
    let repl_sql = sql::replication_status(flavor);
    let repl: Vec<Row> = bounded(repl_sql, t, conn.query(repl_sql)).await?;
    Ok(FirstRows { version, vars, status, repl })
}

/// One snapshot. `batched`: the flavor a previous probe found, whose four first statements
/// then go in one round trip; cleared when the server refuses the batch. SHOW MASTER STATUS
/// stays a round trip of its own: it may block while commits hold the binary log, and what the
/// first ones read (read_only above all) must still come back.
async fn read_snapshot(conn: &mut Conn, t: Duration, batched: &mut Option<Flavor>) -> Result<ServerSnapshot, ProbeError> {
    let first = match *batched {
        Some(f) => match first_rows_batched(conn, t, f).await? {
            Some(rows) => rows,
            None => {
                *batched = None;
                first_rows_one_by_one(conn, t).await?
            }
        },
        None => first_rows_one_by_one(conn, t).await?,
    };
    let FirstRows { version: row, vars, status: status_rows, repl: repl_rows } = first;
    let version = col_at(&row, 0).unwrap_or_default();
    let hostname = col_at(&row, 2).unwrap_or_default();
    let server_id = col_at(&row, 3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let flavor = flavor_of(&row);
    let flag = |i: usize| col_at(&vars, i).is_some_and(|v| is_on(&v));
    let text = |i: usize| col_at(&vars, i).unwrap_or_default();
    let mut status = std::collections::HashMap::new();
    for r in &status_rows {
        if let (Some(k), Some(v)) = (col_at(r, 0), col_at(r, 1)) {
            status.insert(k.to_ascii_lowercase(), v);
        }
    }
    let stat_num = |k: &str| status.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let stat_on = |k: &str| status.get(k).is_some_and(|v| is_on(v));

    let replications = repl_rows.iter().map(replication_from_row).collect();

    // The binary log may not answer while commits hold it (waiting for semi-sync acks that no
    // replica sends: a master cut off and back). The server still answers: say so, and keep
    // what was read (read_only above all), so a fence can act on it.
    let ms_sql = sql::master_status(flavor);
    let (ms, binlog_stalled): (Option<Row>, bool) = match bounded(ms_sql, t, conn.query_first(ms_sql)).await {
        Ok(ms) => (ms, false),
        Err(ProbeError::StatementTimeout { .. }) => (None, true),
        Err(e) => return Err(e),
    };
    let master_status = ms.map(|r| MasterStatus {
        file: col(&r, "File").unwrap_or_default(),
        position: col(&r, "Position").unwrap_or_default(),
        binlog_do_db: col(&r, "Binlog_Do_DB").unwrap_or_default(),
        binlog_ignore_db: col(&r, "Binlog_Ignore_DB").unwrap_or_default(),
    });

    let dumps: Option<u64> = if binlog_stalled {
        None
    } else {
        bounded(sql::BINLOG_DUMP_THREADS, t, conn.query_first(sql::BINLOG_DUMP_THREADS)).await?
    };

    let (binlog, current, slave, executed) = match flavor {
        Flavor::MariaDB => (text(1), text(2), text(3), String::new()),
        Flavor::MySQL => (String::new(), String::new(), String::new(), text(1)),
    };
    Ok(ServerSnapshot {
        flavor,
        version,
        hostname,
        server_id,
        read_only: flag(0),
        gtid_binlog_pos: GtidPos::parse_lenient(&binlog),
        gtid_current_pos: GtidPos::parse_lenient(&current),
        gtid_slave_pos: GtidPos::parse_lenient(&slave),
        gtid_executed: executed,
        gtid_domain_id: text(4).parse().unwrap_or(0),
        gtid_strict_mode: flag(5),
        log_bin: flag(6),
        log_slave_updates: flag(7),
        binlog_format: text(8),
        semi_sync_master_enabled: flag(9),
        semi_sync_slave_enabled: flag(10),
        semi_sync_timeout_ms: text(11).parse().unwrap_or(0),
        semi_sync_wait_point: text(12),
        semi_sync_wait_no_slave: flag(13),
        semi_sync_wait_sessions: stat_num("rpl_semi_sync_master_wait_sessions"),
        semi_sync_master_status: stat_on("rpl_semi_sync_master_status") || stat_on("rpl_semi_sync_source_status"),
        semi_sync_master_clients: stat_num("rpl_semi_sync_master_clients"),
        semi_sync_slave_status: stat_on("rpl_semi_sync_slave_status") || stat_on("rpl_semi_sync_replica_status"),
        slave_received_heartbeats: stat_num("slave_received_heartbeats"),
        threads_connected: stat_num("threads_connected"),
        queries: stat_num("queries"),
        uptime: stat_num("uptime"),
        replications,
        master_status,
        binlog_dump_threads: dumps.unwrap_or(0),
        binlog_stalled,
        taken_at: SystemTime::now(),
        latency: Duration::ZERO,
    })
}

fn is_on(v: &str) -> bool {
    matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

/// The text of column `i` (NULL gives `None`).
pub fn col_at(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::Int(i) => Some(i.to_string()),
        mysql_async::Value::UInt(u) => Some(u.to_string()),
        mysql_async::Value::Float(f) => Some(f.to_string()),
        mysql_async::Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// The text of the column named `name` (absent column or NULL gives `None`).
pub fn col(row: &Row, name: &str) -> Option<String> {
    let idx = row.columns_ref().iter().position(|c| c.name_str() == name)?;
    col_at(row, idx)
}

fn replication_from_row(r: &Row) -> ReplicationStatus {
    let s = |n: &str| col(r, n).unwrap_or_default();
    let num = |n: &str| col(r, n).and_then(|v| v.trim().parse::<u64>().ok());
    ReplicationStatus {
        connection_name: col(r, "Connection_name").or_else(|| col(r, "Channel_Name")).unwrap_or_default(),
        master_host: s("Master_Host"),
        master_port: num("Master_Port").and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        master_user: s("Master_User"),
        master_server_id: num("Master_Server_Id").and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        io_running: s("Slave_IO_Running"),
        sql_running: s("Slave_SQL_Running"),
        seconds_behind_master: num("Seconds_Behind_Master"),
        sql_delay: num("SQL_Delay").unwrap_or(0),
        master_log_file: s("Master_Log_File"),
        read_master_log_pos: s("Read_Master_Log_Pos"),
        relay_master_log_file: s("Relay_Master_Log_File"),
        exec_master_log_pos: s("Exec_Master_Log_Pos"),
        last_io_errno: num("Last_IO_Errno").and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        last_io_error: s("Last_IO_Error"),
        last_sql_errno: num("Last_SQL_Errno").and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
        last_sql_error: s("Last_SQL_Error"),
        using_gtid: s("Using_Gtid"),
        gtid_io_pos: s("Gtid_IO_Pos"),
        gtid_slave_pos: s("Gtid_Slave_Pos"),
        slave_heartbeat_period: col(r, "Slave_heartbeat_period").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        slave_received_heartbeats: num("Slave_received_heartbeats").unwrap_or(0),
        slave_sql_running_state: s("Slave_SQL_Running_State"),
    }
}
