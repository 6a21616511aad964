//! The per-cluster log ring buffer shown by the API (`log` in the cluster object and
//! `/topology/logs`), fed by every state change and decision the monitor makes.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many entries a cluster keeps (the Go project keeps 200).
pub const LOG_CAPACITY: usize = 200;

/// Severity of a log entry, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// One entry: `{"group","level","timestamp","text"}` in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub group: String,
    pub level: Level,
    /// `yyyy/mm/dd hh:mm:ss` (UTC).
    pub timestamp: String,
    /// `[module] message`.
    pub text: String,
}

impl LogEntry {
    /// The one-line form of `/topology/logs`: `[cluster] [module] LEVEL - message`.
    pub fn line(&self) -> String {
        format!("{} [{}] {:<5} - {}", self.timestamp, self.group, self.level.as_str(), self.text)
    }
}

/// A bounded log, newest first.
#[derive(Debug, Clone, Default)]
pub struct ClusterLog {
    entries: VecDeque<LogEntry>,
    /// Total lines ever written (the API's `line`).
    written: u64,
}

impl ClusterLog {
    /// Adds an entry, dropping the oldest beyond [`LOG_CAPACITY`].
    pub fn push(&mut self, group: &str, level: Level, module: &str, message: &str) {
        self.entries.push_front(LogEntry {
            group: group.to_string(),
            level,
            timestamp: format_timestamp(SystemTime::now()),
            text: format!("[{module}] {message}"),
        });
        self.entries.truncate(LOG_CAPACITY);
        self.written += 1;
    }

    /// Entries, newest first.
    pub fn entries(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

/// Formats a time as `yyyy/mm/dd hh:mm:ss` in UTC.
pub fn format_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        // 2026-11-28 18:47:58 UTC
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(1_795_891_678)), "2026/11/28 18:47:58");
        // 2024-02-29 12:00:00 UTC (leap day)
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_secs(1_709_208_000)), "2024/02/29 12:00:00");
    }

    #[test]
    fn ring_is_bounded_and_newest_first() {
        let mut log = ClusterLog::default();
        for i in 0..(LOG_CAPACITY + 5) {
            log.push("c1", Level::Info, "topology", &format!("line {i}"));
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.written(), (LOG_CAPACITY + 5) as u64);
        let first = log.entries().next().unwrap();
        assert_eq!(first.text, format!("[topology] line {}", LOG_CAPACITY + 4));
        assert!(first.line().contains("[c1] INFO  - [topology] line"));
    }
}
