//! The farm as the manager sees it: each test starts its own `rm-farm` child on free ports
//! and reads it with the manager's real probe (`src/db/probe.rs`) and with mysql_async.

mod support;

// `crate::config` and `crate::db` are where the manager's probe looks for its neighbours.
use support::{config, db};

use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use support::{eventually, probe, FarmProcess, ServerSnapshot, PASSWORD, USER};

const T: Duration = Duration::from_secs(5);

async fn snapshot(port: u16) -> ServerSnapshot {
    match probe(port, PASSWORD, T).probe().await {
        Ok(s) => s,
        Err(e) => panic!("probe of {port}: {e}"),
    }
}

fn opts(port: u16, password: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(USER))
        .pass(Some(password))
        .into()
}

#[tokio::test]
async fn probe_reads_a_master_and_its_replicas() {
    let farm = FarmProcess::start(2, 3, 1);
    let last = farm.base_port + 5;
    assert_eq!(farm.ready_line, format!("farm ready: 2 clusters x 3 servers on ports {}..{last}", farm.base_port));

    let (m, r) = (farm.port(3, 1, 0), farm.port(3, 1, 2));
    let master = snapshot(m).await;
    assert_eq!(master.flavor, db::sql::Flavor::MariaDB);
    assert!(master.version.starts_with("10.11.") && master.version.contains("MariaDB"), "{}", master.version);
    assert_eq!(master.server_id, u32::from(m));
    assert!(!master.read_only && master.log_bin && master.log_slave_updates && master.gtid_strict_mode);
    assert!(!master.semi_sync_master_enabled && !master.semi_sync_slave_enabled && !master.semi_sync_master_status);
    assert_eq!(master.gtid_domain_id, 0);
    assert!(master.replications.is_empty());
    assert!(master.master_status.as_ref().is_some_and(|s| !s.file.is_empty()), "{:?}", master.master_status);
    assert_eq!(master.binlog_dump_threads, 2);
    assert!(master.threads_connected >= 1 && master.queries >= 1, "{master:?}");
    let master_seq = master.gtid_binlog_pos.seq_in(0);
    assert_eq!(master.gtid_binlog_pos.get(0).map(|g| g.server_id), Some(u32::from(m)));

    let replica = snapshot(r).await;
    assert!(replica.read_only);
    assert_eq!(replica.server_id, u32::from(r));
    let link = replica.managed_replication("").unwrap_or_else(|| panic!("no default connection: {:?}", replica.replications));
    assert_eq!((link.master_host.as_str(), link.master_port, link.master_server_id), ("127.0.0.1", m, u32::from(m)));
    assert!(link.is_running(), "{link:?}");
    assert_eq!((link.seconds_behind_master, link.last_io_errno, link.using_gtid.as_str()), (Some(0), 0, "Slave_Pos"));
    assert!(link.slave_heartbeat_period > 0.0);
    assert!(replica.gtid_slave_pos.seq_in(0) >= master_seq, "the replica follows the master");
    assert_eq!(db::gtid::GtidPos::parse_lenient(&link.gtid_io_pos).get(0).map(|g| g.server_id), Some(u32::from(m)));

    // The master's position advances (one event per 100 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(snapshot(m).await.gtid_binlog_pos.seq_in(0) > master_seq);

    // A probe that keeps its connection, as the monitor does, over several rounds.
    let mut p = probe(r, PASSWORD, T);
    for _ in 0..3 {
        if let Err(e) = p.probe().await {
            panic!("probe round on a kept connection: {e}");
        }
    }

    // Every statement of those rounds, and of mysql_async's connection setup, was simulated.
    let stats = farm.stats().await;
    assert_eq!(stats["statements"]["unknown"], 0, "{stats}");
    assert!(stats["statements"]["slaves_status"].as_u64() >= Some(5), "{stats}");
    // The kept probe tried its batched round trip once, was refused (the farm does not
    // simulate multi-statements), and asked one statement at a time from then on.
    assert_eq!(stats["statements"]["multi_statement_refused"], 1, "{stats}");

    // A default mysql_async client (prefers a socket, reads settings) and COM_PING.
    let mut conn = mysql_async::Conn::new(opts(r, PASSWORD)).await.unwrap_or_else(|e| panic!("default connect: {e}"));
    conn.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
    let one: Option<u64> = conn.query_first("SELECT 1").await.unwrap_or_else(|e| panic!("SELECT 1: {e}"));
    assert_eq!(one, Some(1));
    // A statement the farm does not simulate: a 1064 error, the session stays usable.
    match conn.query_drop("STOP SLAVE").await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1064, "{e}"),
        other => panic!("STOP SLAVE answered {other:?}"),
    }
    let v: Option<String> = conn.query_first("SELECT @@version").await.unwrap_or_else(|e| panic!("after the error: {e}"));
    assert!(v.is_some_and(|v| v.ends_with("-MariaDB-sim")));
    // The monitor's once-per-server read of the accounts that bypass read_only.
    let bypass: Vec<String> = conn
        .query(db::sql::read_only_bypass_accounts(&master.version))
        .await
        .unwrap_or_else(|e| panic!("read_only bypass accounts: {e}"));
    assert_eq!(bypass, [format!("'{USER}'@'%'")], "only the farm's own account, which the monitor leaves out");
    let stats = farm.stats().await;
    assert_eq!(stats["unknown_statements"]["STOP SLAVE"], 1, "{stats}");
}

