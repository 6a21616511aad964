//! Read-only information about one database server, for the API's server-info routes
//! (processlist, variables, status and its per-second deltas, error and slow logs, tables,
//! schemas). Each request opens one bounded admin session, reads, and closes it; log files are
//! read only when the server runs on the manager's own host. The answers are the API's wire
//! types ([`ServerInfoView`]), which keep the Go replication-manager's names.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replication_manager_api::wire::{
    ErrorLogView, LogLineView, NullFloat64, NullString, ProcessView, ServerInfoView, SlowQueryView, TableView, VariableView,
};

use crate::db::conn::{AdminConn, DbError};
use crate::config::{Credential, HostPort};
use crate::db::sql::{self, Flavor};

mod logs;

use logs::*;
pub(crate) use logs::{local_hostname, readable_server_file, runs_here, server_files, ServerFiles};

// ---- bounds ----------------------------------------------------------------------------------

/// A status-delta sample older than this is not used as the base of a delta.
pub const STATUS_SAMPLE_MAX_AGE: Duration = Duration::from_secs(300);
/// Shortest interval a delta is computed over.
const STATUS_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How many servers the status cache remembers (the oldest sample is evicted beyond).
const STATUS_CACHE_CAPACITY: usize = 1024;
/// Error-log bytes read from the end of the file: per requested line, and the bounds.
const ERROR_LOG_BYTES_PER_LINE: u64 = 1024;
const ERROR_LOG_MIN_BYTES: u64 = 256 << 10;
const ERROR_LOG_MAX_BYTES: u64 = 16 << 20;
/// Slow-log bytes read from the end of the file: per requested entry, and the bounds.
const SLOW_LOG_BYTES_PER_ENTRY: u64 = 4096;
const SLOW_LOG_MIN_BYTES: u64 = 1 << 20;
const SLOW_LOG_MAX_BYTES: u64 = 32 << 20;
/// Longest query text kept per slow-log entry read from a file.
const SLOW_QUERY_MAX_CHARS: usize = 65_536;

/// Which information to read (the API's kinds).
pub use replication_manager_api::ServerInfo as InfoKind;

/// One request: the server, how to reach it, and how many rows to return at most.
pub struct InfoRequest<'a> {
    pub addr: &'a HostPort,
    pub cred: &'a Credential,
    /// Connect deadline and deadline of each statement.
    pub timeout: Duration,
    /// Most rows (log lines, entries) returned; validated by the caller (1..=10000).
    pub limit: usize,
    /// Name shown as the `group` of error-log lines.
    pub server_name: &'a str,
}

/// Why information could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// The information does not exist or cannot be reached from the manager host (HTTP 501).
    #[error("{0}")]
    NotAvailable(String),
    /// Connecting or reading failed (HTTP 500).
    #[error("{0}")]
    Failed(String),
}

impl From<DbError> for InfoError {
    fn from(e: DbError) -> InfoError {
        InfoError::Failed(e.to_string())
    }
}

/// One numeric status sample: upper-case variable name to value.
pub type StatusSample = BTreeMap<String, f64>;

/// The last `SHOW GLOBAL STATUS` sample of each server (by `host:port`), the base of the next
/// status delta. Bounded to [`STATUS_CACHE_CAPACITY`] servers.
#[derive(Default)]
pub struct StatusCache {
    samples: Mutex<HashMap<String, (Instant, StatusSample)>>,
}

impl StatusCache {
    fn previous(&self, server: &str) -> Option<(Instant, StatusSample)> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.get(server).cloned()
    }

    fn store(&self, server: &str, at: Instant, sample: StatusSample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if !samples.contains_key(server) && samples.len() >= STATUS_CACHE_CAPACITY {
            let oldest = samples.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                samples.remove(&k);
            }
        }
        samples.insert(server.to_string(), (at, sample));
    }
}

/// Reads one kind of information from `req.addr`, at most `req.limit` rows.
pub async fn read_info(kind: InfoKind, req: &InfoRequest<'_>, cache: &StatusCache) -> Result<ServerInfoView, InfoError> {
    let mut conn = AdminConn::connect(req.addr, req.cred, Flavor::MariaDB, req.timeout, req.timeout).await?;
    let result = read_with(&mut conn, kind, req, cache).await;
    conn.close().await;
    result
}

