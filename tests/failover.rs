//! End-to-end failover, switchover, detection, constraints and rejoin with real mariadbd
//! processes under write load and the real manager binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::load::{assert_no_loss, create_table, ids_on, WritableSampler, WriteLoad};
use common::*;
use serde_json::Value;

const CLUSTER: &str = "c1";

/// A sandbox of `n` replicating servers with a table for the write load, and a manager.
struct Lab {
    sb: Sandbox,
    m: Manager,
    token: String,
    dir: std::path::PathBuf,
}

impl Lab {
    async fn start(n: u16, extra_keys: &[(&'static str, &str)]) -> Lab {
        let sb = Sandbox::start(n, true);
        create_table(&sb, 1);
        let slot = slot();
        let dir = temp_dir("fo", slot);
        let port = free_ports(slot + 500, 1);
        let mut keys = cluster_keys(&sb);
        keys.push(("failover-falsepositive-ping-counter", "3".to_string()));
        keys.push(("failover-mode", "automatic".to_string()));
        keys.push(("failover-limit", "0".to_string()));
        for (k, v) in extra_keys {
            keys.retain(|(kk, _)| kk != k);
            keys.push((k, v.to_string()));
        }
        write_config(&dir, &default_keys(&dir, port), CLUSTER, &keys);
        let m = Manager::start(&dir, port, &[]).await;
        let token = m.token().await;
        let lab = Lab { sb, m, token, dir };
        let first = lab.sb.addr(1);
        assert!(
            wait_until(Duration::from_secs(15), || async { lab.master_url().await.as_deref() == Some(first.as_str()) && lab.all_replicating(&first, None).await }).await,
            "initial topology not discovered: {}",
            lab.servers().await
        );
        lab
    }

    fn ports(&self) -> Vec<u16> {
        (1..=self.sb.count).map(|i| self.sb.port(i)).collect()
    }

    fn index_of(&self, addr: &str) -> u16 {
        (1..=self.sb.count).find(|i| self.sb.addr(*i) == addr).unwrap_or_else(|| panic!("{addr} not in sandbox"))
    }

    async fn servers(&self) -> Value {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &self.token).await
    }

    async fn cluster(&self) -> Value {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}"), &self.token).await
    }

