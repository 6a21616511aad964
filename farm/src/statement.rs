//! The statements the farm understands, recognised from their text: what the manager's probe
//! sends every tick, what mysql_async sends while connecting, and session `SET`s. Everything
//! else is [`Statement::Unknown`].

/// A recognised statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `SELECT @@a, @@b, ...`: one row, one column per variable, named as written.
    Variables(Vec<Variable>),
    /// `SELECT 1` (a client's liveness check).
    SelectNumber(String),
    /// `SHOW [GLOBAL] STATUS [WHERE Variable_name IN (...)]`; `None` shows every counter.
    Status(Option<Vec<String>>),
    /// `SHOW ALL SLAVES STATUS` (or `SHOW SLAVE STATUS`).
    SlavesStatus,
    /// `SHOW MASTER STATUS` (or `SHOW BINLOG STATUS`).
    MasterStatus,
    /// The count of binlog dump threads in `information_schema.PROCESSLIST`.
    BinlogDumpThreads,
    /// The accounts holding `READ ONLY ADMIN` (or `SUPER`).
    ReadOnlyBypassAccounts,
    /// A session-scoped `SET`: answered OK, changes nothing.
    SetSession,
    /// Anything else: answered with error 1064.
    Unknown,
}

/// One `@@name` item of a `SELECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Lower case, without `global.` / `session.`.
    pub name: String,
    /// The column name: the item as written (`@@version`).
    pub column: String,
}

/// The kinds counted by the statistics, one counter each.
pub const KINDS: [&str; 10] = [
    "variables",
    "select_number",
    "status",
    "slaves_status",
    "master_status",
    "binlog_dump_threads",
    "read_only_bypass_accounts",
    "set_session",
    "unknown",
    "multi_statement_refused",
];

/// The counter of multi-statement queries, refused (see `session::on_query`).
pub const MULTI_STATEMENT_REFUSED: usize = 9;

impl Statement {
    /// The statistics counter of this statement (an index into [`KINDS`]).
    pub fn kind(&self) -> usize {
        match self {
            Statement::Variables(_) => 0,
            Statement::SelectNumber(_) => 1,
            Statement::Status(_) => 2,
            Statement::SlavesStatus => 3,
            Statement::MasterStatus => 4,
            Statement::BinlogDumpThreads => 5,
            Statement::ReadOnlyBypassAccounts => 6,
            Statement::SetSession => 7,
            Statement::Unknown => 8,
        }
    }

    /// Recognises `text`.
    pub fn parse(text: &str) -> Statement {
        let norm = normalize(text);
        let upper = norm.to_ascii_uppercase();
        if let Some(rest) = strip_word(&norm, &upper, "SELECT") {
            return parse_select(rest);
        }
        match upper.as_str() {
            "SHOW ALL SLAVES STATUS" | "SHOW SLAVE STATUS" | "SHOW ALL REPLICAS STATUS" | "SHOW REPLICA STATUS" => {
                return Statement::SlavesStatus
            }
            "SHOW MASTER STATUS" | "SHOW BINLOG STATUS" => return Statement::MasterStatus,
            "SHOW GLOBAL STATUS" | "SHOW STATUS" | "SHOW SESSION STATUS" => return Statement::Status(None),
            _ => {}
        }
        for prefix in ["SHOW GLOBAL STATUS WHERE VARIABLE_NAME IN", "SHOW STATUS WHERE VARIABLE_NAME IN"] {
            if let Some(list) = upper.strip_prefix(prefix) {
                return parse_name_list(&norm[norm.len() - list.len()..]).map_or(Statement::Unknown, |l| Statement::Status(Some(l)));
            }
        }
        if let Some(rest) = strip_word(&norm, &upper, "SET") {
            let r = rest.to_ascii_uppercase();
            let global = r.starts_with("GLOBAL ") || r.contains("@@GLOBAL.") || r.starts_with("STATEMENT ") || r.starts_with("PASSWORD");
            return if global || rest.is_empty() { Statement::Unknown } else { Statement::SetSession };
        }
        Statement::Unknown
    }
}

/// Collapses runs of white space into one space, trims, and drops a final `;`.
pub fn normalize(text: &str) -> String {
    let t = text.trim().trim_end_matches(';').trim();
    let mut out = String::with_capacity(t.len());
    let mut space = false;
    for ch in t.chars() {
        if ch.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(ch);
        }
    }
    out
}

/// `text` with the string literal after every `PASSWORD` or `IDENTIFIED BY` replaced by
/// `'********'`, for logs (the manager's `CHANGE MASTER` carries the replication password).
pub fn mask_secrets(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    // Each pass consumes at least one byte of `text`: bounded by its length.
    while let Some(found) = ["PASSWORD", "IDENTIFIED BY"].iter().filter_map(|k| upper[at..].find(k).map(|i| at + i + k.len())).min() {
        let Some(open) = text[found..].find(['\'', '"']).map(|i| found + i) else { break };
        let close = literal_end(text.as_bytes(), open);
        out.push_str(&text[at..open]);
        out.push_str("'********'");
        at = close.min(text.len());
    }
    out.push_str(&text[at..]);
    out
}

/// The byte just after the string literal opening at `open` (backslash escapes and doubled
/// quotes inside it skipped), or the end of `bytes` when it is not closed.
fn literal_end(bytes: &[u8], open: usize) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `norm` after the keyword `word` and one space (case-insensitive), if it starts with it.
fn strip_word<'a>(norm: &'a str, upper: &str, word: &str) -> Option<&'a str> {
    let rest = upper.strip_prefix(word)?.strip_prefix(' ')?;
    Some(&norm[norm.len() - rest.len()..])
}