async fn read_with(
    conn: &mut AdminConn,
    kind: InfoKind,
    req: &InfoRequest<'_>,
    cache: &StatusCache,
) -> Result<ServerInfoView, InfoError> {
    let limit = req.limit.max(1);
    Ok(match kind {
        InfoKind::Processlist => {
            let (_, rows) = conn.rows(&format!("{}{limit}", sql::PROCESSLIST)).await?;
            ServerInfoView::Processlist(rows.iter().map(|r| process_from_row(r)).collect())
        }
        InfoKind::Variables => ServerInfoView::Variables(variables(conn, sql::GLOBAL_VARIABLES, limit).await?),
        InfoKind::Status => ServerInfoView::Variables(variables(conn, sql::GLOBAL_STATUS, limit).await?),
        InfoKind::StatusInnodb => ServerInfoView::Variables(variables(conn, sql::GLOBAL_STATUS_INNODB, limit).await?),
        InfoKind::StatusDelta => ServerInfoView::Variables(status_delta(conn, req, cache, limit).await?),
        InfoKind::ErrorLog => ServerInfoView::ErrorLog(error_log(conn, req, limit).await?),
        InfoKind::SlowLog => ServerInfoView::SlowLog(slow_log(conn, req, limit).await?),
        InfoKind::Tables => ServerInfoView::Tables(tables(conn, limit).await?),
        InfoKind::VTables => ServerInfoView::VTables(
            tables(conn, limit).await?.into_iter().map(|t| (format!("{}.{}", t.table_schema, t.table_name), t)).collect(),
        ),
        InfoKind::Schemas => ServerInfoView::Schemas(conn.column(sql::SCHEMAS).await?.into_iter().take(limit).collect()),
    })
}

// ---- processlist -------------------------------------------------------------------------------

fn process_from_row(r: &[Option<String>]) -> ProcessView {
    let text = |i: usize| r.get(i).cloned().flatten();
    let num = |i: usize| text(i).and_then(|v| v.trim().parse::<f64>().ok());
    let int = |i: usize| text(i).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    let db = text(3);
    let time = num(5);
    ProcessView {
        id: int(0),
        user: text(1).unwrap_or_default(),
        host: text(2).unwrap_or_default(),
        db: NullString { valid: db.is_some(), string: db.unwrap_or_default() },
        command: text(4).unwrap_or_default(),
        time: NullFloat64 { valid: time.is_some(), float64: time.unwrap_or(0.0) },
        time_ms: num(6).unwrap_or(0.0),
        state: text(7).unwrap_or_default(),
        info: text(8),
        progress: num(9).unwrap_or(0.0),
        rows_sent: 0,
        rows_examined: int(10),
    }
}

// ---- variables and status ---------------------------------------------------------------------

async fn variables(conn: &mut AdminConn, statement: &str, limit: usize) -> Result<Vec<VariableView>, InfoError> {
    let (_, rows) = conn.rows(statement).await?;
    let vars: Vec<VariableView> = rows
        .into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            let name = it.next().flatten()?;
            Some(VariableView {
                variable_name: name.to_ascii_uppercase(),
                value: it.next().flatten().unwrap_or_default(),
            })
        })
        .take(limit)
        .collect();
    Ok(vars)
}

async fn status_sample(conn: &mut AdminConn) -> Result<(Instant, StatusSample), InfoError> {
    let (_, rows) = conn.rows(sql::GLOBAL_STATUS).await?;
    let at = Instant::now();
    Ok((at, numeric_sample(rows.iter().filter_map(|r| Some((r.first()?.as_deref()?, r.get(1)?.as_deref()?))))))
}

/// Keeps the numeric values of `(name, value)` pairs, names upper-cased.
pub fn numeric_sample<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> StatusSample {
    pairs
        .filter_map(|(k, v)| {
            let n = v.trim().parse::<f64>().ok().filter(|n| n.is_finite())?;
            Some((k.to_ascii_uppercase(), n))
        })
        .collect()
}

/// Per-second change of every counter present in both samples, in name order.
pub fn status_delta_per_second(old: &StatusSample, new: &StatusSample, elapsed: Duration) -> Vec<(String, f64)> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return Vec::new();
    }
    new.iter().filter_map(|(k, v)| old.get(k).map(|o| (k.clone(), (v - o) / secs))).collect()
}

/// A rate as text: integers without decimals, others with up to three.
pub fn format_rate(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_string()
        } else {
            s.to_string()
        }
    }
}