    async fn master_url(&self) -> Option<String> {
        let m = self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &self.token).await;
        let ok = m["state"] == "Master";
        m["url"].as_str().filter(|_| ok).map(str::to_string)
    }

    async fn alerts(&self) -> String {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/alerts"), &self.token).await.to_string()
    }

    /// Every server but `except` is a running replica of `master`.
    async fn all_replicating(&self, master: &str, except: Option<&str>) -> bool {
        let port = master.rsplit(':').next().unwrap_or("").to_string();
        let s = self.servers().await;
        s.as_array().unwrap().iter().all(|srv| {
            let url = srv["url"].as_str().unwrap_or("");
            url == master
                || except == Some(url)
                || (srv["state"] == "Slave" && srv["replications"][0]["masterPort"]["String"] == port.as_str())
        })
    }

    async fn wait_new_master(&self, old: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(u) = self.master_url().await.filter(|u| u != old) {
                let (st, _) = self.m.get(&format!("/api/clusters/{CLUSTER}/servers/{u}/is-master"), None).await;
                if st == 200 {
                    return u;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no new master after {old} failed: {}\n{}", self.servers().await, self.m.log_text());
    }

    async fn action(&self, path: &str) -> (u16, String) {
        self.m.get(&format!("/api/clusters/{CLUSTER}/actions/{path}"), Some(&self.token)).await
    }

    async fn crashes(&self) -> Vec<Value> {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/crashes"), &self.token).await.as_array().unwrap().clone()
    }

    fn finish(self) {
        let dir = self.dir.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// 1. SIGKILL the master of a semi-sync cluster under write load, several rounds: a new master
/// is writable, the other replica follows, no acknowledged row is lost, and the old master
/// comes back as a replica (reloaded by dump if it held unacknowledged transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_under_semisync_load_loses_no_acknowledged_write() {
    let lab = Lab::start(3, &[("autorejoin-mysqldump", "true")]).await;
    let rounds = 3;
    let mut all_acked: Vec<u64> = Vec::new();
    for round in 0..rounds {
        let old = lab.master_url().await.expect("a master");
        let old_i = lab.index_of(&old);
        let load = WriteLoad::start(lab.ports(), (round as u64 + 1) * 1_000_000);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        lab.sb.run(&["kill", &old_i.to_string()]);
        let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
        let new_i = lab.index_of(&new);
        assert!(
            wait_until(Duration::from_secs(20), || lab.all_replicating(&new, Some(old.as_str()))).await,
            "round {round}: replicas do not follow {new}: {}",
            lab.servers().await
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let report = load.stop().await;
        assert!(!report.acked.is_empty(), "round {round}: no write acknowledged");
        let after: u64 = lab.sb.sql(new_i, &format!("SELECT COUNT(*) FROM app.t WHERE port = {}", lab.sb.port(new_i))).parse().unwrap();
        assert!(after > 0, "round {round}: writes did not resume on the new master");
        all_acked.extend(&report.acked);
        assert_no_loss(&all_acked, &ids_on(&lab.sb, new_i), &format!("round {round} new master {new}"));

        // The old master returns and is rejoined as a replica of the new one.
        lab.sb.run(&["start-one", &old_i.to_string()]);
        assert!(
            wait_until(Duration::from_secs(60), || lab.all_replicating(&new, None)).await,
            "round {round}: old master {old} not rejoined: {}\n{}",
            lab.servers().await,
            lab.alerts().await
        );
        let acked = all_acked.clone();
        assert!(
            wait_until(Duration::from_secs(20), || {
                let present = ids_on(&lab.sb, old_i);
                let ok = acked.iter().all(|id| present.contains(id));
                async move { ok }
            })
            .await,
            "round {round}: rejoined old master misses acknowledged rows"
        );
    }
    for line in lab.m.log_text().lines().filter(|l| l.contains("Rejoined") || l.contains("Reloaded") || l.contains("Master switch")) {
        eprintln!("manager: {line}");
    }
    let c = lab.cluster().await;
    assert_eq!(c["failoverCounter"], rounds);
    let crashes = lab.crashes().await;
    assert_eq!(crashes.len(), rounds as usize);
    for cr in &crashes {
        assert_eq!(cr["Switchover"], false);
        assert!(!cr["ElectedMasterURL"].as_str().unwrap().is_empty());
        assert!(cr["FailoverIOGtid"].is_array(), "{cr}");
        assert!(cr["Details"]["old_master_gtid"].as_str().is_some_and(|g| !g.is_empty()), "{cr}");
    }
    lab.finish();
}

/// 2. Switchover under write load: at most one writable server at every 50 ms sample, no
/// acknowledged write lost, the old master replicates from the new one; then back with prefmaster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_under_load_keeps_one_writable_master() {
    let lab = Lab::start(3, &[("switchover-wait-kill", "500")]).await;
    let first = lab.sb.addr(1);
    let sampler = WritableSampler::start(lab.ports());
    let load = WriteLoad::start(lab.ports(), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let (st, body) = lab.action("switchover").await;
    assert_eq!(st, 200, "switchover: {body}\n{}", lab.m.log_text());
    let new = lab.wait_new_master(&first, Duration::from_secs(15)).await;
    assert!(
        wait_until(Duration::from_secs(20), || lab.all_replicating(&new, None)).await,
        "old master is not a replica of {new}: {}",
        lab.servers().await
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Back to the first server, by name.
    let (st, body) = lab.action(&format!("switchover?prefmaster={first}")).await;
    assert_eq!(st, 200, "switchover back: {body}");
    lab.wait_new_master(&new, Duration::from_secs(15)).await;
    assert_eq!(lab.master_url().await.as_deref(), Some(first.as_str()));
    assert!(wait_until(Duration::from_secs(20), || lab.all_replicating(&first, None)).await);
    tokio::time::sleep(Duration::from_millis(800)).await;

    let report = load.stop().await;
    let (samples, violations) = sampler.stop().await;
    assert!(samples > 20, "too few samples: {samples}");
    assert!(violations.is_empty(), "more than one writable server in {} of {samples} samples: {:?}", violations.len(), violations);
    assert!(report.acked.len() > 50, "write load too small: {report:?}");
    for i in 1..=3 {
        assert_no_loss(&report.acked, &ids_on(&lab.sb, i), &format!("server {i}"));
    }
    let crashes = lab.crashes().await;
    assert_eq!(crashes.len(), 2);
    assert!(crashes.iter().all(|c| c["Switchover"] == true));
    assert_eq!(crashes[0]["Details"]["trigger"], "API switchover by admin", "the journal names the requester");
    assert_eq!(lab.cluster().await["failoverCounter"], 0, "switchover does not count as failover");

    // A switchover to a server that is not a replica is refused with a reason, nothing changes.
    let (st, body) = lab.action("switchover?prefmaster=127.0.0.1:1").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(lab.master_url().await.as_deref(), Some(first.as_str()));
    lab.finish();
}

/// 3a. A master frozen for less than the detection window causes no failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_freeze_of_the_master_causes_no_failover() {
    let lab = Lab::start(3, &[("failover-falsepositive-ping-counter", "6")]).await;
    let first = lab.sb.addr(1);
    lab.sb.run(&["freeze", "1"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    lab.sb.run(&["thaw", "1"]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(lab.master_url().await.as_deref(), Some(first.as_str()));
    assert!(lab.crashes().await.is_empty());
    assert_eq!(lab.cluster().await["failoverCounter"], 0);
    let logs = lab.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/logs"), &lab.token).await.to_string();
    assert!(logs.contains("changed to: Suspect"), "the freeze was seen: {logs}");
    lab.finish();
}

/// The names of the timed failover steps of a crash record's `Details`, in order.
fn step_names(details: &Value) -> Vec<&str> {
    details["step_ms"].as_array().unwrap().iter().map(|t| t["step"].as_str().unwrap()).collect()
}

/// 3c. Detection that knows why a probe failed. With a ping counter of 100 (50 s at the 0.5 s
/// ticker), a master frozen for 4 s (its probes time out) is left alone, and a master killed
/// under write load (its connections refused, its replicas' IO threads lost) is failed over
/// at once: well before the counter could run out, with the reason in the crash record and
/// the log, every step timed, and no acknowledged write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_master_confirmed_by_its_replicas_fails_over_without_the_ping_counter() {
    let lab = Lab::start(3, &[("failover-falsepositive-ping-counter", "100")]).await;
    let first = lab.sb.addr(1);
    let sampler = WritableSampler::start(lab.ports());
    lab.sb.run(&["freeze", "1"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    lab.sb.run(&["thaw", "1"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lab.master_url().await.as_deref(), Some(first.as_str()), "a freeze (timeouts) never takes the fast path");
    assert!(lab.crashes().await.is_empty());

    let load = WriteLoad::start(lab.ports(), 7_000_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = std::time::Instant::now();
    lab.sb.run(&["kill", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(20)).await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "not the ping counter's 50 s");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = load.stop().await;
    let (samples, violations) = sampler.stop().await;
    assert!(samples > 20 && violations.is_empty(), "{samples} samples, more than one writable server at: {violations:?}");
    let new_i = lab.index_of(&new);
    assert_no_loss(&report.acked, &ids_on(&lab.sb, new_i), "refused-connection failover");
    let crashes = lab.crashes().await;
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    let details = &crashes[0]["Details"];
    let detection = details["detection"].as_str().unwrap_or("");
    assert!(detection.contains("connection refused") && detection.contains("lost its IO thread"), "{details}");
    let steps = step_names(details);
    for want in ["journal-started", "wait-applied", "detach-candidate", "promote", "journal-promoted"] {
        assert!(steps.contains(&want), "step {want} not timed: {steps:?}");
    }
    let logs = lab.m.log_text();
    assert!(logs.contains("is dead: connection refused"), "the reason is logged: {logs}");
    assert!(logs.contains("timing: detected"), "the timing is logged: {logs}");
    eprintln!("refused-connection failover: {new} writable {} ms after the kill; {}", took.as_millis(), details);
    lab.finish();
}

/// 3d. A frozen master, with the heartbeat forced short (`force-slave-heartbeat`): the leader
/// sets the period on the sandbox's replicas (5 s there) to 1 s; then the master is frozen
/// under write load. Once its replicas stop hearing it, it is failed over: its replicas' IO
/// threads (still connected to the frozen process) stopped first, in one timed step, no second
/// writable server, no acknowledged write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_master_fails_over_once_the_forced_heartbeat_goes_quiet() {
    let lab = Lab::start(3, &[("force-slave-heartbeat", "true"), ("force-slave-heartbeat-time", "1")]).await;
    let first = lab.sb.addr(1);
    // Commits waiting on the frozen master must not fall back to asynchronous on thaw.
    for i in 1..=3 {
        lab.sb.sql(i, "SET GLOBAL rpl_semi_sync_master_timeout = 60000");
    }
    let period = |i: u16| lab.sb.sql(i, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='SLAVE_HEARTBEAT_PERIOD'");
    let forced = wait_until(Duration::from_secs(20), || {
        let ok = (2..=3).all(|i| period(i).trim().parse::<f64>().ok() == Some(1.0));
        async move { ok }
    })
    .await;
    assert!(forced, "heartbeat periods {:?}: {}", (2..=3).map(period).collect::<Vec<_>>(), lab.m.log_text());
    assert!(lab.m.log_text().contains("force-slave-heartbeat"), "the change is logged");
    assert!(wait_until(Duration::from_secs(20), || lab.all_replicating(&first, None)).await, "replication restarted after the change");

    let sampler = WritableSampler::start(lab.ports());
    let load = WriteLoad::start(lab.ports(), 8_000_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen = std::time::Instant::now();
    lab.sb.run(&["freeze", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(30)).await;
    let took = frozen.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = load.stop().await;
    // Sampled while the old master is frozen: once thawed it is writable until fenced on
    // sight (frozen_master_is_fenced_on_sight_when_it_thaws measures that).
    let (samples, violations) = sampler.stop().await;
    lab.sb.run(&["thaw", "1"]);
    assert!(samples > 20 && violations.is_empty(), "{samples} samples, more than one writable server at: {violations:?}");
    assert_no_loss(&report.acked, &ids_on(&lab.sb, lab.index_of(&new)), "frozen-master failover");
    let crashes = lab.crashes().await;
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    let details = &crashes[0]["Details"];
    let steps = step_names(details);
    assert!(steps.contains(&"stop-replica-io"), "the connected replicas are stopped first: {steps:?}");
    assert!(lab.m.log_text().contains("IO thread of"), "each stop is logged");
    eprintln!("frozen-master failover: {new} writable {} ms after the freeze; {details}", took.as_millis());
    lab.finish();
}

/// 3b. The manager loses its path to the master while the replicas still replicate: the master
/// is Failed for the manager, but no failover runs and the refusal is in the alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_partitioned_from_master_does_not_fail_over() {
    let lab = Lab::start(3, &[]).await;
    let first = lab.sb.addr(1);
    lab.sb.run(&["partition", "1"]);
    let failed = wait_until(Duration::from_secs(20), || async {
        server_by_url(&lab.servers().await, &first)["state"] == "Failed"
    })
    .await;
    assert!(failed, "master not Failed for the manager: {}", lab.servers().await);
    // Keep it that way well past the detection window (heartbeats every 5 s).
    let mut blocked_seen = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        blocked_seen |= lab.alerts().await.contains("ERR00028");
        assert!(lab.crashes().await.is_empty(), "failed over while replicas still hear the master");
    }
    assert!(blocked_seen, "no ERR00028 alert: {}", lab.alerts().await);
    lab.sb.run(&["heal", "1"]);
    assert!(
        wait_until(Duration::from_secs(30), || async { lab.master_url().await.as_deref() == Some(first.as_str()) }).await,
        "master not back after heal: {}",
        lab.servers().await
    );
    assert_eq!(lab.cluster().await["failoverCounter"], 0);
    lab.finish();
}

/// Kills the master (a failover follows), then kills the new master and waits for the alert
/// `code` that must block the second failover. Returns the second master.
async fn second_failover_blocked_by(lab: &Lab, code: &str) -> String {
    let first = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let second = lab.wait_new_master(&first, Duration::from_secs(30)).await;
    assert!(wait_until(Duration::from_secs(20), || lab.all_replicating(&second, Some(first.as_str()))).await);
    lab.sb.run(&["kill", &lab.index_of(&second).to_string()]);
    assert!(
        wait_until(Duration::from_secs(20), || async { lab.alerts().await.contains(code) }).await,
        "no {code} alert: {}",
        lab.alerts().await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lab.crashes().await.len(), 1, "a second failover ran despite {code}");
    second
}

/// 4a. failover-limit blocks a second failover until the counter is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_limit_blocks_until_reset() {
    let lab = Lab::start(3, &[("failover-limit", "1")]).await;
    let second = second_failover_blocked_by(&lab, "ERR00027").await;
    let (st, body) = lab.action("reset-failover-control").await;
    assert_eq!(st, 200, "{body}");
    let third = lab.wait_new_master(&second, Duration::from_secs(30)).await;
    assert_ne!(third, lab.sb.addr(1));
    assert_eq!(lab.crashes().await.len(), 2);
    lab.finish();
}

/// 4b. failover-time-limit blocks a second failover soon after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_time_limit_blocks_a_second_failover() {
    let lab = Lab::start(3, &[("failover-time-limit", "3600")]).await;
    second_failover_blocked_by(&lab, "ERR00029").await;
    lab.finish();
}

/// 4c. failover-mode=manual never fails over by itself, but the API action does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_waits_for_the_api() {
    let lab = Lab::start(3, &[("failover-mode", "manual")]).await;
    let first = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    assert!(
        wait_until(Duration::from_secs(20), || async { lab.alerts().await.contains("ERR00002") }).await,
        "no manual-mode alert: {}",
        lab.alerts().await
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(lab.crashes().await.is_empty());
    let (st, body) = lab.action("switchover").await;
    assert_eq!((st, body.as_str()), (400, "Master failed"), "switchover needs a live master");
    let (st, body) = lab.m.get("/api/clusters/nope/actions/failover", Some(&lab.token)).await;
    assert_eq!((st, body.as_str()), (500, "No Cluster"));
    let (st, body) = lab.action("failover").await;
    assert_eq!(st, 200, "{body}");
    let new = lab.wait_new_master(&first, Duration::from_secs(10)).await;
    assert!(wait_until(Duration::from_secs(20), || lab.all_replicating(&new, Some(first.as_str()))).await);
    assert_eq!(lab.crashes().await.len(), 1);
    lab.finish();
}

/// 4d. A replica lagging beyond failover-max-slave-delay is not elected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_is_not_elected() {
    let lab = Lab::start(3, &[("failover-max-slave-delay", "2")]).await;
    let first = lab.sb.addr(1);
    lab.sb.sql(2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE");
    for i in 0..40 {
        lab.sb.sql(1, &format!("INSERT INTO app.t (id, port) VALUES ({}, 0)", 900_000 + i));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = lab.sb.addr(2);
    assert!(
        wait_until(Duration::from_secs(15), || async { server_by_url(&lab.servers().await, &late)["state"] == "SlaveLate" }).await,
        "replica 2 not SlaveLate: {}",
        lab.servers().await
    );
    lab.sb.run(&["kill", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(30)).await;
    assert_eq!(new, lab.sb.addr(3), "the lagging replica must not be elected");
    lab.finish();
}

/// Leaves the old master (instance 1) with one transaction no replica received, kills it and
/// waits for the failover. Returns (new master, the extra GTID's sequence number).
async fn make_old_master_ahead(lab: &Lab) -> (String, String) {
    let first = lab.sb.addr(1);
    lab.sb.sql(2, "STOP SLAVE IO_THREAD");
    lab.sb.sql(3, "STOP SLAVE IO_THREAD");
    // Semi-sync times out (1 s) and the commit lands on the master only.
    lab.sb.sql(1, "INSERT INTO app.t (id, port) VALUES (777777, 0)");
    let pos = lab.sb.sql(1, "SELECT @@gtid_binlog_pos");
    lab.sb.run(&["kill", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(30)).await;
    let crashes = lab.crashes().await;
    assert_eq!(crashes.len(), 1);
    let at_risk = crashes[0]["Details"]["gtids_at_risk"].to_string();
    let seq = pos.rsplit('-').next().unwrap().trim().to_string();
    assert!(at_risk.contains(&seq), "crash record does not list the GTID at risk {pos}: {at_risk}");
    (new, seq)
}

/// 5a. An old master that holds transactions nobody received is not rejoined: it stays
/// read-only and the alert lists its extra GTIDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_ahead_is_quarantined() {
    let lab = Lab::start(3, &[]).await;
    let first = lab.sb.addr(1);
    let (new, seq) = make_old_master_ahead(&lab).await;
    lab.sb.run(&["start-one", "1"]);
    assert!(
        wait_until(Duration::from_secs(20), || async { lab.alerts().await.contains("ERR00070") }).await,
        "no quarantine alert: {}\n{}",
        lab.alerts().await,
        lab.m.log_text()
    );
    let alerts = lab.alerts().await;
    assert!(alerts.contains(&format!("..{seq}")), "alert does not list the extra GTIDs (..{seq}): {alerts}");
    let srv = server_by_url(&lab.servers().await, &first).clone();
    assert_eq!(srv["state"], "StandAlone");
    assert_eq!(srv["isReadOnly"], true);
    assert!(srv["replicationHealth"].as_str().unwrap().starts_with("Quarantined"), "{srv}");
    assert_eq!(lab.sb.sql(1, "SELECT @@read_only"), "1");
    assert_eq!(lab.master_url().await.as_deref(), Some(new.as_str()));
    lab.finish();
}

/// 5b/5c. With autorejoin-flashback or autorejoin-mysqldump the old master that is ahead loses
/// its extra transaction and rejoins as a replica with everything the new master has.
async fn old_master_ahead_rejoins_with(key: &'static str) {
    let lab = Lab::start(3, &[(key, "true")]).await;
    let (new, _) = make_old_master_ahead(&lab).await;
    let new_i = lab.index_of(&new);
    lab.sb.sql(new_i, "INSERT INTO app.t (id, port) VALUES (888888, 0)");
    lab.sb.run(&["start-one", "1"]);
    assert!(
        wait_until(Duration::from_secs(60), || lab.all_replicating(&new, None)).await,
        "old master not rejoined with {key}: {}\n{}\n{}",
        lab.servers().await,
        lab.alerts().await,
        lab.m.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            let ids = ids_on(&lab.sb, 1);
            async move { ids.contains(&888_888) }
        })
        .await,
        "rejoined server does not receive the new master's writes"
    );
    let ids = ids_on(&lab.sb, 1);
    assert!(!ids.contains(&777_777), "the unacknowledged extra transaction survived {key}");
    assert_eq!(ids, ids_on(&lab.sb, new_i as u16), "rejoined server differs from the new master");
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_ahead_rejoins_with_flashback() {
    old_master_ahead_rejoins_with("autorejoin-flashback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_master_ahead_rejoins_with_mysqldump() {
    old_master_ahead_rejoins_with("autorejoin-mysqldump").await;
}

/// Bootstrap on servers that have no replication yet, cleanup, and multi-master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_cleanup_replication() {
    let sb = Sandbox::start(3, false);
    let slot = slot();
    let dir = temp_dir("boot", slot);
    let port = free_ports(slot + 500, 1);
    write_config(&dir, &default_keys(&dir, port), CLUSTER, &cluster_keys(&sb));
    let m = Manager::start(&dir, port, &[]).await;
    let token = m.token().await;
    let alerts = || async { m.get_json(&format!("/api/clusters/{CLUSTER}/topology/alerts"), &token).await.to_string() };
    assert!(wait_until(Duration::from_secs(10), || async { alerts().await.contains("ERR00012") }).await, "no-master alert missing");

    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/actions/replication/bootstrap/master-slave"), Some(&token)).await;
    assert_eq!(st, 200, "{body}\n{}", m.log_text());
    let first = sb.addr(1);
    let topo = || async { m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await };
    let shape = |want: [&'static str; 3]| {
        let topo = &topo;
        let sb = &sb;
        async move {
            let s = topo().await;
            (1..=3).all(|i| server_by_url(&s, &sb.addr(i))["state"] == want[i as usize - 1])
        }
    };
    assert!(wait_until(Duration::from_secs(15), || shape(["Master", "Slave", "Slave"])).await, "bootstrap: {}", topo().await);
    sb.sql(1, "CREATE TABLE app.b (id INT PRIMARY KEY)");
    sb.sql(1, "INSERT INTO app.b VALUES (1)");
    assert!(wait_until(Duration::from_secs(10), || async { sb.sql(3, "SELECT COUNT(*) FROM app.b") == "1" }).await);
    assert_eq!(sb.sql(2, "SELECT @@read_only"), "1");
    assert_eq!(sb.sql(1, "SELECT @@read_only"), "0");

    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/actions/replication/cleanup"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(15), || shape(["Master", "StandAlone", "StandAlone"])).await, "cleanup: {}", topo().await);

    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/actions/replication/bootstrap/multi-master"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        wait_until(Duration::from_secs(15), || async {
            let c = m.get_json(&format!("/api/clusters/{CLUSTER}"), &token).await;
            c["topology"] == "multi-master"
        })
        .await,
        "multi-master not discovered: {}",
        topo().await
    );
    let s = topo().await;
    assert_eq!(server_by_url(&s, &first)["replications"][0]["masterPort"]["String"], sb.port(2).to_string());

    let (st, _) = m.get(&format!("/api/clusters/{CLUSTER}/actions/replication/bootstrap/ring-of-fire"), Some(&token)).await;
    assert_eq!(st, 400);
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A replica in maintenance is never elected, even when preferred.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_replica_is_not_elected() {
    let lab = Lab::start(3, &[]).await;
    let second = lab.sb.addr(2);
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/servers/{second}/actions/maintenance"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        wait_until(Duration::from_secs(10), || async { server_by_url(&lab.servers().await, &second)["state"] == "Maintenance" }).await,
        "not in maintenance: {}",
        lab.servers().await
    );
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/servers/db0/actions/maintenance"), Some(&lab.token)).await;
    assert_eq!((st, body.as_str()), (404, "Unknown server: db0 (cluster c1)"));
    let first = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(30)).await;
    assert_eq!(new, lab.sb.addr(3), "a server in maintenance must not be elected");
    let (st, _) = lab.m.get(&format!("/api/clusters/{CLUSTER}/servers/{second}/actions/maintenance"), Some(&lab.token)).await;
    assert_eq!(st, 200);
    assert!(
        wait_until(Duration::from_secs(10), || async { server_by_url(&lab.servers().await, &second)["state"] != "Maintenance" }).await
    );
    lab.finish();
}

/// A switchover that fails before the promotion is undone: the old master is writable again,
/// the candidate replicates again, nothing is recorded, and the answer says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_switchover_is_undone() {
    let lab = Lab::start(3, &[("switchover-wait-catch", "2"), ("failover-max-slave-delay", "-1")]).await;
    let first = lab.sb.addr(1);
    let target = lab.sb.addr(2);
    // The target applies events an hour late: it cannot reach the master's position in 2 s.
    lab.sb.sql(2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE");
    lab.sb.sql(1, "INSERT INTO app.t (id, port) VALUES (555555, 0)");
    let (st, body) = lab.action(&format!("switchover?prefmaster={target}")).await;
    assert_eq!(st, 500, "{body}");
    assert!(body.contains("undone"), "{body}");
    assert_eq!(lab.sb.sql(1, "SELECT @@read_only"), "0", "old master writable again");
    assert!(
        wait_until(Duration::from_secs(10), || async { lab.master_url().await.as_deref() == Some(first.as_str()) }).await,
        "master changed: {}",
        lab.servers().await
    );
    let io_sql = lab.sb.sql(2, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_SQL'");
    assert_ne!(io_sql, "0", "the candidate replicates again");
    assert!(lab.crashes().await.is_empty());
    lab.sb.sql(1, "INSERT INTO app.t (id, port) VALUES (555556, 0)");
    lab.finish();
}

/// Detection never pauses for an action: a long API action (`services/provision`, whose
/// provision command sleeps) is running when the master is killed; the failover completes
/// while that action is still running, and the action then ends normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_is_not_delayed_by_a_long_running_action() {
    let lab = Lab::start(3, &[("prov-db-provision-command", "sleep 8")]).await;
    let first = lab.sb.addr(1);
    // Three servers: the action takes 24 s (3 x 8 s of provision command).
    let url = lab.m.url(&format!("/api/clusters/{CLUSTER}/services/provision"));
    let token = lab.token.clone();
    let started = std::time::Instant::now();
    let action = tokio::spawn(async move {
        let r = http().post(url).bearer_auth(token).timeout(Duration::from_secs(120)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap(), std::time::Instant::now())
    });
    // The action is running before the master dies (seen in the log, without competing for
    // the cluster's action slot), and a second action is refused meanwhile.
    assert!(
        wait_until(Duration::from_secs(10), || async { lab.m.log_text().contains("executing orchestrator command") }).await,
        "the long action did not start: {}",
        lab.m.log_text()
    );
    assert_eq!(lab.action("reset-failover-control").await.0, 409, "a second action was not refused while the first ran");
    lab.sb.run(&["kill", "1"]);
    let new = lab.wait_new_master(&first, Duration::from_secs(20)).await;
    let failed_over_at = std::time::Instant::now();
    assert!(!action.is_finished(), "the long action ended before the failover: the test proves nothing");
    let (status, body, ended_at) = action.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(failed_over_at < ended_at, "the failover waited for the action");
    eprintln!("failover to {new} after {:?} while the action ran {:?}", failed_over_at - started, ended_at - started);
    lab.finish();
}

/// `@@read_only` of instance port `port` as the manager's account (None: no answer).
async fn read_only_of(port: u16) -> Option<u8> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("repman"))
        .pass(Some("repman"))
        .prefer_socket(false);
    let mut c = tokio::time::timeout(Duration::from_millis(500), mysql_async::Conn::new(opts)).await.ok()?.ok()?;
    let v = tokio::time::timeout(Duration::from_millis(500), c.query_first::<u8, _>("SELECT @@read_only")).await.ok()?.ok()?;
    let _ = c.disconnect().await;
    v
}

/// Fencing 1: the master freezes (SIGSTOP) under two writers, one of them pinned to the old
/// master's address with a long statement timeout, in semi-sync with a large timeout. After the
/// failover the old master thaws: the manager fences it on sight (read_only, clients killed).
/// No acknowledged row is missing on the new master, and no 50 ms sample shows two writable
/// servers, neither during the freeze nor once the old master is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_master_is_fenced_on_sight_when_it_thaws() {
    let lab = Lab::start(3, &[]).await;
    for i in 1..=3 {
        lab.sb.sql(i, "SET GLOBAL rpl_semi_sync_master_timeout = 60000");
    }
    let old = lab.sb.addr(1);
    let old_port = lab.sb.port(1);
    let load = WriteLoad::start(lab.ports(), 1_000_000);
    let pinned = WriteLoad::start_with(vec![old_port], 5_000_000, Duration::from_secs(90));
    let sampler = WritableSampler::start(lab.ports());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lab.sb.run(&["freeze", "1"]);
    let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
    let (during_samples, during) = sampler.stop().await;
    assert!(during.is_empty(), "two writable servers while the old master was frozen: {during:?}");

    lab.sb.run(&["thaw", "1"]);
    let thawed = std::time::Instant::now();
    let fenced = wait_until(Duration::from_secs(20), || async { read_only_of(old_port).await == Some(1) }).await;
    let thaw_to_fence = thawed.elapsed();
    assert!(fenced, "the thawed old master was not fenced: {}\n{}", lab.servers().await, lab.m.log_text());
    let sampler = WritableSampler::start(lab.ports());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (after_samples, after) = sampler.stop().await;
    let main_report = load.stop().await;
    let pinned_report = pinned.stop().await;
    assert!(after.is_empty(), "two writable servers after the fence: {after:?}");

    let new_i = lab.index_of(&new);
    let acked: Vec<u64> = main_report.acked.iter().chain(&pinned_report.acked).copied().collect();
    assert!(!main_report.acked.is_empty(), "no write acknowledged");
    assert_no_loss(&acked, &ids_on(&lab.sb, new_i), "frozen master");
    let log = lab.m.log_text();
    assert!(log.contains(&format!("Fenced {old}")), "the fence is logged:\n{log}");
    eprintln!(
        "freeze: thaw to fence {} ms; {} + {} samples, 0 with two writable; {} + {} acknowledged rows (pinned writer), 0 lost",
        thaw_to_fence.as_millis(),
        during_samples,
        after_samples,
        main_report.acked.len(),
        pinned_report.acked.len()
    );
    lab.finish();
}

/// Fencing 5: the master is killed and restarted at once; it comes back read-only (its
/// my.cnf says read_only=ON). Within 30 s there is exactly one writable master that accepts
/// an application write (reopened, or failed over to), and no acknowledged row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_killed_and_restarted_at_once_is_writable_again() {
    let lab = Lab::start(3, &[("failover-falsepositive-ping-counter", "5")]).await;
    let load = WriteLoad::start(lab.ports(), 1_000_000);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    lab.sb.run(&["kill", "1"]);
    lab.sb.run(&["start-one", "1"]);
    let restarted = std::time::Instant::now();
    let ports = lab.ports();
    let writable_master = wait_until(Duration::from_secs(30), || async {
        let Some(m) = lab.master_url().await else { return false };
        let port = lab.sb.port(lab.index_of(&m));
        let mut writable = 0;
        for p in &ports {
            if read_only_of(*p).await == Some(0) {
                writable += 1;
            }
        }
        writable == 1 && read_only_of(port).await == Some(0)
    })
    .await;
    assert!(writable_master, "no single writable master 30 s after the restart: {}\n{}", lab.servers().await, lab.m.log_text());
    let took = restarted.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    let m = lab.master_url().await.expect("a master");
    let mi = lab.index_of(&m);
    let after: u64 = lab.sb.sql(mi, &format!("SELECT COUNT(*) FROM app.t WHERE port = {}", lab.sb.port(mi))).parse().unwrap();
    assert!(after > 0, "the application could not write on {m}");
    assert_no_loss(&report.acked, &ids_on(&lab.sb, mi), "restarted master");
    eprintln!("kill+restart: writable master {m} after {} ms; {} acknowledged, 0 lost", took.as_millis(), report.acked.len());
    lab.finish();
}

