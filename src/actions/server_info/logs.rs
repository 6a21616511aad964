//! The error and slow logs of a server: where its files are, whether the manager can read them
//! (same host), bounded tail reads, and the parsers that turn them into the API's entries.

use super::*;

// ---- log files ---------------------------------------------------------------------------------

/// Where the server keeps its files, as read from [`sql::SERVER_FILES`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerFiles {
    pub log_error: String,
    pub slow_query_log_file: String,
    pub log_output: String,
    pub datadir: String,
    pub hostname: String,
}

pub(crate) async fn server_files(conn: &mut AdminConn) -> Result<ServerFiles, DbError> {
    let row = conn.row(sql::SERVER_FILES).await?.unwrap_or_default();
    let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    Ok(ServerFiles {
        log_error: col(0),
        slow_query_log_file: col(1),
        log_output: col(2),
        datadir: col(3),
        hostname: col(4),
    })
}

/// The manager host's name.
pub(crate) fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// True when a server reporting `@@hostname = server_hostname` runs on the manager's host, so
/// its file paths name files here. The address alone cannot tell (a loopback port may be
/// forwarded into a container).
pub(crate) fn runs_here(server_hostname: &str, local: &str) -> bool {
    let short = |h: &str| h.trim().split('.').next().unwrap_or_default().to_ascii_lowercase();
    !local.trim().is_empty() && short(server_hostname) == short(local)
}

/// The path of a server file variable: absolute, or relative to the datadir. `None` when empty.
pub(crate) fn server_path(value: &str, datadir: &str) -> Option<PathBuf> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let p = Path::new(value);
    Some(if p.is_absolute() { p.to_path_buf() } else { Path::new(datadir).join(p) })
}

/// Why the file of variable `value` of a server is not readable here, or its path.
pub(crate) fn readable_server_file(files: &ServerFiles, value: &str) -> Result<PathBuf, String> {
    let path = server_path(value, &files.datadir).ok_or_else(|| "it is not written to a file".to_string())?;
    let local = local_hostname();
    if !runs_here(&files.hostname, &local) {
        return Err(format!(
            "{}: the server runs on host {:?}, the manager on {:?}",
            path.display(),
            files.hostname,
            local
        ));
    }
    match std::fs::File::open(&path) {
        Ok(_) => Ok(path),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Reads at most `max` bytes from the end of `path`; the first partial line of a tail is
/// dropped.
pub(super) fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    f.take(max).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if start == 0 {
        return Ok(text);
    }
    Ok(match text.find('\n') {
        Some(i) => text[i + 1..].to_string(),
        None => String::new(),
    })
}

/// [`read_tail`] off the async threads, within `timeout`.
pub(super) async fn read_tail_bounded(path: PathBuf, max: u64, timeout: Duration) -> Result<String, InfoError> {
    let shown = path.display().to_string();
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || read_tail(&path, max))).await {
        Err(_) => Err(InfoError::Failed(format!("reading {shown} did not finish within {timeout:?}"))),
        Ok(Err(e)) => Err(InfoError::Failed(format!("reading {shown}: {e}"))),
        Ok(Ok(Err(e))) => Err(InfoError::Failed(format!("reading {shown}: {e}"))),
        Ok(Ok(Ok(text))) => Ok(text),
    }
}

/// Splits a leading MariaDB error-log timestamp (`2026-11-28 19:00:00` or the old
/// `261128 19:00:00`) off a line, returning it as `yyyy/mm/dd hh:mm:ss`.
pub(super) fn split_log_timestamp(line: &str) -> Option<(String, &str)> {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    // YYYY-MM-DD, then H:MM:SS or HH:MM:SS after one or more spaces (MariaDB pads a one-digit
    // hour with a space: "2026-12-05  2:29:02").
    if b.len() >= 18 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10) && b[10] == b' ' {
        if let Some((time, rest)) = clock(&line[11..]) {
            let ts = format!("{}/{}/{} {time}", &line[0..4], &line[5..7], &line[8..10]);
            return Some((ts, rest));
        }
    }
    // Old format: YYMMDD, then the time the same way.
    if b.len() >= 15 && digits(0..6) && b[6] == b' ' {
        if let Some((time, rest)) = clock(&line[7..]) {
            let ts = format!("20{}/{}/{} {time}", &line[0..2], &line[2..4], &line[4..6]);
            return Some((ts, rest));
        }
    }
    None
}

/// `H:MM:SS` or `HH:MM:SS` after optional spaces: the time as `HH:MM:SS` and what follows it.
pub(super) fn clock(s: &str) -> Option<(String, &str)> {
    let rest = s.trim_start_matches(' ');
    let time_len = rest.find(' ').unwrap_or(rest.len());
    let parts: Vec<&str> = rest[..time_len].split(':').collect();
    let ok = parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|c| c.is_ascii_digit()));
    ok.then(|| (format!("{:0>2}:{}:{}", parts[0], parts[1], parts[2]), &rest[time_len..]))
}