async fn status_delta(
    conn: &mut AdminConn,
    req: &InfoRequest<'_>,
    cache: &StatusCache,
    limit: usize,
) -> Result<Vec<VariableView>, InfoError> {
    let key = req.addr.to_string();
    let base = match cache.previous(&key).filter(|(at, _)| at.elapsed() <= STATUS_SAMPLE_MAX_AGE) {
        Some(base) => base,
        None => status_sample(conn).await?,
    };
    // A delta over a few milliseconds is noise: measure over at least one second.
    let age = base.0.elapsed();
    if age < STATUS_MIN_INTERVAL {
        tokio::time::sleep(STATUS_MIN_INTERVAL - age).await;
    }
    let (at, sample) = status_sample(conn).await?;
    let delta = status_delta_per_second(&base.1, &sample, at.saturating_duration_since(base.0));
    cache.store(&key, at, sample);
    Ok(delta.into_iter().take(limit).map(|(k, v)| VariableView { variable_name: k, value: format_rate(v) }).collect())
}

// ---- tables ------------------------------------------------------------------------------------

pub(crate) fn table_from_row(r: &[Option<String>]) -> TableView {
    let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    let num = |i: usize| text(i).trim().parse::<u64>().unwrap_or(0);
    TableView {
        table_schema: text(0),
        table_name: text(1),
        engine: text(2),
        table_rows: num(3),
        data_length: num(4),
        index_length: num(5),
    }
}

async fn tables(conn: &mut AdminConn, limit: usize) -> Result<Vec<TableView>, InfoError> {
    let (_, rows) = conn.rows(&format!("{}{limit}", sql::USER_TABLES)).await?;
    Ok(rows.iter().map(|r| table_from_row(r)).collect())
}