/// Fencing 10: a switchover is refused while an application transaction has been open
/// longer than `switchover-wait-trx`; the master is unchanged and the transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_refused_while_a_transaction_is_open_too_long() {
    use mysql_async::prelude::Queryable;
    let lab = Lab::start(2, &[("switchover-wait-trx", "2")]).await;
    let old = lab.sb.addr(1);
    let port = lab.sb.port(1);
    let mut app = common::load::connect(port).await.expect("app connection");
    app.query_drop("BEGIN").await.unwrap();
    app.query_drop(format!("INSERT INTO app.t (id, port) VALUES (424242, {port})")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (st, body) = lab.action("switchover").await;
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("switchover-wait-trx"), "{body}");
    assert_eq!(lab.master_url().await.as_deref(), Some(old.as_str()), "the master changed");
    assert_eq!(read_only_of(port).await, Some(0), "the master is not writable any more");
    app.query_drop("COMMIT").await.expect("the open transaction still commits");
    assert!(ids_on(&lab.sb, 1).contains(&424242));
    assert!(lab.crashes().await.is_empty(), "a switchover was recorded");
    // The accounts a read_only fence does not stop are named (root has every privilege).
    assert!(
        wait_until(Duration::from_secs(10), || async { lab.alerts().await.contains("WARN0112") }).await,
        "no WARN0112: {}",
        lab.alerts().await
    );
    assert!(lab.alerts().await.contains("'root'@'localhost'"), "{}", lab.alerts().await);
    lab.finish();
}