pub(super) fn level_name(word: &str) -> String {
    match word.to_ascii_lowercase().as_str() {
        "note" | "system" | "info" => "INFO".to_string(),
        "warning" | "warn" => "WARN".to_string(),
        "error" => "ERROR".to_string(),
        other => other.to_ascii_uppercase(),
    }
}

/// Parses MariaDB error-log text, oldest first. A line without a timestamp continues the
/// previous entry (stack traces, the `Version:` banner); before any entry it is one by itself.
pub fn parse_error_log(text: &str, group: &str) -> Vec<LogLineView> {
    let mut out: Vec<LogLineView> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        match split_log_timestamp(line) {
            Some((timestamp, rest)) => {
                let mut rest = rest.trim_start();
                // Thread id (absent in old logs).
                let id_len = rest.bytes().take_while(u8::is_ascii_digit).count();
                if id_len > 0 && rest[id_len..].starts_with(' ') {
                    rest = rest[id_len..].trim_start();
                }
                let (level, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                    Some((word, text)) => (level_name(word), text.trim_start()),
                    None => ("INFO".to_string(), rest),
                };
                out.push(LogLineView { group: group.to_string(), level, timestamp, text: text.to_string() });
            }
            None => match out.last_mut() {
                Some(prev) => {
                    prev.text.push('\n');
                    prev.text.push_str(line);
                }
                None => out.push(LogLineView {
                    group: group.to_string(),
                    level: "INFO".to_string(),
                    timestamp: String::new(),
                    text: line.to_string(),
                }),
            },
        }
    }
    out
}

pub(super) async fn error_log(conn: &mut AdminConn, req: &InfoRequest<'_>, limit: usize) -> Result<ErrorLogView, InfoError> {
    let files = server_files(conn).await?;
    let server = req.server_name;
    if files.log_error.trim().is_empty() {
        return Err(InfoError::NotAvailable(format!(
            "error log of {server} is not readable from the manager host: log_error is empty (the server logs to stderr or syslog)"
        )));
    }
    let path = readable_server_file(&files, &files.log_error).map_err(|why| {
        InfoError::NotAvailable(format!(
            "error log {} of {server} is not readable from the manager host ({why})",
            files.log_error
        ))
    })?;
    let max = (limit as u64).saturating_mul(ERROR_LOG_BYTES_PER_LINE).clamp(ERROR_LOG_MIN_BYTES, ERROR_LOG_MAX_BYTES);
    let text = read_tail_bounded(path, max, req.timeout).await?;
    let entries = parse_error_log(&text, server);
    let line = entries.len();
    let buffer: Vec<LogLineView> = entries.into_iter().rev().take(limit).collect();
    Ok(ErrorLogView { len: buffer.len(), buffer, line })
}

// ---- slow log ----------------------------------------------------------------------------------

/// Seconds of a `TIME(6)` value (`00:00:01.000213`, possibly `-` or more than 24 hours).
pub fn time_to_seconds(v: &str) -> Option<f64> {
    let v = v.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let mut parts = v.split(':');
    let (h, m, s) = (parts.next()?, parts.next(), parts.next());
    let secs = match (m, s) {
        (Some(m), Some(s)) => {
            h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?
        }
        (None, None) => h.parse::<f64>().ok()?,
        _ => return None,
    };
    Some(if neg { -secs } else { secs })
}

/// `yyyy-mm-dd hh:mm:ss` (UTC) of a unix time.
pub(super) fn utc_datetime(secs: u64) -> String {
    crate::cluster::log::format_timestamp(UNIX_EPOCH + Duration::from_secs(secs)).replace('/', "-")
}

/// The value of a `# Time:` line: `261128 19:29:48` (MariaDB) or `2026-11-28T19:29:48.1Z` (MySQL).
pub(super) fn slow_time_line(v: &str) -> String {
    let v = v.trim();
    if let Some((ts, _)) = split_log_timestamp(v) {
        return ts.replace('/', "-");
    }
    v.trim_end_matches('Z').replacen('T', " ", 1)
}

pub(super) fn is_slow_log_banner(line: &str) -> bool {
    (line.starts_with('/') && line.contains(", Version: ") && line.ends_with("started with:"))
        || line.starts_with("Tcp port: ")
        || (line.starts_with("Time ") && line.contains("Id Command") && line.contains("Argument"))
}