fn parse_select(rest: &str) -> Statement {
    // The mariadb client's `SELECT @@version_comment LIMIT 1`.
    let rest = if rest.to_ascii_uppercase().ends_with(" LIMIT 1") { &rest[..rest.len() - " LIMIT 1".len()] } else { rest };
    let upper = rest.to_ascii_uppercase();
    if upper == "COUNT(*) FROM INFORMATION_SCHEMA.PROCESSLIST WHERE COMMAND LIKE 'BINLOG DUMP%'" {
        return Statement::BinlogDumpThreads;
    }
    if upper.starts_with("DISTINCT GRANTEE FROM INFORMATION_SCHEMA.USER_PRIVILEGES WHERE PRIVILEGE_TYPE") {
        return Statement::ReadOnlyBypassAccounts;
    }
    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return Statement::SelectNumber(rest.to_string());
    }
    let mut vars = Vec::new();
    for item in rest.split(',') {
        let column = item.trim();
        let Some(name) = column.strip_prefix("@@") else { return Statement::Unknown };
        let lower = name.to_ascii_lowercase();
        let name = lower.strip_prefix("global.").or_else(|| lower.strip_prefix("session.")).unwrap_or(&lower);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Statement::Unknown;
        }
        vars.push(Variable { name: name.to_string(), column: column.to_string() });
    }
    Statement::Variables(vars)
}

/// `('a','b')` into its names; `None` when it is not such a list.
fn parse_name_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(|n| {
            let n = n.trim();
            let q = n.strip_prefix('\'').and_then(|n| n.strip_suffix('\''));
            q.or_else(|| n.strip_prefix('"').and_then(|n| n.strip_suffix('"'))).map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's statements, as `src/db/sql.rs` writes them (with its line continuations).
    const VERSION: &str = "SELECT @@version, @@version_comment, @@hostname, @@server_id";
    const MONITOR_STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
        ('Rpl_semi_sync_master_status','Rpl_semi_sync_slave_status','Rpl_semi_sync_master_clients',\
         'Rpl_semi_sync_master_wait_sessions',\
         'Rpl_semi_sync_source_status','Rpl_semi_sync_replica_status',\
         'Slave_received_heartbeats','Threads_connected','Queries','Uptime')";

    #[test]
    fn probe_statements() {
        let Statement::Variables(v) = Statement::parse(VERSION) else { panic!("version") };
        assert_eq!(v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["version", "version_comment", "hostname", "server_id"]);
        assert_eq!(v[0].column, "@@version");
        let Statement::Status(Some(names)) = Statement::parse(MONITOR_STATUS) else { panic!("status") };
        assert_eq!(names.len(), 10);
        assert_eq!(names[9], "Uptime");
        assert_eq!(Statement::parse("SHOW ALL SLAVES STATUS"), Statement::SlavesStatus);
        assert_eq!(Statement::parse("show master status;"), Statement::MasterStatus);
        assert_eq!(
            Statement::parse("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"),
            Statement::BinlogDumpThreads
        );
        assert_eq!(Statement::parse("SET SESSION max_statement_time = 1.000"), Statement::SetSession);
        assert_eq!(Statement::parse("SET SESSION lock_wait_timeout = 5"), Statement::SetSession);
    }

    #[test]
    fn driver_and_other_statements() {
        let Statement::Variables(v) = Statement::parse("SELECT @@max_allowed_packet,@@wait_timeout") else { panic!() };
        assert_eq!(v[1].name, "wait_timeout");
        let Statement::Variables(v) = Statement::parse("select @@GLOBAL.read_only") else { panic!() };
        assert_eq!((v[0].name.as_str(), v[0].column.as_str()), ("read_only", "@@GLOBAL.read_only"));
        assert_eq!(Statement::parse("SELECT 1"), Statement::SelectNumber("1".into()));
        assert!(matches!(Statement::parse("select @@version_comment limit 1"), Statement::Variables(v) if v[0].name == "version_comment"));
        assert_eq!(Statement::parse("SET GLOBAL read_only = 1"), Statement::Unknown);
        assert_eq!(Statement::parse("SET STATEMENT max_statement_time = 0 FOR SELECT 1"), Statement::Unknown);
        assert_eq!(Statement::parse("SELECT @@version FROM dual"), Statement::Unknown);
        assert_eq!(Statement::parse("STOP SLAVE"), Statement::Unknown);
        assert_eq!(Statement::parse("SHOW GLOBAL STATUS WHERE Variable_name IN (Uptime)"), Statement::Unknown);
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            mask_secrets("CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='repl', MASTER_PASSWORD='p\\'w', MASTER_PORT=1"),
            "CHANGE MASTER TO MASTER_HOST='h', MASTER_USER='repl', MASTER_PASSWORD='********', MASTER_PORT=1"
        );
        assert_eq!(mask_secrets("CREATE USER 'a'@'%' IDENTIFIED BY \"x\"; SET PASSWORD = 'y'"), "CREATE USER 'a'@'%' IDENTIFIED BY '********'; SET PASSWORD = '********'");
        assert_eq!(mask_secrets("STOP SLAVE"), "STOP SLAVE");
        assert_eq!(mask_secrets("password"), "password");
        assert_eq!(mask_secrets("PASSWORD='a''b' x"), "PASSWORD='********' x");
        assert_eq!(mask_secrets("password = 'unterminated"), "password = '********'");
    }

    #[test]
    fn normalize_collapses_space() {
        assert_eq!(normalize("  SELECT\n  @@a,\t@@b ; "), "SELECT @@a, @@b");
    }
}