/// `failover-fence-script`: the promotion waits for the script (STONITH) to fence the old
/// master. While it fails, no replica is promoted (and none is writable); once it succeeds,
/// the failover completes and the script got the old master's host and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_script_gates_the_promotion() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("fence", slot());
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("stonith.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -f {d}/allow ] || {{ echo 'power switch unreachable' >&2; exit 1; }}\necho \"$1 $2\" > {d}/fenced\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script_path = script.display().to_string();
    let lab = Lab::start(3, &[("failover-fence-script", script_path.as_str())]).await;
    let old = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let blocked = wait_until(Duration::from_secs(30), || async { lab.m.log_text().contains("the fence script could not fence old master") }).await;
    assert!(blocked, "the failing fence script was not run: {}", lab.m.log_text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(lab.crashes().await.is_empty(), "a replica was promoted although the fence script failed");
    for p in [lab.sb.port(2), lab.sb.port(3)] {
        assert_eq!(read_only_of(p).await, Some(1), "replica {p} is writable without a fence");
    }
    std::fs::write(dir.join("allow"), "").unwrap();
    let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
    let fenced = std::fs::read_to_string(dir.join("fenced")).unwrap();
    assert_eq!(fenced.trim(), format!("127.0.0.1 {}", lab.sb.port(1)));
    eprintln!("fence script: blocked while failing, then {new} promoted");
    lab.finish();
    let _ = std::fs::remove_dir_all(dir);
}

/// Fencing 9: a failover retried with the same `Idempotency-Key` runs once (the retry gets the
/// first answer); a maintenance toggle retried with its key flips once; a key used again for
/// another request is refused. The failover is of a live master under a write load: it is
/// fenced and the candidate reaches its final position, so no acknowledged row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retried_requests_with_an_idempotency_key_run_once() {
    let lab = Lab::start(3, &[]).await;
    let old = lab.sb.addr(1);
    let send = |path: String, key: &'static str| {
        let req = http().post(lab.m.url(&path)).bearer_auth(&lab.token).header("Idempotency-Key", key).timeout(Duration::from_secs(60));
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let load = WriteLoad::start(lab.ports(), 1_000_000);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let first = send(format!("/api/clusters/{CLUSTER}/actions/failover"), "failover-once-1").await;
    assert_eq!(first.0, 200, "{first:?}");
    let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
    let retry = send(format!("/api/clusters/{CLUSTER}/actions/failover"), "failover-once-1").await;
    assert_eq!(retry, first, "the retry does not get the first answer");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    assert_eq!(lab.cluster().await["failoverCounter"], 1, "the retried failover ran twice");
    assert_eq!(lab.crashes().await.len(), 1);
    assert_eq!(lab.master_url().await.as_deref(), Some(new.as_str()));
    assert_no_loss(&report.acked, &ids_on(&lab.sb, lab.index_of(&new)), "live-master failover");

    let replica = (1..=3).map(|i| lab.sb.addr(i)).find(|a| *a != new && *a != old).unwrap();
    let path = format!("/api/clusters/{CLUSTER}/servers/{replica}/actions/maintenance");
    assert_eq!(send(path.clone(), "maint-1").await.0, 200);
    assert_eq!(send(path.clone(), "maint-1").await.0, 200);
    assert!(
        wait_until(Duration::from_secs(10), || async { server_by_url(&lab.servers().await, &replica)["isMaintenance"] == true }).await,
        "a toggle retried with its key flipped twice: {}",
        lab.servers().await
    );
    let reused = send(format!("/api/clusters/{CLUSTER}/actions/reset-failover-control"), "maint-1").await;
    assert_eq!(reused.0, 409, "{reused:?}");
    assert!(reused.1.contains("another request"), "{reused:?}");
    eprintln!("idempotency: failover ran once ({} acked rows, 0 lost); retry answered {:?}", report.acked.len(), retry);
    lab.finish();
}