/// Parses a slow-query-log file (MariaDB or MySQL format), oldest first. Entries start with
/// `# Time:` or `# User@Host:`; text before the first entry (a cut tail) is ignored.
pub fn parse_slow_log(text: &str) -> Vec<SlowQueryView> {
    let mut out = Vec::new();
    let mut cur: Option<SlowQueryView> = None;
    // In the `#` / `use` / `SET timestamp` lines of `cur`, before its query text.
    let mut in_header = false;
    // The time of a `# Time:` line not yet followed by its `# User@Host:` line.
    let mut pending_time: Option<String> = None;
    let mut last_db = String::new();
    let finish = |q: SlowQueryView, out: &mut Vec<SlowQueryView>| {
        let mut q = q;
        let trimmed = q.query.trim_end();
        let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed);
        q.query = trimmed.chars().take(SLOW_QUERY_MAX_CHARS).collect();
        out.push(q);
    };
    for line in text.lines() {
        if is_slow_log_banner(line) {
            continue;
        }
        if let Some(v) = line.strip_prefix("# Time:") {
            if let Some(q) = cur.take() {
                finish(q, &mut out);
            }
            pending_time = Some(slow_time_line(v));
            in_header = false;
            continue;
        }
        if let Some(v) = line.strip_prefix("# User@Host:") {
            if let Some(q) = cur.take() {
                finish(q, &mut out);
            }
            cur = Some(SlowQueryView {
                start_time: pending_time.take().unwrap_or_default(),
                user_host: v.trim().to_string(),
                db: last_db.clone(),
                ..SlowQueryView::default()
            });
            in_header = true;
            continue;
        }
        let Some(q) = cur.as_mut() else { continue };
        if in_header {
            if let Some(fields) = line.strip_prefix("# ") {
                slow_header_fields(fields, q);
                continue;
            }
            let lower = line.trim().to_ascii_lowercase();
            if lower.starts_with("use ") && lower.ends_with(';') {
                let db = line.trim()[4..].trim_end_matches(';').trim().trim_matches('`').replace("``", "`");
                q.db = db.clone();
                last_db = db;
                continue;
            }
            if let Some(ts) = lower.strip_prefix("set timestamp=") {
                if let Ok(secs) = ts.trim_end_matches(';').trim().parse::<u64>() {
                    q.start_time = utc_datetime(secs);
                }
                // The statement follows (even when it is itself a `use` or a `SET`).
                in_header = false;
                continue;
            }
            in_header = false;
        }
        if !q.query.is_empty() {
            q.query.push('\n');
        }
        if q.query.len() <= SLOW_QUERY_MAX_CHARS {
            q.query.push_str(line);
        }
    }
    if let Some(q) = cur.take() {
        finish(q, &mut out);
    }
    out
}

/// `Key: value  Key: value` pairs of a slow-log `#` line (a value may be empty).
pub(super) fn slow_header_fields(fields: &str, q: &mut SlowQueryView) {
    let tokens: Vec<&str> = fields.split_whitespace().collect();
    let mut i = 0;
    while i < tokens.len() {
        let Some(key) = tokens[i].strip_suffix(':') else {
            i += 1;
            continue;
        };
        let value = tokens.get(i + 1).filter(|v| !v.ends_with(':')).copied();
        i += if value.is_some() { 2 } else { 1 };
        let value = value.unwrap_or("");
        match key {
            "Query_time" => q.query_time = value.parse().unwrap_or(0.0),
            "Lock_time" => q.lock_time = value.parse().unwrap_or(0.0),
            "Rows_sent" => q.rows_sent = value.parse().unwrap_or(0),
            "Rows_examined" => q.rows_examined = value.parse().unwrap_or(0),
            "Schema" => q.db = value.to_string(),
            _ => {}
        }
    }
}

pub(super) fn slow_from_row(r: &[Option<String>]) -> SlowQueryView {
    let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    SlowQueryView {
        start_time: text(0),
        user_host: text(1),
        query_time: time_to_seconds(&text(2)).unwrap_or(0.0),
        lock_time: time_to_seconds(&text(3)).unwrap_or(0.0),
        rows_sent: text(4).parse().unwrap_or(0),
        rows_examined: text(5).parse().unwrap_or(0),
        db: text(6),
        query: text(7),
    }
}

pub(super) async fn slow_log(conn: &mut AdminConn, req: &InfoRequest<'_>, limit: usize) -> Result<Vec<SlowQueryView>, InfoError> {
    let files = server_files(conn).await?;
    let server = req.server_name;
    if files.log_output.to_ascii_uppercase().contains("TABLE") {
        conn.exec(sql::UTC_SESSION).await?;
        let (_, rows) = conn.rows(&format!("{}{limit}", sql::SLOW_LOG_TABLE)).await?;
        return Ok(rows.iter().map(|r| slow_from_row(r)).collect());
    }
    if !files.log_output.to_ascii_uppercase().contains("FILE") {
        return Err(InfoError::NotAvailable(format!(
            "slow query log of {server} is not kept (log_output = {:?})",
            files.log_output
        )));
    }
    let path = readable_server_file(&files, &files.slow_query_log_file).map_err(|why| {
        InfoError::NotAvailable(format!(
            "slow query log {} of {server} is not readable from the manager host ({why})",
            files.slow_query_log_file
        ))
    })?;
    let max = (limit as u64).saturating_mul(SLOW_LOG_BYTES_PER_ENTRY).clamp(SLOW_LOG_MIN_BYTES, SLOW_LOG_MAX_BYTES);
    let text = read_tail_bounded(path, max, req.timeout).await?;
    Ok(parse_slow_log(&text).into_iter().rev().take(limit).collect())
}