#[tokio::test]
async fn a_wrong_password_is_error_1045() {
    let farm = FarmProcess::start(1, 2, 2);
    let err = probe(farm.base_port, "wrong", T).probe().await.err();
    assert!(err.as_ref().is_some_and(|e| e.is_auth()), "{err:?}");
    match mysql_async::Conn::new(opts(farm.base_port + 1, "wrong")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!((e.code, e.state.as_str()), (1045, "28000")),
        Err(e) => panic!("expected 1045, got {e}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
    assert_eq!(farm.stats().await["auth_failures"], 2);
    snapshot(farm.base_port).await;
}

#[tokio::test]
async fn a_killed_master_refuses_connections_and_its_replicas_reconnect() {
    let farm = FarmProcess::start(1, 3, 3);
    let (m, r) = (farm.port(3, 0, 0), farm.port(3, 0, 1));
    let mut kept = mysql_async::Conn::new(opts(m, PASSWORD)).await.unwrap_or_else(|e| panic!("connect: {e}"));

    assert_eq!(farm.control(&format!("kill {m}")).await, format!("ok kill {m}"));
    let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, m)).map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(std::io::ErrorKind::ConnectionRefused));
    // `Connect` or, where the probe tells them apart, `Refused`: either way, refused.
    let e = probe(m, PASSWORD, T).probe().await.err().map(|e| e.to_string());
    assert!(e.as_ref().is_some_and(|e| e.to_lowercase().contains("refused")), "{e:?}");
    let dropped = tokio::time::timeout(T, kept.query_drop("SELECT 1")).await;
    assert!(matches!(dropped, Ok(Err(_))), "a session of the killed server still answers: {dropped:?}");

    let started = Instant::now();
    let link = eventually(Duration::from_secs(1), || async {
        let s = snapshot(r).await;
        let link = s.managed_replication("")?.clone();
        (link.io_running == "Connecting").then_some(link)
    })
    .await
    .unwrap_or_else(|| panic!("the replica still says its IO thread runs, after {:?}", started.elapsed()));
    assert_eq!((link.last_io_errno, link.seconds_behind_master, link.sql_running.as_str()), (2003, None, "Yes"));
    assert!(link.last_io_error.contains("127.0.0.1"), "{}", link.last_io_error);
    assert_eq!(snapshot(farm.port(3, 0, 2)).await.replications.first().map(|l| l.last_io_errno), Some(2003));
    let stopped_at = snapshot(r).await.gtid_current_pos.seq_in(0);

    assert_eq!(farm.control(&format!("start {m}")).await, format!("ok start {m}"));
    let master = eventually(T, || async { probe(m, PASSWORD, T).probe().await.ok() }).await;
    assert!(master.is_some_and(|s| !s.read_only), "the restarted master answers");
    let link = snapshot(r).await.managed_replication("").cloned();
    assert!(link.as_ref().is_some_and(|l| l.is_running() && l.last_io_errno == 0), "{link:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(snapshot(r).await.gtid_current_pos.seq_in(0) > stopped_at, "replication goes on");

    assert!(farm.control(&format!("kill {}", farm.base_port + 3)).await.starts_with("error"), "a port outside the farm");
}