/// Fencing 6: every replica lags (its SQL thread blocked by a table lock) when the master dies:
/// no replica may be promoted while it is behind more than failover-max-slave-delay; once one
/// has applied its relay log it is elected (its lag is recomputed from GTIDs, although
/// Seconds_Behind_Master stays NULL with the master gone), and no acknowledged row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_replicas_are_promoted_once_their_relay_log_is_applied() {
    use mysql_async::prelude::Queryable;
    let lab = Lab::start(3, &[("failover-max-slave-delay", "3")]).await;
    let old = lab.sb.addr(1);
    let mut locks = Vec::new();
    for i in [2u16, 3] {
        let mut c = common::load::connect(lab.sb.port(i)).await.expect("app connection");
        // A read lock blocks the replication SQL thread's writes to the table.
        c.query_drop("LOCK TABLES app.t READ").await.unwrap();
        locks.push(c);
    }
    let load = WriteLoad::start(vec![lab.sb.port(1)], 1_000_000);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let report = load.stop().await;
    assert!(!report.acked.is_empty(), "no write acknowledged");
    lab.sb.run(&["kill", "1"]);
    // Behind by more than 3 s: refused, however long it takes.
    assert!(
        wait_until(Duration::from_secs(20), || async { lab.alerts().await.contains("ERR00041") }).await,
        "no lag refusal: {}",
        lab.alerts().await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(lab.crashes().await.is_empty(), "a lagging replica was promoted: {}", lab.servers().await);
    // Replica 3 applies its relay log: it becomes electable.
    let mut c3 = locks.pop().unwrap();
    c3.query_drop("UNLOCK TABLES").await.unwrap();
    let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
    assert_eq!(new, lab.sb.addr(3));
    assert_no_loss(&report.acked, &ids_on(&lab.sb, 3), "lagging replica promoted");
    let mut c2 = locks.pop().unwrap();
    c2.query_drop("UNLOCK TABLES").await.unwrap();
    eprintln!("lagging replicas: refused while behind, {new} promoted once applied; {} acknowledged, 0 lost", report.acked.len());
    lab.finish();
}

