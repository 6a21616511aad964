//! A steady write load that records every acknowledged commit, and a sampler of which servers
//! are writable. The writer follows the master like an application behind a proxy would: it
//! tries the servers in turn and keeps the one that accepts writes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// What the writer saw.
#[derive(Debug, Default, Clone)]
pub struct WriteReport {
    /// Ids whose INSERT returned OK (acknowledged commits).
    pub acked: Vec<u64>,
    /// Refused writes (read-only server, errors before commit).
    pub refused: u64,
    /// Writes whose outcome is unknown (connection lost, timeout).
    pub unknown: u64,
    /// Longest time between two acknowledged writes.
    pub longest_gap: Duration,
    /// When each acknowledged write returned, and on which port.
    pub ack_times: Vec<(Instant, u16)>,
}

/// A running write load.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<WriteReport>,
}

/// A connection as the application user (`app`, fenced by `read_only`).
pub async fn connect(port: u16) -> Option<Conn> {
    connect_as(port, "app", "app").await
}

/// A connection as `user`.
pub async fn connect_as(port: u16, user: &str, password: &str) -> Option<Conn> {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_millis(800), Conn::new(opts)).await.ok()?.ok()
}

impl WriteLoad {
    /// Starts inserting ids from `first_id` into `app.t` on whichever of `ports` accepts them.
    pub fn start(ports: Vec<u16>, first_id: u64) -> WriteLoad {
        WriteLoad::start_with(ports, first_id, Duration::from_secs(3))
    }

    /// The same, each INSERT waiting up to `statement_timeout` for its answer (a long one keeps
    /// a commit waiting for a semi-sync acknowledgement instead of giving up).
    pub fn start_with(ports: Vec<u16>, first_id: u64, statement_timeout: Duration) -> WriteLoad {
        WriteLoad::start_as(ports, first_id, statement_timeout, ("app", "app"))
    }

    /// The same as the account `(user, password)`.
    pub fn start_as(ports: Vec<u16>, first_id: u64, statement_timeout: Duration, account: (&'static str, &'static str)) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let mut report = WriteReport::default();
            let mut id = first_id;
            let mut current = 0usize;
            let mut conn: Option<Conn> = None;
            let mut last_ack = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let port = ports[current % ports.len()];
                if conn.is_none() {
                    conn = connect_as(port, account.0, account.1).await;
                    if conn.is_none() {
                        current += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                id += 1;
                let q = format!("INSERT INTO app.t (id, port) VALUES ({id}, {port})");
                match tokio::time::timeout(statement_timeout, c.query_drop(q)).await {
                    Ok(Ok(())) => {
                        report.acked.push(id);
                        report.ack_times.push((Instant::now(), port));
                        report.longest_gap = report.longest_gap.max(last_ack.elapsed());
                        last_ack = Instant::now();
                    }
                    Ok(Err(mysql_async::Error::Server(e))) => {
                        // 1290 read-only, 1927 killed, ...: not committed; try the next server.
                        let _ = e;
                        report.refused += 1;
                        conn = None;
                        current += 1;
                    }
                    Ok(Err(_)) | Err(_) => {
                        report.unknown += 1;
                        conn = None;
                        current += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            report
        });
        WriteLoad { stop, handle }
    }

    /// Stops the writer and returns what it saw.
    pub async fn stop(self) -> WriteReport {
        self.stop.store(true, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(10), self.handle).await {
            Ok(Ok(r)) => r,
            other => panic!("writer did not stop: {other:?}"),
        }
    }
}

/// Creates `app.t` on the master (replicated to every replica).
pub fn create_table(sb: &super::Sandbox, master: u16) {
    sb.sql(
        master,
        "CREATE TABLE IF NOT EXISTS app.t (id BIGINT PRIMARY KEY, port INT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
}

/// The ids present in `app.t` on instance `i`.
pub fn ids_on(sb: &super::Sandbox, i: u16) -> BTreeSet<u64> {
    sb.sql(i, "SELECT id FROM app.t").lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Samples `@@read_only` of every port every 50 ms; records the samples where more than one
/// server was writable.
pub struct WritableSampler {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(u64, Vec<Vec<u16>>)>,
}

impl WritableSampler {
    pub fn start(ports: Vec<u16>) -> WritableSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let mut conns: Vec<Option<Conn>> = (0..ports.len()).map(|_| None).collect();
            let mut samples = 0u64;
            let mut violations = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let mut writable = Vec::new();
                for (i, port) in ports.iter().enumerate() {
                    if conns[i].is_none() {
                        let opts = OptsBuilder::default()
                            .ip_or_hostname("127.0.0.1")
                            .tcp_port(*port)
                            .user(Some("repman"))
                            .pass(Some("repman"))
                            .prefer_socket(false);
                        conns[i] = tokio::time::timeout(Duration::from_millis(300), Conn::new(opts)).await.ok().and_then(Result::ok);
                    }
                    let Some(c) = conns[i].as_mut() else { continue };
                    match tokio::time::timeout(Duration::from_millis(300), c.query_first::<u8, _>("SELECT @@read_only")).await {
                        Ok(Ok(Some(0))) => writable.push(*port),
                        Ok(Ok(_)) => {}
                        _ => conns[i] = None,
                    }
                }
                samples += 1;
                if writable.len() > 1 {
                    violations.push(writable);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, violations)
        });
        WritableSampler { stop, handle }
    }

    /// Stops sampling: (samples taken, samples with more than one writable server).
    pub async fn stop(self) -> (u64, Vec<Vec<u16>>) {
        self.stop.store(true, Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(10), self.handle).await {
            Ok(Ok(r)) => r,
            other => panic!("sampler did not stop: {other:?}"),
        }
    }
}

/// Fails the test when an acknowledged id is missing from `present`.
pub fn assert_no_loss(acked: &[u64], present: &BTreeSet<u64>, context: &str) {
    let missing: Vec<u64> = acked.iter().filter(|id| !present.contains(id)).copied().collect();
    assert!(missing.is_empty(), "{context}: {} acknowledged writes missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
}