#[tokio::test]
async fn a_frozen_server_accepts_but_never_answers() {
    let farm = FarmProcess::start(1, 2, 4);
    let r = farm.port(2, 0, 1);
    let mut kept = mysql_async::Conn::new(opts(r, PASSWORD)).await.unwrap_or_else(|e| panic!("connect: {e}"));

    assert_eq!(farm.control(&format!("freeze {r}")).await, format!("ok freeze {r}"));
    let stalled = tokio::time::timeout(Duration::from_secs(1), kept.query_drop("SELECT @@version")).await;
    assert!(stalled.is_err(), "a frozen server answered: {stalled:?}");
    drop(kept);
    // The kernel accepts, the server never greets.
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, r)).is_ok());
    let e = probe(r, PASSWORD, Duration::from_secs(1)).probe().await.err();
    assert!(matches!(e, Some(support::ProbeError::ConnectTimeout(_))), "{e:?}");

    // A connect pending across the thaw completes.
    let pending = tokio::spawn(mysql_async::Conn::new(opts(r, PASSWORD)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(farm.control(&format!("thaw {r}")).await, format!("ok thaw {r}"));
    let conn = tokio::time::timeout(T, pending).await;
    assert!(matches!(conn, Ok(Ok(Ok(_)))), "the connect pending over the freeze: {conn:?}");
    snapshot(r).await;
}

#[tokio::test]
async fn lag_shows_in_seconds_behind_and_the_gtid_position() {
    let farm = FarmProcess::start(1, 2, 5);
    let (m, r) = (farm.port(2, 0, 0), farm.port(2, 0, 1));
    assert_eq!(farm.control(&format!("lag {r} 7")).await, format!("ok lag {r} 7"));
    assert!(farm.control(&format!("lag {m} 7")).await.starts_with("error"), "a master has no lag");
    let replica = snapshot(r).await;
    let master = snapshot(m).await;
    let link = replica.managed_replication("").cloned().unwrap_or_default();
    assert_eq!(link.seconds_behind_master, Some(7));
    let behind = master.gtid_current_pos.seq_in(0).saturating_sub(replica.gtid_slave_pos.seq_in(0));
    assert!((60..=80).contains(&behind), "70 events behind (10 per second), got {behind}");
    assert!(db::gtid::GtidPos::parse_lenient(&link.gtid_io_pos).seq_in(0) > replica.gtid_slave_pos.seq_in(0), "received ahead of applied");
}

/// Not a speed assertion: it checks that 2,000 servers start and each answers a probe on a
/// kept connection, and prints how long that took and the farm's resident memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_servers_each_answer_the_probe() {
    let (clusters, per_cluster) = (400u16, 5u16);
    // 2,000 client sessions here (the farm raises its own limit for its side).
    let limit = rlimit::increase_nofile_limit(4096).unwrap_or(0);
    assert!(limit >= 4096, "the open-file limit ({limit}) cannot hold 2,000 sessions: raise the hard limit (ulimit -Hn)");
    let farm = FarmProcess::start(clusters, per_cluster, 6);
    let rss_idle = farm.rss_kib();
    let ports: Vec<u16> = (0..clusters * per_cluster).map(|i| farm.base_port + i).collect();

    let (started, cpu_before) = (Instant::now(), farm.cpu_time());
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = tokio::task::JoinSet::new();
    for port in ports.iter().copied() {
        let gate = gate.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let mut p = probe(port, PASSWORD, Duration::from_secs(20));
            let r = p.probe().await;
            drop(permit);
            (port, p, r.map(|s| (s.server_id, s.read_only)))
        });
    }
    let mut probes = Vec::with_capacity(ports.len());
    let mut failures = Vec::new();
    let all = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((port, p, Ok((id, read_only)))) => {
                    assert_eq!(id, u32::from(port));
                    assert_eq!(read_only, (port - farm.base_port) % per_cluster != 0, "port {port}");
                    probes.push(p);
                }
                Ok((port, _, Err(e))) => failures.push(format!("{port}: {e}")),
                Err(e) => failures.push(format!("task: {e}")),
            }
        }
    })
    .await;
    assert!(all.is_ok(), "2,000 probes did not finish within 180 s");
    assert!(failures.is_empty(), "{} probes failed, first: {:?}", failures.len(), failures.first());
    let first_round = started.elapsed();
    let (rss_connected, cpu_first) = (farm.rss_kib(), farm.cpu_time());

    // A second round on the kept connections: every server holds its session.
    let started = Instant::now();
    for p in probes.iter_mut() {
        if let Err(e) = p.probe().await {
            panic!("second round: {e}");
        }
    }
    let second_round = started.elapsed();
    let cpu_second = farm.cpu_time();
    let spent = |from: Option<Duration>, to: Option<Duration>| to.zip(from).map(|(t, f)| t.saturating_sub(f)).unwrap_or_default();
    let stats = farm.stats().await;
    assert_eq!(stats["connections_open"], 2000, "{stats}");
    assert_eq!(stats["statements"]["unknown"], 0, "{stats}");
    eprintln!(
        "rm-farm 2,000 servers (pid {}): ready after {:?}; RSS {} KiB idle, {} KiB with 2,000 sessions; \
         first probe round (connect + probe, 100 at a time) {:?} ({:?} of the farm's CPU), \
         second round (kept connections, one at a time) {:?} ({:?} of its CPU)",
        farm.pid(),
        farm.started_in,
        rss_idle.unwrap_or(0),
        rss_connected.unwrap_or(0),
        first_round,
        spent(cpu_before, cpu_first),
        second_round,
        spent(cpu_first, cpu_second),
    );
    for p in probes.iter_mut() {
        p.close().await;
    }
}