/// Fencing 2b: an API failover of a live master whose `max_connections` the application has
/// exhausted. The manager's account keeps the connection MariaDB reserves for privileged
/// accounts, so the fence still runs (clients killed, read_only, final position reached) —
/// or, if it could not, the failover is cancelled. Either way no 50 ms sample shows two
/// writable servers and no acknowledged row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_master_failover_with_max_connections_exhausted() {
    let lab = Lab::start(3, &[]).await;
    let old = lab.sb.addr(1);
    let port = lab.sb.port(1);
    lab.sb.sql(1, "SET GLOBAL max_connections = 12");
    let load = WriteLoad::start(lab.ports(), 1_000_000);
    let sampler = WritableSampler::start(lab.ports());
    // The application takes every remaining connection.
    let mut hogs = Vec::new();
    for _ in 0..40 {
        match common::load::connect(port).await {
            Some(c) => hogs.push(c),
            None => break,
        }
    }
    assert!(common::load::connect(port).await.is_none(), "max_connections is not exhausted ({} held)", hogs.len());
    let (st, body) = lab.action("failover").await;
    // Sample on while the application still holds its connections, and after.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop().await;
    drop(hogs);
    let (samples, dual) = sampler.stop().await;
    assert!(samples >= 10, "only {samples} read_only samples taken");
    assert!(dual.is_empty(), "two writable servers: {dual:?}");
    let master = lab.master_url().await.expect("a master");
    if st == 200 {
        assert_ne!(master, old, "the failover answered 200 but the master did not change");
        // The application's connections may take a moment to close server-side: read it again
        // until a connection is free (a failed connect is `None`, never taken as writable).
        let mut ro = None;
        for _ in 0..50 {
            ro = read_only_of(port).await;
            if ro.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(ro, Some(1), "the old master is writable after the failover");
    } else {
        assert_eq!(master, old, "a cancelled failover moved the master: {body}");
    }
    let mi = lab.index_of(&master);
    assert_no_loss(&report.acked, &ids_on(&lab.sb, mi), "failover with max_connections exhausted");
    eprintln!(
        "max_connections exhausted: failover answered {st} ({body}); {samples} samples, 0 with two writable; {} acknowledged, 0 lost",
        report.acked.len()
    );
    lab.finish();
}