/// Seconds since the epoch, now.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_lines() {
        let text = "\
Version: '10.11.19-MariaDB'  banner before any entry
2026-11-28 19:29:22 0 [Note] Server socket created on IP: '127.0.0.1', port: '45500'.
2026-11-28 19:29:22 0 [Warning] 'proxies_priv' entry '@% root@vm' ignored in --skip-name-resolve mode.
2026-11-28 19:29:22 0 [Note] /usr/sbin/mariadbd: ready for connections.
Version: '10.11.19-MariaDB-0+deb12u1-log'  socket: '/tmp/x.sock'  port: 45500  Debian 12
2026-11-28 19:29:39 14 [ERROR] Access denied for user 'repman'@'127.0.0.1'
161128  9:01:02 [ERROR] old format line
2026-11-28 19:30:00 0 [System] something
2026-11-28 19:30:01 0 InnoDB: no level
2026-12-05  2:29:02 0 [Note] before ten in the morning the hour is padded with a space
";
        let e = parse_error_log(text, "db1:3306");
        assert_eq!(e.len(), 9);
        assert_eq!(e[8].timestamp, "2026/12/05 02:29:02");
        assert_eq!(e[8].text, "before ten in the morning the hour is padded with a space");
        assert_eq!(e[0].timestamp, "");
        assert_eq!(e[1].level, "INFO");
        assert_eq!(e[1].timestamp, "2026/11/28 19:29:22");
        assert_eq!(e[1].text, "Server socket created on IP: '127.0.0.1', port: '45500'.");
        assert_eq!(e[1].group, "db1:3306");
        assert_eq!(e[2].level, "WARN");
        assert!(e[3].text.ends_with("ready for connections.\nVersion: '10.11.19-MariaDB-0+deb12u1-log'  socket: '/tmp/x.sock'  port: 45500  Debian 12"));
        assert_eq!(e[4].level, "ERROR");
        assert_eq!(e[4].text, "Access denied for user 'repman'@'127.0.0.1'");
        assert_eq!(e[5].timestamp, "2016/11/28 09:01:02");
        assert_eq!(e[5].level, "ERROR");
        assert_eq!(e[5].text, "old format line");
        assert_eq!(e[6].level, "INFO");
        assert_eq!(e[7].text, "InnoDB: no level");
    }

    #[test]
    fn slow_log_file_entries() {
        let text = "\
Query_time: 9 partial entry cut by the tail read
/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:
Tcp port: 45500  Unix socket: /tmp/rmexp/i1/mysqld.sock
Time		    Id Command	Argument
# Time: 261128 19:29:48
# User@Host: repman[repman] @  [127.0.0.1]
# Thread_id: 21  Schema: app  QC_hit: No
# Query_time: 0.200324  Lock_time: 0.000000  Rows_sent: 1  Rows_examined: 0
# Rows_affected: 0  Bytes_sent: 67
use `app`;
SET timestamp=1795894188;
select sleep(0.2);
# Time: 261128 19:29:49
# User@Host: repman[repman] @  [127.0.0.1]
# Thread_id: 21  Schema: app  QC_hit: No
# Query_time: 0.000282  Lock_time: 0.000089  Rows_sent: 1  Rows_examined: 1
# Rows_affected: 0  Bytes_sent: 102
SET timestamp=1795894189;
select *
  from t where id=1;
# User@Host: repman[repman] @  [127.0.0.1]
# Thread_id: 24  Schema:   QC_hit: No
# Query_time: 0.000056  Lock_time: 0.000000  Rows_sent: 0  Rows_examined: 0
# Rows_affected: 0  Bytes_sent: 11
SET timestamp=1795894189;
use other;
";
        let q = parse_slow_log(text);
        assert_eq!(q.len(), 3, "{q:#?}");
        assert_eq!(q[0].start_time, "2026-11-28 19:29:48");
        assert_eq!(q[0].user_host, "repman[repman] @  [127.0.0.1]");
        assert_eq!(q[0].query_time, 0.200324);
        assert_eq!(q[0].rows_sent, 1);
        assert_eq!(q[0].db, "app");
        assert_eq!(q[0].query, "select sleep(0.2)");
        assert_eq!(q[1].lock_time, 0.000089);
        assert_eq!(q[1].rows_examined, 1);
        assert_eq!(q[1].query, "select *\n  from t where id=1");
        assert_eq!(q[2].db, "");
        assert_eq!(q[2].query, "use other");
        assert_eq!(q[2].start_time, "2026-11-28 19:29:49");
    }

    #[test]
    fn slow_log_without_set_timestamp_keeps_time_line() {
        let q = parse_slow_log("# Time: 2026-11-28T19:29:48.123456Z\n# User@Host: a[a] @ h []\n# Query_time: 2  Lock_time: 0 Rows_sent: 0  Rows_examined: 5\nselect 1;\n");
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].start_time, "2026-11-28 19:29:48.123456");
        assert_eq!(q[0].query_time, 2.0);
        assert_eq!(q[0].rows_examined, 5);
        assert_eq!(q[0].query, "select 1");
    }

    #[test]
    fn time_values() {
        assert_eq!(time_to_seconds("00:00:01.000213"), Some(1.000213));
        assert_eq!(time_to_seconds("838:59:59.000000"), Some(838.0 * 3600.0 + 59.0 * 60.0 + 59.0));
        assert_eq!(time_to_seconds("-00:00:02"), Some(-2.0));
        assert_eq!(time_to_seconds("1.5"), Some(1.5));
        assert_eq!(time_to_seconds("x"), None);
    }

    #[test]
    fn deltas_per_second() {
        let old =
            numeric_sample([("Queries", "100"), ("Uptime", "10"), ("Rpl_status", "OFF"), ("Gone", "1")].into_iter());
        let new =
            numeric_sample([("Queries", "150"), ("Uptime", "12"), ("Rpl_status", "ON"), ("New", "1")].into_iter());
        assert!(!old.contains_key("RPL_STATUS"));
        let d = status_delta_per_second(&old, &new, Duration::from_secs(2));
        assert_eq!(d, vec![("QUERIES".to_string(), 25.0), ("UPTIME".to_string(), 1.0)]);
        assert!(status_delta_per_second(&old, &new, Duration::ZERO).is_empty());
        assert_eq!(format_rate(25.0), "25");
        assert_eq!(format_rate(0.5), "0.5");
        assert_eq!(format_rate(1.0 / 3.0), "0.333");
        assert_eq!(format_rate(-0.0001), "0");
    }

    #[test]
    fn status_cache_is_bounded() {
        let cache = StatusCache::default();
        let t0 = Instant::now();
        for i in 0..(STATUS_CACHE_CAPACITY + 10) {
            cache.store(&format!("h{i}:3306"), t0 + Duration::from_millis(i as u64), StatusSample::new());
        }
        assert_eq!(cache.samples.lock().unwrap().len(), STATUS_CACHE_CAPACITY);
        assert!(cache.previous("h0:3306").is_none());
        assert!(cache.previous(&format!("h{}:3306", STATUS_CACHE_CAPACITY + 9)).is_some());
    }

    #[test]
    fn server_paths_and_hosts() {
        assert_eq!(server_path("/var/log/e.log", "/d/"), Some(PathBuf::from("/var/log/e.log")));
        assert_eq!(server_path("./db1.err", "/var/lib/mysql/"), Some(PathBuf::from("/var/lib/mysql/./db1.err")));
        assert_eq!(server_path("  ", "/d"), None);
        assert!(runs_here("vm", "vm"));
        assert!(runs_here("VM.example.org", "vm"));
        assert!(!runs_here("db2", "vm"));
        assert!(!runs_here("vm", ""));
    }

    #[test]
    fn tail_drops_the_partial_first_line() {
        let dir = std::env::temp_dir().join(format!("rmu-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.log");
        std::fs::write(&p, "first line\nsecond line\nthird\n").unwrap();
        assert_eq!(read_tail(&p, 1000).unwrap(), "first line\nsecond line\nthird\n");
        assert_eq!(read_tail(&p, 15).unwrap(), "third\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn processlist_row() {
        let r: Vec<Option<String>> = vec![
            Some("7".into()),
            Some("app".into()),
            Some("127.0.0.1:5000".into()),
            None,
            Some("Query".into()),
            Some("3".into()),
            Some("3001.5".into()),
            Some("User sleep".into()),
            Some("select sleep(5)".into()),
            Some("0.000".into()),
            Some("0".into()),
        ];
        let v = serde_json::to_value(process_from_row(&r)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["db"], serde_json::json!({"String": "", "Valid": false}));
        assert_eq!(v["time"], serde_json::json!({"Float64": 3.0, "Valid": true}));
        assert_eq!(v["timeMs"], 3001.5);
        assert_eq!(v["info"], "select sleep(5)");
        assert_eq!(v["rowsExamined"], 0);
    }
}

/// A throw-away MariaDB sandbox (`scripts/sandbox`) for the unit tests of this crate's
/// server-facing modules: its own directory, ports, uids and nft table; destroyed on drop.
#[cfg(test)]
pub(crate) mod test_sandbox {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::config::{Credential, HostPort};

    static SLOT: AtomicU32 = AtomicU32::new(0);

    /// A running sandbox of `count` independent instances.
    pub struct TestSandbox {
        dir: PathBuf,
        base_port: u16,
        uid_base: u32,
        table: String,
    }

    impl TestSandbox {
        /// Starts `count` mariadbd (no replication) on free loopback ports.
        pub fn start(count: u16) -> TestSandbox {
            let slot = SLOT.fetch_add(1, Ordering::SeqCst);
            let pid = std::process::id();
            // Below the ephemeral range (32768+) and below the integration tests' (20000+).
            let base_port = free_ports(12_000 + ((pid % 300) * 20 + slot * 5) as u16 % 6_000, count);
            let sb = TestSandbox {
                dir: PathBuf::from(format!("/tmp/rmut-{pid}-{slot}")),
                base_port,
                uid_base: 47_000 + (pid % 90) * 20 + slot * 4,
                table: format!("rmut_{pid}_{slot}"),
            };
            sb.run(&["start", &count.to_string()]);
            sb
        }

        fn command(&self, args: &[&str]) -> Command {
            let mut c = Command::new(std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from).join("scripts/sandbox"));
            c.args(args)
                .env("SANDBOX_DIR", &self.dir)
                .env("SANDBOX_BASE_PORT", self.base_port.to_string())
                .env("SANDBOX_UID_BASE", self.uid_base.to_string())
                .env("SANDBOX_NFT_TABLE", &self.table)
                .env("SANDBOX_QUIET", "1")
                .stdin(Stdio::null());
            c
        }

        /// Runs a sandbox command; panics with its output on failure.
        pub fn run(&self, args: &[&str]) -> String {
            let out = self.command(args).output().expect("run scripts/sandbox");
            assert!(
                out.status.success(),
                "scripts/sandbox {args:?} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }

        /// SQL as root on instance `i` (1-based); rows as tab-separated lines.
        pub fn sql(&self, i: u16, sql: &str) -> String {
            self.run(&["sql", &i.to_string(), sql])
        }

        /// The address of instance `i`.
        pub fn addr(&self, i: u16) -> HostPort {
            HostPort { host: "127.0.0.1".to_string(), port: self.base_port + i - 1 }
        }

        /// The sandbox's manager account.
        pub fn cred(&self) -> Credential {
            Credential { user: "repman".to_string(), password: "repman".to_string() }
        }
    }

    impl Drop for TestSandbox {
        fn drop(&mut self) {
            let _ = self.command(&["destroy"]).output();
        }
    }

    fn free_ports(start: u16, count: u16) -> u16 {
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        let mut base = start;
        for _ in 0..2000 {
            if (0..count).all(|i| free(base + i)) {
                return base;
            }
            base = 12_000 + (base - 12_000 + 7) % 6_000;
        }
        panic!("no {count} consecutive free ports");
    }
}

#[cfg(test)]
mod sandbox_tests {
    use super::test_sandbox::TestSandbox;
    use super::*;

    async fn info(
        kind: InfoKind,
        addr: &HostPort,
        cred: &Credential,
        limit: usize,
        cache: &StatusCache,
    ) -> Result<serde_json::Value, InfoError> {
        let name = addr.to_string();
        let req = InfoRequest { addr, cred, timeout: Duration::from_secs(5), limit, server_name: &name };
        // The assertions read the JSON the API sends.
        read_info(kind, &req, cache).await.map(|v| serde_json::to_value(v).unwrap())
    }

    /// Every kind against a real server with a table and a few rows.
    /// Runs a query tagged with `marker` as the manager account, then returns the slow-log
    /// entry that holds it (every query is slow with long_query_time 0).
    async fn slow_entry(addr: &HostPort, cred: &Credential, cache: &StatusCache, marker: &str) -> serde_json::Value {
        let mut c = AdminConn::connect(addr, cred, Flavor::MariaDB, Duration::from_secs(5), Duration::from_secs(5)).await.unwrap();
        c.exec(&format!("SELECT COUNT(*) FROM app.t WHERE v <> '{marker}'")).await.unwrap();
        c.close().await;
        let sl = info(InfoKind::SlowLog, addr, cred, 50, cache).await.unwrap();
        sl.as_array()
            .unwrap()
            .iter()
            .find(|e| e["query"].as_str().unwrap().contains(marker))
            .cloned()
            .unwrap_or_else(|| panic!("{sl}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_kind_has_its_shape() {
        let sb = TestSandbox::start(1);
        sb.sql(
            1,
            "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO app.t VALUES (1,'a'),(2,'b'),(3,'c'); ANALYZE TABLE app.t; \
             SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = ON",
        );
        let (addr, cred) = (sb.addr(1), sb.cred());
        let cache = StatusCache::default();

        // A session running a statement, seen in the processlist.
        let sleeper = {
            let (addr, cred) = (addr.clone(), cred.clone());
            tokio::spawn(async move {
                let mut c =
                    AdminConn::connect(&addr, &cred, Flavor::MariaDB, Duration::from_secs(5), Duration::from_secs(10))
                        .await
                        .unwrap();
                c.exec("SELECT SLEEP(3)").await.unwrap();
                c.close().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pl = info(InfoKind::Processlist, &addr, &cred, 100, &cache).await.unwrap();
        let p =
            pl.as_array().unwrap().iter().find(|p| p["info"] == "SELECT SLEEP(3)").unwrap_or_else(|| panic!("{pl}"));
        assert_eq!(p["user"], "repman");
        assert_eq!(p["command"], "Query");
        assert_eq!(p["time"]["Valid"], true);
        assert!(p["timeMs"].as_f64().unwrap() > 0.0);
        assert!(p["db"]["Valid"].is_boolean());
        for k in ["id", "host", "state", "progress", "rowsSent", "rowsExamined"] {
            assert!(p.get(k).is_some(), "{k} missing in {p}");
        }
        sleeper.await.unwrap();

        let vars = info(InfoKind::Variables, &addr, &cred, 10_000, &cache).await.unwrap();
        let vars = vars.as_array().unwrap();
        assert!(vars
            .iter()
            .any(|v| v["variableName"] == "VERSION" && v["value"].as_str().unwrap().contains("MariaDB")));
        assert_eq!(info(InfoKind::Variables, &addr, &cred, 5, &cache).await.unwrap().as_array().unwrap().len(), 5);

        let status = info(InfoKind::Status, &addr, &cred, 10_000, &cache).await.unwrap();
        assert!(status.as_array().unwrap().iter().any(|v| v["variableName"] == "UPTIME"));
        let innodb = info(InfoKind::StatusInnodb, &addr, &cred, 10_000, &cache).await.unwrap();
        let innodb = innodb.as_array().unwrap();
        assert!(!innodb.is_empty() && innodb.iter().all(|v| v["variableName"].as_str().unwrap().starts_with("INNODB")));

        // First delta: two samples one second apart; the next one uses the cached sample.
        let started = Instant::now();
        let d1 = info(InfoKind::StatusDelta, &addr, &cred, 10_000, &cache).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        let uptime = d1.as_array().unwrap().iter().find(|v| v["variableName"] == "UPTIME").unwrap();
        let rate: f64 = uptime["value"].as_str().unwrap().parse().unwrap();
        assert!((0.0..=3.0).contains(&rate), "uptime rate {rate}");
        let d2 = info(InfoKind::StatusDelta, &addr, &cred, 10_000, &cache).await.unwrap();
        let queries = d2.as_array().unwrap().iter().find(|v| v["variableName"] == "QUERIES").unwrap();
        assert!(queries["value"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);

        let el = info(InfoKind::ErrorLog, &addr, &cred, 3, &cache).await.unwrap();
        assert_eq!(el["len"], 3, "{el}");
        assert!(el["line"].as_u64().unwrap() >= 3);
        let first = &el["buffer"][0];
        assert_eq!(first["group"], addr.to_string());
        assert!(["INFO", "WARN", "ERROR"].contains(&first["level"].as_str().unwrap()), "{first}");
        assert!(first["timestamp"].as_str().unwrap().starts_with("20"), "{first}");

        // Slow log written to the file (log_output = FILE).
        let e = slow_entry(&addr, &cred, &cache, "slow-file-marker").await;
        assert!(e["userHost"].as_str().unwrap().contains("repman"));
        assert!(e["queryTime"].as_f64().unwrap() >= 0.0);
        assert_eq!(e["rowsSent"], 1);
        assert!(e["startTime"].as_str().unwrap().starts_with("20"));

        // Slow log written to mysql.slow_log (log_output = TABLE).
        sb.sql(1, "SET GLOBAL log_output = 'TABLE'");
        let e = slow_entry(&addr, &cred, &cache, "slow-table-marker").await;
        assert_eq!(e["db"], "");
        assert_eq!(e["rowsExamined"], 3);
        for k in ["startTime", "userHost", "queryTime", "lockTime", "rowsSent"] {
            assert!(e.get(k).is_some(), "{k} missing in {e}");
        }

        // A slow log file that does not exist here: 501 material.
        // (With the slow log off, the server accepts the name without creating the file.)
        let missing = format!("/tmp/rmut-missing-{}.log", std::process::id());
        sb.sql(1, &format!("SET GLOBAL slow_query_log = OFF; SET GLOBAL log_output = 'FILE'; SET GLOBAL slow_query_log_file = '{missing}'"));
        match info(InfoKind::SlowLog, &addr, &cred, 50, &cache).await {
            Err(InfoError::NotAvailable(m)) => {
                assert!(m.contains("not readable from the manager host") && m.contains(&missing), "{m}")
            }
            other => panic!("expected NotAvailable, got {other:?}"),
        }

        let tables = info(InfoKind::Tables, &addr, &cred, 100, &cache).await.unwrap();
        let t =
            tables.as_array().unwrap().iter().find(|t| t["table_name"] == "t").unwrap_or_else(|| panic!("{tables}"));
        assert_eq!(t["table_schema"], "app");
        assert_eq!(t["engine"], "InnoDB");
        assert_eq!(t["table_rows"], 3);
        assert!(t["data_length"].as_u64().unwrap() > 0);
        assert!(t["index_length"].is_u64());
        assert!(tables.as_array().unwrap().iter().all(|t| t["table_schema"] != "mysql"));

        let vt = info(InfoKind::VTables, &addr, &cred, 100, &cache).await.unwrap();
        assert_eq!(vt["app.t"]["table_rows"], 3, "{vt}");

        let schemas = info(InfoKind::Schemas, &addr, &cred, 100, &cache).await.unwrap();
        let schemas: Vec<&str> = schemas.as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
        assert!(schemas.contains(&"app") && schemas.contains(&"mysql"), "{schemas:?}");

        // A server that does not answer: 500 material.
        let dead = HostPort { host: "127.0.0.1".to_string(), port: sb.addr(1).port + 1 };
        assert!(matches!(info(InfoKind::Status, &dead, &cred, 10, &cache).await, Err(InfoError::Failed(_))));
    }
}