/// Fencing 2a: an API failover of a live master under a writer whose account has SUPER. Since
/// MariaDB 10.11 SUPER no longer carries READ_ONLY ADMIN, so `read_only` stops it; the fence
/// (clients killed, read_only, a global read lock while the final position is read and the
/// candidate catches up) leaves no acknowledged row behind and never two writable servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_master_failover_under_a_super_writer() {
    let lab = Lab::start(3, &[]).await;
    let old = lab.sb.addr(1);
    lab.sb.sql(1, "CREATE OR REPLACE USER 'super_app'@'%' IDENTIFIED BY 'super_app'; GRANT SUPER ON *.* TO 'super_app'@'%'; GRANT ALL PRIVILEGES ON app.* TO 'super_app'@'%'");
    let grants = lab.sb.sql(1, "SHOW GRANTS FOR 'super_app'@'%'");
    assert!(grants.contains("SUPER") && !grants.contains("READ_ONLY ADMIN"), "unexpected grants: {grants}");
    let load = WriteLoad::start_as(lab.ports(), 2_000_000, Duration::from_secs(3), ("super_app", "super_app"));
    let sampler = WritableSampler::start(lab.ports());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (st, body) = lab.action("failover").await;
    assert_eq!(st, 200, "failover of a live master under a SUPER writer: {body}\n{}", lab.m.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop().await;
    let (samples, dual) = sampler.stop().await;
    assert!(samples >= 20, "only {samples} read_only samples taken");
    assert!(dual.is_empty(), "two writable servers: {dual:?}");
    let master = lab.master_url().await.expect("a master");
    assert_ne!(master, old, "the failover answered 200 but the master did not change");
    assert_eq!(read_only_of(lab.sb.port(1)).await, Some(1), "the old master is writable after the failover");
    let mi = lab.index_of(&master);
    assert!(report.acked.len() > 20, "the SUPER writer acknowledged only {} rows", report.acked.len());
    assert!(report.ack_times.iter().any(|(_, p)| *p == lab.sb.port(mi)), "the SUPER writer never wrote on the new master");
    assert_no_loss(&report.acked, &ids_on(&lab.sb, mi), "live-master failover under a SUPER writer");
    assert!(lab.m.log_text().contains("global read lock held"), "the fence took no global read lock:\n{}", lab.m.log_text());
    eprintln!(
        "SUPER writer: failover answered {st}; {samples} samples, 0 with two writable; {} acknowledged ({} refused), 0 lost",
        report.acked.len(),
        report.refused
    );
    lab.finish();
}

/// Rejoin after a crash without a human (`autorejoin-semisync`). Semi-sync is made safe
/// (`failover-semisync-enforce`: AFTER_SYNC, a one-hour timeout). The master is muted (every
/// packet it sends dropped), so the writer's next commit reaches its binary log but no replica
/// and no acknowledgement reaches the writer; then it is killed. The failover promotes a
/// replica; when the old master restarts, its extra transaction is provably unacknowledged:
/// it is rolled back with flashback, recorded as discarded in the crash record, and the old
/// master rejoins as a replica. No acknowledged row is lost; never two writable servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashed_master_with_unacknowledged_transactions_rejoins_by_itself() {
    let lab = Lab::start(3, &[("failover-semisync-enforce", "true")]).await;
    let safe = wait_until(Duration::from_secs(20), || async {
        lab.sb.sql(1, "SELECT @@rpl_semi_sync_master_timeout") == "3600000" && !lab.alerts().await.contains("WARN0110")
    })
    .await;
    assert!(safe, "semi-sync not made safe: {}", lab.alerts().await);
    let old = lab.sb.addr(1);
    let load = WriteLoad::start(lab.ports(), 5_000_000);
    let sampler = WritableSampler::start(lab.ports());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A second client, connected before the mute, commits once the master is muted: its
    // commit reaches the binary log, no replica and no answer.
    let mut late = common::load::connect(lab.sb.port(1)).await.expect("late client connects");
    lab.sb.run(&["mute", "1"]);
    let late_write = tokio::spawn(async move {
        use mysql_async::prelude::Queryable;
        tokio::time::timeout(Duration::from_secs(5), late.query_drop("INSERT INTO app.t (id, port) VALUES (5999999, 0)")).await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let binlog_at_kill = lab.sb.sql(1, "SELECT @@gtid_binlog_pos");
    lab.sb.run(&["kill", "1"]);
    let late_acked = matches!(late_write.await, Ok(Ok(Ok(()))));
    assert!(!late_acked, "the muted master acknowledged a commit");
    // Muted until the failover is done: the dead master's kernel would otherwise still deliver
    // the events queued on its replication sockets.
    let new = lab.wait_new_master(&old, Duration::from_secs(30)).await;
    lab.sb.run(&["heal"]);
    let received = lab.crashes().await.last().map(|c| c["Details"]["elected_io_gtid"].as_str().unwrap_or("").to_string()).unwrap_or_default();
    assert_ne!(binlog_at_kill, received, "the muted master wrote nothing no replica received: nothing to discard");
    lab.sb.run(&["start-one", "1"]);
    let rejoined = wait_until(Duration::from_secs(60), || async {
        let discarded = lab.crashes().await.last().is_some_and(|c| c["Details"]["discarded_gtids"].as_array().is_some_and(|a| !a.is_empty()));
        discarded && lab.all_replicating(&new, None).await
    })
    .await;
    assert!(rejoined, "the old master did not rejoin after discarding its extra transactions: {}\n{}\n{}", lab.servers().await, lab.alerts().await, lab.m.log_text());
    let report = load.stop().await;
    let (samples, dual) = sampler.stop().await;
    assert!(samples >= 20, "only {samples} read_only samples taken");
    assert!(dual.is_empty(), "two writable servers: {dual:?}");
    let log = lab.m.log_text();
    assert!(log.contains("autorejoin-semisync"), "no autorejoin-semisync decision in the log:\n{log}");
    let crash = lab.crashes().await.last().cloned().unwrap();
    let ni = lab.index_of(&new);
    assert_no_loss(&report.acked, &ids_on(&lab.sb, ni), "crash with unacknowledged transactions");
    // The rolled-back old master replicates the new one: it converges to the same rows.
    let same = wait_until(Duration::from_secs(20), || async { ids_on(&lab.sb, 1) == ids_on(&lab.sb, ni) }).await;
    assert!(same, "the rejoined old master does not hold the new master's rows");
    eprintln!(
        "autorejoin-semisync: old master at {binlog_at_kill}, promoted replica had {received}, discarded {}; {samples} samples, 0 dual-writable; {} acknowledged, 0 lost",
        crash["Details"]["discarded_gtids"],
        report.acked.len()
    );
    lab.finish();
}

/// `failover-semisync-enforce`: the leader makes semi-sync safe on the master (AFTER_SYNC, a
/// one-hour timeout) and on a replica that did not acknowledge, so WARN0110 (transactions at
/// risk) goes away, and writes still commit since the replicas acknowledge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semisync_enforce_makes_the_master_safe() {
    let lab = Lab::start(3, &[("failover-semisync-enforce", "true")]).await;
    // One replica stops acknowledging: it is turned back on too.
    lab.sb.sql(3, "SET GLOBAL rpl_semi_sync_slave_enabled = 0");
    let safe = wait_until(Duration::from_secs(20), || async {
        lab.sb.sql(1, "SELECT @@rpl_semi_sync_master_timeout") == "3600000"
            && lab.sb.sql(3, "SELECT @@rpl_semi_sync_slave_enabled") == "1"
            && !lab.alerts().await.contains("WARN0110")
    })
    .await;
    assert!(safe, "semi-sync not made safe: {}\n{}", lab.alerts().await, lab.m.log_text());
    assert_eq!(lab.sb.sql(1, "SELECT @@rpl_semi_sync_master_wait_point"), "AFTER_SYNC");
    let started = std::time::Instant::now();
    lab.sb.sql(1, "INSERT INTO app.t (id, port) VALUES (515151, 0)");
    assert!(started.elapsed() < Duration::from_secs(30), "a write waited for acknowledgements");
    assert!(lab.m.log_text().contains("Semi-sync made safe on master"));
    lab.finish();
}
